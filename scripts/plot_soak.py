"""Draws the soak's samples: Mesa's memory, descriptors and tasks, and its sessions on the
server, over time, with the injected faults shaded.

Usage: plot_soak.py SOAK_CSV FAULTS_CSV OUT_PNG (run by `cargo xtask soak`).
"""

import csv
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def column(rows, name):
    out = []
    for r in rows:
        try:
            v = float(r[name])
        except (KeyError, ValueError):
            v = math.nan
        out.append(v)
    return out


def main() -> int:
    samples, faults, out = read(sys.argv[1]), read(sys.argv[2]), sys.argv[3]
    if not samples:
        print(f"{sys.argv[1]}: no rows", file=sys.stderr)
        return 1
    minutes = [t / 60 for t in column(samples, "t_s")]
    fig, (mem, fds, conns) = plt.subplots(3, 1, figsize=(9, 8), dpi=100, sharex=True)
    for ax in (mem, fds, conns):
        for f in faults:
            ax.axvspan(float(f["injected_s"]) / 60, float(f["cleared_s"]) / 60, color="0.9", lw=0)
        ax.grid(True, alpha=0.3)

    for f in faults:
        mem.annotate(
            f["fault"],
            (float(f["injected_s"]) / 60, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(1, -2),
            textcoords="offset points",
            rotation=90,
            va="top",
            fontsize=5,
            color="0.4",
        )
    mem.plot(minutes, column(samples, "rss_mib"), color="tab:red", lw=1)
    mem.set_ylabel("resident memory, MiB", color="tab:red")
    mem.set_ylim(bottom=0)
    size = mem.twinx()
    size.plot(minutes, column(samples, "exposition_mib"), color="tab:cyan", lw=0.6)
    size.set_ylabel("/metrics size, MiB", color="tab:cyan")
    size.set_ylim(bottom=0)
    mem.set_title("Mesa under a fault every period (shaded: a fault held), 50 targets every 1 s")

    fds.plot(minutes, column(samples, "fds"), color="tab:blue", lw=0.8, label="open descriptors")
    fds.plot(minutes, column(samples, "tasks"), color="tab:green", lw=0.8, label="live tasks")
    fds.plot(minutes, column(samples, "threads"), color="tab:gray", lw=0.8, label="threads")
    fds.set_ylabel("count")
    fds.set_ylim(bottom=0)
    fds.legend(loc="upper right", fontsize="small")

    conns.plot(minutes, column(samples, "sessions"), color="tab:purple", lw=0.8, label="Mesa's sessions on the server")
    conns.plot(minutes, column(samples, "max_sessions_per_target"), color="tab:orange", lw=0.8, label="most of one target (cap 2)")
    conns.set_ylabel("sessions")
    conns.set_ylim(bottom=0)
    conns.set_xlabel("minutes")
    conns.legend(loc="upper right", fontsize="small")

    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Draws Mesa's CPU and resident memory against target count from the benchmark's scale.csv.

Usage: plot_bench.py SCALE_CSV OUT_PNG (run by `cargo xtask bench`).
"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    source, out = sys.argv[1], sys.argv[2]
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        print(f"{source}: no rows", file=sys.stderr)
        return 1
    targets = [int(r["targets"]) for r in rows]
    cpu = [float(r["cpu_percent"]) for r in rows]
    rss = [float(r["rss_mib"]) for r in rows]

    fig, left = plt.subplots(figsize=(7, 4), dpi=110)
    left.set_xscale("log")
    left.plot(targets, cpu, "o-", color="tab:blue", label="CPU (% of one core)")
    left.set_xlabel("targets (one collection each per interval)")
    left.set_ylabel("mean CPU, % of one core", color="tab:blue")
    left.set_ylim(bottom=0)
    right = left.twinx()
    right.plot(targets, rss, "s--", color="tab:red", label="resident memory (MiB)")
    right.set_ylabel("resident memory, MiB", color="tab:red")
    right.set_ylim(bottom=0)
    for x, c, m in zip(targets, cpu, rss):
        left.annotate(f"{c:.1f}%", (x, c), textcoords="offset points", xytext=(-8, 8), ha="right", color="tab:blue")
        right.annotate(f"{m:.0f} MiB", (x, m), textcoords="offset points", xytext=(8, -14), ha="left", color="tab:red")
    left.set_title("Mesa: CPU and memory against target count")
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

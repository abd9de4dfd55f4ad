//! The report: windows of samples, the judgement of a run, `RELIABILITY.md` and the CSVs.

use super::*;

// ---- the report ----------------------------------------------------------------------------

pub(crate) struct Window {
    pub(crate) from: f64,
    pub(crate) to: f64,
    pub(crate) rows: Vec<Sample>,
}

impl Window {
    pub(crate) fn col(&self, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.rows.iter().map(f).filter(|v| v.is_finite()).collect()
    }

    pub(crate) fn min(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        self.col(f).into_iter().fold(f64::INFINITY, f64::min)
    }

    pub(crate) fn max(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        self.col(f).into_iter().fold(f64::NEG_INFINITY, f64::max)
    }

    pub(crate) fn median(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        percentile(&self.col(f), 0.5)
    }
}

/// One figure of a window (a row of the verdict's table).
pub(crate) type WindowFigure = Box<dyn Fn(&Window) -> f64>;

pub(crate) struct Report {
    pub(crate) samples: Vec<Sample>,
    pub(crate) events: Vec<Event>,
    pub(crate) traffic: Traffic,
    pub(crate) problems: Vec<String>,
    pub(crate) windows: Vec<Window>,
    pub(crate) warm_up: f64,
    pub(crate) judged: bool,
}

impl Report {
    pub(crate) fn new(
        args: &Args,
        samples: Vec<Sample>,
        events: Vec<Event>,
        traffic: Traffic,
        mut problems: Vec<String>,
    ) -> Self {
        let total = args.duration.as_secs_f64();
        // Warm-up: the first 5 minutes, or a sixth of a shorter run; windows of 5 minutes
        // (a quarter of a shorter run's remainder).
        let warm_up = (total / 6.0).min(300.0);
        let width = ((total - warm_up) / 4.0).clamp(1.0, 300.0);
        let mut windows = Vec::new();
        let mut from = warm_up;
        while from + width / 2.0 < total {
            let to = (from + width).min(total);
            windows.push(Window {
                from,
                to,
                rows: samples
                    .iter()
                    .filter(|s| s.t >= from && s.t < to)
                    .cloned()
                    .collect(),
            });
            from = to;
        }
        let judged = args.duration >= JUDGED;
        for s in &samples {
            if s.max_per_target > 2.0 {
                problems.push(format!(
                    "{:.0} s: {} sessions of one target on the server",
                    s.t, s.max_per_target
                ));
            }
            if s.oldest_statement > (STATEMENT_TIMEOUT + Duration::from_secs(1)).as_secs_f64() {
                problems.push(format!(
                    "{:.0} s: a Mesa statement {:.1} s old on the server",
                    s.t, s.oldest_statement
                ));
            }
        }
        for f in traffic.scrape_failures.iter().take(5) {
            problems.push(format!("a scrape failed: {f}"));
        }
        for f in traffic.admin_failures.iter().take(5) {
            problems.push(format!("an admin read: {f}"));
        }
        if let (true, Some(first), Some(last)) = (judged, windows.first(), windows.last()) {
            let rss = last.median(|s| s.rss_mib) - first.median(|s| s.rss_mib);
            if rss > RSS_SLACK_MIB {
                problems.push(format!(
                    "resident memory grew {rss:.1} MiB after warm-up (median of the last window against the first)"
                ));
            }
            let fds = last.min(|s| s.fds) - first.min(|s| s.fds);
            if fds > 2.0 {
                problems.push(format!(
                    "the descriptors' floor grew by {fds} after warm-up"
                ));
            }
            let tasks = last.min(|s| s.tasks) - first.min(|s| s.tasks);
            if tasks > 2.0 {
                problems.push(format!(
                    "the live tasks' floor grew by {tasks} after warm-up"
                ));
            }
        }
        Self {
            samples,
            events,
            traffic,
            problems,
            windows,
            warm_up,
            judged,
        }
    }

    pub(crate) fn write(&self, args: &Args) -> Result<(), Error> {
        let mut csv = String::from(
            "t_s,rss_mib,fds,threads,tasks,sessions,max_sessions_per_target,oldest_statement_s,targets_up,series,exposition_mib,scrape_max_ms,fault\n",
        );
        for s in &self.samples {
            writeln!(
                csv,
                "{:.1},{:.2},{},{},{},{},{},{:.3},{},{},{:.3},{:.2},{}",
                s.t,
                s.rss_mib,
                s.fds,
                s.threads,
                s.tasks,
                s.sessions,
                s.max_per_target,
                s.oldest_statement,
                s.up,
                s.series,
                s.exposition_mib,
                s.scrape_max_ms,
                s.fault
            )?;
        }
        std::fs::write(args.out.join("soak.csv"), csv)?;
        let mut faults =
            String::from("fault,targets_hit,injected_s,cleared_s,min_up,recovered_s\n");
        for e in &self.events {
            writeln!(
                faults,
                "{},{},{:.1},{:.1},{},{}",
                e.fault.name(),
                e.hit,
                e.injected,
                e.cleared,
                e.min_up,
                e.recovered.map_or(String::new(), |r| format!("{r:.2}"))
            )?;
        }
        std::fs::write(args.out.join("soak-faults.csv"), faults)?;
        std::fs::write(args.out.join("RELIABILITY.md"), self.markdown(args)?)?;
        Ok(())
    }

    pub(crate) fn markdown(&self, args: &Args) -> Result<String, Error> {
        let mut md = String::new();
        let minutes = args.duration.as_secs_f64() / 60.0;
        writeln!(md, "# Reliability: the soak\n")?;
        writeln!(
            md,
            "Written by `{}` (`examples/soak/`); the plot by `scripts/plot_soak.py`. Do not edit by hand.\n",
            args.command
        )?;
        writeln!(md, "- Machine: {}", machine())?;
        writeln!(
            md,
            "- Run: {minutes:.0} minutes, {TARGETS} targets (one role and one TCP fault proxy each) on one PostgreSQL 15 cluster, collected every {} s (timeout {} ms, statement_timeout {} ms, lock_timeout 300 ms; collectors health, {}: the full set, 50 times a second, would cost this one server the work of 50); seed {}",
            INTERVAL.as_secs(),
            TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis(),
            COLLECTORS
                .iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            args.seed
        )?;
        writeln!(
            md,
            "- `pg_stat_statements` holds 150 statements before Mesa starts, so `stat_statements` exports its 100 per target (5 families each) from the first collection and `/metrics` is at full size from the start (its size is on the plot)"
        )?;
        writeln!(
            md,
            "- Load besides the collections: two scrapers reading `/metrics` back to back with a {} ms pause (one with gzip), an admin reader calling the read routes of random targets every 250 ms",
            SCRAPE_PAUSE.as_millis()
        )?;
        writeln!(
            md,
            "- Faults: one every {} s, held {} s, then cleared; per-target faults hit {HIT} random targets, the others the whole server. {} faults injected.",
            args.fault_every.as_secs(),
            (args.fault_every / 2).as_secs(),
            self.events.len()
        )?;
        writeln!(
            md,
            "- Warm-up: the first {:.0} s; the figures after it are judged{}.\n",
            self.warm_up,
            if self.judged {
                ""
            } else {
                " only for runs of 10 minutes or more (this one is shorter: shown, not judged)"
            }
        )?;
        writeln!(
            md,
            "![memory, descriptors, tasks and connections over time](soak.png)\n"
        )?;
        writeln!(md, "## Verdict\n")?;
        if self.problems.is_empty() {
            writeln!(md, "Passed: nothing that must never happen happened.\n")?;
        } else {
            for p in &self.problems {
                writeln!(md, "- FAILED: {p}")?;
            }
            writeln!(md)?;
        }
        if let (Some(first), Some(last)) = (self.windows.first(), self.windows.last()) {
            writeln!(
                md,
                "| after warm-up | first window | last window | change |"
            )?;
            writeln!(md, "|---|---:|---:|---:|")?;
            let rows: [(&str, WindowFigure); 4] = [
                (
                    "resident memory, median MiB",
                    Box::new(|w: &Window| w.median(|s| s.rss_mib)),
                ),
                (
                    "open descriptors, floor",
                    Box::new(|w: &Window| w.min(|s| s.fds)),
                ),
                (
                    "open descriptors, median",
                    Box::new(|w: &Window| w.median(|s| s.fds)),
                ),
                (
                    "live tasks, floor",
                    Box::new(|w: &Window| w.min(|s| s.tasks)),
                ),
            ];
            for (name, f) in rows {
                let (a, b) = (f(first), f(last));
                writeln!(md, "| {name} | {a:.1} | {b:.1} | {:+.1} |", b - a)?;
            }
            writeln!(md)?;
        }
        writeln!(md, "## Over time\n")?;
        writeln!(
            md,
            "| window (s) | memory MiB min / median / max | descriptors min / median / max | threads max | tasks min / max | Mesa sessions median / max | most of one target | oldest statement s | slowest scrape ms |"
        )?;
        writeln!(md, "|---|---|---|---:|---|---|---:|---:|---:|")?;
        for w in &self.windows {
            writeln!(
                md,
                "| {:.0}–{:.0} | {:.1} / {:.1} / {:.1} | {} / {} / {} | {} | {} / {} | {} / {} | {} | {:.2} | {:.1} |",
                w.from,
                w.to,
                w.min(|s| s.rss_mib),
                w.median(|s| s.rss_mib),
                w.max(|s| s.rss_mib),
                w.min(|s| s.fds),
                w.median(|s| s.fds),
                w.max(|s| s.fds),
                w.max(|s| s.threads),
                w.min(|s| s.tasks),
                w.max(|s| s.tasks),
                w.median(|s| s.sessions),
                w.max(|s| s.sessions),
                w.max(|s| s.max_per_target),
                w.max(|s| s.oldest_statement),
                w.max(|s| s.scrape_max_ms),
            )?;
        }
        writeln!(md)?;
        writeln!(md, "## Faults\n")?;
        writeln!(
            md,
            "| fault | times | targets hit | fewest targets up while held | slowest recovery after the clear (s) |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|")?;
        for fault in Fault::ALL {
            let of: Vec<&Event> = self.events.iter().filter(|e| e.fault == fault).collect();
            if of.is_empty() {
                writeln!(md, "| {} | 0 | | | |", fault.name())?;
                continue;
            }
            let slowest = of
                .iter()
                .map(|e| e.recovered.unwrap_or(f64::INFINITY))
                .fold(0.0, f64::max);
            writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                fault.name(),
                of.len(),
                of[0].hit,
                of.iter().map(|e| e.min_up).fold(f64::INFINITY, f64::min),
                if slowest.is_finite() {
                    format!("{slowest:.1}")
                } else {
                    "not recovered".to_owned()
                }
            )?;
        }
        writeln!(md)?;
        let t = &self.traffic;
        writeln!(md, "## Scrapes and admin reads\n")?;
        writeln!(
            md,
            "- `/metrics`: {} scrapes, {} failed; p50 {:.1} ms, p99 {:.1} ms, slowest {:.1} ms",
            t.all.len() + t.scrape_failures.len(),
            t.scrape_failures.len(),
            percentile(&t.all, 0.5),
            percentile(&t.all, 0.99),
            t.all.iter().copied().fold(0.0, f64::max)
        )?;
        let answers: Vec<String> = t.admin.iter().map(|(s, n)| format!("{n} × {s}")).collect();
        writeln!(
            md,
            "- admin reads: {} ({}); {} outside 200, 503 and 504 or unanswered",
            t.admin.values().sum::<u64>(),
            answers.join(", "),
            t.admin_failures.len()
        )?;
        writeln!(
            md,
            "\nThe samples are in `soak.csv` (one row a second) and the faults in `soak-faults.csv`."
        )?;
        Ok(md)
    }
}

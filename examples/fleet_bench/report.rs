//! The report: `BENCHMARKS.md` and `scale.csv` from the phases' figures.

use super::*;

// ---- the report ------------------------------------------------------------------------------

pub(crate) fn version(cmd: &Path, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            all.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default()
}

/// A Mesa / postgres_exporter table: its header, then a row per figure with its digits and
/// the ratio.
pub(crate) fn side_by_side(md: &mut String, rows: &[(&str, f64, f64, usize)]) -> Result<(), Error> {
    against(md, "postgres_exporter", rows)
}

/// A Mesa / `reference` table: its header, then a row per figure with its digits and the
/// ratio.
pub(crate) fn against(
    md: &mut String,
    reference: &str,
    rows: &[(&str, f64, f64, usize)],
) -> Result<(), Error> {
    writeln!(md, "| figure | Mesa | {reference} | Mesa / {reference} |")?;
    writeln!(md, "|---|---:|---:|---:|")?;
    for &(name, m, e, digits) in rows {
        writeln!(
            md,
            "| {name} | {m:.digits$} | {e:.digits$} | {} |",
            ratio(m, e)
        )?;
    }
    Ok(())
}

pub(crate) fn ratio(mesa: f64, other: f64) -> String {
    if other > 0.0 && mesa.is_finite() {
        format!("{:.2}", mesa / other)
    } else {
        "n/a".to_owned()
    }
}

/// A table row: its name, the figure of a run, and the digits shown.
type Row = (&'static str, fn(&OneTarget) -> f64, usize);

/// `part` as a percentage of `whole`, or `n/a` when the whole was not measured above zero.
pub(crate) fn share(part: f64, whole: f64) -> String {
    if whole > 0.0 && part.is_finite() {
        format!("{:.0}%", 100.0 * part / whole)
    } else {
        "n/a".to_owned()
    }
}

pub(crate) fn run() -> Result<(), Error> {
    let args = parse_args()?;
    let plan = args.plan.clone();
    std::fs::create_dir_all(&args.out)?;
    let work = std::env::temp_dir().join(format!("mesa-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let started = Instant::now();
    if args.only_mysql {
        let mysql = mysql::phase(&args, &work, plan.per_collection)?;
        let mut md = String::new();
        writeln!(
            md,
            "# MySQL: Mesa and mysqld_exporter side by side\n\nWritten by `{}`. Machine: {}.",
            args.command,
            machine()
        )?;
        mysql_section(&mut md, &mysql, plan.per_collection)?;
        std::fs::write(args.out.join("MYSQL.md"), &md)?;
        println!("{md}");
        eprintln!("== wrote {}", args.out.join("MYSQL.md").display());
        let _ = std::fs::remove_dir_all(&work);
        return Ok(());
    }
    eprintln!("bench: starting PostgreSQL");
    let cluster = PgCluster::start(ClusterOptions {
        extra_conf: vec![
            "shared_preload_libraries = 'pg_stat_statements'".to_owned(),
            "max_connections = 200".to_owned(),
            // Both exporters only read; an autovacuum worker's CPU would land in the
            // postmaster's reaped-children figure and be counted as theirs.
            "autovacuum = off".to_owned(),
            // Planning time too in the profile of the default-interval phase.
            "pg_stat_statements.track_planning = on".to_owned(),
        ],
        ..ClusterOptions::default()
    })?;
    cluster.psql(
        "postgres",
        &format!(
            "CREATE EXTENSION pg_stat_statements;
             CREATE ROLE bench_monitor LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor;"
        ),
    )?;
    cluster.psql("postgres", "CREATE DATABASE bench_mesa")?;
    cluster.psql("postgres", "CREATE DATABASE bench_pge")?;
    for db in ["bench_mesa", "bench_pge"] {
        cluster.psql(
            db,
            "CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric);
             INSERT INTO orders (total) SELECT g FROM generate_series(1, 10000) g;
             ANALYZE orders;
             GRANT SELECT ON orders TO bench_monitor;",
        )?;
    }
    let postmaster = postmaster_pid(&cluster)?;

    eprintln!("bench: server idle for {:?}", plan.idle);
    settle();
    let (s0, b0, t0) = (
        client_cpu(postmaster),
        background_cpu(postmaster),
        Instant::now(),
    );
    std::thread::sleep(plan.idle);
    let elapsed = t0.elapsed().as_secs_f64();
    let idle_per_s = (client_cpu(postmaster) - s0) / elapsed;
    let background_per_s = (background_cpu(postmaster) - b0) / elapsed;

    eprintln!("bench: {} logins", plan.logins);
    let login = logins(&cluster, postmaster, plan.logins)?;

    let server = Server {
        cluster: &cluster,
        postmaster,
    };
    if args.only_queries {
        let (mesa, pge) = user_queries(&args, &work, &server, plan.per_collection)?;
        let mut md = String::new();
        writeln!(
            md,
            "# User queries: Mesa and postgres_exporter with one queries.yaml\n\nWritten by `{}`. Machine: {}. PostgreSQL: {}.\n",
            args.command,
            machine(),
            cluster.psql("postgres", "SHOW server_version")?.trim()
        )?;
        section(&mut md, &mesa, &pge)?;
        std::fs::write(args.out.join("QUERIES.md"), &md)?;
        println!("{md}");
        eprintln!("== wrote {}", args.out.join("QUERIES.md").display());
        return Ok(());
    }
    // The default interval, long enough for every tier to run (sizes every 5 min).
    let every = plan.default_interval;
    // Mesa alone at the default interval with `extra` collection keys, profiled.
    let mesa_at_default = |what: &str, extra: &str| -> Result<OneTarget, Error> {
        eprintln!(
            "bench: Mesa alone{what}, one target every {every:?}, for {:?}",
            plan.default_window
        );
        let p = start_mesa(&args, &work, &cluster, 1, every, extra)?;
        std::thread::sleep(every);
        one_target(
            &server,
            &p,
            plan.default_window,
            every,
            Counting::MesaCounter,
            true,
        )
    };
    let mesa_default = mesa_at_default("", "")?;
    // Like for like: postgres_exporter by default reads the one database of its DSN.
    let mesa_alone = mesa_at_default(" without discovery", ", databases: {discover: false}")?;
    eprintln!(
        "bench: postgres_exporter alone, scraped every {every:?}, for {:?}",
        plan.default_window
    );
    let pge_default = {
        let p = start_exporter(&args, &work, &cluster, &[])?;
        std::thread::sleep(Duration::from_millis(1500));
        one_target(
            &server,
            &p,
            plan.default_window,
            every,
            Counting::Scrapes,
            true,
        )?
    };

    eprintln!(
        "bench: Mesa, one target, every second, for {:?}",
        plan.per_collection
    );
    let second = Duration::from_secs(1);
    let mesa1 = start_mesa(&args, &work, &cluster, 1, second, "")?;
    std::thread::sleep(Duration::from_millis(1500));
    let mesa = one_target(
        &server,
        &mesa1,
        plan.per_collection,
        second,
        Counting::MesaCounter,
        false,
    )?;
    eprintln!(
        "bench: postgres_exporter, scraped every second, for {:?}",
        plan.per_collection
    );
    let pge = start_exporter(&args, &work, &cluster, &[])?;
    std::thread::sleep(Duration::from_millis(1500));
    let exporter = one_target(
        &server,
        &pge,
        plan.per_collection,
        second,
        Counting::Scrapes,
        false,
    )?;

    drop(mesa1);
    let (queries_mesa, queries_pge) = user_queries(&args, &work, &server, plan.per_collection)?;
    let mesa1 = start_mesa(&args, &work, &cluster, 1, second, "")?;
    std::thread::sleep(Duration::from_millis(1500));

    eprintln!("bench: latency with wrk");
    let hundred = if plan.smoke { 10 } else { 100 };
    let mesa100 = start_mesa(&args, &work, &cluster, hundred, plan.memory_interval, "")?;
    // Warm: every target collected at least twice, nothing scraped yet.
    std::thread::sleep(plan.memory_interval * 3);
    let idle_rss = rss_mib(mesa100.pid());
    let mut scraped_rss = 0.0f64;
    let mut latency: Vec<(String, u32, bool, Latency)> = Vec::new();
    let endpoints: Vec<(String, SocketAddr, &str)> = vec![
        (
            "Mesa, 1 target: /metrics".to_owned(),
            mesa1.addr,
            "/metrics",
        ),
        (
            format!("Mesa, {hundred} targets: /metrics"),
            mesa100.addr,
            "/metrics",
        ),
        (
            format!("Mesa, {hundred} targets: /probe"),
            mesa100.addr,
            "/probe?target=t0001",
        ),
        (
            "postgres_exporter, 1 target: /metrics".to_owned(),
            pge.addr,
            "/metrics",
        ),
    ];
    let hundred_size = get(mesa100.addr, "/metrics")?.1.len();
    for (label, addr, path) in &endpoints {
        for conns in [1, 10] {
            for gzip in [false, true] {
                // Mesa's resident memory under 10 scrapers of the 100 targets' /metrics.
                let watched = *addr == mesa100.addr && *path == "/metrics" && conns == 10;
                let (figures, peak) = if watched {
                    peak_rss_during(mesa100.pid(), || wrk(*addr, path, conns, gzip, plan.wrk))
                } else {
                    (wrk(*addr, path, conns, gzip, plan.wrk), 0.0)
                };
                scraped_rss = scraped_rss.max(peak);
                latency.push((label.clone(), conns, gzip, figures?));
            }
        }
    }
    std::thread::sleep(Duration::from_secs(15));
    let after_rss = rss_mib(mesa100.pid());
    let rss_pge = rss_mib(pge.pid());
    drop((mesa1, mesa100, pge));

    eprintln!(
        "bench: {} databases of 20 tables, discovery on, for {:?} each",
        plan.discovery_databases, plan.discovery_window
    );
    many_databases(&cluster, plan.discovery_databases)?;
    let mesa_many = {
        let p = start_mesa(&args, &work, &cluster, 1, every, "")?;
        discovery(&server, &p, plan.discovery_window, every)?
    };
    let pge_many = {
        let p = start_exporter(&args, &work, &cluster, &["--auto-discover-databases"])?;
        discovery(&server, &p, plan.discovery_window, every)?
    };
    // Gone before the scale phase: 53 databases would grow every target's server-wide
    // families (activity, locks, stat_database per database) about fivefold.
    drop_databases(&cluster, plan.discovery_databases)?;

    let mut scales = Vec::new();
    for n in plan.scale.clone() {
        eprintln!("bench: Mesa at {n} targets every {:?}", plan.scale_interval);
        scales.push(scale(&args, &work, &cluster, n)?);
    }
    let mysql = mysql::phase(&args, &work, plan.per_collection)?;
    let total = started.elapsed();

    // ---- write the report ----
    let mut csv = String::from("targets,cpu_percent,rss_mib\n");
    for s in &scales {
        writeln!(csv, "{},{:.3},{:.2}", s.targets, s.cpu_percent, s.rss_mib)?;
    }
    std::fs::write(args.out.join("scale.csv"), csv)?;

    let mut md = String::new();
    writeln!(
        md,
        "# Benchmarks: Mesa and postgres_exporter side by side\n"
    )?;
    writeln!(
        md,
        "Written by `{}` ({}). Do not edit by hand: run the command again.\n",
        args.command,
        if plan.smoke {
            "smoke run: short windows, small scale; the figures only show each is measured"
        } else {
            "full run"
        }
    )?;
    writeln!(md, "- Machine: {}", machine())?;
    writeln!(
        md,
        "- PostgreSQL: {}",
        cluster.psql("postgres", "SHOW server_version")?.trim()
    )?;
    writeln!(
        md,
        "- Mesa: {} (release build)",
        version(&args.mesa, "--version")
    )?;
    writeln!(
        md,
        "- postgres_exporter: {}",
        version(&args.exporter, "--version")
    )?;
    writeln!(
        md,
        "- One throwaway cluster (the test harness), `pg_stat_statements` loaded; both exporters log in as a `pg_monitor` member with SCRAM-SHA-256, without TLS, each to its own database with one 10 000-row table. Every phase runs alone. Server CPU is what the server spent on its clients: the postmaster, its live backends and every backend that ended in the window (from `/proc`), without its background processes (checkpointer, writers, launchers: {:.2} ms/s idle) and with autovacuum off; idle, with no client, this figure was {:.2} ms/s.",
        background_per_s * 1000.0,
        idle_per_s * 1000.0
    )?;
    writeln!(md, "- Run time: {:.0} s.\n", total.as_secs_f64())?;

    writeln!(md, "## One target, default collectors of each\n")?;
    writeln!(
        md,
        "Mesa collects on its schedule (every second here) and is scraped once per collection; postgres_exporter collects on each scrape (every second here). CPU is the exporter process's user + system time over the window ({:.0} s) divided by collections.\n",
        plan.per_collection.as_secs_f64()
    )?;
    let m_per_series = mesa.cpu_per_collection_ms * 1000.0 / mesa.series as f64;
    let e_per_series = exporter.cpu_per_collection_ms * 1000.0 / exporter.series as f64;
    let rows: Vec<(&str, f64, f64, usize)> = vec![
        (
            "exporter CPU per collection (ms)",
            mesa.cpu_per_collection_ms,
            exporter.cpu_per_collection_ms,
            2,
        ),
        (
            "series exported (whole /metrics)",
            mesa.series as f64,
            exporter.series as f64,
            0,
        ),
        (
            "exporter CPU per exported series (µs)",
            m_per_series,
            e_per_series,
            2,
        ),
        (
            "connections opened per collection",
            mesa.connections_per_collection,
            exporter.connections_per_collection,
            2,
        ),
        (
            "statements per collection (pg_stat_statements calls)",
            mesa.statements_per_collection,
            exporter.statements_per_collection,
            1,
        ),
        (
            "server CPU per collection (ms)",
            mesa.server_cpu_per_collection_ms,
            exporter.server_cpu_per_collection_ms,
            2,
        ),
        (
            "resident memory (MiB)",
            mesa.rss_mib,
            exporter.rss_mib.max(rss_pge),
            1,
        ),
        (
            "collections in the window",
            mesa.collections,
            exporter.collections,
            0,
        ),
    ];
    side_by_side(&mut md, &rows)?;
    writeln!(md)?;
    section(&mut md, &queries_mesa, &queries_pge)?;
    writeln!(
        md,
        "\n## One target at the default interval ({:.0} s)\n",
        plan.default_interval.as_secs_f64()
    )?;
    writeln!(
        md,
        "Each exporter alone for {:.0} s, scraped every interval, so every tier ran (database sizes every 5 min, settings on change). Statements and sessions are the whole server's. Mesa with its defaults also visits every database (here `postgres`, `bench_mesa` and `bench_pge`, each every 4 intervals: the target's own on its kept session, the two others with a login each); with `databases: {{discover: false}}` it reads only its target's database, as postgres_exporter does by default. The goal (issue 19): Mesa's server CPU and its own CPU per collection at most 1/3 of postgres_exporter's per scrape.\n",
        plan.default_window.as_secs_f64()
    )?;
    writeln!(
        md,
        "| figure | Mesa | Mesa, `discover: false` | postgres_exporter | Mesa / postgres_exporter | `discover: false` / postgres_exporter |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    let pick: [Row; 5] = [
        (
            "server CPU per collection (ms)",
            |t| t.server_cpu_per_collection_ms,
            2,
        ),
        (
            "exporter CPU per collection (ms)",
            |t| t.cpu_per_collection_ms,
            2,
        ),
        (
            "statements per collection (pg_stat_statements calls)",
            |t| t.statements_per_collection,
            1,
        ),
        (
            "sessions opened per collection",
            |t| t.connections_per_collection,
            2,
        ),
        ("collections in the window", |t| t.collections, 0),
    ];
    for (name, figure, digits) in pick {
        let (m, a, e) = (
            figure(&mesa_default),
            figure(&mesa_alone),
            figure(&pge_default),
        );
        writeln!(
            md,
            "| {name} | {m:.digits$} | {a:.digits$} | {e:.digits$} | {} | {} |",
            ratio(m, e),
            ratio(a, e)
        )?;
    }
    writeln!(
        md,
        "\n### Where the server's time goes at {:.0} s\n",
        plan.default_interval.as_secs_f64()
    )?;
    writeln!(
        md,
        "The ten statements that took the most server time in each run above (`pg_stat_statements`: execution and planning, per collection; a statement's text cut at 72 characters). A login is not a statement: it costs the server {:.2} ms each (measured alone, below), on top of these.\n",
        login.server_ms
    )?;
    for (who, run) in [
        ("Mesa", &mesa_default),
        ("Mesa, `discover: false`", &mesa_alone),
        ("postgres_exporter", &pge_default),
    ] {
        let total: f64 = run.profile.iter().map(|p| p.ms).sum::<f64>() / run.collections;
        writeln!(
            md,
            "**{who}**: {total:.2} ms per collection in these ten, with {:.2} logins per collection.\n",
            run.connections_per_collection
        )?;
        writeln!(
            md,
            "| calls per collection | ms per collection | statement |"
        )?;
        writeln!(md, "|---:|---:|---|")?;
        for p in &run.profile {
            writeln!(
                md,
                "| {:.2} | {:.3} | `{}` |",
                p.calls / run.collections,
                p.ms / run.collections,
                p.text
            )?;
        }
        writeln!(md)?;
    }

    writeln!(
        md,
        "\n## {} databases of 20 tables, discovery on\n",
        plan.discovery_databases
    )?;
    writeln!(
        md,
        "One server with {} more databases of 20 small tables each; Mesa with its defaults (discovery on, every {:.0} s, each database visited every 4 intervals), postgres_exporter with `--auto-discover-databases`, scraped every {:.0} s; each alone for {:.0} s after one interval of warm-up.\n",
        plan.discovery_databases,
        plan.default_interval.as_secs_f64(),
        plan.default_interval.as_secs_f64(),
        plan.discovery_window.as_secs_f64()
    )?;
    side_by_side(
        &mut md,
        &[
            (
                "logins per second",
                mesa_many.logins_per_s,
                pge_many.logins_per_s,
                2,
            ),
            (
                "server CPU per second (ms)",
                mesa_many.server_cpu_ms_per_s,
                pge_many.server_cpu_ms_per_s,
                2,
            ),
            (
                "exporter CPU per second (ms)",
                mesa_many.exporter_cpu_ms_per_s,
                pge_many.exporter_cpu_ms_per_s,
                2,
            ),
            (
                "series exported",
                mesa_many.series as f64,
                pge_many.series as f64,
                0,
            ),
            (
                "databases with table series",
                mesa_many.databases as f64,
                pge_many.databases as f64,
                0,
            ),
        ],
    )?;

    writeln!(md, "\n## Memory under scraping\n")?;
    writeln!(
        md,
        "Mesa with {hundred} targets collected every {:.0} s: resident memory after warm-up with no scrape, the peak while 10 wrk connections scrape `/metrics` (plain, then gzip, {:.0} s each), and 15 s after the last scrape. The goal (issue 19): the peak within 2x the idle figure.\n",
        plan.memory_interval.as_secs_f64(),
        plan.wrk.as_secs_f64()
    )?;
    writeln!(
        md,
        "| idle (MiB) | peak under 10 scrapers (MiB) | 15 s later (MiB) | peak / idle |"
    )?;
    writeln!(md, "|---:|---:|---:|---:|")?;
    writeln!(
        md,
        "| {idle_rss:.1} | {scraped_rss:.1} | {after_rss:.1} | {} |",
        ratio(scraped_rss, idle_rss)
    )?;

    writeln!(md, "\n### Authentication\n")?;
    writeln!(
        md,
        "Mesa keeps one collection session per target (`collection.session: kept`), as postgres_exporter keeps its connection; database visits and `session: ephemeral` pay one SCRAM-SHA-256 login each. Measured alone, {} logins in a row with Mesa's driver (tokio-postgres):\n",
        plan.logins
    )?;
    writeln!(
        md,
        "| per login | CPU (ms) | share of Mesa's per-collection figure |"
    )?;
    writeln!(md, "|---|---:|---:|")?;
    writeln!(
        md,
        "| client: SCRAM hashing alone (PBKDF2, 4096 rounds) | {:.2} | {} of exporter CPU |",
        login.hashing_ms,
        share(login.hashing_ms, mesa.cpu_per_collection_ms)
    )?;
    writeln!(
        md,
        "| client: whole connect and close | {:.2} | {} of exporter CPU |",
        login.client_ms,
        share(login.client_ms, mesa.cpu_per_collection_ms)
    )?;
    writeln!(
        md,
        "| server: backend start, authentication and exit | {:.2} | {} of server CPU |\n",
        login.server_ms,
        share(login.server_ms, mesa.server_cpu_per_collection_ms)
    )?;

    writeln!(
        md,
        "## Scrape latency (wrk, {:.0} s per row)\n",
        plan.wrk.as_secs_f64()
    )?;
    writeln!(
        md,
        "wrk runs on the same 2 cores as the exporter. Mesa's `/metrics` at {hundred} targets is {:.1} MB of text. postgres_exporter queries the server on every scrape, so its rows are collections, not cache reads.\n",
        hundred_size as f64 / 1e6
    )?;
    writeln!(
        md,
        "| endpoint | connections | gzip | p50 (ms) | p99 (ms) | requests/s | errors |"
    )?;
    writeln!(md, "|---|---:|---|---:|---:|---:|---:|")?;
    for (label, conns, gzip, l) in &latency {
        writeln!(
            md,
            "| {label} | {conns} | {} | {:.2} | {:.2} | {:.0} | {} |",
            if *gzip { "yes" } else { "no" },
            l.p50_ms,
            l.p99_ms,
            l.rps,
            l.errors
        )?;
    }
    writeln!(
        md,
        "\nMesa / postgres_exporter at one target, `/metrics`:\n"
    )?;
    writeln!(md, "| connections | gzip | p99 ratio | throughput ratio |")?;
    writeln!(md, "|---:|---|---:|---:|")?;
    for conns in [1, 10] {
        for gzip in [false, true] {
            let find = |prefix: &str| {
                latency
                    .iter()
                    .find(|(l, c, g, _)| l.starts_with(prefix) && *c == conns && *g == gzip)
                    .map(|r| r.3.clone())
                    .unwrap_or_default()
            };
            let (m, e) = (find("Mesa, 1 target"), find("postgres_exporter"));
            writeln!(
                md,
                "| {conns} | {} | {} | {} |",
                if gzip { "yes" } else { "no" },
                ratio(m.p99_ms, e.p99_ms),
                ratio(m.rps, e.rps)
            )?;
        }
    }

    writeln!(
        md,
        "\n## Mesa at scale: every target every {:.0} s\n",
        plan.scale_interval.as_secs_f64()
    )?;
    writeln!(
        md,
        "Targets share the one cluster. Measured over {:.0} s after one full interval of warm-up, with one `/metrics` scrape per interval. Start delay is how late a collection started after its tick (`mesa_collect_start_delay_seconds`, read as the smallest bucket bound that holds the quantile).\n",
        plan.scale_window.as_secs_f64()
    )?;
    writeln!(
        md,
        "| targets | mean CPU (% of one core) | start delay p50 | start delay p99 | skipped ticks | collections | pg_up | resident memory (MiB) |"
    )?;
    writeln!(md, "|---:|---:|---|---|---:|---:|---:|---:|")?;
    for s in &scales {
        writeln!(
            md,
            "| {} | {:.2} | {} | {} | {:.0} | {:.0} | {:.0} | {:.1} |",
            s.targets,
            s.cpu_percent,
            s.delay_p50,
            s.delay_p99,
            s.skipped,
            s.collections,
            s.up,
            s.rss_mib
        )?;
    }
    writeln!(
        md,
        "\n![Mesa's CPU and memory against target count](benchmarks.png)"
    )?;
    mysql_section(&mut md, &mysql, plan.per_collection)?;
    std::fs::write(args.out.join("BENCHMARKS.md"), &md)?;
    println!("{md}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

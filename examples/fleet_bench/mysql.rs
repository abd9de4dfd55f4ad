//! The MySQL phase: Mesa and Debian's mysqld_exporter, each alone, against one throwaway
//! MariaDB (the test harness), one collection per second: exporter CPU per collection,
//! server CPU per collection, connections per collection, series and resident memory.

use super::*;

use mesa_testkit::mariadb::MariaDb;

/// Where Debian installs mysqld_exporter.
const MYSQLD_EXPORTER: &str = "/usr/bin/prometheus-mysqld-exporter";

/// The phase's figures for both exporters, and what it ran against.
pub(crate) struct MysqlPhase {
    pub(crate) mesa: OneTarget,
    pub(crate) exporter: OneTarget,
    pub(crate) server_version: String,
    pub(crate) exporter_version: String,
    pub(crate) idle_server_ms_per_s: f64,
}

/// The server's `Connections` (connection attempts so far) and `Questions`.
fn counters(server: &MariaDb) -> Result<(f64, f64), Error> {
    let out = server.sql(
        "",
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Connections', 'Questions')",
    )?;
    let value = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((value("Connections"), value("Questions")))
}

/// Runs `proc` for `window`, scraping `/metrics` every second, and accounts it against the
/// server `mariadbd` (pid `server_pid`), whose idle CPU per second is `idle_per_s`.
fn measure(
    server: &MariaDb,
    server_pid: u32,
    idle_per_s: f64,
    proc: &Proc,
    window: Duration,
    counting: Counting,
) -> Result<OneTarget, Error> {
    let every = Duration::from_secs(1);
    let started = mesa_collections(&get(proc.addr, "/metrics")?.1);
    // The harness's own statements (these counters) are outside the window's difference
    // but count one connection and two questions each: subtracted below.
    let (conn0, q0) = counters(server)?;
    settle();
    let (cpu0, server0, t0) = (
        cpu_of(proc.pid(), true),
        cpu_of(server_pid, false),
        Instant::now(),
    );
    let (scrapes, mut last) = scrape_for(proc, t0, window, every)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, server1) = (cpu_of(proc.pid(), true), cpu_of(server_pid, false));
    let (conn1, q1) = counters(server)?;
    if counting == Counting::MesaCounter {
        last = get(proc.addr, "/metrics")?.1;
    }
    let collections = match counting {
        Counting::Scrapes => scrapes,
        Counting::MesaCounter => mesa_collections(&last) - started,
    }
    .max(1.0);
    Ok(OneTarget {
        collections,
        cpu_per_collection_ms: (cpu1 - cpu0) * 1000.0 / collections,
        series: series(&last),
        connections_per_collection: (conn1 - conn0 - 1.0).max(0.0) / collections,
        statements_per_collection: (q1 - q0 - 1.0).max(0.0) / collections,
        server_cpu_per_collection_ms: ((server1 - server0) - idle_per_s * elapsed).max(0.0)
            * 1000.0
            / collections,
        rss_mib: rss_mib(proc.pid()),
        profile: Vec::new(),
    })
}

/// The phase: a MariaDB, its idle CPU, then Mesa alone and mysqld_exporter alone for
/// `window` each.
pub(crate) fn phase(args: &Args, dir: &Path, window: Duration) -> Result<MysqlPhase, Error> {
    eprintln!("bench: starting MariaDB");
    let server = MariaDb::start()?;
    server.sql(
        "",
        &format!(
            "CREATE USER bench_mon@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO bench_mon@'%';"
        ),
    )?;
    let server_pid = server.pid()?;
    let server_version = server.sql("", "SELECT @@version")?.trim().to_owned();
    settle();
    let (s0, t0) = (cpu_of(server_pid, false), Instant::now());
    std::thread::sleep(Duration::from_secs(5).min(window));
    let idle_per_s = (cpu_of(server_pid, false) - s0) / t0.elapsed().as_secs_f64();

    eprintln!("bench: Mesa alone on MariaDB, every second, for {window:?}");
    let mesa = {
        let reserved = ports::reserve()?;
        let port = reserved.port();
        let pw = dir.join("bench.pw");
        std::fs::write(&pw, PASSWORD)?;
        let yaml = format!(
            "collection: {{interval: 1s, timeout: 800ms}}\nweb: {{listen_address: '127.0.0.1:{port}'}}\ntargets:\n  - {{name: my, driver: mysql, host: 127.0.0.1, port: {}, username: bench_mon, password_file: {}, ssl_mode: disabled}}\n",
            server.port(),
            pw.display()
        );
        let proc = mesa_with(
            args,
            dir,
            "mesa-mysql",
            reserved,
            &yaml,
            Duration::from_secs(15),
        )?;
        std::thread::sleep(Duration::from_millis(1500));
        measure(
            &server,
            server_pid,
            idle_per_s,
            &proc,
            window,
            Counting::MesaCounter,
        )?
    };

    eprintln!("bench: mysqld_exporter alone, scraped every second, for {window:?}");
    let exporter = {
        // Its defaults and the processlist, which Mesa reads by default too.
        let proc = exporter_with(
            Path::new(MYSQLD_EXPORTER),
            &["--collect.info_schema.processlist"],
            &format!("bench_mon:{PASSWORD}@(127.0.0.1:{})/", server.port()),
            &dir.join("mysqld_exporter.log"),
        )?;
        std::thread::sleep(Duration::from_millis(1500));
        measure(
            &server,
            server_pid,
            idle_per_s,
            &proc,
            window,
            Counting::Scrapes,
        )?
    };
    Ok(MysqlPhase {
        mesa,
        exporter,
        server_version,
        exporter_version: version(Path::new(MYSQLD_EXPORTER), "--version"),
        idle_server_ms_per_s: idle_per_s * 1000.0,
    })
}

/// The phase's section of the report.
pub(crate) fn mysql_section(
    md: &mut String,
    p: &MysqlPhase,
    window: Duration,
) -> Result<(), Error> {
    writeln!(
        md,
        "\n## MySQL: Mesa and mysqld_exporter, one MariaDB target\n"
    )?;
    writeln!(
        md,
        "MariaDB {} (Debian's, the test harness's throwaway server) and {}. Each exporter alone for {:.0} s, one collection per second (Mesa on its schedule, scraped after each; mysqld_exporter on each scrape, with `--collect.info_schema.processlist` as Mesa reads the processlist by default), as a login with PROCESS, REPLICATION CLIENT and SLAVE MONITOR, without TLS. Server CPU is `mariadbd`'s, less its idle {:.2} ms/s; connections and statements are the server's `Connections` and `Questions`.\n",
        p.server_version,
        p.exporter_version,
        window.as_secs_f64(),
        p.idle_server_ms_per_s
    )?;
    let (m, e) = (&p.mesa, &p.exporter);
    let rows: Vec<(&str, f64, f64, usize)> = vec![
        (
            "exporter CPU per collection (ms)",
            m.cpu_per_collection_ms,
            e.cpu_per_collection_ms,
            2,
        ),
        (
            "server CPU per collection (ms)",
            m.server_cpu_per_collection_ms,
            e.server_cpu_per_collection_ms,
            2,
        ),
        (
            "connections opened per collection",
            m.connections_per_collection,
            e.connections_per_collection,
            2,
        ),
        (
            "statements per collection (Questions)",
            m.statements_per_collection,
            e.statements_per_collection,
            1,
        ),
        (
            "series exported (whole /metrics)",
            m.series as f64,
            e.series as f64,
            0,
        ),
        ("resident memory (MiB)", m.rss_mib, e.rss_mib, 1),
        ("collections in the window", m.collections, e.collections, 0),
    ];
    against(md, "mysqld_exporter", &rows)?;
    Ok(())
}

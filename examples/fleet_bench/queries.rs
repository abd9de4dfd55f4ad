//! The user-queries phase (issue 20): one `queries.yaml` of 20 queries, run by Mesa and by
//! postgres_exporter with their own collectors as far off as each allows, one target each,
//! once a second: exporter CPU and server CPU per collection with the same file.

use super::*;

/// Writes the 20 queries (each `master: true`, over the bench table and `pg_catalog`).
fn queries_file(dir: &Path) -> Result<PathBuf, Error> {
    let mut yaml = String::new();
    for i in 0..20 {
        writeln!(
            yaml,
            "bq{i:02}:
  query: \"SELECT (o.id % 4)::text AS shard, count(*) AS n, coalesce(sum(o.total), 0)::float8 AS total FROM public.orders o WHERE o.id % 20 = {i} GROUP BY 1\"
  master: true
  metrics:
    - shard: {{usage: LABEL, description: Shard}}
    - n: {{usage: GAUGE, description: Orders}}
    - total: {{usage: GAUGE, description: Sum of totals}}"
        )?;
    }
    let path = dir.join("bench-queries.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// Mesa, then postgres_exporter, each alone with the file for `window`, collected once a
/// second.
pub(crate) fn user_queries(
    args: &Args,
    dir: &Path,
    server: &Server<'_>,
    window: Duration,
) -> Result<(OneTarget, OneTarget), Error> {
    let file = queries_file(dir)?;
    let second = Duration::from_secs(1);
    // Every collector off but health, which cannot be.
    let off: Vec<String> = mesa::collectors::names(Some(mesa::gateway::Driver::Postgres))
        .into_iter()
        .filter(|n| *n != mesa::collectors::HEALTH)
        .map(|n| format!("{n}: false"))
        .collect();
    let extra = format!(
        ", databases: {{discover: false}}, queries: ['{}'], collectors: {{{}}}",
        file.display(),
        off.join(", ")
    );
    eprintln!("bench: Mesa with 20 user queries, every second, for {window:?}");
    let m = start_mesa(args, dir, server.cluster, 1, second, &extra)?;
    std::thread::sleep(Duration::from_millis(1500));
    let mesa = one_target(server, &m, window, second, Counting::MesaCounter, false)?;
    let served = get(m.addr, "/metrics")?.1;
    if !served.contains("bq19_total{") {
        return Err(format!("Mesa did not serve the user queries:\n{served}").into());
    }
    drop(m);
    eprintln!("bench: postgres_exporter with the same file, every second, for {window:?}");
    let query_path = format!("--extend.query-path={}", file.display());
    let p = start_exporter(
        args,
        dir,
        server.cluster,
        &[
            &query_path,
            "--disable-default-metrics",
            "--disable-settings-metrics",
            "--no-collector.database",
            "--no-collector.bgwriter",
        ],
    )?;
    std::thread::sleep(Duration::from_millis(1500));
    let exporter = one_target(server, &p, window, second, Counting::Scrapes, false)?;
    if !get(p.addr, "/metrics")?.1.contains("bq19_total{") {
        return Err("postgres_exporter did not serve the user queries".into());
    }
    Ok((mesa, exporter))
}

/// The phase's section of the report.
pub(crate) fn section(md: &mut String, mesa: &OneTarget, pge: &OneTarget) -> Result<(), Error> {
    writeln!(md, "## 20 user queries, one target\n")?;
    writeln!(
        md,
        "One `queries.yaml` of 20 queries (each `master: true`, a `GROUP BY` over the 10 000-row table) run by both, once a second, with their own collectors as far off as each allows: Mesa with every collector off but `health` (which decides `pg_up` and cannot be) and no discovery; postgres_exporter 0.11 with `--disable-default-metrics --disable-settings-metrics --no-collector.database --no-collector.bgwriter`. Mesa runs them in its read-only snapshot, each under a savepoint rolled back and its own `statement_timeout`, on its kept session; postgres_exporter runs them as they are.\n"
    )?;
    let rows: [(&str, f64, f64, usize); 5] = [
        (
            "exporter CPU per collection (ms)",
            mesa.cpu_per_collection_ms,
            pge.cpu_per_collection_ms,
            2,
        ),
        (
            "server CPU per collection (ms)",
            mesa.server_cpu_per_collection_ms,
            pge.server_cpu_per_collection_ms,
            2,
        ),
        (
            "statements per collection (pg_stat_statements calls)",
            mesa.statements_per_collection,
            pge.statements_per_collection,
            1,
        ),
        (
            "connections opened per collection",
            mesa.connections_per_collection,
            pge.connections_per_collection,
            2,
        ),
        (
            "collections in the window",
            mesa.collections,
            pge.collections,
            0,
        ),
    ];
    side_by_side(md, &rows)?;
    writeln!(md)?;
    Ok(())
}

//! Mesa under test: its config, the release binary started on reserved ports, and the wait
//! until every target is up.

use super::*;

// ---- Mesa ----------------------------------------------------------------------------------

pub(crate) struct Mesa {
    pub(crate) child: Child,
    pub(crate) metrics: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) bearer: String,
    /// Hold the two listening ports until the process is gone.
    pub(crate) _ports: [ports::Reserved; 2],
}

impl Drop for Mesa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_mesa(args: &Args, dir: &Path, proxies: &[FaultProxy]) -> Result<Mesa, Error> {
    let reserved = [ports::reserve()?, ports::reserve()?];
    let (metrics, admin) = (reserved[0].port(), reserved[1].port());
    let pw = dir.join("soak.pw");
    std::fs::write(&pw, PASSWORD)?;
    let token = mesa::token::generate()?;
    let mut yaml = format!(
        "collection:
  interval: {i}ms
  timeout: {t}ms
  connect_timeout: 500ms
  statement_timeout: {s}ms
  lock_timeout: 300ms
  collectors: {{{collectors}}}
web: {{listen_address: '127.0.0.1:{metrics}'}}
admin:
  listen_address: '127.0.0.1:{admin}'
  rate_limit: {{burst: 100, per_second: 100}}
  tokens:
    - {{name: soak, sha256: '{digest}', scopes: [read], targets: ['*']}}
targets:
",
        i = INTERVAL.as_millis(),
        t = TIMEOUT.as_millis(),
        s = STATEMENT_TIMEOUT.as_millis(),
        digest = token.sha256_hex,
        collectors = COLLECTORS
            .iter()
            .map(|(name, on)| format!("{name}: {on}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (i, p) in proxies.iter().enumerate() {
        writeln!(
            yaml,
            "  - {{name: t{i:02}, driver: postgres, host: 127.0.0.1, port: {}, database: soak, username: {}, password_file: {}, sslmode: disable}}",
            p.port(),
            role(i),
            pw.display()
        )?;
    }
    let child = spawn_mesa(&args.mesa, dir, "mesa", &yaml)?;
    Ok(Mesa {
        child,
        metrics: SocketAddr::from(([127, 0, 0, 1], metrics)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin)),
        bearer: token.token.expose().to_owned(),
        _ports: reserved,
    })
}

/// Waits until every target is up; the seconds it took, or `None` after `limit`.
pub(crate) async fn all_up(addr: SocketAddr, limit: Duration) -> Option<f64> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok((200, text)) = get(addr, "/metrics", "", true).await
            && sum_of(&text, "pg_up") == TARGETS as f64
        {
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

//! The processes under test: Mesa and postgres_exporter started on reserved ports, stopped
//! on drop.

use super::*;

// ---- the processes under test --------------------------------------------------------------

pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// Holds the listening port until the process is gone.
    pub(crate) _port: ports::Reserved,
}

impl Proc {
    /// `child`, listening on the loopback port `reserved` holds.
    pub(crate) fn on(child: Child, reserved: ports::Reserved) -> Self {
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], reserved.port())),
            _port: reserved,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_mesa(
    args: &Args,
    dir: &Path,
    cluster: &PgCluster,
    targets: usize,
    interval: Duration,
    extra: &str,
) -> Result<Proc, Error> {
    let reserved = ports::reserve()?;
    let port = reserved.port();
    let pw = dir.join("bench.pw");
    std::fs::write(&pw, PASSWORD)?;
    let mut yaml = format!(
        "collection: {{interval: {}ms, timeout: {}ms{extra}}}\nweb: {{listen_address: '127.0.0.1:{port}'}}\ntargets:\n",
        interval.as_millis(),
        (interval.as_millis() * 2 / 3).min(10_000)
    );
    for i in 0..targets {
        writeln!(
            yaml,
            "  - {{name: t{i:04}, driver: postgres, host: 127.0.0.1, port: {}, database: bench_mesa, username: bench_monitor, password_file: {}, sslmode: disable}}",
            cluster.port(),
            pw.display()
        )?;
    }
    mesa_with(
        args,
        dir,
        &format!("mesa-{targets}"),
        reserved,
        &yaml,
        interval * 2 + Duration::from_secs(10),
    )
}

/// Mesa (named `name` in `dir`) with the config `yaml`, whose `web.listen_address` is the
/// port `reserved` holds, once it is ready (within `ready_within`).
pub(crate) fn mesa_with(
    args: &Args,
    dir: &Path,
    name: &str,
    reserved: ports::Reserved,
    yaml: &str,
    ready_within: Duration,
) -> Result<Proc, Error> {
    let child = spawn_mesa(&args.mesa, dir, name, yaml)?;
    let proc = Proc::on(child, reserved);
    wait_ready(proc.addr, "/readyz", ready_within)?;
    Ok(proc)
}

pub(crate) fn start_exporter(
    args: &Args,
    dir: &Path,
    cluster: &PgCluster,
    flags: &[&str],
) -> Result<Proc, Error> {
    exporter_with(
        &args.exporter,
        flags,
        &format!(
            "postgresql://bench_monitor:{PASSWORD}@127.0.0.1:{}/bench_pge?sslmode=disable",
            cluster.port()
        ),
        &dir.join("exporter.log"),
    )
}

/// A reference exporter (`binary` with `flags`, `DATA_SOURCE_NAME` set to `dsn`, stderr to
/// `log`) on a reserved port, once it answers `/metrics`.
pub(crate) fn exporter_with(
    binary: &Path,
    flags: &[&str],
    dsn: &str,
    log: &Path,
) -> Result<Proc, Error> {
    let reserved = ports::reserve()?;
    let port = reserved.port();
    let child = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(flags)
        .env("DATA_SOURCE_NAME", dsn)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log)?))
        .spawn()?;
    let proc = Proc::on(child, reserved);
    wait_ready(proc.addr, "/metrics", Duration::from_secs(15))?;
    Ok(proc)
}

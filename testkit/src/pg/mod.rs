//! [`PgCluster`]: `initdb` into a fresh folder, `pg_ctl start` on a reserved loopback port
//! ([`crate::ports`]), stop and remove on drop.
//!
//! * The server is Debian's (`pg_config --bindir`, else the newest `/usr/lib/postgresql/*`),
//!   or the pinned build of the major `MESA_TEST_PG` names ([`dist`]). Client tools (`psql`,
//!   `pg_basebackup`) are always Debian's; a standby of a newer major than they speak is
//!   copied with the server's own backup functions instead ([`standby`]).
//!
//! * Works as root (CI) and as a normal user: `initdb` refuses root, so as root the server runs
//!   as the `postgres` OS user via `runuser`, in a folder that user owns.
//! * Authentication is `scram-sha-256` for every connection, as in production.
//! * `log_statement=all`, so tests can prove a password never reached the server in plaintext.
//! * TLS is on with a throwaway CA (`ca.crt`) and a server certificate for `localhost` and
//!   `127.0.0.1`, so every `sslmode` can be tested.
//! * A detached watchdog stops the server and removes the folder when the creating process
//!   exits, so a cluster held in a `static` (one per test binary) never outlives its tests.

pub mod dist;
mod standby;
pub(crate) mod tls;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A harness step failed; the message says what to install or check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(String);

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Folder to create the cluster folder in (default: the system temp folder).
    pub parent: Option<PathBuf>,
    /// Extra `postgresql.conf` lines.
    pub extra_conf: Vec<String>,
    /// Remove the folder when the cluster stops.
    pub remove_on_stop: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            parent: None,
            extra_conf: Vec::new(),
            remove_on_stop: true,
        }
    }
}

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    /// `initdb`, `pg_ctl`, `postgres`.
    bindir: PathBuf,
    /// `psql`, `pg_basebackup` (the distribution's).
    client_bindir: PathBuf,
    /// The server's major version.
    major: u32,
    port: u16,
    /// Holds `port` until the cluster is dropped.
    _port: crate::ports::Reserved,
    password: String,
    as_postgres: bool,
    remove_on_stop: bool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) fn fail(msg: impl Into<String>) -> HarnessError {
    HarnessError(msg.into())
}

/// The folder with `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> Result<PathBuf, HarnessError> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_initdb(dir))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).ok_or_else(|| {
        fail("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's `postgresql` package: apt-get install -y postgresql")
    })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether every existing ancestor of `dir` lets other users through (`o+x`).
fn searchable_by_others(dir: &Path) -> bool {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .filter_map(|d| std::fs::metadata(d).ok())
        .all(|meta| meta.mode() & 0o001 != 0)
}

fn reserve_port() -> Result<crate::ports::Reserved, HarnessError> {
    crate::ports::reserve().map_err(|e| fail(format!("cannot reserve a loopback port: {e}")))
}

fn random_hex(bytes: usize) -> Result<String, HarnessError> {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).map_err(|e| fail(format!("random source: {e}")))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// The major version of the PostgreSQL program `program` in `bindir` (`--version` prints
/// e.g. `postgres (PostgreSQL) 17.10`).
fn major_of(bindir: &Path, program: &str) -> Result<u32, HarnessError> {
    let text = run(
        Command::new(bindir.join(program)).arg("--version"),
        &format!("{program} --version"),
    )?;
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next()?.parse().ok())
        .ok_or_else(|| fail(format!("{program} --version: no version in {text:?}")))
}

/// A new, empty cluster folder in `parent`, named after this process.
fn fresh_dir(parent: &Path) -> Result<PathBuf, HarnessError> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("mesa-pg-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| fail(format!("cannot clear {}: {e}", dir.display())))?;
    }
    std::fs::create_dir(&dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<String, HarnessError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("{what}: cannot start: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl PgCluster {
    /// Creates and starts a cluster.
    pub fn start(options: ClusterOptions) -> Result<Self, HarnessError> {
        let client_bindir = find_bindir()?;
        let bindir = match dist::requested()? {
            Some(release) => dist::bindir(&release)?,
            None => client_bindir.clone(),
        };
        let major = major_of(&bindir, "postgres")?;
        let as_postgres = is_root();
        let parent = match options.parent.clone() {
            // The postgres user must be able to reach the folder; else use the temp folder.
            Some(dir) if !as_postgres || searchable_by_others(&dir) => dir,
            _ => std::env::temp_dir(),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
        let reserved = reserve_port()?;
        let cluster = Self {
            dir: fresh_dir(&parent)?,
            bindir,
            client_bindir,
            major,
            port: reserved.port(),
            _port: reserved,
            password: random_hex(16)?,
            as_postgres,
            remove_on_stop: options.remove_on_stop,
        };
        cluster.init(&options)?;
        cluster.watchdog()?;
        cluster.pg_ctl_start()?;
        Ok(cluster)
    }

    /// `pg_ctl start`, waiting until the server accepts connections; the log on failure.
    fn pg_ctl_start(&self) -> Result<(), HarnessError> {
        run(
            &mut self.command(
                "pg_ctl",
                &[
                    "-D",
                    &self.data_dir_str(),
                    "-l",
                    &self.log_path().to_string_lossy(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            "pg_ctl start",
        )
        .map_err(|e| fail(format!("{e}\nserver log:\n{}", self.server_log())))?;
        Ok(())
    }

    /// Gives the cluster folder to the `postgres` OS user when the harness runs as root.
    fn chown_to_postgres(&self) -> Result<(), HarnessError> {
        if self.as_postgres {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&self.dir),
                "chown the cluster folder to postgres",
            )?;
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn data_dir_str(&self) -> String {
        self.data_dir().to_string_lossy().into_owned()
    }

    /// A command for a server binary, as the `postgres` OS user when we are root.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        self.command_from(&self.bindir, program, args)
    }

    /// A command for `program` in `bindir`, as the `postgres` OS user when we are root.
    fn command_from(&self, bindir: &Path, program: &str, args: &[&str]) -> Command {
        let exe = bindir.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir(&self.dir);
        cmd
    }

    fn init(&self, options: &ClusterOptions) -> Result<(), HarnessError> {
        let pwfile = self.dir.join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password))
            .map_err(|e| fail(format!("cannot write {}: {e}", pwfile.display())))?;
        self.tls_files()?;
        self.chown_to_postgres()?;
        run(
            &mut self.command(
                "initdb",
                &[
                    "-D",
                    &self.data_dir_str(),
                    "-U",
                    "postgres",
                    "--pwfile",
                    &pwfile.to_string_lossy(),
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            ),
            "initdb",
        )?;
        let mut conf = vec![
            format!("port = {}", self.port),
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("unix_socket_directories = '{}'", self.dir.display()),
            "log_statement = 'all'".to_owned(),
            "log_connections = on".to_owned(),
            // The role and database on every line, so tests can attribute statements.
            "log_line_prefix = '%m [%p] %q%u@%d '".to_owned(),
            "fsync = off".to_owned(),
            "synchronous_commit = off".to_owned(),
            "full_page_writes = off".to_owned(),
            // Room for the suite's concurrent daemons: each keeps a collection session per
            // target and visits every database of the shared cluster it is not told to skip.
            "max_connections = 300".to_owned(),
            "ssl = on".to_owned(),
            format!(
                "ssl_cert_file = '{}'",
                self.dir.join("server.crt").display()
            ),
            format!("ssl_key_file = '{}'", self.dir.join("server.key").display()),
        ];
        conf.extend(options.extra_conf.iter().cloned());
        let conf_path = self.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path)
            .map_err(|e| fail(format!("cannot read {}: {e}", conf_path.display())))?;
        text.push_str("\n# mesa test harness\n");
        for line in conf {
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(&conf_path, text)
            .map_err(|e| fail(format!("cannot write {}: {e}", conf_path.display())))?;
        Ok(())
    }

    /// A detached shell that waits for this process to exit, then stops the server and
    /// removes the folder. `setsid` keeps it alive through Ctrl-C of the test run.
    fn watchdog(&self) -> Result<(), HarnessError> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                self.data_dir().display()
            )
        } else {
            format!(
                "'{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                self.data_dir().display()
            )
        };
        let remove = if self.remove_on_stop {
            format!("rm -rf '{}'", self.dir.display())
        } else {
            String::new()
        };
        crate::watchdog::after_exit(&format!("{stop} >/dev/null 2>&1; {remove}"), "cluster")
            .map_err(fail)
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's major version (15 for Debian 12's; `MESA_TEST_PG` picks another).
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The superuser's name: `postgres`.
    pub fn superuser(&self) -> &str {
        "postgres"
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The cluster folder (holds `ca.crt`, the data folder and `server.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate that signed the server certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server log so far.
    pub fn server_log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Runs SQL as the superuser through `psql` (for setup scripts and the demo).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, HarnessError> {
        let psql = self.client_bindir.join("psql");
        run(
            Command::new(psql)
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-At",
                    "-h",
                    self.host(),
                    "-p",
                ])
                .arg(self.port.to_string())
                .args(["-U", "postgres", "-d", database, "-c", sql])
                .env("PGPASSWORD", &self.password)
                .env("PGSSLMODE", "disable"),
            "psql",
        )
    }

    /// A plain (no TLS) session as `user` on `database`, its connection driven by a spawned
    /// task (named `mesa-tests` in `pg_stat_activity`). The error is the server's refusal as
    /// it said it (its SQLSTATE tells a full server from a wrong password).
    pub async fn connect(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::Config::new()
            .host(self.host())
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(database)
            .application_name("mesa-tests")
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// [`PgCluster::connect`], `None` unless the server lets it in within `limit` (stopped,
    /// restarting, full, refusing the role). For fault tests and the soak, which must never
    /// wait on a server they have just stopped.
    pub async fn try_session(
        &self,
        user: &str,
        password: &str,
        database: &str,
        limit: std::time::Duration,
    ) -> Option<tokio_postgres::Client> {
        let connect = self.connect(user, password, database);
        tokio::time::timeout(limit, connect).await.ok()?.ok()
    }

    /// [`PgCluster::try_session`] as the superuser.
    pub async fn try_superuser(
        &self,
        database: &str,
        limit: std::time::Duration,
    ) -> Option<tokio_postgres::Client> {
        self.try_session(self.superuser(), &self.password, database, limit)
            .await
    }

    /// Starts the server again after [`PgCluster::stop`] (same folder, port and roles).
    pub fn start_again(&self) -> Result<(), HarnessError> {
        self.pg_ctl_start()
    }

    /// The postmaster's process id (from `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Result<u32, HarnessError> {
        let path = self.data_dir().join("postmaster.pid");
        let text =
            std::fs::read_to_string(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| fail(format!("{}: no pid on its first line", path.display())))
    }

    /// Stops the server now (fast shutdown).
    pub fn stop(&self) {
        let _ = run(
            &mut self.command(
                "pg_ctl",
                &["-D", &self.data_dir_str(), "-m", "fast", "-w", "stop"],
            ),
            "pg_ctl stop",
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        if self.remove_on_stop {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

//! [`MariaDb`]: a throwaway MariaDB server (Debian's `mariadb-server`): its own data folder,
//! loopback port and socket, no system service; stopped and removed on drop.
//!
//! * `mariadb-install-db` once per process into a template folder, copied for each server,
//!   then `mariadbd` with `--no-defaults`, so no file of the machine's own MariaDB is read. As
//!   root (CI) both run as the `mysql` OS user.
//! * `root` gets a random password for `localhost` and `127.0.0.1`; every other login is made
//!   by the tests.
//! * The general log, the slow log (every statement: `long_query_time=0`) and the binlog are
//!   on, so tests can prove a password never reached the server in plaintext.
//! * TLS is on with a throwaway CA (`ca.crt`) and a certificate for `localhost` and
//!   `127.0.0.1`, so every `ssl_mode` can be tested.
//! * A detached watchdog stops the server and removes the folder when the creating process
//!   exits, so a server held in a `static` never outlives its tests.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::pg::{HarnessError, fail, run};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Where Debian installs the server.
const MARIADBD: &str = "/usr/sbin/mariadbd";

/// A running throwaway MariaDB server.
#[derive(Debug)]
pub struct MariaDb {
    dir: PathBuf,
    port: u16,
    _port: crate::ports::Reserved,
    password: String,
    as_mysql: bool,
    extra: Vec<String>,
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether Debian's `mariadb-server` is installed (`cargo xtask test` installs it).
pub fn available() -> bool {
    Path::new(MARIADBD).is_file() && which("mariadb-install-db") && which("mariadb")
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

impl MariaDb {
    /// Creates and starts a server with the default settings.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with(&[])
    }

    /// Creates and starts a server with `extra` `mariadbd` options (`--max-connections=5`).
    pub fn start_with(extra: &[&str]) -> Result<Self, HarnessError> {
        if !available() {
            return Err(fail(
                "MariaDB is not installed: apt-get install mariadb-server (cargo xtask test does)",
            ));
        }
        let as_mysql = is_root();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mesa-mariadb-{}-{n}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| fail(format!("cannot clear {}: {e}", dir.display())))?;
        }
        std::fs::create_dir(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let reserved = crate::ports::reserve()
            .map_err(|e| fail(format!("cannot reserve a loopback port: {e}")))?;
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| fail(format!("random source: {e}")))?;
        let server = Self {
            port: reserved.port(),
            _port: reserved,
            password: raw.iter().map(|b| format!("{b:02x}")).collect(),
            as_mysql,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            dir,
        };
        crate::pg::tls::write(&server.dir)?;
        if as_mysql {
            run(
                Command::new("chown")
                    .args(["-R", "mysql:mysql"])
                    .arg(&server.dir),
                "chown the MariaDB folder to mysql",
            )?;
        }
        // The system tables are made once per process (mariadb-install-db costs seconds of
        // CPU) and copied for each server.
        let template = template(&server)?;
        run(
            Command::new("cp")
                .args(["-a", "--"])
                .arg(template)
                .arg(server.data_dir()),
            "copy the MariaDB system tables",
        )?;
        server.watchdog()?;
        server.launch()?;
        server.client_sql(
            "",
            &format!(
                "ALTER USER root@localhost IDENTIFIED BY '{p}'; \
                 ALTER USER root@'127.0.0.1' IDENTIFIED BY '{p}'; \
                 DROP USER IF EXISTS root@'::1'; \
                 DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1'); \
                 FLUSH PRIVILEGES;",
                p = server.password
            ),
        )?;
        Ok(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("mysqld.pid")
    }

    /// The general log (every statement the server received).
    pub fn general_log(&self) -> String {
        read_lossy(&self.dir.join("general.log"))
    }

    /// The slow log (every statement: `long_query_time` is 0).
    pub fn slow_log(&self) -> String {
        read_lossy(&self.dir.join("slow.log"))
    }

    /// The binary log, decoded by `mariadb-binlog`.
    pub fn binlog(&self) -> Result<String, HarnessError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| fail(format!("{}: {e}", self.dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("binlog.0"))
            })
            .collect();
        files.sort();
        let mut cmd = Command::new("mariadb-binlog");
        cmd.arg("--no-defaults").args(&files);
        run(&mut cmd, "mariadb-binlog")
    }

    /// The error log.
    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.join("error.log"))
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `root`.
    pub fn superuser(&self) -> &str {
        "root"
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The folder (data, logs, TLS files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA that signed the server's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A command for a MariaDB program, as the `mysql` OS user when we are root.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = if self.as_mysql {
            let mut c = Command::new("runuser");
            c.args(["-u", "mysql", "--", program]);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).current_dir(&self.dir);
        cmd
    }

    /// Starts `mariadbd` in the background and waits until it answers on its socket.
    fn launch(&self) -> Result<(), HarnessError> {
        let d = |f: &str| self.dir.join(f).display().to_string();
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", self.data_dir().display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={}", d("mysqld.sock")),
            format!("--pid-file={}", d("mysqld.pid")),
            format!("--log-error={}", d("error.log")),
            "--skip-name-resolve".to_owned(),
            "--innodb-buffer-pool-size=32M".to_owned(),
            "--innodb-flush-log-at-trx-commit=0".to_owned(),
            "--max-connections=200".to_owned(),
            "--general-log=1".to_owned(),
            format!("--general-log-file={}", d("general.log")),
            "--slow-query-log=1".to_owned(),
            "--long-query-time=0".to_owned(),
            format!("--slow-query-log-file={}", d("slow.log")),
            format!("--log-bin={}", d("binlog")),
            "--server-id=1".to_owned(),
            format!("--ssl-ca={}", d("ca.crt")),
            format!("--ssl-cert={}", d("server.crt")),
            format!("--ssl-key={}", d("server.key")),
        ];
        args.extend(self.extra.iter().cloned());
        let mut setsid = Command::new("setsid");
        if self.as_mysql {
            setsid.args(["runuser", "-u", "mysql", "--"]);
        }
        setsid
            .arg(MARIADBD)
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot start mariadbd: {e}")))?;
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if self.client_sql("", "SELECT 1").is_ok() || self.sql("", "SELECT 1").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(fail(format!(
            "mariadbd did not answer within 60 s; error log:\n{}",
            self.error_log()
        )))
    }

    /// Runs `sql` as root over the socket without a password (only before the harness sets
    /// one).
    fn client_sql(&self, database: &str, sql: &str) -> Result<String, HarnessError> {
        let mut cmd = Command::new("mariadb");
        // No TLS over the local socket (and none in the server's count of TLS handshakes,
        // which the tests read).
        cmd.args(["--no-defaults", "--skip-ssl"])
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-N", "-B", "-e", sql]);
        if !database.is_empty() {
            cmd.arg(database);
        }
        run(&mut cmd, "mariadb")
    }

    /// Runs `sql` as root through the `mariadb` client over the socket (setup scripts); the
    /// rows tab-separated, without headers.
    pub fn sql(&self, database: &str, sql: &str) -> Result<String, HarnessError> {
        let mut cmd = Command::new("mariadb");
        // No TLS over the local socket (and none in the server's count of TLS handshakes,
        // which the tests read).
        cmd.args(["--no-defaults", "--skip-ssl"])
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .env("MYSQL_PWD", &self.password);
        if !database.is_empty() {
            cmd.arg(database);
        }
        run(&mut cmd, "mariadb")
    }

    /// The server's process id (from its pid file).
    pub fn pid(&self) -> Result<u32, HarnessError> {
        let text = std::fs::read_to_string(self.pid_file())
            .map_err(|e| fail(format!("{}: {e}", self.pid_file().display())))?;
        text.trim()
            .parse()
            .map_err(|_| fail(format!("no pid in {:?}", text)))
    }

    /// Stops the server (SIGTERM, a clean shutdown) and waits for it to exit.
    pub fn stop(&self) {
        let Ok(pid) = self.pid() else {
            return;
        };
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again after [`MariaDb::stop`] (same folder, port and accounts).
    pub fn start_again(&self) -> Result<(), HarnessError> {
        self.launch()
    }

    /// A detached shell that waits for this process to exit, then stops the server and
    /// removes the folder.
    fn watchdog(&self) -> Result<(), HarnessError> {
        crate::watchdog::after_exit(
            &format!(
                "[ -f '{pidfile}' ] && kill -9 $(cat '{pidfile}') 2>/dev/null; sleep 0.5; rm -rf '{dir}'",
                pidfile = self.pid_file().display(),
                dir = self.dir.display(),
            ),
            "MariaDB",
        )
        .map_err(fail)
    }
}

/// A data folder `mariadb-install-db` made, once per process, in its own folder (owned by
/// the `mysql` OS user when we are root), removed with the process by its own watchdog.
fn template(like: &MariaDb) -> Result<&'static Path, HarnessError> {
    static TEMPLATE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let made = TEMPLATE.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("mesa-mariadb-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if like.as_mysql {
            run(
                Command::new("chown").args(["mysql:mysql"]).arg(&dir),
                "chown the MariaDB template folder to mysql",
            )
            .map_err(|e| e.to_string())?;
        }
        let data = dir.join("data");
        run(
            &mut like.command(
                "mariadb-install-db",
                &[
                    "--no-defaults",
                    &format!("--datadir={}", data.display()),
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
            ),
            "mariadb-install-db",
        )
        .map_err(|e| e.to_string())?;
        crate::watchdog::after_exit(&format!("rm -rf '{}'", dir.display()), "MariaDB template")
            .map_err(|e| e.to_string())?;
        Ok(data)
    });
    match made {
        Ok(path) => Ok(path.as_path()),
        Err(e) => Err(fail(e.clone())),
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

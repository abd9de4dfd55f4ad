//! Debian packages: what is missing, and installing it (as root) or saying how (otherwise).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Failure, Result, fail};

/// What a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// PostgreSQL and openssl (the demo).
    Demo,
    /// Also Prometheus (server and promtool), Python with `venv`, MariaDB and mysqld_exporter
    /// (the tests).
    Tests,
    /// The tests' needs, wrk and Debian's postgres_exporter (the benchmark).
    Bench,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// PostgreSQL's server binaries, where the test harness looks for them.
fn has_postgres_server() -> bool {
    if on_path("initdb") {
        return true;
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| {
            versions.flatten().any(|v| {
                v.path().join("bin/initdb").is_file() && v.path().join("bin/pg_ctl").is_file()
            })
        })
        .unwrap_or(false)
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this process runs as root (`initdb` then runs as the `postgres` OS user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The Debian packages `need` lacks on this machine.
pub fn missing(need: Need) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !has_postgres_server() || (is_root() && !succeeds("id", &["postgres"])) {
        out.push("postgresql");
    }
    if !on_path("psql") && !Path::new("/usr/bin/psql").is_file() {
        out.push("postgresql-client");
    }
    if !on_path("openssl") {
        out.push("openssl");
    }
    if !on_path("setsid") {
        out.push("util-linux");
    }
    if need == Need::Bench && !on_path("wrk") {
        out.push("wrk");
    }
    if matches!(need, Need::Tests | Need::Bench) {
        // The queries-file test compares names with postgres_exporter's; the bench runs it.
        if !Path::new("/usr/bin/prometheus-postgres-exporter").is_file() {
            out.push("prometheus-postgres-exporter");
        }
        if !on_path("prometheus") || !on_path("promtool") {
            out.push("prometheus");
        }
        // The MySQL driver's tests: a throwaway MariaDB, and mysqld_exporter to compare names.
        if !Path::new("/usr/sbin/mariadbd").is_file() || !on_path("mariadb-install-db") {
            out.push("mariadb-server");
        }
        if !Path::new("/usr/bin/prometheus-mysqld-exporter").is_file() {
            out.push("prometheus-mysqld-exporter");
        }
        // deploy tests: `systemd-analyze verify` of the shipped unit.
        if !on_path("systemd-analyze") {
            out.push("systemd");
        }
        if !on_path("python3") {
            out.push("python3");
        }
        // The server-version matrix fetches pinned PostgreSQL builds from the npm registry.
        if !on_path("curl") {
            out.push("curl");
        }
        // Debian splits venv's pip bootstrap into its own package.
        if !succeeds("python3", &["-c", "import ensurepip, venv"]) {
            out.push("python3-venv");
        }
    }
    out.dedup();
    out
}

/// Installs what `need` lacks, or says exactly how and fails.
pub fn ensure(need: Need) -> Result<()> {
    let missing = missing(need);
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !on_path("apt-get") {
        return fail(format!(
            "missing: {list} (Debian package names); this machine has no apt-get, install their equivalents and run again"
        ));
    }
    if !is_root() {
        return fail(format!(
            "missing Debian packages: {list}\n  install them with:  sudo apt-get install -y {list}\n  then run the same command again"
        ));
    }
    println!("== installing Debian packages: {list}");
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .map_err(|e| Failure(format!("apt-get update: {e}")))?;
    if !update.success() {
        return fail("apt-get update failed (is the network up?)");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| Failure(format!("apt-get install: {e}")))?;
    if !install.success() {
        return fail(format!("apt-get install -y {list} failed"));
    }
    let still = self::missing(need);
    if !still.is_empty() {
        return fail(format!(
            "still missing after apt-get install: {}",
            still.join(" ")
        ));
    }
    Ok(())
}

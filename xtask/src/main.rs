//! The README's two commands, on a fresh machine with only Rust:
//!
//! - `cargo xtask demo [-- --check]`: installs what the demo needs (PostgreSQL's server
//!   binaries, openssl), then runs `cargo run --example demo`.
//! - `cargo xtask test [-- <cargo test arguments>]`: installs what the whole suite needs (also
//!   Prometheus and promtool, and Python 3 with `venv`), puts the Python tools in a virtual
//!   environment under `target/venv` (never the system interpreter; `MESA_VENV` moves it),
//!   checks that the committed Grafana dashboard is what `grafana/dashboard.py` builds, then
//!   runs `cargo test` with that environment first on `PATH`.
//!
//! - `cargo xtask matrix [-- 13 17 ...]`: the collector and search_path tests against every
//!   PostgreSQL major from 13 to 18 (pinned builds fetched once into `target/pg-dist`).
//! - `cargo xtask bench [-- --smoke]`: Mesa and postgres_exporter side by side.
//! - `cargo xtask soak [-- --duration 30m] [--seed N] [--fault-every 30s] [--smoke]`
//!   (`scripts/soak`): Mesa under random faults, then the plot of its figures over time.
//!
//! Debian packages are installed with apt-get when running as root; otherwise the exact
//! command to run is printed and nothing else happens. Standard library only, so it builds
//! before anything is installed.

mod python;
mod system;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What went wrong, for the user: one line that says what to do.
#[derive(Debug)]
struct Failure(String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(Failure(message.into()))
}

/// The workspace root (this crate's parent folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target folder.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Runs `cmd`, streaming its output; its exit status is the result.
fn status(cmd: &mut Command, what: &str) -> Result<bool> {
    cmd.status()
        .map(|s| s.success())
        .map_err(|e| Failure(format!("{what}: cannot start: {e}")))
}

fn usage() -> ExitCode {
    eprintln!(
        "usage:\n  cargo xtask demo [-- --check]        Mesa against a throwaway PostgreSQL\n  cargo xtask test [-- <cargo test args>]   the whole test suite\n  cargo xtask setup                     install what both need, then stop\n  cargo xtask matrix [-- 13 18]         collector and search_path tests on PostgreSQL 13 to 18\n  cargo xtask bench [-- --smoke]        Mesa and postgres_exporter side by side (docs/BENCHMARKS.md; -- --only-queries: the user-queries phase, docs/QUERIES.md; -- --only-mysql: Mesa and mysqld_exporter on MariaDB, docs/MYSQL.md)\n  cargo xtask soak [-- --duration 30m] [--seed N] [--smoke]   faults for as long as asked (docs/RELIABILITY.md)"
    );
    ExitCode::from(64)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return usage();
    }
    let command = args.remove(0);
    // `cargo xtask test -- --nocapture`: drop a leading `--`.
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    let result = match command.as_str() {
        "demo" => demo(&args),
        "test" => test(&args),
        "matrix" => matrix(&args),
        "bench" => bench(&args),
        "soak" => soak(&args),
        "setup" => system::ensure(system::Need::Tests)
            .and_then(|()| python::ensure())
            .map(|_| true),
        _ => return usage(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

fn demo(args: &[String]) -> Result<bool> {
    system::ensure(system::Need::Demo)?;
    let mut cmd = cargo();
    cmd.current_dir(root())
        .args(["run", "--quiet", "--example", "demo", "--"])
        .args(args);
    status(&mut cmd, "cargo run --example demo")
}

fn test(args: &[String]) -> Result<bool> {
    system::ensure(system::Need::Tests)?;
    let venv = python::ensure()?;
    python::check_dashboard(&venv)?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![venv.join("bin")];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).map_err(|e| Failure(format!("PATH: {e}")))?;
    println!("== cargo test {}", args.join(" "));
    let mut cmd = cargo();
    cmd.current_dir(root())
        .arg("test")
        .args(args)
        .env("PATH", path)
        .env("MESA_VENV", &venv);
    status(&mut cmd, "cargo test")
}

/// The majors of the server-version matrix (their pinned builds: `testkit/src/pg/dist.rs`).
const MAJORS: [&str; 6] = ["13", "14", "15", "16", "17", "18"];

/// The tests the matrix runs on every major: every collector (on a primary and a standby,
/// version gating, failure isolation), their tiers (settings read on a configuration change)
/// and the tenant `search_path` attack.
const MATRIX_TESTS: [&str; 3] = ["collectors::", "tiers::", "search_path::"];

/// `cargo xtask matrix`: the matrix tests once per major (`MESA_TEST_PG`), each major with a
/// server of its own; stops at the first major that fails.
fn matrix(args: &[String]) -> Result<bool> {
    let majors: Vec<&str> = if args.is_empty() {
        MAJORS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    if let Some(bad) = majors.iter().find(|m| !MAJORS.contains(m)) {
        return fail(format!(
            "no pinned PostgreSQL {bad}; the matrix has {}",
            MAJORS.join(", ")
        ));
    }
    system::ensure(system::Need::Tests)?;
    for major in majors {
        println!(
            "== PostgreSQL {major}: cargo test --test it -- {}",
            MATRIX_TESTS.join(" ")
        );
        let mut cmd = cargo();
        cmd.current_dir(root())
            .args(["test", "--test", "it", "--"])
            .args(MATRIX_TESTS)
            // `collectors::` would also pick the MySQL driver's collector tests, which no
            // PostgreSQL major changes.
            .args(["--skip", "mysql::"])
            .env("MESA_TEST_PG", major);
        if !status(&mut cmd, "cargo test")? {
            eprintln!("xtask: the matrix failed on PostgreSQL {major}");
            return Ok(false);
        }
    }
    Ok(true)
}

/// Builds Mesa and `example` in release (`what` names the example in the log); the release
/// folder, or `None` when the build failed.
fn build_release(example: &str, what: &str) -> Result<Option<PathBuf>> {
    println!("== cargo build --release (Mesa and {what})");
    let mut build = cargo();
    build.current_dir(root()).args([
        "build",
        "--release",
        "--quiet",
        "--bin",
        "mesa",
        "--example",
        example,
    ]);
    Ok(status(&mut build, "cargo build --release")?.then(|| target_dir().join("release")))
}

/// The release build of `example` against the release `mesa`, writing into `out`, with the
/// command its report names.
fn example_run(release: &Path, example: &str, out: &Path, command: &str) -> Command {
    let mut run = Command::new(release.join("examples").join(example));
    run.current_dir(root())
        .arg("--mesa")
        .arg(release.join("mesa"))
        .arg("--out")
        .arg(out)
        .args(["--command", command]);
    run
}

/// Where a measuring run writes its report: `docs/` for the committed one, or
/// `target/{name}-smoke/` for a smoke run (which must not touch the committed report).
fn report_dir(smoke: bool, name: &str) -> PathBuf {
    if smoke {
        target_dir().join(format!("{name}-smoke"))
    } else {
        root().join("docs")
    }
}

/// Runs `script` (under `scripts/`) with the environment's Python on `files`.
fn plot(venv: &Path, script: &str, files: &[PathBuf]) -> Result<bool> {
    let mut plot = Command::new(venv.join("bin/python"));
    plot.current_dir(root())
        .arg(Path::new("scripts").join(script))
        .args(files);
    status(&mut plot, script)
}

/// `cargo xtask bench`: builds Mesa and the benchmark in release, runs it (about ten minutes;
/// `--smoke` about one, into `target/bench-smoke/`), then draws the plot.
fn bench(args: &[String]) -> Result<bool> {
    let smoke = match args {
        [] => false,
        [flag] if flag == "--smoke" => true,
        [flag] if flag == "--only-queries" => return bench_phase("--only-queries"),
        [flag] if flag == "--only-mysql" => return bench_phase("--only-mysql"),
        _ => return fail("usage: cargo xtask bench [-- --smoke | --only-queries | --only-mysql]"),
    };
    system::ensure(system::Need::Bench)?;
    let venv = python::ensure()?;
    let out = report_dir(smoke, "bench");
    let Some(release) = build_release("fleet_bench", "the benchmark")? else {
        return Ok(false);
    };
    let command = if smoke {
        "cargo xtask bench -- --smoke"
    } else {
        "cargo xtask bench"
    };
    let mut run = example_run(&release, "fleet_bench", &out, command);
    if smoke {
        run.arg("--smoke");
    }
    if !status(&mut run, "fleet_bench")? {
        return Ok(false);
    }
    if !plot(
        &venv,
        "plot_bench.py",
        &[out.join("scale.csv"), out.join("benchmarks.png")],
    )? {
        return Ok(false);
    }
    let report = out.join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&report)
        .map_err(|e| Failure(format!("{}: {e}", report.display())))?;
    // A figure that could not be measured shows up as NaN or inf: the smoke fails on it.
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("NaN") || l.contains("| inf") || l.contains("no observations"))
    {
        return fail(format!(
            "{}: a figure was not measured: {line}",
            report.display()
        ));
    }
    if !out.join("benchmarks.png").is_file() {
        return fail("the plot was not written");
    }
    println!("== wrote {report}", report = report.display());
    Ok(true)
}

/// `cargo xtask bench -- --only-queries` (the user-queries phase alone, about three minutes,
/// into `docs/QUERIES.md`) or `-- --only-mysql` (Mesa and mysqld_exporter on MariaDB, about
/// two minutes, into `docs/MYSQL.md`).
fn bench_phase(flag: &str) -> Result<bool> {
    system::ensure(system::Need::Bench)?;
    let out = report_dir(false, "bench");
    let Some(release) = build_release("fleet_bench", "the benchmark")? else {
        return Ok(false);
    };
    let mut run = example_run(
        &release,
        "fleet_bench",
        &out,
        &format!("cargo xtask bench -- {flag}"),
    );
    run.arg(flag);
    status(&mut run, "fleet_bench")
}

/// `cargo xtask soak`: builds Mesa and the soak in release, runs it (30 minutes unless
/// `--duration`; `--smoke` 100 s with a fault every 20 s, into `target/soak-smoke/`), then
/// draws the plot. Every argument but `--smoke` goes to the soak, which checks them. Fails
/// when the soak found a problem or the plot was not written.
fn soak(args: &[String]) -> Result<bool> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let passed: Vec<&String> = args.iter().filter(|a| *a != "--smoke").collect();
    system::ensure(system::Need::Tests)?;
    let venv = python::ensure()?;
    let out = report_dir(smoke, "soak");
    let Some(release) = build_release("soak", "the soak")? else {
        return Ok(false);
    };
    let command = std::iter::once("scripts/soak")
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mut run = example_run(&release, "soak", &out, &command);
    if smoke {
        run.args(["--duration", "100s", "--fault-every", "20s"]);
    }
    run.args(passed);
    let started = std::time::SystemTime::now();
    let passed_soak = status(&mut run, "soak")?;
    // The plot is drawn even for a run that found problems (it shows what went wrong), but
    // only from samples this run wrote: one stopped early (a wrong argument, no server)
    // leaves the previous run's files as they are.
    let fresh = std::fs::metadata(out.join("soak.csv"))
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= started);
    if !fresh {
        return Ok(false);
    }
    if !plot(
        &venv,
        "plot_soak.py",
        &[
            out.join("soak.csv"),
            out.join("soak-faults.csv"),
            out.join("soak.png"),
        ],
    )? {
        return Ok(false);
    }
    println!("== wrote {}", out.join("RELIABILITY.md").display());
    Ok(passed_soak)
}

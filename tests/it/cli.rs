//! The `mesa` binary: `--check-config`, `--new-token`, `--version`, and a one-shot run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mesa(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesa"));
    cmd.args(args).env_remove("MESA_ORDERS_PASSWORD");
    cmd
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mesa.yaml")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesa-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn the_example_config_is_valid() {
    let path = example();
    let out = mesa(&[
        "--config.file",
        path.to_str().expect("utf-8"),
        "--check-config",
    ])
    .env("MESA_ORDERS_PASSWORD", "x")
    .env("MESA_ORDERS_ADMIN_PASSWORD", "y")
    .env("MESA_BILLING_PASSWORD", "z")
    .output()
    .expect("run mesa");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (2 targets)"));
}

#[test]
fn three_mistakes_exit_64_naming_all_three() {
    let path = write_config(
        "three.yaml",
        "collection: {interval: 10s, timeout: 10s}
targets:
  - {name: a, driver: postgres, host: h, username: u, port: 0}
  - {name: b, driver: oracle, host: h, username: u}
",
    );
    let out = mesa(&[
        "--config.file",
        path.to_str().expect("utf-8"),
        "--check-config",
    ])
    .output()
    .expect("run mesa");
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    for path in [
        "collection.timeout:",
        "targets[0].port:",
        "targets[1].driver:",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
    assert!(err.contains("3 problems"), "{err}");
}

#[test]
fn each_kind_of_mistake_has_a_clear_message() {
    let base = "  - {name: a, driver: postgres, host: h, username: u}\n";
    let cases = [
        (
            "unknown key",
            format!("targets:\n{base}colour: blue\n"),
            "colour: unknown key; expected one of: collection, web, admin, targets",
        ),
        (
            "duplicate",
            format!("targets:\n{base}{base}"),
            "targets[1].name: duplicate target name \"a\"",
        ),
        (
            "inline password",
            "targets:\n  - {name: a, driver: postgres, host: h, username: u, password: pw}\n"
                .to_owned(),
            "targets[0].password: inline passwords are not allowed; use password_env: VARIABLE or password_file: PATH",
        ),
        (
            "timeout",
            format!("collection: {{interval: 5s, timeout: 6s}}\ntargets:\n{base}"),
            "collection.timeout: must be less than interval (6s >= 5s)",
        ),
        (
            "driver",
            "targets:\n  - {name: a, driver: mysql, host: h, username: u}\n".to_owned(),
            "targets[0].driver: invalid driver \"mysql\"; supported drivers: postgres",
        ),
        (
            "admin tls",
            format!(
                "admin:\n  tls: {{cert_file: /nonexistent.crt, key_file: /nonexistent.key}}\n  tokens:\n    - {{name: r, sha256: '{}', scopes: [read], targets: ['*']}}\ntargets:\n{base}",
                "0f".repeat(32)
            ),
            "admin.tls: cannot read /nonexistent.crt",
        ),
    ];
    for (what, text, expect) in cases {
        let path = write_config(&format!("{}.yaml", what.replace(' ', "_")), &text);
        let out = mesa(&[
            "--config.file",
            path.to_str().expect("utf-8"),
            "--check-config",
        ])
        .output()
        .expect("run mesa");
        assert_eq!(out.status.code(), Some(64), "{what}");
        assert!(stderr(&out).contains(expect), "{what}: {}", stderr(&out));
    }
}

#[test]
fn new_token_prints_a_token_and_its_digest() {
    let out = mesa(&["--new-token"]).output().expect("run mesa");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .expect(name)
            .to_owned()
    };
    let token = field("token:");
    let digest = field("sha256:");
    assert_eq!(mesa::token::hex(&mesa::token::digest(&token)), digest);
    let version = mesa(&["--version"]).output().expect("run mesa");
    assert!(String::from_utf8_lossy(&version.stdout).contains(mesa::VERSION));
}

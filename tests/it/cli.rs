//! The `mesa` binary: `--check-config`, `--new-token`, `--version`, and a one-shot run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mesa(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesa"));
    cmd.args(args).env_remove("MESA_ORDERS_PASSWORD");
    cmd
}

/// `mesa --config.file=PATH --check-config`, ready to run.
fn check_config(path: &Path) -> Command {
    mesa(&[
        "--config.file",
        path.to_str().expect("utf-8"),
        "--check-config",
    ])
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
    let out = check_config(&path)
        .env("MESA_ORDERS_PASSWORD", "x")
        .env("MESA_ORDERS_ADMIN_PASSWORD", "y")
        .env("MESA_BILLING_PASSWORD", "z")
        .env("MESA_SHOP_PASSWORD", "s")
        .env("MESA_SHOP_ADMIN_PASSWORD", "t")
        .output()
        .expect("run mesa");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (3 targets)"));
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
    let out = check_config(&path).output().expect("run mesa");
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
            "targets:\n  - {name: a, driver: oracle, host: h, username: u}\n".to_owned(),
            "targets[0].driver: invalid driver \"oracle\"; supported drivers: postgres, mysql",
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
        let out = check_config(&path).output().expect("run mesa");
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

#[test]
fn hardening_rules_exit_64_naming_each_key() {
    let web = write_config(
        "hardening-web.yml",
        "tls_server_config: {cert_file: a.crt, key_file: a.key, client_allowed_sans: [scraper]}\nbasic_auth_users: {u: '$2y$31$abcdefghijklmnopqrstuuKQ3mKyE5/4SSiZk9XO0u8E0HB8r7cNO'}\n",
    );
    let path = write_config(
        "hardening.yaml",
        &format!(
            "web: {{config_file: {web}}}
admin:
  listen_address: '0.0.0.0:9931'
  rate_limit: {{per_second: 1.0e-300}}
  tokens:
    - {{name: t, sha256: '{digest}', scopes: [read], targets: ['*']}}
targets:
  - {{name: a, driver: postgres, host: h, username: u, sslmode: verify-ca}}
  - {{name: b, driver: postgres, host: h, username: u, sslmode: disable, channel_binding: require, interval: 9999d}}
",
            web = web.display(),
            digest = "ab".repeat(32),
        ),
    );
    let out = check_config(&path).output().expect("run mesa");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    for key in [
        "admin.listen_address: 0.0.0.0:9931 is reachable from the network",
        "admin.rate_limit.per_second:",
        "targets[0].sslmode: verify-ca needs sslrootcert",
        "targets[1].channel_binding: require needs TLS",
        "targets[1].interval: must be at most 24h",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    // The web config is checked once the main file is valid.
    let valid = write_config(
        "hardening-valid.yaml",
        &format!(
            "web: {{config_file: {}}}\ntargets:\n  - {{name: a, driver: postgres, host: h, username: u}}\n",
            web.display()
        ),
    );
    let out = check_config(&valid).output().expect("run mesa");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    for key in [
        "tls_server_config.client_allowed_sans: needs client_auth_type",
        "basic_auth_users.u: bcrypt cost must be from 4 to 14",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
}

#[test]
fn a_password_file_others_can_read_is_named_in_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = write_config(
        "loose-pw.yaml",
        "targets:\n  - {name: a, driver: postgres, host: h, username: u, password_file: loose.pw}\n",
    );
    let pw = path.with_file_name("loose.pw");
    std::fs::write(&pw, "secret\n").expect("pw");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = check_config(&path).output().expect("run mesa");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: targets[0].password_file:") && err.contains("loose.pw"),
        "{err}"
    );
}

#[test]
fn an_unsafe_audit_file_exits_64_naming_the_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = write_config(
        "unsafe-audit.yaml",
        &format!(
            "admin:\n  audit_log: unsafe-audit.jsonl\n  tokens:\n    - {{name: t, sha256: '{}', scopes: [terminate], targets: ['*']}}\ntargets:\n  - {{name: a, driver: postgres, host: h, username: u}}\n",
            "ab".repeat(32)
        ),
    );
    let audit = path.with_file_name("unsafe-audit.jsonl");
    std::fs::write(&audit, "").expect("audit file");
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = check_config(&path).output().expect("run mesa");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("admin.audit_log: audit log")
            && stderr(&out).contains("writable by group or others"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_shard_out_of_range_exits_64_naming_the_range() {
    let out = check_config(&example())
        .args(["--shard.index", "3", "--shard.count", "3"])
        .output()
        .expect("mesa runs");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--shard.index 3 is out of range: shards are numbered 0 to 2"),
        "{}",
        stderr(&out)
    );
    let ok = check_config(&example())
        .args(["--shard.index", "2", "--shard.count", "3"])
        .env("MESA_ORDERS_PASSWORD", "x")
        .env("MESA_ORDERS_ADMIN_PASSWORD", "y")
        .env("MESA_BILLING_PASSWORD", "z")
        .env("MESA_SHOP_PASSWORD", "s")
        .env("MESA_SHOP_ADMIN_PASSWORD", "t")
        .output()
        .expect("mesa runs");
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

#[test]
fn tls_keys_others_can_read_are_named_in_warnings() {
    // Issue 17, item 7: both listeners' keys, from --check-config (as password files are).
    use std::os::unix::fs::PermissionsExt as _;
    let cluster = crate::support::cluster();
    let path = write_config("loose-keys.yaml", "");
    let dir = path.parent().expect("dir").to_owned();
    for name in ["server.crt", "server.key"] {
        std::fs::copy(cluster.dir().join(name), dir.join(format!("loose-{name}"))).expect("copy");
    }
    let key = dir.join("loose-server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    std::fs::write(
        dir.join("loose-web.yml"),
        "tls_server_config: {cert_file: loose-server.crt, key_file: loose-server.key}\n",
    )
    .expect("web.yml");
    std::fs::write(
        &path,
        format!(
            "web: {{config_file: loose-web.yml}}
admin:
  audit_log: loose-audit.jsonl
  tls: {{cert_file: loose-server.crt, key_file: loose-server.key}}
  tokens:
    - {{name: t, sha256: '{}', scopes: [read], targets: ['*']}}
targets:
  - {{name: a, driver: postgres, host: h, username: u}}
",
            "ab".repeat(32)
        ),
    )
    .expect("config");
    let out = check_config(&path).output().expect("run mesa");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for key in [
        "warning: admin.tls.key_file:",
        "warning: web.config_file tls_server_config.key_file:",
    ] {
        assert!(
            err.contains(key) && err.contains("loose-server.key"),
            "{key} missing from:\n{err}"
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = check_config(&path).output().expect("run mesa");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn a_bad_queries_file_exits_64_naming_file_line_and_key() {
    let queries = write_config(
        "bad-queries.yaml",
        "pg_app_queue:
  query: \"SELECT queue, count(*) AS depth FROM app.jobs GROUP BY queue\"
  metrics:
    - queue: {usage: LABEL, description: Queue}
    - depth: {usage: GUAGE, description: Jobs}
pg_stat_database:
  query: \"SELECT 1 AS xact_commit\"
  metrics:
    - xact_commit: {usage: COUNTER, description: Clash}
pg_empty:
  query: \"\"
  metrics:
    - v: {usage: GAUGE}
",
    );
    let path = write_config(
        "uses-bad-queries.yaml",
        &format!(
            "collection: {{queries: ['{}']}}\ntargets:\n  - {{name: a, driver: postgres, host: h, username: u}}\n",
            queries.display()
        ),
    );
    let out = check_config(&path).output().expect("run mesa");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    let file = queries.display().to_string();
    for want in [
        format!(
            "collection.queries: {file}:5: pg_app_queue.metrics[1].depth.usage: unknown usage \"GUAGE\""
        ),
        format!(
            "collection.queries: {file}:6: pg_stat_database.xact_commit: makes pg_stat_database_xact_commit, a family of Mesa's built-in collectors"
        ),
        format!("collection.queries: {file}:10: pg_empty.query: the query is missing or empty"),
    ] {
        assert!(err.contains(&want), "{want:?} missing from:\n{err}");
    }
    // A target's own list replaces the shared one; a missing file is named.
    let path = write_config(
        "target-queries.yaml",
        "targets:\n  - {name: a, driver: postgres, host: h, username: u, queries: ['/nonexistent/q.yaml']}\n",
    );
    let out = check_config(&path).output().expect("run mesa");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("targets[0].queries: /nonexistent/q.yaml: cannot read it"),
        "{}",
        stderr(&out)
    );
}

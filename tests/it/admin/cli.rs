//! `mesa admin` end to end: the real binary against a running daemon, with the token in the
//! environment (there is no flag for it), tables for people, JSON for scripts, one line per
//! error on stderr, and the documented exit codes.

use std::process::Command;

use super::*;

/// What one run of the binary gave: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `mesa admin ARGS` against `admin` with `kind`'s token in MESA_ADMIN_TOKEN.
async fn mesa_admin(admin: &Admin, kind: Option<&str>, args: &[&str]) -> Run {
    mesa_admin_at(&format!("http://{}", admin.addr), admin, kind, args).await
}

/// As [`mesa_admin`], with the admin API at `url`.
async fn mesa_admin_at(url: &str, admin: &Admin, kind: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mesa"));
    command
        .arg("admin")
        .args(args)
        .env("MESA_ADMIN_URL", url)
        .env("MESA_ADMIN_TARGET", "main")
        .env_remove("MESA_ADMIN_TOKEN");
    if let Some(kind) = kind {
        command.env("MESA_ADMIN_TOKEN", admin.token(kind));
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("the mesa binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_tables_json_and_exit_codes() {
    let _serial = role_lock().await;
    let p = ROLE_PASSWORD;
    roles(&[
        "CREATE SCHEMA IF NOT EXISTS cli_schema",
        "CREATE TABLE IF NOT EXISTS cli_schema.cli_table (id int PRIMARY KEY, note varchar(40))",
        format!("CREATE ROLE cli_app LOGIN PASSWORD '{p}'").as_str(),
    ])
    .await;
    let admin = start("cli", "mesa_monitor", "mesa_admin").await;

    // Tables for people, the API's JSON for scripts.
    let targets = mesa_admin(&admin, Some("read"), &["targets"]).await;
    assert_eq!(targets.code, 0, "{}", targets.stderr);
    let header = targets.stdout.lines().next().expect("a header");
    assert!(
        header.starts_with("NAME") && header.contains("STATUS"),
        "{}",
        targets.stdout
    );
    assert!(
        targets.stdout.lines().any(|l| l.starts_with("main ")),
        "{}",
        targets.stdout
    );
    let json = mesa_admin(&admin, Some("read"), &["--output", "json", "targets"]).await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let doc: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("JSON");
    assert_eq!(doc["targets"].as_array().expect("targets").len(), 2);

    // Inspection.
    let columns = mesa_admin(
        &admin,
        Some("read"),
        &["columns", "postgres", "cli_schema.cli_table"],
    )
    .await;
    assert_eq!(columns.code, 0, "{}", columns.stderr);
    assert!(
        columns
            .stdout
            .lines()
            .any(|l| l.contains("note") && l.contains("character varying(40)")),
        "{}",
        columns.stdout
    );
    let tables = mesa_admin(&admin, Some("read"), &["tables", "postgres"]).await;
    assert!(
        tables.code == 0 && tables.stdout.contains("cli_table"),
        "{}",
        tables.stdout
    );
    let dbs = mesa_admin(&admin, Some("read"), &["databases"]).await;
    assert!(
        dbs.code == 0 && dbs.stdout.contains("postgres"),
        "{}",
        dbs.stdout
    );

    // users create: the password alone on stdout, so $(...) captures it.
    let created = mesa_admin(
        &admin,
        Some("create_user"),
        &[
            "users",
            "create",
            "cli_user",
            "--valid-for",
            "1h",
            "--connection-limit",
            "3",
        ],
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let lines: Vec<&str> = created.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "only the password on stdout: {:?}",
        created.stdout
    );
    let password = lines[0];
    assert_eq!(password.len(), 32, "{password}");
    assert!(created.stderr.contains("shown once"), "{}", created.stderr);
    assert!(
        cluster()
            .connect("cli_user", password, "postgres")
            .await
            .is_ok()
    );
    let listed = mesa_admin(&admin, Some("read"), &["users", "list"]).await;
    assert!(
        listed.code == 0 && listed.stdout.contains("cli_user"),
        "{}",
        listed.stdout
    );

    // Errors: one line on stderr, and the exit code of the status.
    let refused = mesa_admin(
        &admin,
        Some("create_user"),
        &["users", "delete", "postgres"],
    )
    .await;
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused.stderr.starts_with("mesa admin: 409 refused: "),
        "{}",
        refused.stderr
    );
    let missing = mesa_admin(
        &admin,
        Some("create_user"),
        &["users", "delete", "cli_nobody"],
    )
    .await;
    assert_eq!(missing.code, 4, "{}", missing.stderr);
    let denied = mesa_admin(&admin, Some("create_user"), &["sessions", "list"]).await;
    assert_eq!(denied.code, 3, "{}", denied.stderr);
    let invalid = mesa_admin(
        &admin,
        Some("create_user"),
        &["users", "create", "Bad-Name"],
    )
    .await;
    assert_eq!(invalid.code, 2, "{}", invalid.stderr);

    // Bulk: a dry run, then for real.
    let worker = cluster()
        .connect("cli_app", p, "postgres")
        .await
        .expect("login");
    worker
        .batch_execute("SET application_name = 'cli_worker'; BEGIN; SELECT 1")
        .await
        .expect("idle in transaction");
    let pid = backend_pid(&worker).await;
    let filter = [
        "sessions",
        "terminate",
        "--state",
        "idle in transaction",
        "--application",
        "cli_worker",
        "--max",
        "5",
    ];
    let dry = mesa_admin(
        &admin,
        Some("terminate"),
        &[&filter[..], &["--dry-run"]].concat(),
    )
    .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .lines()
            .any(|l| l.starts_with(&pid.to_string()) && l.contains("would_terminate")),
        "{}",
        dry.stdout
    );
    assert!(dry.stderr.contains("dry run"), "{}", dry.stderr);
    assert!(pid_exists(pid).await);
    let done = mesa_admin(&admin, Some("terminate"), &filter).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(done.stdout.contains("terminated"), "{}", done.stdout);
    assert!(eventually(Duration::from_secs(5), || async { !pid_exists(pid).await }).await);

    // Usage: no filter and no --max, a token flag, no token at all.
    let no_max = mesa_admin(
        &admin,
        Some("terminate"),
        &["sessions", "terminate", "--state", "idle"],
    )
    .await;
    assert_eq!(no_max.code, 2, "{}", no_max.stderr);
    let token_flag = mesa_admin(&admin, None, &["--token", admin.token("read"), "targets"]).await;
    assert_eq!(
        token_flag.code, 2,
        "there is no --token flag: {}",
        token_flag.stderr
    );
    let no_token = mesa_admin(&admin, None, &["targets"]).await;
    assert_eq!(no_token.code, 2, "{}", no_token.stderr);
    assert!(
        no_token.stderr.contains("MESA_ADMIN_TOKEN"),
        "{}",
        no_token.stderr
    );

    // Revocation, and the completion script clap generates.
    let deleted = mesa_admin(
        &admin,
        Some("create_user"),
        &["users", "delete", "cli_user"],
    )
    .await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(
        deleted.stdout.starts_with("dropped cli_user"),
        "{}",
        deleted.stdout
    );
    assert!(!role_exists("cli_user").await);
    let completions = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_mesa"))
            .args(["completions", "bash"])
            .output()
    })
    .await
    .expect("join")
    .expect("runs");
    assert!(completions.status.success());
    let script = String::from_utf8_lossy(&completions.stdout);
    assert!(
        script.contains("_mesa") && script.contains("terminate"),
        "{script}"
    );

    drop(worker);
    admin.stop().await;
    roles(&["DROP ROLE cli_app"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_verifies_an_https_admin_api_against_its_cacert() {
    // The harness cluster's certificate is for 127.0.0.1, signed by its own CA.
    let c = cluster();
    let tls = format!(
        "  tls: {{cert_file: '{}', key_file: '{}'}}\n  reap_interval: 24h\n",
        c.dir().join("server.crt").display(),
        c.dir().join("server.key").display()
    );
    let admin = start_custom(
        "clitls",
        "mesa_monitor",
        "mesa_admin",
        "mesa_monitor",
        &tls,
        "",
    )
    .await;
    let url = format!("https://127.0.0.1:{}", admin.addr.port());
    let ca = c.ca_cert().display().to_string();
    let trusted = mesa_admin_at(&url, &admin, Some("read"), &["--cacert", &ca, "targets"]).await;
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    assert!(trusted.stdout.contains("main"), "{}", trusted.stdout);
    // Without the CA the certificate is unknown: no answer is trusted, exit 1.
    let untrusted = mesa_admin_at(&url, &admin, Some("read"), &["targets"]).await;
    assert_eq!(untrusted.code, 1, "{}", untrusted.stderr);
    assert!(untrusted.stderr.contains("TLS"), "{}", untrusted.stderr);
    admin.stop().await;
}

//! Unit tests of config validation: every rule, and every problem reported at once.

use std::path::Path;
use std::time::Duration;

use super::*;

fn env(name: &str) -> Option<String> {
    (name == "PW").then(|| "secret-from-env".to_owned())
}

fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    parse_str(text, Path::new("/nonexistent"), &env)
}

fn problems(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("invalid config")
        .iter()
        .map(ToString::to_string)
        .collect()
}

const MINIMAL: &str = "
targets:
  - name: db1
    driver: postgres
    host: 127.0.0.1
    username: mon
    password_env: PW
";

/// The PostgreSQL part of a parsed target.
fn pg(t: &TargetConfig) -> &crate::gateway::postgres::PostgresSpec {
    match &t.spec.driver {
        crate::gateway::DriverSpec::Postgres(pg) => pg,
        crate::gateway::DriverSpec::Mysql(_) => panic!("not a PostgreSQL target"),
    }
}

#[test]
fn minimal_config_gets_the_defaults() {
    let c = parse(MINIMAL).expect("valid");
    let t = &c.targets[0];
    assert_eq!(t.spec.common.port, 5432);
    assert_eq!(t.spec.common.database, "postgres");
    assert_eq!(pg(t).sslmode, SslMode::Prefer);
    assert_eq!(
        t.spec.common.monitor.password.as_ref().map(Secret::expose),
        Some("secret-from-env")
    );
    assert_eq!(t.collection, CollectionSettings::default());
    assert_eq!(c.web.listen_address.to_string(), "0.0.0.0:9930");
    assert!(!c.admin.enabled());
}

#[test]
fn target_overrides_inherit_the_rest() {
    let c = parse(&format!(
        "collection: {{interval: 20s, lock_timeout: 500ms}}\n{}    interval: 1m\n",
        MINIMAL
    ))
    .expect("valid");
    let t = &c.targets[0].collection;
    assert_eq!(t.interval, Duration::from_secs(60));
    assert_eq!(t.lock_timeout, Duration::from_millis(500));
    assert_eq!(t.timeout, DEFAULT_TIMEOUT);
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let p = problems(
        "
collection: {interval: 5s, timeout: 5s}
targets:
  - name: db1
    driver: postgres
    host: h
    username: u
    port: 70000
  - name: db1
    driver: oracle
    host: h
    username: u
    password: hunter2
    colour: blue
",
    );
    let expect = [
        "collection.timeout: must be less than interval",
        "targets[0].port: expected a port number 1-65535",
        "targets[1].name: duplicate target name \"db1\"",
        "targets[1].driver: invalid driver \"oracle\"; supported drivers: postgres, mysql",
        "targets[1].password: inline passwords are not allowed; use password_env",
        "targets[1].colour: unknown key; expected one of:",
    ];
    for e in expect {
        assert!(
            p.iter().any(|m| m.starts_with(e)),
            "missing {e:?} in {p:#?}"
        );
    }
    assert!(
        p.iter().all(|m| !m.contains("hunter2")),
        "a problem echoed the password"
    );
}

#[test]
fn bad_values_have_clear_messages() {
    let cases = [
        (
            "collection: {interval: fast}",
            "collection.interval: invalid duration \"fast\"",
        ),
        (
            "collection: {interval: 15}",
            "collection.interval: expected a duration such as \"15s\"",
        ),
        (
            "collection: {timeout: 0s}",
            "collection.timeout: must be greater than zero",
        ),
        (
            "web: {listen_address: 'localhost:80'}",
            "web.listen_address: invalid address",
        ),
        ("surprise: 1", "surprise: unknown key"),
    ];
    for (extra, expect) in cases {
        let p = problems(&format!("{extra}\n{MINIMAL}"));
        assert!(
            p.iter().any(|m| m.starts_with(expect)),
            "{expect:?} not in {p:#?}"
        );
    }
}

#[test]
fn target_rules() {
    let cases = [
        ("name: Orders", "targets[0].name: invalid name \"Orders\""),
        (
            "sslmode: maybe",
            "targets[0].sslmode: unknown sslmode \"maybe\"",
        ),
        (
            "password_env: NOPE",
            "targets[0].password_env: environment variable NOPE is not set",
        ),
        (
            "password_file: /nonexistent/pw",
            "targets[0].password_file: cannot read /nonexistent/pw",
        ),
        (
            "timeout: 1m",
            "targets[0].timeout: must be less than interval",
        ),
    ];
    for (line, expect) in cases {
        let text = format!(
            "targets:\n  - {{{}}}\n",
            [
                "driver: postgres",
                "host: h",
                "username: u",
                if line.starts_with("name") {
                    line
                } else {
                    "name: db1"
                },
                if line.starts_with("name") {
                    "port: 1"
                } else {
                    line
                },
            ]
            .join(", ")
        );
        let p = problems(&text);
        assert!(
            p.iter().any(|m| m.starts_with(expect)),
            "{expect:?} not in {p:#?}"
        );
    }
    assert!(problems("targets: []")[0].starts_with("targets: at least one target"));
    assert!(problems("")[0].contains("empty"));
    let both = problems(
        "targets:\n  - {name: a, driver: postgres, host: h, username: u, password_env: PW, password_file: x}\n",
    );
    assert!(both.iter().any(|m| m.contains("not both")), "{both:#?}");
}

#[test]
fn admin_tokens_are_validated() {
    let text = format!(
        "admin:
  tokens:
    - {{name: a, sha256: nothex, scopes: [read, fly], targets: [db1, ghost]}}
    - {{name: a, sha256: '{}', scopes: [read], targets: ['*']}}
{MINIMAL}",
        "ab".repeat(32)
    );
    let p = problems(&text);
    for e in [
        "admin.tokens[0].sha256: expected 64 hex characters",
        "admin.tokens[0].scopes[1]: unknown scope \"fly\"",
        "admin.tokens[0].targets[1]: no target is named \"ghost\"",
        "admin.tokens[1].name: duplicate token name \"a\"",
    ] {
        assert!(p.iter().any(|m| m.starts_with(e)), "{e:?} not in {p:#?}");
    }
}

#[test]
fn a_valid_admin_section_enables_the_api() {
    let text = format!(
        "admin:
  audit_log: audit.jsonl
  tokens:
    - {{name: oncall, sha256: '{}', scopes: [read, create_superuser], targets: [db1]}}
{MINIMAL}",
        "0f".repeat(32)
    );
    let c = parse(&text).expect("valid");
    assert!(c.admin.enabled());
    let t = &c.admin.tokens[0];
    assert!(t.scopes.contains(&Scope::CreateSuperuser) && !t.scopes.contains(&Scope::CreateUser));
    assert_eq!(t.targets, TargetSelector::Names(["db1".to_owned()].into()));
    assert_eq!(t.sha256, [0x0f; 32]);
}

#[test]
fn secrets_never_reach_debug() {
    let c = parse(MINIMAL).expect("valid");
    assert!(!format!("{c:?}").contains("secret-from-env"));
}

#[test]
fn mutating_tokens_need_an_audit_log() {
    let text = format!(
        "admin:\n  tokens:\n    - {{name: t, sha256: '{}', scopes: [terminate], targets: ['*']}}\n{MINIMAL}",
        "ab".repeat(32)
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|m| m.starts_with("admin.audit_log: is required")),
        "{p:#?}"
    );
    let read_only = text.replace("[terminate]", "[read]");
    assert!(parse(&read_only).is_ok());
}

#[test]
fn verify_ca_needs_a_root_certificate_and_verify_full_may_use_the_system_store() {
    let p = problems(&format!("{MINIMAL}    sslmode: verify-ca\n"));
    assert!(
        p.iter()
            .any(|m| m.starts_with("targets[0].sslmode: verify-ca needs sslrootcert")),
        "{p:#?}"
    );
    let c = parse(&format!("{MINIMAL}    sslmode: verify-full\n")).expect("valid");
    assert_eq!(pg(&c.targets[0]).channel_binding, ChannelBinding::Require);
}

#[test]
fn channel_binding_is_required_when_the_server_is_authenticated() {
    let dir = std::env::temp_dir().join(format!("mesa-cb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("ca.pem"), "not read at load").expect("ca");
    let with = |extra: &str| {
        parse_str(&format!("{MINIMAL}{extra}"), &dir, &env)
            .map(|c| pg(&c.targets[0]).channel_binding)
    };
    assert_eq!(with(""), Ok(ChannelBinding::Prefer));
    assert_eq!(with("    sslmode: require\n"), Ok(ChannelBinding::Prefer));
    assert_eq!(
        with("    sslmode: require\n    sslrootcert: ca.pem\n"),
        Ok(ChannelBinding::Require)
    );
    assert_eq!(
        with("    sslmode: verify-ca\n    sslrootcert: ca.pem\n"),
        Ok(ChannelBinding::Require)
    );
    assert_eq!(
        with("    sslmode: verify-full\n    channel_binding: prefer\n"),
        Ok(ChannelBinding::Prefer)
    );
    assert_eq!(
        with("    channel_binding: disable\n"),
        Ok(ChannelBinding::Disable)
    );
    let p = problems(&format!(
        "{MINIMAL}    sslmode: disable\n    channel_binding: require\n"
    ));
    assert!(
        p.iter()
            .any(|m| m.starts_with("targets[0].channel_binding: require needs TLS")),
        "{p:#?}"
    );
    let p = problems(&format!("{MINIMAL}    channel_binding: always\n"));
    assert!(
        p.iter()
            .any(|m| m.starts_with("targets[0].channel_binding: unknown")),
        "{p:#?}"
    );
}

#[test]
fn a_networked_admin_listener_needs_tls_or_an_explicit_opt_out() {
    let admin = |extra: &str| {
        format!(
            "admin:\n  listen_address: '0.0.0.0:9931'\n{extra}  tokens:\n    - {{name: t, sha256: '{}', scopes: [read], targets: ['*']}}\n{MINIMAL}",
            "ab".repeat(32)
        )
    };
    let p = problems(&admin(""));
    assert!(
        p.iter().any(|m| m.starts_with(
            "admin.listen_address: 0.0.0.0:9931 is reachable from the network, but admin.tls is not set"
        )),
        "{p:#?}"
    );
    let c = parse(&admin("  insecure_allow_plaintext: true\n")).expect("opted out");
    assert!(c.admin.insecure_allow_plaintext);
    let p = problems(&admin("  insecure_allow_plaintext: yes please\n"));
    assert!(
        p.iter()
            .any(|m| m.starts_with("admin.insecure_allow_plaintext: expected true or false")),
        "{p:#?}"
    );
    // Loopback needs no TLS; an admin section without tokens is off and needs nothing.
    assert!(parse(&admin("").replace("0.0.0.0", "127.0.0.1")).is_ok());
    assert!(
        parse(&format!(
            "admin: {{listen_address: '0.0.0.0:9931'}}\n{MINIMAL}"
        ))
        .is_ok()
    );
}

#[test]
fn numbers_that_could_overflow_later_are_bounded() {
    let p = problems(&format!(
        "collection: {{interval: 400000000000y, timeout: 25h}}\nadmin: {{rate_limit: {{per_second: 1.0e-300, burst: 4000000000}}}}\n{MINIMAL}"
    ));
    for e in [
        "collection.interval: ",
        "collection.timeout: must be at most 24h",
        "admin.rate_limit.per_second: expected a number of requests per second from 0.001",
        "admin.rate_limit.burst: expected a whole number of requests from 1 to 1000000",
    ] {
        assert!(p.iter().any(|m| m.starts_with(e)), "{e:?} not in {p:#?}");
    }
    let p = problems(&format!(
        "admin: {{rate_limit: {{per_second: 1.0e300}}}}\n{MINIMAL}"
    ));
    assert!(
        p.iter()
            .any(|m| m.starts_with("admin.rate_limit.per_second")),
        "{p:#?}"
    );
}

#[test]
fn a_password_file_others_can_read_is_a_warning_naming_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("mesa-pwperm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("loose.pw");
    std::fs::write(&file, "pw\n").expect("write");
    let text = MINIMAL.replace("password_env: PW", "password_file: loose.pw");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let c = parse_str(&text, &dir, &env).expect("loads with a warning");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].path, "targets[0].password_file");
    assert!(
        c.warnings[0].message.contains("loose.pw"),
        "{}",
        c.warnings[0]
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let c = parse_str(&text, &dir, &env).expect("loads");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn password_files_must_be_small_regular_files() {
    for (path, why) in [("/dev/zero", "not a regular file"), ("/", "")] {
        let text = MINIMAL.replace("password_env: PW", &format!("password_file: {path}"));
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|m| m.starts_with("targets[0].password_file: cannot read") && m.contains(why)),
            "{p:#?}"
        );
    }
}

#[test]
fn collectors_are_switched_globally_and_per_target() {
    let c = parse(&format!(
        "collection: {{collectors: {{stat_statements: true, locks: false}}, max_tables: 50}}\n{}    collectors: {{locks: true, settings: false}}\n    max_statements: 20\n",
        MINIMAL
    ))
    .expect("valid");
    let o = c.targets[0].collection.collectors;
    assert!(
        o.selection.contains("stat_statements"),
        "from the global switch"
    );
    assert!(o.selection.contains("locks"), "the target turns it back on");
    assert!(!o.selection.contains("settings"));
    assert!(o.selection.contains("health") && o.selection.contains("stat_database"));
    assert_eq!((o.max_tables, o.max_statements), (50, 20));
    let global = c.collection.collectors;
    assert!(!global.selection.contains("locks"));
    // Defaults: everything but stat_statements.
    let d = crate::collectors::Options::default();
    for name in crate::collectors::names(None) {
        assert_eq!(
            d.selection.contains(name),
            name != "stat_statements",
            "{name}"
        );
    }
    assert_eq!((d.max_tables, d.max_statements), (300, 100));
}

#[test]
fn a_collector_takes_an_interval_globally_and_per_target() {
    use crate::collectors::Schedule;
    use crate::gateway::Driver::Postgres;
    let c = parse(&format!(
        "collection: {{collectors: {{database: {{interval: 10m}}, stat_statements: {{enabled: true, interval: 1m}}}}}}\n{}    collectors: {{settings: {{interval: 2h}}, locks: {{enabled: false}}}}\n",
        MINIMAL
    ))
    .expect("valid");
    let o = c.targets[0].collection.collectors;
    let m = |n: u64| std::time::Duration::from_secs(60 * n);
    assert_eq!(
        o.intervals.schedule(Postgres, "database"),
        Schedule::Interval(m(10))
    );
    assert_eq!(
        o.intervals.schedule(Postgres, "stat_statements"),
        Schedule::Interval(m(1))
    );
    assert!(
        o.selection.contains("stat_statements"),
        "a mapping enables it"
    );
    assert_eq!(
        o.intervals.schedule(Postgres, "settings"),
        Schedule::OnChange { refresh: m(120) },
        "an on-change collector's interval is its refresh"
    );
    assert!(!o.selection.contains("locks"));
    // Defaults: sizes and wraparound every 5 minutes, settings on change (hourly refresh).
    let d = crate::collectors::Options::default().intervals;
    assert_eq!(d.schedule(Postgres, "database"), Schedule::Interval(m(5)));
    assert_eq!(d.schedule(Postgres, "wraparound"), Schedule::Interval(m(5)));
    assert_eq!(
        d.schedule(Postgres, "settings"),
        Schedule::OnChange { refresh: m(60) }
    );
    assert_eq!(d.schedule(Postgres, "activity"), Schedule::Every);
    assert_eq!(d.schedule(Postgres, "health"), Schedule::Every);
}

#[test]
fn collector_intervals_below_the_collection_interval_or_on_health_are_errors() {
    let p = problems(&format!(
        "collection: {{interval: 30s, timeout: 10s, collectors: {{database: {{interval: 10s}}, health: {{interval: 1m}}, settings: {{interval: soon}}, locks: {{every: 1m}}}}}}\n{}",
        MINIMAL
    ));
    let all = p.join("\n");
    for expected in [
        "collection.collectors.database.interval: must be at least the collection interval (10s < 30s)",
        "collection.collectors.health.interval: health runs at every collection",
        "collection.collectors.settings.interval: ",
        "collection.collectors.locks.every: unknown key",
    ] {
        assert!(all.contains(expected), "{expected}\n{all}");
    }
}

#[test]
fn unknown_collectors_and_bad_guards_are_config_errors() {
    let p = problems(&format!(
        "collection: {{collectors: {{stat_statement: true, health: false, locks: yes}}, max_tables: 0}}\n{}    max_statements: 100000\n",
        MINIMAL
    ));
    let all = p.join("\n");
    assert!(
        all.contains("collection.collectors.stat_statement: unknown collector; expected one of: health, activity,"),
        "{all}"
    );
    assert!(
        all.contains("collection.collectors.health: the health collector cannot be switched off"),
        "{all}"
    );
    assert!(
        all.contains("collection.collectors.locks: expected true or false"),
        "{all}"
    );
    assert!(
        all.contains("collection.max_tables: expected a whole number from 1 to 10000"),
        "{all}"
    );
    assert!(
        all.contains("targets[0].max_statements: expected a whole number from 1 to 10000"),
        "{all}"
    );
}

#[test]
fn a_tls_key_others_can_read_is_a_warning_naming_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("mesa-keyperm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("admin.key");
    std::fs::write(&key, "not read at parse time\n").expect("write");
    std::fs::write(dir.join("admin.crt"), "x\n").expect("write");
    let text = format!(
        "{MINIMAL}admin:
  audit_log: audit.jsonl
  tls: {{cert_file: admin.crt, key_file: admin.key}}
  tokens:
    - {{name: ops, sha256: '{}', scopes: [read], targets: ['*']}}
",
        "a".repeat(64)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let c = parse_str(&text, &dir, &env).expect("loads with a warning");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].path, "admin.tls.key_file");
    assert!(
        c.warnings[0].message.contains("admin.key"),
        "{}",
        c.warnings[0]
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let c = parse_str(&text, &dir, &env).expect("loads");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn databases_are_set_globally_and_per_target_key_by_key() {
    let c = parse(&format!(
        "collection: {{interval: 10s, timeout: 5s, databases: {{include: ['^app_'], exclude: ['^app_scratch'], max: 20}}}}\n{}    databases: {{interval: 2m, discover: true, max: 5}}\n",
        MINIMAL
    ))
    .expect("valid");
    let global = &c.collection.databases;
    assert!(global.discover);
    assert_eq!(global.max, 20);
    assert_eq!(
        global.interval(c.collection.interval),
        Duration::from_secs(40)
    );
    assert!(global.admits("app_shop") && !global.admits("app_scratch_1"));
    assert!(!global.admits("postgres"));
    let d = &c.targets[0].collection.databases;
    assert_eq!(d.max, 5, "the target's key wins");
    assert_eq!(d.interval, Some(Duration::from_secs(120)));
    assert!(
        d.admits("app_shop") && !d.admits("app_scratch_1"),
        "inherited"
    );
    // Defaults: discover, no filters, 100 at most, four intervals.
    let plain = parse(MINIMAL).expect("valid");
    let d = &plain.targets[0].collection.databases;
    assert!(d.discover && d.include.is_empty() && d.exclude.is_empty());
    assert_eq!(d.max, 100);
    assert_eq!(d.interval(Duration::from_secs(15)), Duration::from_secs(60));
}

#[test]
fn bad_database_settings_name_their_key() {
    let all = problems(&format!(
        "collection: {{interval: 30s, timeout: 10s, databases: {{include: ['(app', 'ok'], max: 0, interval: 10s, colour: blue}}}}\n{}    databases: {{exclude: ['[z-a]'], max: 10001, discover: maybe}}\n    collectors: {{stat_user_tables: {{interval: 5m}}}}\n",
        MINIMAL
    ))
    .join("\n");
    for want in [
        "collection.databases.include[0]: invalid regular expression \"(app\"",
        "collection.databases.max: expected a whole number from 1 to 10000",
        "collection.databases.interval: must be at least the collection interval (10s < 30s)",
        "collection.databases.colour: unknown key",
        "targets[0].databases.exclude[0]: invalid regular expression \"[z-a]\"",
        "targets[0].databases.max: expected a whole number from 1 to 10000",
        "targets[0].databases.discover: expected true or false",
        "targets[0].collectors.stat_user_tables.interval: runs in each visited database",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

#[test]
fn the_collection_session_is_kept_unless_the_config_says_ephemeral() {
    let plain = parse(MINIMAL).expect("valid");
    assert_eq!(plain.targets[0].collection.session, SessionMode::Kept);
    assert_eq!(
        plain.targets[0].collection.limits().session,
        SessionMode::Kept
    );
    let c = parse(&format!("collection: {{session: ephemeral}}\n{}", MINIMAL)).expect("valid");
    assert_eq!(c.targets[0].collection.session, SessionMode::Ephemeral);
    let all = problems(&format!("{}    session: pooled\n", MINIMAL)).join("\n");
    assert!(
        all.contains("targets[0].session: expected kept or ephemeral, found \"pooled\""),
        "{all}"
    );
}

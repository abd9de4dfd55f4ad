//! Faults of the server itself, each on a cluster of its own: a SIGSTOPped postmaster, a
//! restart under collections, `max_connections` exhausted by another role; and the
//! permission and lock faults on the shared cluster that leave the server up.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_postmaster() {
    // SIGSTOP: the port still accepts (the kernel's backlog), nothing answers.
    let own = own_cluster(&[]);
    let pid = own.postmaster_pid().expect("pid");
    scenario_on(
        Server::Own(own),
        "fault_sigstop",
        Fault { reason: "timeout" },
        async |_, _| kill("-STOP", pid),
        async |_, _| kill("-CONT", pid),
    )
    .await;
    own.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_collections() {
    // 30 ms per chunk keeps collections in flight when the server goes down.
    let own = own_cluster(&[]);
    scenario_on(
        Server::Own(own),
        "fault_restart",
        Fault {
            reason: "unreachable",
        },
        async |p, _| {
            set(p, Mode::Latency(Duration::from_millis(30))).await;
            tokio::task::block_in_place(|| own.stop());
        },
        async |p, _| {
            tokio::task::block_in_place(|| own.start_again()).expect("starts again");
            set(p, Mode::Pass).await;
        },
    )
    .await;
    own.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_exhausted() {
    // 3 of 8 slots are the superuser's; five sessions of another role take the rest.
    let own = own_cluster(&["max_connections = 8", "superuser_reserved_connections = 3"]);
    own.psql(
        "postgres",
        &format!("CREATE ROLE fault_hog LOGIN PASSWORD '{ROLE_PASSWORD}'"),
    )
    .expect("role");
    // The hogs are a task that keeps taking every slot that frees up: a collection of
    // Mesa's own that was in flight when the fault began gives its slot back, and a hog must
    // take it before Mesa's next collection does.
    let hogs: std::sync::Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> =
        Default::default();
    let (take, give) = (hogs.clone(), hogs.clone());
    scenario_on(
        Server::Own(own),
        "fault_max_conn",
        Fault {
            reason: "too_many_connections",
        },
        async move |_, _| {
            let (refused_tx, refused_rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(async move {
                let mut held = Vec::new();
                let mut refused_tx = Some(refused_tx);
                loop {
                    match own.connect("fault_hog", ROLE_PASSWORD, "postgres").await {
                        Ok(client) => held.push(client),
                        Err(e) => {
                            if e.code()
                                == Some(&tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS)
                                && let Some(tx) = refused_tx.take()
                            {
                                let _ = tx.send(held.len());
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            });
            *take.lock().await = Some(task);
            // The fault is in place once the server has refused a hog for want of a slot.
            let held = tokio::time::timeout(Duration::from_secs(5), refused_rx)
                .await
                .expect("the server refused a hog within 5 s")
                .expect("the hogs' task runs");
            assert!(held >= 2, "took only {held} slots before the first refusal");
        },
        async move |_, _| {
            // Dropping the task drops its sessions.
            if let Some(task) = give.lock().await.take() {
                task.abort();
            }
        },
    )
    .await;
    own.stop();
}

/// A role without `pg_monitor` sees other roles' sessions without their type: connection
/// counts and utilisation would read low and a saturation alert stay silent. Mesa says so:
/// `pg_up` 0 with reason `permission_denied` (and the grant to make in its log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_monitor_revoked() {
    scenario(
        "fault_unprivileged",
        Fault {
            reason: "permission_denied",
        },
        async |_, role| admin_sql(&format!("REVOKE pg_monitor FROM {role}")).await,
        async |_, role| admin_sql(&format!("GRANT pg_monitor TO {role}")).await,
    )
    .await;
}

/// The one fault of the list that is not an outage, on a running daemon: a lock that a
/// collector's statement waits on. It fails that collector alone, counted with reason
/// `timeout` after `lock_timeout`, inside the collection's deadline; `pg_up` stays 1 (paging
/// for one blocked view would be a false alarm, and would blind every other panel), the
/// other collectors deliver, it clears without a restart, and the healthy target never
/// notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_fails_its_collector_not_the_health_check() {
    let role = "fault_locked";
    monitor_role(Server::Shared, role).await;
    let db = fresh_database("fault_locked").await;
    db.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .expect("extension");
    let config = pair_config(&format!(
        "host: '{{host}}', port: {{port}}, database: fault_locked, username: {role}, collectors: {{stat_statements: true}}"
    ));
    let app = App::start(config).await.expect("daemon starts");
    let addr = app.metrics_addr();
    let statements = |text: &str| {
        value(
            text,
            "mesa_collector_success",
            &[("server", "faulty"), ("collector", "stat_statements")],
        )
    };
    let lock_failures = |text: &str| {
        value(
            text,
            "mesa_collect_failures_total",
            &[
                ("server", "faulty"),
                ("collector", "stat_statements"),
                ("reason", "timeout"),
            ],
        )
        .unwrap_or(0.0)
    };
    let (ready, text) = poll_until(
        Duration::from_secs(5),
        || async { http_get(addr, "/metrics").await.2 },
        |text| {
            statements(text) == Some(1.0)
                && value(text, "pg_up", &[("server", "healthy")]) == Some(1.0)
        },
    )
    .await;
    assert!(
        ready,
        "before the lock, both up, stat_statements succeeds:\n{text}"
    );

    // Every scrape while the lock lasts: both targets up, no health failure.
    let both_up = |text: &str, moment: &str| {
        for server in ["healthy", "faulty"] {
            assert_eq!(
                value(text, "pg_up", &[("server", server)]),
                Some(1.0),
                "{moment}: {server} down"
            );
            let health_failures = sum(
                text,
                "mesa_collect_failures_total",
                &[("server", server), ("collector", "health")],
            );
            assert_eq!(
                health_failures, 0.0,
                "{moment}: {server}'s health check failed"
            );
        }
    };

    let before = lock_failures(&text);
    db.batch_execute("BEGIN; LOCK TABLE public.pg_stat_statements IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let (failed, text) = poll_until(
        Duration::from_secs(5),
        || async {
            let text = http_get(addr, "/metrics").await.2;
            both_up(&text, "locked");
            text
        },
        |text| lock_failures(text) >= before + 2.0 && statements(text) == Some(0.0),
    )
    .await;
    assert!(
        failed,
        "locked: stat_statements fails alone, twice:\n{text}"
    );
    // The other collectors of the locked target still deliver.
    assert_eq!(
        value(
            &text,
            "mesa_collector_success",
            &[("server", "faulty"), ("collector", "activity")]
        ),
        Some(1.0)
    );
    // Failed by lock_timeout (300 ms), inside the collection's deadline.
    let last = value(
        &text,
        "mesa_collect_duration_seconds",
        &[("server", "faulty")],
    )
    .expect("the last collection's duration");
    assert!(
        last < TIMEOUT.as_secs_f64(),
        "a locked collection took {last} s"
    );
    db.batch_execute("ROLLBACK").await.expect("unlock");
    let (recovered, text) = poll_until(
        Duration::from_secs(5),
        || async { http_get(addr, "/metrics").await.2 },
        |text| statements(text) == Some(1.0),
    )
    .await;
    assert!(
        recovered,
        "unlocked: stat_statements succeeds again:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            "mesa_collect_skipped_total",
            &[("server", "healthy")]
        ),
        Some(0.0)
    );
    app.shutdown(DEFAULT_GRACE_PERIOD)
        .await
        .expect("clean shutdown");
}

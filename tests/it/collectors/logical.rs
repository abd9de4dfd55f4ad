//! Logical replication, both sides, on a cluster of the test's own with `wal_level = logical`
//! (on every major 13 to 18 through `cargo xtask matrix`): a subscription in one database
//! of the server subscribes to a publication in another, through a slot made beforehand (a
//! subscription cannot make its slot on its own server). The subscriber's `subscription`
//! collector and the publisher's slot and walsender are checked against the server, through
//! apply, an apply conflict (15 on) and a disabled subscription.

use std::time::Duration;

use crate::support::*;

/// Runs each statement on its own (CREATE DATABASE and CREATE SUBSCRIPTION refuse a
/// transaction block, which one multi-statement string would be).
fn run_each(own: &mesa_testkit::PgCluster, database: &str, statements: &[&str]) {
    for sql in statements {
        own.psql(database, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn scalar(own: &mesa_testkit::PgCluster, database: &str, sql: &str) -> f64 {
    own.psql(database, sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_seen_from_both_sides_through_apply_conflict_and_disable() {
    let own = tokio::task::spawn_blocking(|| {
        let own = own_cluster(&[
            "wal_level = logical",
            // The apply worker comes back within a second after an error.
            "wal_retrieve_retry_interval = 1s",
            "wal_receiver_status_interval = 1s",
        ]);
        run_each(
            own,
            "postgres",
            &[
                &format!(
                    "CREATE ROLE mesa_monitor LOGIN PASSWORD '{ROLE_PASSWORD}' IN ROLE pg_monitor"
                ),
                "CREATE DATABASE lr_pub",
                "CREATE DATABASE lr_sub",
            ],
        );
        run_each(
            own,
            "lr_pub",
            &[
                "CREATE TABLE items (id int PRIMARY KEY, v text)",
                "CREATE PUBLICATION lr_pub FOR TABLE items",
                "SELECT pg_create_logical_replication_slot('lr_orders', 'pgoutput')",
            ],
        );
        let conninfo = format!(
            "host={} port={} user=postgres password={} dbname=lr_pub",
            own.host(),
            own.port(),
            own.password()
        );
        run_each(
            own,
            "lr_sub",
            &[
                "CREATE TABLE items (id int PRIMARY KEY, v text)",
                &format!(
                    "CREATE SUBSCRIPTION lr_orders CONNECTION '{conninfo}' PUBLICATION lr_pub
                     WITH (create_slot = false, slot_name = 'lr_orders', copy_data = false)"
                ),
            ],
        );
        own
    })
    .await
    .expect("join");
    let version = own.major();
    let mut t = target("logical", "mesa_monitor");
    t.spec.common.port = own.port();
    let sub = [("datname", "lr_sub"), ("subname", "lr_orders")];
    let slot = [("slot_name", "lr_orders")];

    // Apply: a row written on the publisher arrives, and the worker's position is reported.
    own.psql("lr_pub", "INSERT INTO items VALUES (1, 'a')")
        .expect("insert");
    let (applied, text) = poll_until(
        Duration::from_secs(30),
        || async {
            let arrived = own
                .psql("lr_sub", "SELECT count(*) FROM items WHERE id = 1")
                .expect("count");
            if arrived.trim() == "1" {
                collect_text(&t).await.1
            } else {
                String::new()
            }
        },
        |text| {
            value(text, "pg_stat_subscription_worker_running", &sub) == Some(1.0)
                && value(text, "pg_stat_subscription_received_lsn_bytes", &sub)
                    .is_some_and(|lsn| lsn > 0.0)
        },
    )
    .await;
    assert!(applied, "the row is applied and the worker seen:\n{text}");
    assert_eq!(must(&text, "pg_stat_subscription_enabled", &sub), 1.0);
    let written = scalar(
        own,
        "postgres",
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')",
    );
    let received = must(&text, "pg_stat_subscription_received_lsn_bytes", &sub);
    assert!(received <= written, "{received} of the {written} written");
    assert!(must(&text, "pg_stat_subscription_last_msg_age_seconds", &sub) >= 0.0);
    assert!(must(&text, "pg_stat_subscription_last_msg_delay_seconds", &sub) >= 0.0);
    assert_eq!(must(&text, "pg_stat_subscription_sync_workers", &sub), 0.0);
    assert_eq!(
        value(&text, "pg_stat_subscription_apply_error_count_total", &sub),
        (version >= 15).then_some(0.0),
        "error counts from 15"
    );
    assert_eq!(
        value(
            &text,
            "pg_stat_subscription_confl_insert_exists_total",
            &sub
        ),
        (version >= 18).then_some(0.0),
        "conflict counts from 18"
    );
    // The publisher's side of the same subscription: its slot and its walsender.
    assert_eq!(must(&text, "pg_replication_slots_active", &slot), 1.0);
    assert!(
        must(
            &text,
            "pg_replication_slots_confirmed_flush_lag_bytes",
            &slot
        ) >= 0.0
    );
    assert!(
        value(
            &text,
            "pg_stat_replication_pg_wal_lsn_diff",
            &[("application_name", "lr_orders")]
        )
        .is_some(),
        "the subscription's walsender:\n{text}"
    );

    // A conflict: the row exists on the subscriber, so applying the insert fails and is
    // retried until the local row goes (counted from 15; by kind from 18).
    if version >= 15 {
        own.psql("lr_sub", "INSERT INTO items VALUES (2, 'local')")
            .expect("local row");
        own.psql("lr_pub", "INSERT INTO items VALUES (2, 'published')")
            .expect("conflicting row");
        let (failed, text) = poll_until(
            Duration::from_secs(30),
            || async { collect_text(&t).await.1 },
            |text| {
                value(text, "pg_stat_subscription_apply_error_count_total", &sub)
                    .is_some_and(|n| n >= 1.0)
            },
        )
        .await;
        assert!(failed, "the apply error is counted:\n{text}");
        if version >= 18 {
            assert!(
                must(
                    &text,
                    "pg_stat_subscription_confl_insert_exists_total",
                    &sub
                ) >= 1.0,
                "{text}"
            );
        }
        own.psql("lr_sub", "DELETE FROM items WHERE id = 2")
            .expect("resolve");
        let resolved = eventually(Duration::from_secs(30), || async {
            own.psql("lr_sub", "SELECT v FROM items WHERE id = 2")
                .expect("read")
                .trim()
                == "published"
        })
        .await;
        assert!(
            resolved,
            "the published row is applied once the local one is gone"
        );
    }

    // Disabled: no worker; the slot stops confirming, so WAL written since is its lag.
    own.psql("lr_sub", "ALTER SUBSCRIPTION lr_orders DISABLE")
        .expect("disable");
    let (stopped, text) = poll_until(
        Duration::from_secs(30),
        || async { collect_text(&t).await.1 },
        |text| {
            value(text, "pg_stat_subscription_enabled", &sub) == Some(0.0)
                && value(text, "pg_stat_subscription_worker_running", &sub) == Some(0.0)
                && value(text, "pg_replication_slots_active", &slot) == Some(0.0)
        },
    )
    .await;
    assert!(stopped, "disabled, no worker, the slot idle:\n{text}");
    assert_eq!(
        value(&text, "pg_stat_subscription_received_lsn_bytes", &sub),
        None,
        "no worker, no position"
    );
    let before = must(
        &text,
        "pg_replication_slots_confirmed_flush_lag_bytes",
        &slot,
    );
    own.psql(
        "lr_pub",
        "INSERT INTO items SELECT g, 'x' FROM generate_series(100, 1100) g",
    )
    .expect("more rows");
    // The harness runs with synchronous_commit off: the WAL is written (and counted by
    // pg_current_wal_lsn) within wal_writer_delay.
    let (grew, text) = poll_until(
        Duration::from_secs(10),
        || async { collect_text(&t).await.1 },
        |text| {
            value(
                text,
                "pg_replication_slots_confirmed_flush_lag_bytes",
                &slot,
            )
            .is_some_and(|after| after > before + 50_000.0)
        },
    )
    .await;
    assert!(
        grew,
        "a thousand unconsumed rows are lag (from {before}):\n{text}"
    );
    own.stop();
}

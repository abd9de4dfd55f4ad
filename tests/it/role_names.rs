//! Property: every role name the validator accepts round-trips through a real `CREATE ROLE`
//! (Mesa's own statement, through the gateway) into exactly that `pg_roles.rolname`, and every
//! name it refuses is refused before any SQL. `MESA_PROPTEST_CASES` sets the number of cases
//! (CI runs the default 200; `MESA_PROPTEST_CASES=10000 cargo test --test it role_names`
//! runs the full check).

use std::time::Duration;

use mesa::gateway::{Administrator, Deadline, NewUser};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::*;

fn cases() -> u32 {
    std::env::var("MESA_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Names of every shape: mostly valid ones, of every length up to the limit and beyond,
/// and any printable text.
fn names() -> impl Strategy<Value = String> {
    let first = prop::sample::select(('a'..='z').chain(['_']).collect::<Vec<char>>());
    let rest = prop::collection::vec(
        prop::sample::select(
            ('a'..='z')
                .chain('0'..='9')
                .chain(['_'])
                .collect::<Vec<char>>(),
        ),
        0..70,
    );
    let valid_shaped = (first, rest).prop_map(|(f, r)| std::iter::once(f).chain(r).collect());
    let anything = prop::collection::vec(any::<char>(), 0..20)
        .prop_map(|chars| chars.into_iter().collect::<String>());
    prop_oneof![4 => valid_shaped, 1 => anything]
}

#[test]
fn accepted_role_names_round_trip_through_create_role() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let _serial = role_lock().await;
        let g = gateway(&with_admin(target("roles", "mesa_monitor"), "mesa_admin"));
        let su = superuser("postgres").await;
        let existing: std::collections::HashSet<String> = su
            .query("SELECT rolname::text FROM pg_roles", &[])
            .await
            .expect("roles")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let (accepted, refused) = (
            std::sync::atomic::AtomicU32::new(0),
            std::sync::atomic::AtomicU32::new(0),
        );
        let mut runner = TestRunner::new(Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        });
        let handle = tokio::runtime::Handle::current();
        let result = tokio::task::block_in_place(|| {
            runner.run(&names(), |name| {
                let Ok(user) = NewUser::new(&name, None, false, false) else {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(());
                };
                if existing.contains(&name) {
                    return Ok(());
                }
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                handle.block_on(async {
                    g.create_user(user, Deadline::after(Duration::from_secs(10)))
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{name:?}: {e}")))?;
                    let stored: Vec<String> = su
                        .query(
                            "SELECT rolname::text FROM pg_roles WHERE rolname = $1",
                            &[&name],
                        )
                        .await
                        .map_err(|e| TestCaseError::fail(e.to_string()))?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    su.batch_execute(&format!(
                        "DROP ROLE {}",
                        postgres_protocol::escape::escape_identifier(&name)
                    ))
                    .await
                    .map_err(|e| TestCaseError::fail(format!("drop {name:?}: {e}")))?;
                    prop_assert_eq!(stored, vec![name.clone()]);
                    Ok(())
                })
            })
        });
        let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
        println!(
            "role names: {} cases, {accepted} accepted and created, {refused} refused before SQL",
            cases()
        );
        result.expect("every accepted name round-trips");
        assert!(accepted > 0 && refused > 0, "both kinds were tried");
    });
}

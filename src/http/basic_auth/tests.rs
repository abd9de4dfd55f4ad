//! The guard's rules, with real bcrypt at low costs.

use std::time::Duration;

use super::*;

fn guard_for(users: &[(&str, &str, u32)]) -> Guard {
    let mut config = WebConfig::default();
    for (user, password, cost) in users {
        config.basic_auth_users.insert(
            (*user).to_owned(),
            bcrypt::hash(password, *cost).expect("hash"),
        );
    }
    Guard::new(&config)
}

fn creds(u: &str, p: &str) -> Option<(String, String)> {
    Some((u.to_owned(), p.to_owned()))
}

/// A liveness bound for a check that must not wait (it would wait for ever before the fix).
const AT_ONCE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_a_bcrypt_check_and_checks_run_one_at_a_time() {
    let guard = guard_for(&[("prometheus", "right-password", 4)]);
    // An unknown user is checked against a decoy, like a wrong password.
    assert_eq!(guard.check(creds("nobody", "x")).await, Verdict::Denied);
    assert_eq!(guard.stats().checks(), 1, "an unknown user costs a check");
    assert_eq!(
        guard.check(creds("prometheus", "wrong")).await,
        Verdict::Denied
    );
    assert_eq!(guard.stats().checks(), 2);
    // A burst of distinct wrong passwords: never two checks at once.
    let tasks: Vec<_> = (0..BCRYPT_QUEUE)
        .map(|i| {
            let guard = guard.clone();
            tokio::spawn(async move { guard.check(creds("prometheus", &format!("g{i}"))).await })
        })
        .collect();
    for t in tasks {
        assert_ne!(t.await.expect("task"), Verdict::Allowed);
    }
    assert_eq!(guard.stats().peak(), BCRYPT_CONCURRENCY);
    // The right password passes, once by bcrypt and then from the cache.
    let before = guard.stats().checks();
    assert_eq!(
        guard.check(creds("prometheus", "right-password")).await,
        Verdict::Allowed
    );
    assert_eq!(
        guard.check(creds("prometheus", "right-password")).await,
        Verdict::Allowed
    );
    assert_eq!(guard.stats().checks(), before + 1);
    assert_eq!(guard.check(None).await, Verdict::Denied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_and_cached_logins_never_wait() {
    let guard = guard_for(&[("prometheus", "right-password", 4)]);
    assert_eq!(
        guard.check(creds("prometheus", "right-password")).await,
        Verdict::Allowed
    );
    // The one bcrypt slot is busy (a long check), and the queue fills behind it.
    let busy = guard
        .bcrypt_slots
        .clone()
        .acquire_owned()
        .await
        .expect("slot");
    let queued: Vec<_> = (0..BCRYPT_QUEUE)
        .map(|i| {
            let guard = guard.clone();
            tokio::spawn(async move { guard.check(creds("prometheus", &format!("q{i}"))).await })
        })
        .collect();
    let full = tokio::time::timeout(AT_ONCE, async {
        while guard.queue.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(full.is_ok(), "the queue fills");
    // One more wrong password: refused at once, not queued.
    let refused = tokio::time::timeout(AT_ONCE, guard.check(creds("prometheus", "more"))).await;
    assert_eq!(refused, Ok(Verdict::Busy), "a full queue answers at once");
    assert_eq!(guard.stats().refused(), 1);
    // Prometheus' cached login never waits for the queue or bcrypt.
    let scrape =
        tokio::time::timeout(AT_ONCE, guard.check(creds("prometheus", "right-password"))).await;
    assert_eq!(scrape, Ok(Verdict::Allowed));
    drop(busy);
    for t in queued {
        assert_eq!(t.await.expect("task"), Verdict::Denied);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_never_evicts_a_cached_login() {
    let guard = guard_for(&[("prometheus", "right-password", 4)]);
    assert_eq!(
        guard.check(creds("prometheus", "right-password")).await,
        Verdict::Allowed
    );
    // More distinct wrong passwords than any cache holds (the old cache was cleared whole
    // every 1024).
    for i in 0..(FAILED_CACHE_MAX + 100) {
        assert_eq!(
            guard.check(creds("attacker", &format!("w{i}"))).await,
            Verdict::Denied
        );
    }
    let checks = guard.stats().checks();
    assert_eq!(
        guard.check(creds("prometheus", "right-password")).await,
        Verdict::Allowed
    );
    assert_eq!(
        guard.stats().checks(),
        checks,
        "the login came from the cache"
    );
    // The failed cache is an LRU: the latest wrong password is still remembered.
    let last = format!("w{}", FAILED_CACHE_MAX + 99);
    assert_eq!(guard.check(creds("attacker", &last)).await, Verdict::Denied);
    assert_eq!(guard.stats().checks(), checks);
}

#[test]
fn unknown_names_get_a_decoy_of_every_configured_cost_each_name_always_the_same() {
    let guard = guard_for(&[("cheap", "a", 4), ("dear", "b", 6)]);
    let costs: Vec<u32> = (0..64)
        .map(|i| guard.decoy_for(&format!("unknown-{i}")).0)
        .collect();
    assert!(costs.contains(&4), "{costs:?}");
    assert!(costs.contains(&6), "{costs:?}");
    for (i, cost) in costs.iter().enumerate() {
        let name = format!("unknown-{i}");
        assert_eq!(guard.decoy_for(&name).0, *cost, "{name}");
        // The decoy really has that cost.
        assert_eq!(bcrypt_cost(guard.decoy_for(&name).1), Some(*cost), "{name}");
    }
}

#[test]
fn the_lru_drops_the_least_recently_used() {
    let mut lru = Lru::new(2);
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    lru.insert(a);
    lru.insert(b);
    assert!(lru.hit(&a));
    lru.insert(c);
    assert!(lru.hit(&a));
    assert!(!lru.hit(&b));
    assert!(lru.hit(&c));
}

//! Scheduler timing with paused tokio time and scripted fake collectors (no database).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesa::collectors::{Collect, Collection};
use mesa::config::CollectionSettings;
use mesa::gateway::{Deadline, Expiry, FailureReason, GatewayError};
use mesa::metrics::ExporterMetrics;
use mesa::metrics::SnapshotStore;
use mesa::scheduler::{BACKOFF_CAP, Sinks, run_target};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const I: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Script {
    Succeed,
    Fail,
    /// Never returns, ignoring the deadline (a driver bug or a stuck socket).
    Overrun,
    /// Returns only when the deadline expires or is cancelled, as the real driver does.
    UntilDeadline,
}

struct Fake {
    script: Script,
    calls: Mutex<Vec<Instant>>,
    endings: Mutex<Vec<Expiry>>,
    started: tokio::sync::Notify,
}

impl Fake {
    fn new(script: Script) -> Arc<Self> {
        Arc::new(Self {
            script,
            calls: Mutex::new(Vec::new()),
            endings: Mutex::new(Vec::new()),
            started: tokio::sync::Notify::new(),
        })
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().expect("lock").clone()
    }
}

impl Collect for Fake {
    fn driver(&self) -> mesa::gateway::Driver {
        mesa::gateway::Driver::Postgres
    }

    fn collect(
        &self,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Collection, GatewayError>> + Send {
        self.calls.lock().expect("lock").push(Instant::now());
        self.started.notify_one();
        async move {
            match self.script {
                Script::Succeed => Ok(mesa_testkit::sample::collection()),
                Script::Fail => Err(GatewayError::Unreachable {
                    endpoint: "fake:5432".to_owned(),
                    detail: "scripted".to_owned(),
                    source: None,
                }),
                Script::Overrun => std::future::pending().await,
                Script::UntilDeadline => {
                    let why = deadline.expired().await;
                    self.endings.lock().expect("lock").push(why);
                    Err(match why {
                        Expiry::Timeout => GatewayError::Timeout {
                            phase: "query",
                            limit: deadline.budget(),
                        },
                        Expiry::Cancelled => GatewayError::Cancelled { phase: "query" },
                    })
                }
            }
        }
    }
}

fn settings() -> CollectionSettings {
    CollectionSettings {
        interval: I,
        timeout: Duration::from_secs(5),
        ..CollectionSettings::default()
    }
}

fn sinks() -> Sinks {
    Sinks {
        store: Arc::new(SnapshotStore::new()),
        metrics: Arc::new(ExporterMetrics::default()),
    }
}

fn spawn(
    tracker: &TaskTracker,
    name: &str,
    fake: &Arc<Fake>,
    sinks: &Sinks,
    cancel: &CancellationToken,
) {
    tracker.spawn(run_target(
        name.to_owned(),
        fake.clone(),
        settings(),
        sinks.clone(),
        cancel.clone(),
    ));
}

#[tokio::test(start_paused = true)]
async fn first_collections_spread_within_one_interval_then_tick_every_interval() {
    let (tracker, cancel, sinks) = (TaskTracker::new(), CancellationToken::new(), sinks());
    let start = Instant::now();
    let fakes: Vec<Arc<Fake>> = (0..20).map(|_| Fake::new(Script::Succeed)).collect();
    for (i, f) in fakes.iter().enumerate() {
        spawn(&tracker, &format!("t{i}"), f, &sinks, &cancel);
    }
    tokio::time::sleep(I * 3 + I / 2).await;
    let firsts: Vec<Duration> = fakes.iter().map(|f| f.calls()[0] - start).collect();
    // Offsets are uniform in [0, I); tokio's timer wheel fires at whole milliseconds, rounding
    // up, so an offset in the last millisecond fires at I itself (1 run in 500 saw it).
    let resolution = Duration::from_millis(1);
    assert!(firsts.iter().all(|d| *d < I + resolution), "{firsts:?}");
    let spread = *firsts.iter().max().expect("20") - *firsts.iter().min().expect("20");
    assert!(spread > I / 4, "20 targets started within {spread:?}");
    for f in &fakes {
        let calls = f.calls();
        assert!(calls.len() >= 3);
        assert!(calls.windows(2).all(|w| w[1] - w[0] == I), "{calls:?}");
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(start_paused = true)]
async fn ticks_are_skipped_and_counted_while_a_collection_overruns() {
    let (tracker, cancel, sinks) = (TaskTracker::new(), CancellationToken::new(), sinks());
    let stuck = Fake::new(Script::Overrun);
    spawn(&tracker, "stuck", &stuck, &sinks, &cancel);
    tokio::time::sleep(I * 6).await;
    assert_eq!(
        stuck.calls().len(),
        1,
        "never a second collection in flight"
    );
    let skipped = sinks.metrics.skipped("stuck");
    assert!((4..=6).contains(&skipped), "skipped {skipped}");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_target_does_not_delay_another() {
    let (tracker, cancel, sinks) = (TaskTracker::new(), CancellationToken::new(), sinks());
    let stuck = Fake::new(Script::Overrun);
    let healthy = Fake::new(Script::Succeed);
    spawn(&tracker, "stuck", &stuck, &sinks, &cancel);
    spawn(&tracker, "healthy", &healthy, &sinks, &cancel);
    tokio::time::sleep(I * 10).await;
    let calls = healthy.calls();
    assert!(calls.len() >= 9, "{} collections", calls.len());
    assert!(calls.windows(2).all(|w| w[1] - w[0] == I), "{calls:?}");
    assert!(sinks.store.get("healthy").is_some_and(|s| s.up()));
    assert!(
        sinks.store.get("stuck").is_none(),
        "no result yet from the hanging target"
    );
}

#[tokio::test(start_paused = true)]
async fn failing_targets_back_off_up_to_the_cap() {
    let (tracker, cancel, sinks) = (TaskTracker::new(), CancellationToken::new(), sinks());
    let down = Fake::new(Script::Fail);
    spawn(&tracker, "down", &down, &sinks, &cancel);
    tokio::time::sleep(I * 60).await;
    let calls = down.calls();
    let gaps: Vec<u32> = calls
        .windows(2)
        .map(|w| ((w[1] - w[0]).as_secs_f64() / I.as_secs_f64()).round() as u32)
        .collect();
    assert_eq!(&gaps[..2], &[1, 2], "{gaps:?}");
    assert!(
        gaps[2..]
            .iter()
            .all(|g| (BACKOFF_CAP..=BACKOFF_CAP + 1).contains(g)),
        "{gaps:?}"
    );
    assert!(gaps.len() >= 10, "{gaps:?}");
    assert_eq!(
        sinks
            .metrics
            .failures("down", FailureReason::Unreachable, "health"),
        calls.len() as u64
    );
    let snap = sinks.store.get("down").expect("snapshot");
    assert_eq!(
        snap.result.as_ref().err(),
        Some(&FailureReason::Unreachable)
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_ends_every_loop_and_in_flight_collection() {
    let (tracker, cancel, sinks) = (TaskTracker::new(), CancellationToken::new(), sinks());
    let waiting = Fake::new(Script::UntilDeadline);
    let fakes = [
        Fake::new(Script::Succeed),
        Fake::new(Script::Fail),
        waiting.clone(),
    ];
    for (i, f) in fakes.iter().enumerate() {
        spawn(&tracker, &format!("t{i}"), f, &sinks, &cancel);
    }
    // Cancel while the deadline-bound collection is in flight (its timeout is 5 s).
    waiting.started.notified().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cancel.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_millis(10), tracker.wait())
        .await
        .expect("every loop ends at once");
    assert_eq!(
        waiting.endings.lock().expect("lock").last(),
        Some(&Expiry::Cancelled)
    );
}

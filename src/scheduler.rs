//! When to talk to each database: one task per target.
//!
//! Each target's loop starts at a random offset within its interval (so 500 targets do not
//! connect in the same second), then ticks every interval with `MissedTickBehavior::Delay`. At
//! most one collection is in flight per target: a tick that finds the previous one still
//! running is skipped and counted in `mesa_collect_skipped_total`. A target that keeps failing
//! backs off exponentially (1, 2, 4 intervals, then capped at [`BACKOFF_CAP`] intervals, with
//! jitter). Targets share nothing but the snapshot store, so one that hangs cannot delay
//! another. The in-flight collection is polled inside the target's own task; on cancellation
//! its deadline fires too, so the gateway sends the server a cancel request before the loop
//! ends.
//!
//! The same task visits the target's databases (`visits::VisitPlan`): at most one visit in
//! flight, on the spare connection slot, only while the server collection succeeds; each
//! finished visit replaces its database's part in the store. When the target goes down, or a
//! database leaves the chosen set, its parts go.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::collectors::{Collect, Collection, HEALTH, TargetCollector, Visit};
use crate::config::{CollectionSettings, TargetConfig};
use crate::gateway::{Deadline, Gateway, GatewayError};
use crate::metrics::ExporterMetrics;
use crate::metrics::SnapshotStore;
use crate::metrics::families::EncodedTarget;
use crate::shard::Shard;
use crate::snapshot::TargetSnapshot;
use crate::visits::{VISIT, VisitPlan};

/// Backoff never waits more than this many intervals between attempts.
pub const BACKOFF_CAP: u32 = 4;
/// Backoff waits are stretched by a random factor in `[1, 1 + BACKOFF_JITTER)`, so targets
/// that failed together (a network blip) do not retry together.
pub const BACKOFF_JITTER: f64 = 0.25;

/// Where a target's results go.
#[derive(Debug, Clone)]
pub struct Sinks {
    /// Latest snapshot per target with its encoding: storing encodes it, on the target's own
    /// task, so scrapes only copy bytes.
    pub store: Arc<SnapshotStore>,
    /// The exporter's counters.
    pub metrics: Arc<ExporterMetrics>,
}

/// A uniform random fraction in `[0, 1)`; 0 if the OS random source fails (jitter is only an
/// optimisation).
fn random_fraction() -> f64 {
    let mut raw = [0u8; 8];
    if getrandom::fill(&mut raw).is_err() {
        return 0.0;
    }
    // 53 random bits make every double in [0, 1) with that spacing equally likely.
    (u64::from_le_bytes(raw) >> 11) as f64 / (1u64 << 53) as f64
}

/// The first collection's offset: uniform in `[0, interval)`.
pub fn start_offset(interval: Duration) -> Duration {
    interval.mul_f64(random_fraction())
}

/// How long after a failed attempt's start the next attempt may begin, after `failures`
/// consecutive failures (1 = the first): 1, 2, 4, 4... intervals, stretched by jitter.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let steps = 1u32 << failures.saturating_sub(1).min(BACKOFF_CAP.ilog2());
    interval * steps.min(BACKOFF_CAP)
}

struct Attempt {
    started: Instant,
    finished_at: SystemTime,
    duration: Duration,
    result: Result<Collection, GatewayError>,
}

type InFlight = Pin<Box<dyn Future<Output = Attempt> + Send>>;

fn attempt<C: Collect + Send + Sync + 'static>(collector: Arc<C>, deadline: Deadline) -> InFlight {
    Box::pin(async move {
        let started = Instant::now();
        let result = collector.collect(deadline).await;
        Attempt {
            started,
            finished_at: SystemTime::now(),
            duration: started.elapsed(),
            result,
        }
    })
}

/// Runs one target's loop until `cancel` fires.
pub async fn run_target<C: Collect + Send + Sync + 'static>(
    name: String,
    collector: Arc<C>,
    settings: CollectionSettings,
    sinks: Sinks,
    cancel: CancellationToken,
) {
    let interval = settings.interval;
    let first = Instant::now() + start_offset(interval);
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_flight: Option<InFlight> = None;
    let mut failures: u32 = 0;
    let mut not_before = first;
    let mut last_success: Option<SystemTime> = None;
    // Collectors failing in the last collection, to log changes rather than every failure.
    let mut failing: Vec<&'static str> = Vec::new();
    sinks.metrics.init_target(&name);
    // Database visits: at most one in flight, only while the server collection succeeds.
    let visits_on = collector.visits();
    let mut visits = VisitPlan::new(collector.visit_interval());
    let mut visiting: Option<VisitInFlight> = None;
    let mut server_up = false;

    loop {
        let next_visit = visits
            .next()
            .filter(|_| visits_on && server_up && visiting.is_none());
        let visit_at = next_visit.as_ref().map_or_else(Instant::now, |(_, at)| *at);
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            visit = async { visiting.as_mut().expect("guarded by is_some").await }, if visiting.is_some() => {
                visiting = None;
                if cancel.is_cancelled() {
                    break;
                }
                visited(&name, &visit, &mut visits, server_up, &sinks);
            }
            () = tokio::time::sleep_until(visit_at), if next_visit.is_some() => {
                let (datname, _) = next_visit.expect("guarded by is_some");
                visits.started(&datname, Instant::now());
                let deadline = Deadline::after(settings.timeout).with_cancel(cancel.clone());
                let collector = collector.clone();
                visiting = Some(Box::pin(async move { collector.visit(&datname, deadline).await }));
            }
            done = async { in_flight.as_mut().expect("guarded by is_some").await }, if in_flight.is_some() => {
                in_flight = None;
                let cancelled = matches!(done.result, Err(GatewayError::Cancelled { .. }));
                if cancelled {
                    break;
                }
                match &done.result {
                    Ok(collection) => {
                        if failures > 0 {
                            tracing::info!(target_name = %name, after_failures = failures, "collection recovered");
                        }
                        failures = 0;
                        last_success = Some(done.finished_at);
                        let now_failing: Vec<&'static str> = collection
                            .outcomes
                            .iter()
                            .filter_map(|o| o.result.as_ref().err().map(|reason| (o.collector, *reason)))
                            .map(|(collector, reason)| {
                                sinks.metrics.collect_failed(&name, reason, collector);
                                if !failing.contains(&collector) {
                                    tracing::warn!(target_name = %name, collector, %reason, "collector failed; its families are left out until it recovers (--log.level=debug shows the server's message)");
                                }
                                collector
                            })
                            .collect();
                        for recovered in failing.iter().filter(|c| !now_failing.contains(c)) {
                            tracing::info!(target_name = %name, collector = recovered, "collector recovered");
                        }
                        failing = now_failing;
                        server_up = true;
                        if let Some(chosen) = &collection.visited {
                            visits.set(&chosen.visited, Instant::now());
                            sinks.store.retain_visits(&name, |d| visits.contains(d));
                        }
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let wait = backoff(interval, failures).mul_f64(1.0 + BACKOFF_JITTER * random_fraction());
                        // Half an interval early, so the tick that falls due is not missed by
                        // a few microseconds of scheduling.
                        not_before = done.started + wait.saturating_sub(interval / 2);
                        sinks.metrics.collect_failed(&name, e.reason(), HEALTH);
                        // A target that is down shows pg_up 0 and nothing else: its
                        // databases' parts go too, and visits wait for it.
                        server_up = false;
                        sinks.store.retain_visits(&name, |_| false);
                        if failures == 1 {
                            tracing::warn!(target_name = %name, reason = %e.reason(), error = %e, "collection failed");
                        } else {
                            tracing::debug!(target_name = %name, reason = %e.reason(), error = %e, failures, "collection failed again");
                        }
                    }
                }
                sinks.store.put(TargetSnapshot {
                    target: name.clone(),
                    driver: collector.driver(),
                    finished_at: done.finished_at,
                    duration: done.duration,
                    result: done.result.map_err(|e| e.reason()),
                    last_success,
                });
            }
            scheduled = ticker.tick() => {
                if in_flight.is_some() {
                    sinks.metrics.collect_skipped(&name);
                    tracing::debug!(target_name = %name, "tick skipped: previous collection still running");
                } else if Instant::now() >= not_before {
                    sinks.metrics.collect_started(Instant::now().saturating_duration_since(scheduled));
                    let deadline = Deadline::after(settings.timeout).with_cancel(cancel.clone());
                    in_flight = Some(attempt(collector.clone(), deadline));
                }
            }
        }
    }
    // The deadline carries `cancel`, so this returns promptly after the server was asked to
    // cancel the statement; the result of a cancelled attempt is not recorded.
    if let Some(rest) = in_flight {
        let _ = rest.await;
    }
    if let Some(rest) = visiting {
        let _ = rest.await;
    }
    collector.release().await;
}

type VisitInFlight = Pin<Box<dyn Future<Output = Visit> + Send>>;

/// Records a finished visit: its part in the store (while the database is still visited and
/// the target up), its failures in the counters, a change of its state in the log.
fn visited(name: &str, visit: &Visit, plan: &mut VisitPlan, server_up: bool, sinks: &Sinks) {
    let (last_success, changed) = plan.finished(visit);
    match &visit.result {
        Ok(outcomes) => {
            for o in outcomes {
                if let Err(reason) = o.result {
                    sinks.metrics.collect_failed(name, reason, o.collector);
                }
            }
        }
        Err(reason) => sinks.metrics.collect_failed(name, *reason, VISIT),
    }
    match (changed, &visit.result) {
        (Some(true), Err(reason)) => {
            tracing::warn!(target_name = %name, datname = %visit.datname, %reason, "database visit failed; its per-database families are left out until it recovers (mesa_database_up 0)");
        }
        (Some(false), _) => {
            tracing::info!(target_name = %name, datname = %visit.datname, "database visit recovered");
        }
        _ => {}
    }
    if server_up && plan.contains(&visit.datname) {
        sinks.store.put_visit(
            name,
            &visit.datname,
            EncodedTarget::for_visit(name, visit, last_success),
        );
    }
}

/// A target that is scheduled.
#[derive(Debug)]
struct Job {
    config: TargetConfig,
    cancel: CancellationToken,
    removed: Arc<AtomicBool>,
    done: tokio::sync::watch::Receiver<bool>,
}

/// What [`Scheduler::apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Targets started.
    pub added: Vec<String>,
    /// Targets restarted because their settings changed.
    pub restarted: Vec<String>,
    /// Targets stopped.
    pub removed: Vec<String>,
    /// Targets left running untouched.
    pub unchanged: Vec<String>,
}

/// A configured target and its gateway, shared by the scheduler and the admin API so both go
/// through the same per-target connection cap.
#[derive(Debug)]
pub struct TargetHandle {
    /// The target's settings.
    pub config: TargetConfig,
    /// Its gateway; `None` when it could not be built (unreadable TLS material).
    pub gateway: Option<Arc<Gateway>>,
}

/// The current targets by name, replaced entry by entry on reload. Cloning shares it: the
/// scheduler writes it, the listeners read it. Reads copy out `Arc`s under a short lock and
/// never hold it across a wait. It also knows the configured targets other shards collect,
/// so a request for one is told where to go instead of "unknown".
#[derive(Debug, Clone, Default)]
pub struct Registry {
    targets: Arc<RwLock<BTreeMap<String, Arc<TargetHandle>>>>,
    elsewhere: Arc<RwLock<(Shard, BTreeSet<String>)>>,
}

/// A configured target that another replica collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misdirected {
    /// The shard that collects it.
    pub owner: u32,
    /// This replica's shard.
    pub here: Shard,
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<TargetHandle>>> {
        self.targets.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<TargetHandle>>> {
        self.targets.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records this replica's shard and every configured target, so targets of other shards
    /// can be named in answers.
    pub fn set_shard(&self, shard: Shard, configured: &[TargetConfig]) {
        let others = configured
            .iter()
            .filter(|t| !shard.owns(&t.name))
            .map(|t| t.name.clone())
            .collect();
        *self.elsewhere.write().unwrap_or_else(|p| p.into_inner()) = (shard, others);
    }

    /// `Some` when `name` is configured but collected by another shard.
    pub fn misdirected(&self, name: &str) -> Option<Misdirected> {
        let guard = self.elsewhere.read().unwrap_or_else(|p| p.into_inner());
        let (here, others) = &*guard;
        others.contains(name).then(|| Misdirected {
            owner: here.owner_of(name),
            here: *here,
        })
    }

    /// The target named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<TargetHandle>> {
        self.read().get(name).cloned()
    }

    /// Whether a target is named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Every target, by name.
    pub fn all(&self) -> Vec<Arc<TargetHandle>> {
        self.read().values().cloned().collect()
    }

    /// Every target's name, in order.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn insert(&self, handle: TargetHandle) {
        self.write()
            .insert(handle.config.name.clone(), Arc::new(handle));
    }

    fn remove(&self, name: &str) {
        self.write().remove(name);
    }
}

/// The set of running target loops, kept in step with the config.
#[derive(Debug)]
pub struct Scheduler {
    jobs: HashMap<String, Job>,
    /// Loops of removed targets that may still be ending: a target re-added under the same
    /// name waits for its old loop, whose clean-up would otherwise delete the new loop's
    /// snapshot and counters (and two loops would not share one connection cap).
    retiring: HashMap<String, tokio::sync::watch::Receiver<bool>>,
    sinks: Sinks,
    tracker: TaskTracker,
    root: CancellationToken,
    registry: Registry,
}

impl Scheduler {
    /// A scheduler whose tasks are tracked by `tracker` and end when `root` is cancelled; it
    /// keeps `registry` in step with the running targets.
    pub fn new(
        sinks: Sinks,
        tracker: TaskTracker,
        root: CancellationToken,
        registry: Registry,
    ) -> Self {
        Self {
            jobs: HashMap::new(),
            retiring: HashMap::new(),
            sinks,
            tracker,
            root,
            registry,
        }
    }

    /// Starts, restarts and stops target loops so exactly `targets` run; a target whose
    /// settings did not change keeps running (and keeps its backoff and jitter phase).
    pub fn apply(&mut self, targets: &[TargetConfig]) -> Changes {
        let mut changes = Changes::default();
        let wanted: HashMap<&str, &TargetConfig> =
            targets.iter().map(|t| (t.name.as_str(), t)).collect();
        let gone: Vec<String> = self
            .jobs
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        // Forget retired loops that have ended.
        self.retiring.retain(|_, done| !*done.borrow());
        for name in gone {
            if let Some(job) = self.jobs.remove(&name) {
                job.removed.store(true, Ordering::SeqCst);
                job.cancel.cancel();
                self.retiring.insert(name.clone(), job.done);
            }
            self.registry.remove(&name);
            changes.removed.push(name);
        }
        for target in targets {
            let previous = match self.jobs.get(&target.name) {
                Some(job) if job.config == *target => {
                    changes.unchanged.push(target.name.clone());
                    continue;
                }
                Some(_) => {
                    changes.restarted.push(target.name.clone());
                    self.jobs.remove(&target.name).map(|job| {
                        job.cancel.cancel();
                        job.done
                    })
                }
                None => {
                    changes.added.push(target.name.clone());
                    self.retiring.remove(&target.name)
                }
            };
            let job = self.spawn(target.clone(), previous);
            self.jobs.insert(target.name.clone(), job);
        }
        changes
    }

    fn spawn(
        &self,
        config: TargetConfig,
        previous: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Job {
        let cancel = self.root.child_token();
        let removed = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let (sinks, token, gone) = (self.sinks.clone(), cancel.clone(), removed.clone());
        let name = config.name.clone();
        let settings = config.collection.clone();
        let driver = config.spec.driver.driver();
        let built = Gateway::for_target(&config.spec, config.collection.limits()).map(Arc::new);
        self.registry.insert(TargetHandle {
            config: config.clone(),
            gateway: built.as_ref().ok().cloned(),
        });
        self.tracker.spawn(async move {
            // A restarted target's old loop must be gone first: two loops would share no
            // connection cap.
            if let Some(mut previous) = previous {
                let _ = previous.wait_for(|done| *done).await;
            }
            match built {
                Ok(gateway) => {
                    let collector = Arc::new(
                        TargetCollector::new(
                            gateway,
                            settings.collectors,
                            settings.databases.clone(),
                            settings.interval,
                        )
                        .with_queries(settings.queries.clone()),
                    );
                    run_target(name.clone(), collector, settings, sinks.clone(), token).await;
                }
                Err(e) => {
                    // Only TLS material can fail here (a CA file that is not PEM); the target
                    // stays down until the config is fixed and reloaded.
                    tracing::error!(target_name = %name, error = %e, "cannot build the target's gateway");
                    sinks.metrics.init_target(&name);
                    sinks.metrics.collect_failed(&name, e.reason(), HEALTH);
                    sinks.store.put(TargetSnapshot {
                        target: name.clone(),
                        driver,
                        finished_at: SystemTime::now(),
                        duration: Duration::ZERO,
                        result: Err(e.reason()),
                        last_success: None,
                    });
                    token.cancelled().await;
                }
            }
            if gone.load(Ordering::SeqCst) {
                sinks.store.remove(&name);
                sinks.metrics.forget_target(&name);
            }
            let _ = done_tx.send(true);
        });
        Job {
            config,
            cancel,
            removed,
            done,
        }
    }
}

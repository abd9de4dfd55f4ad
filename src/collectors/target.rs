//! [`TargetCollector`]: one target's collections as the scheduler drives them. It plans
//! each collection with the target's [`Tiers`], runs the server-scoped collectors through the
//! target's gateway, chooses the databases to visit from what discovery found ([`Databases`]),
//! filters the `datname`-labelled families to them, and runs the database-scoped collectors
//! in one database per visit under the guards shared by all of them ([`Budget`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::custom::{Query, QuerySet};
use super::{
    Budget, Chosen, Collect, Collection, Databases, Options, Outcome, Scope, Selection, Tiers,
    Value, Visit, catalogue, mysql, postgres,
};
use crate::gateway::{Deadline, Driver, Gateway, GatewayError};

/// What the last discovery decided, and what it ranks databases by.
#[derive(Debug, Default)]
struct Discovery {
    /// Database sizes in bytes, from the last `database` result that had them.
    sizes: HashMap<String, i64>,
    /// The databases visited after the last collection.
    chosen: Option<Chosen>,
    /// The log said once that databases are over `max`.
    warned_over_max: bool,
}

/// A target's gateway with its collector options, the results its collectors that are not
/// due serve ([`Tiers`]), and its databases ([`Databases`], [`Budget`]).
#[derive(Debug)]
pub struct TargetCollector {
    /// The gateway (shared with the admin API, so both count against one connection cap).
    pub gateway: Arc<Gateway>,
    /// What to collect.
    pub options: Options,
    /// Which databases to visit, and how often.
    pub databases: Databases,
    /// The target's collection interval (`databases.interval` defaults to a multiple).
    pub interval: Duration,
    /// The users' queries (`collection.queries`).
    pub queries: Arc<QuerySet>,
    tiers: std::sync::Mutex<Tiers>,
    discovery: std::sync::Mutex<Discovery>,
    budget: Budget,
    /// Results of users' queries with `cache_seconds`, by query and visited database, with
    /// when the run that produced them started.
    cached: std::sync::Mutex<HashMap<CacheKey, (tokio::time::Instant, Outcome)>>,
}

/// A cached user query result's key: the query, and the visited database (`None`: the
/// server collection).
type CacheKey = (&'static str, Option<String>);

/// The family whose series give each database's size (by `datname`), to rank databases over
/// `databases.max`.
const SIZE_FAMILY: &str = "pg_database_size_bytes";

impl TargetCollector {
    /// Collects from `gateway` with `options`, nothing kept yet, visiting databases as
    /// `databases` says; `interval` is the target's collection interval.
    pub fn new(
        gateway: Arc<Gateway>,
        options: Options,
        databases: Databases,
        interval: Duration,
    ) -> Self {
        Self {
            gateway,
            options,
            databases,
            interval,
            queries: Arc::default(),
            tiers: std::sync::Mutex::new(Tiers::default()),
            discovery: std::sync::Mutex::new(Discovery::default()),
            budget: Budget::default(),
            cached: std::sync::Mutex::default(),
        }
    }

    /// The same, running the users' `queries` too.
    pub fn with_queries(mut self, queries: Arc<QuerySet>) -> Self {
        self.queries = queries;
        self
    }

    /// The users' queries of `scope` due in a run starting `now` (in `datname` for a visit),
    /// and the kept results of those that are not (`cache_seconds`).
    fn user_due(
        &self,
        scope: Scope,
        datname: Option<&str>,
        now: tokio::time::Instant,
    ) -> (Vec<Arc<Query>>, Vec<Outcome>) {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        let mut served = Vec::new();
        for query in self.queries.of(scope) {
            let kept = query.cache.and_then(|every| {
                cached
                    .get(&(query.name, datname.map(str::to_owned)))
                    .filter(|(at, _)| now.saturating_duration_since(*at) < every.mul_f64(0.9))
            });
            match kept {
                Some((_, outcome)) => served.push(outcome.clone()),
                None => due.push(query.clone()),
            }
        }
        (due, served)
    }

    /// Keeps the fresh results of users' queries with `cache_seconds` (a failure forgets its
    /// kept result) and adds the kept results served instead of running, in file order.
    fn user_keep(
        &self,
        outcomes: &mut Vec<Outcome>,
        datname: Option<&str>,
        now: tokio::time::Instant,
        served: Vec<Outcome>,
    ) {
        if self.queries.is_empty() {
            return;
        }
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        for outcome in outcomes.iter() {
            let Some(query) = self
                .queries
                .queries
                .iter()
                .find(|q| q.name == outcome.collector)
            else {
                continue;
            };
            let key = (query.name, datname.map(str::to_owned));
            match (&outcome.result, query.cache) {
                (Ok(_), Some(_)) => {
                    cached.insert(key, (now, outcome.clone()));
                }
                _ => {
                    cached.remove(&key);
                }
            }
        }
        outcomes.extend(served);
        let order = |name: &str| self.queries.queries.iter().position(|q| q.name == name);
        // Built-in collectors first (no position), then the users' queries in file order.
        outcomes.sort_by_key(|o| order(o.collector).map_or(0, |i| i + 1));
    }

    /// Only the collectors of `scope` of what `options` selects.
    fn scoped(&self, selection: Selection, scope: Scope) -> Options {
        let mut options = self.options;
        options.selection = selection.within(self.driver(), scope);
        options
    }

    /// After a collection: learns database sizes, chooses the databases to visit, filters the
    /// fresh `datname`-labelled families to them, and says the choice in the collection.
    fn discovered(&self, collection: &mut Collection) {
        let mut state = self.discovery.lock().unwrap_or_else(|p| p.into_inner());
        let Some(found) = collection.databases.as_deref() else {
            // Discovery off (the target's database alone) or its statement failed (the last
            // choice stands).
            if !self.databases.discover {
                collection.visited = Some(Chosen {
                    visited: vec![self.gateway.database().to_owned()],
                    ..Chosen::default()
                });
                return;
            }
            collection.visited = state.chosen.clone();
            if let Some(chosen) = &state.chosen {
                filter_datname(collection, &self.databases, chosen);
            }
            return;
        };
        for outcome in &collection.outcomes {
            let Ok(harvest) = &outcome.result else {
                continue;
            };
            for family in harvest.families.iter().filter(|f| f.name == SIZE_FAMILY) {
                state.sizes.clear();
                for s in &family.series {
                    let size = match s.value {
                        Value::Int(n) => n,
                        Value::Float(f) => f as i64,
                    };
                    if let Some((_, datname)) = s.labels.iter().find(|(k, _)| *k == "datname") {
                        state.sizes.insert(datname.clone(), size);
                    }
                }
            }
        }
        let chosen = self.databases.choose(found, &state.sizes);
        if chosen.omitted() > 0 && !state.warned_over_max {
            state.warned_over_max = true;
            tracing::warn!(
                found = found.len(),
                visited = chosen.visited.len(),
                omitted = chosen.omitted(),
                "more databases pass databases.include/exclude than databases.max: the largest are visited, the rest counted in mesa_databases_omitted"
            );
        }
        // A database that left: results kept from earlier collections still hold its series,
        // so the next collection runs every collector afresh.
        if let Some(before) = &state.chosen
            && before.visited.iter().any(|d| !chosen.visited.contains(d))
        {
            *self.tiers.lock().unwrap_or_else(|p| p.into_inner()) = Tiers::default();
        }
        self.budget.retain(&chosen.visited);
        // Users' results kept for databases no longer visited go too.
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, datname), _| datname.as_ref().is_none_or(|d| chosen.visited.contains(d)));
        filter_datname(collection, &self.databases, &chosen);
        collection.visited = Some(chosen.clone());
        state.chosen = Some(chosen);
    }
}

/// Drops the series of the collection's fresh families whose `datname` is not exported
/// ([`Databases::exports`]; series without one, or with an empty one, stay: background
/// workers have none).
fn filter_datname(collection: &mut Collection, databases: &Databases, chosen: &Chosen) {
    let left_out: std::collections::HashSet<&str> =
        chosen.left_out.iter().map(String::as_str).collect();
    for outcome in &mut collection.outcomes {
        let Ok(harvest) = &mut outcome.result else {
            continue;
        };
        for family in &mut harvest.families {
            family.series.retain(|s| {
                s.labels
                    .iter()
                    .find(|(k, _)| *k == "datname")
                    .is_none_or(|(_, v)| databases.exports(v, &left_out))
            });
        }
    }
}

/// One collection on `gateway`: the driver's collectors `options` selects, an on-change
/// collector only if the server's change key is not `unless_unchanged`, the server's
/// databases with `discover`.
async fn collect_with(
    gateway: &Gateway,
    options: &Options,
    unless_unchanged: Option<&str>,
    discover: bool,
    queries: &[Arc<Query>],
    deadline: Deadline,
) -> Result<Collection, GatewayError> {
    match gateway {
        Gateway::Postgres(g) => {
            postgres::collect(g, options, unless_unchanged, discover, queries, deadline).await
        }
        // No change key, no discovery and no user queries on MySQL targets (the config
        // refuses `queries` there).
        Gateway::Mysql(g) => mysql::collect(g, options, deadline).await,
    }
}

impl Collect for TargetCollector {
    fn driver(&self) -> Driver {
        self.gateway.driver()
    }

    async fn collect(&self, deadline: Deadline) -> Result<Collection, GatewayError> {
        let driver = self.driver();
        let started = tokio::time::Instant::now();
        let plan = self.tiers.lock().unwrap_or_else(|p| p.into_inner()).plan(
            driver,
            &self.options,
            started,
        );
        let options = self.scoped(plan.due, Scope::Server);
        let (due, served) = self.user_due(Scope::Server, None, started);
        let collection = collect_with(
            &self.gateway,
            &options,
            plan.unless_unchanged.as_deref(),
            self.databases.discover,
            &due,
            deadline,
        )
        .await;
        // A failed attempt serves no data, so the store's encoding has no earlier lines to
        // reuse: after it, every collector runs again.
        let mut collection = match collection {
            Ok(c) => c,
            Err(e) => {
                *self.tiers.lock().unwrap_or_else(|p| p.into_inner()) = Tiers::default();
                return Err(e);
            }
        };
        self.tiers.lock().unwrap_or_else(|p| p.into_inner()).merge(
            driver,
            &self.options,
            &mut collection,
            started,
        );
        self.user_keep(&mut collection.outcomes, None, started, served);
        self.discovered(&mut collection);
        Ok(collection)
    }

    fn visits(&self) -> bool {
        let driver = self.driver();
        catalogue(driver)
            .collectors
            .iter()
            .any(|c| c.scope == Scope::Database && self.options.selection.runs(driver, c.name))
            || self.queries.of(Scope::Database).next().is_some()
    }

    fn visit_interval(&self) -> Duration {
        self.databases.interval(self.interval)
    }

    async fn release(&self) {
        self.gateway.close_kept().await;
    }

    async fn visit(&self, datname: &str, deadline: Deadline) -> Visit {
        let started = tokio::time::Instant::now();
        let options = self.scoped(self.options.selection, Scope::Database);
        let (due, served) = self.user_due(Scope::Database, Some(datname), started);
        let result = match &*self.gateway {
            Gateway::Postgres(g) => {
                postgres::visit(g, datname, &options, &self.budget, &due, deadline).await
            }
            // No database-scoped collector on MySQL targets: `visits` says false.
            Gateway::Mysql(_) => Ok(Vec::new()),
        };
        let result = result.map(|mut outcomes| {
            self.user_keep(&mut outcomes, Some(datname), started, served);
            outcomes
        });
        if result.is_err() {
            // It exports nothing now: its share of the size guards goes to the others.
            self.budget.forget(datname);
        }
        Visit {
            datname: datname.to_owned(),
            finished_at: SystemTime::now(),
            duration: started.elapsed(),
            result: result.map_err(|e| {
                tracing::debug!(datname, error = %e, "database visit failed");
                e.reason()
            }),
        }
    }
}

/// A gateway alone collects with the default collectors of the server scope.
impl Collect for Gateway {
    fn driver(&self) -> Driver {
        Gateway::driver(self)
    }

    async fn collect(&self, deadline: Deadline) -> Result<Collection, GatewayError> {
        let mut options = Options::default();
        options.selection = options.selection.within(self.driver(), Scope::Server);
        collect_with(self, &options, None, false, &[], deadline).await
    }
}

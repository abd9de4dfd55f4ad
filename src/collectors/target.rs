//! [`TargetCollector`]: one target's collections as the scheduler drives them. It plans
//! each collection with the target's [`Tiers`], runs the server-scoped collectors through the
//! target's gateway, chooses the databases to visit from what discovery found ([`Databases`]),
//! filters the `datname`-labelled families to them, and runs the database-scoped collectors
//! in one database per visit under the guards shared by all of them ([`Budget`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{
    Budget, Chosen, Collect, Collection, Databases, Options, Scope, Selection, Tiers, Value, Visit,
    catalogue, postgres,
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
    tiers: std::sync::Mutex<Tiers>,
    discovery: std::sync::Mutex<Discovery>,
    budget: Budget,
}

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
            tiers: std::sync::Mutex::new(Tiers::default()),
            discovery: std::sync::Mutex::new(Discovery::default()),
            budget: Budget::default(),
        }
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
    deadline: Deadline,
) -> Result<Collection, GatewayError> {
    match gateway {
        Gateway::Postgres(g) => {
            postgres::collect(g, options, unless_unchanged, discover, deadline).await
        }
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
        let collection = collect_with(
            &self.gateway,
            &options,
            plan.unless_unchanged.as_deref(),
            self.databases.discover,
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
        self.discovered(&mut collection);
        Ok(collection)
    }

    fn visits(&self) -> bool {
        let driver = self.driver();
        catalogue(driver)
            .collectors
            .iter()
            .any(|c| c.scope == Scope::Database && self.options.selection.runs(driver, c.name))
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
        let result = match &*self.gateway {
            Gateway::Postgres(g) => {
                postgres::visit(g, datname, &options, &self.budget, deadline).await
            }
        };
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
        collect_with(self, &options, None, false, deadline).await
    }
}

//! Each driver's parser of its own target keys. The central walker (`targets.rs`) reads the
//! keys every driver shares (name, endpoint, logins, collection overrides) and hands the rest
//! of the block to the parser of the target's `driver`, so one driver's rules (libpq's
//! `sslmode`) never apply to another. A new driver adds a file here and an arm to each
//! `match` below (the compiler lists them).

mod mysql;
mod postgres;

use std::path::Path;

use super::reader::{Fields, Problems};
use crate::gateway::{Driver, DriverSpec};

/// What a driver contributes to the config of a target.
pub(super) struct DriverKeys {
    /// The keys it adds to a target block.
    pub keys: &'static [&'static str],
    /// The port when `port` is not set.
    pub default_port: u16,
    /// The database when `database` is not set.
    pub default_database: &'static str,
}

/// The config contract of `driver`.
pub(super) fn keys(driver: Driver) -> &'static DriverKeys {
    match driver {
        Driver::Postgres => &postgres::KEYS,
        Driver::Mysql => &mysql::KEYS,
    }
}

/// Every driver's own keys: allowed in a block whose driver is missing or unknown, so that
/// block gets one error (its `driver`) instead of one per key.
pub(super) fn any_keys() -> impl Iterator<Item = &'static str> {
    Driver::ALL
        .into_iter()
        .flat_map(|d| keys(d).keys.iter().copied())
}

/// Parses `driver`'s own keys of the block `f`.
pub(super) fn parse(
    driver: Driver,
    f: &mut Fields,
    base: &Path,
    p: &mut Problems,
) -> Option<DriverSpec> {
    match driver {
        Driver::Postgres => postgres::parse(f, base, p).map(DriverSpec::Postgres),
        Driver::Mysql => mysql::parse(f, base, p).map(DriverSpec::Mysql),
    }
}

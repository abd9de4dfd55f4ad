//! Mesa's test support, a dev-only crate of the workspace: the integration tests, the demo,
//! the benchmarks and the soak depend on it; the daemon never does.
//!
//! * [`pg`]: a throwaway PostgreSQL server ([`PgCluster`]) of Debian's major or of any major
//!   from 13 to 18 (pinned server builds fetched once into `target/`, see [`pg::dist`]).
//! * [`mariadb`]: a throwaway MariaDB server ([`mariadb::MariaDb`]) of Debian's `mariadb-server`.
//! * [`ports`]: loopback ports reserved so that no other test, process or ephemeral bind can
//!   take them before the server that needs them binds.
//! * [`proxy`]: a TCP fault proxy (refuse, black hole, stall, latency, reset).
//! * [`measure`], [`run_args`], [`scram`]: what the benchmark and the soak measure with.
//! * [`sample`]: a sample collection with every built-in collector's families.
//! * [`venv`]: where the Python tools `cargo xtask test` installs are.

pub mod mariadb;
pub mod measure;
pub mod pg;
pub mod ports;
pub mod proxy;
pub mod run_args;
pub mod sample;
pub mod scram;
pub mod venv;
mod watchdog;

pub use pg::{ClusterOptions, HarnessError, PgCluster, find_bindir};

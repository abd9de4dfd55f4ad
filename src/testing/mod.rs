//! Test and demo support (feature `harness`): a throwaway PostgreSQL cluster.
//!
//! Integration tests, the demo and benchmarks all need a real server they control. This
//! module starts one from Debian's `postgresql` binaries and tears it down afterwards, also
//! when the owning process dies. It is compiled only with the `harness` feature, which the
//! crate's own dev-dependency turns on.

mod pg;

pub use pg::{ClusterOptions, HarnessError, PgCluster, find_bindir};

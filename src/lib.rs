//! Mesa: a PostgreSQL fleet exporter with a small, careful admin API.
//!
//! On a schedule Mesa connects to every configured database target through one
//! driver-neutral gateway, collects server health, session activity and per-database facts,
//! and serves them as Prometheus metrics; an authenticated admin API terminates runaway
//! backends, creates users and inspects schemas.
//!
//! # Layout
//!
//! Data flows one way: **gateway** (talk to a database) → **scheduler** (when to talk) →
//! **snapshot store** (the last answer) → **metrics / http** (who reads it).
//!
//! ```text
//! main ─► app::run ── owns shutdown, wires everything
//!           ├─ scheduler: one task per target ──(Inspector/Administrator)──► PostgreSQL
//!           │        └─► snapshot store: latest snapshot per target
//!           ├─ metrics listener: /metrics, /probe ── encode from snapshots
//!           └─ admin listener: /api/v1/... ── auth ─► gateway calls
//! ```
//!
//! * [`config`]: the YAML file parsed and validated into typed settings, every problem at once.
//! * [`gateway`]: the `Inspector` / `Administrator` traits, the `Gateway` enum over drivers,
//!   and the PostgreSQL driver (ephemeral connections, deadlines, TLS).
//! * [`collectors`]: one module per signal (its SQL, rows and metric families), run on one
//!   connection and one snapshot per collection; a collector fails alone.
//! * [`app`]: the composition root the binary calls.
//! * [`cli`], [`logging`], [`token`]: command line, log output, admin token generation.
//! * [`livecheck`]: `--check-config --live`, users' queries prepared on each target.
//! * [`allocator`]: glibc malloc settings for large, short-lived `/metrics` buffers.
//! * [`fdlimit`]: the descriptor budget of the listeners and targets, against `RLIMIT_NOFILE`.
//! * [`secret`]: a string type that never prints itself.
//! * [`tls`]: TLS for both sides (PEM material, the listeners' and the database clients' rustls
//!   configurations).
//!
//! Test support (throwaway PostgreSQL servers, the fault proxy) is the dev-only workspace
//! crate `testkit/`, never compiled into the daemon.

pub mod admin_cli;
pub mod allocator;
pub mod app;
pub mod cli;
pub mod collectors;
pub mod config;
pub mod fdlimit;
pub mod gateway;
pub mod http;
pub mod livecheck;
pub mod logging;
pub mod metrics;
pub mod reaper;
pub mod scheduler;
pub mod secret;
pub mod shard;
pub mod snapshot;
pub mod tls;
pub mod token;
pub mod visits;

/// Mesa's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

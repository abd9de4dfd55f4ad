//! Integration tests against a real PostgreSQL started by the harness (one cluster for the
//! whole binary; see `support`).

mod admin;
mod alerting;
mod alerts;
mod cli;
mod collectors;
mod compat;
mod cost;
mod dashboard;
mod databases;
mod deploy;
mod exporter;
mod faults;
mod flood;
mod formats;
mod gateway_admin;
mod gateway_errors;
mod gateway_inspect;
mod golden;
mod hardening;
mod kept_session;
mod lifecycle;
mod non_readers;
mod non_utf8;
mod prometheus;
mod queries;
mod reload_race;
mod role_names;
mod scheduler;
mod search_path;
mod sharding;
mod support;
mod tenant_race;
mod tenant_settings;
mod tiers;
mod webconfig;

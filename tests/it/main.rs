//! Integration tests against a real PostgreSQL started by the harness (one cluster for the
//! whole binary; see `support`).

mod support;
mod gateway_admin;
mod gateway_inspect;

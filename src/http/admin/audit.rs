//! The audit trail of admin mutations: a JSON Lines file.
//!
//! Each mutation writes an `intent` record before it touches the database and an `outcome`
//! record after, linked by `request_id`. If the intent cannot be written the mutation is
//! refused (fail closed). Records name the token, never the token itself, and never carry a
//! password or verifier. Each record is appended with `O_APPEND` and flushed to disk before
//! the call returns; the file is opened per record, so a rotated or replaced file is picked up
//! and a broken one is noticed at once.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Map, Value};

/// The audit file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    // Serialises appends so records never interleave.
    lock: Mutex<()>,
}

impl AuditLog {
    /// Audits to `path` (created 0600 on first write).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Appends one record, with `time` added, and syncs it to disk.
    pub fn write(&self, mut record: Map<String, Value>) -> std::io::Result<()> {
        record.insert(
            "time".to_owned(),
            Value::String(humantime::format_rfc3339_millis(SystemTime::now()).to_string()),
        );
        let mut line = Value::Object(record).to_string();
        line.push('\n');
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }
}

/// Appends a record off the async threads (the write ends with an fsync).
pub async fn append(
    log: &std::sync::Arc<AuditLog>,
    record: Map<String, Value>,
) -> std::io::Result<()> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || log.write(record))
        .await
        .map_err(std::io::Error::other)?
}

/// A fresh id linking an intent to its outcome.
pub fn request_id() -> String {
    let mut raw = [0u8; 8];
    // The id only links two records; a zero id on a broken random source still works.
    let _ = getrandom::fill(&mut raw);
    crate::token::hex(&raw)
}

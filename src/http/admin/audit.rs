//! The audit trail of admin mutations: a JSON Lines file of typed [`AuditRecord`]s.
//!
//! Each mutation writes an `intent` record before it touches the database and an `outcome`
//! record after, linked by `request_id`. If the intent cannot be written the mutation is
//! refused (fail closed); if writing it took past the request's deadline, the mutation is not
//! started either (the caller has given up, and a late action surprises everyone). Records
//! name the token, never the token itself, and never carry a password or verifier.
//!
//! The file is opened per record with `O_APPEND | O_NOFOLLOW`, so a rotated or replaced file
//! is picked up, a broken one is noticed at once, and a symlink planted in its place is never
//! followed. At start, an existing file that group or others may write is refused (anyone who
//! can write it can forge or erase the trail). Each record is flushed to disk before the call
//! returns; a failed append truncates the file back to where it was, so a torn line is never
//! glued to the next record.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// The audit file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    // Serialises appends so records never interleave.
    lock: Mutex<()>,
}

/// Why the audit file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The path is a symbolic link.
    #[error("audit log {path} is a symbolic link; point admin.audit_log at the file itself")]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The path is not a regular file (a FIFO, socket, device or folder).
    #[error("audit log {path} is not a regular file; point admin.audit_log at a file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Group or others may write the file.
    #[error(
        "audit log {path} is writable by group or others (mode {mode:o}); anyone who can write it can forge or erase records: chmod 600 it"
    )]
    Writable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It could not be inspected.
    #[error("cannot inspect audit log {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Which half of a mutation a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// Written before the mutation starts.
    Intent,
    /// Written after it ended (or was abandoned).
    Outcome,
}

/// How a mutation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// The gateway reported an error.
    Error,
    /// Never started: the intent record was written after the request's deadline.
    Abandoned,
}

/// What a mutation acts on; flattened into the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AuditSubject {
    /// Terminate or cancel.
    Backend {
        /// Backend pid.
        pid: i32,
        /// The start time the caller pinned, if any (RFC 3339).
        #[serde(skip_serializing_if = "Option::is_none")]
        backend_start: Option<String>,
    },
    /// Create user. Says whether the password was chosen or generated, never what it is.
    Role {
        /// Role name.
        role: String,
        /// SUPERUSER.
        superuser: bool,
        /// LOGIN.
        login: bool,
        /// `chosen` or `generated`.
        password: &'static str,
        /// The requested lifetime, as given.
        #[serde(skip_serializing_if = "Option::is_none")]
        valid_for: Option<String>,
        /// The requested memberships.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        member_of: Vec<String>,
        /// The requested connection limit.
        #[serde(skip_serializing_if = "Option::is_none")]
        connection_limit: Option<u32>,
    },
    /// Revoke or rotate: the managed role acted on.
    Managed {
        /// Role name.
        role: String,
    },
    /// A bulk terminate or cancel: the filter as given, and in the outcome record every
    /// matched pid with its pin and outcome.
    Bulk {
        /// The request's filter.
        filter: serde_json::Value,
        /// `terminate` or `cancel`.
        mode: &'static str,
        /// The request's `max_count`.
        max_count: u32,
        /// A dry run signals nothing.
        dry_run: bool,
        /// Outcome records: `{pid, backend_start, outcome}` per matched session.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        sessions: Vec<serde_json::Value>,
    },
    /// A reaper round on a target (its intent record).
    Sweep {
        /// `admin.drop_after`, as configured.
        drop_after: String,
    },
    /// One step of the reaper on an expired managed role.
    Reaped {
        /// Role name.
        role: String,
        /// `disabled`, `terminated`, `dropped` or `failed`.
        step: &'static str,
        /// Sessions terminated by this step.
        sessions: u32,
        /// Why a step failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// One line of the audit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Intent or outcome.
    pub event: AuditEvent,
    /// Links an intent to its outcome.
    pub request_id: String,
    /// The token's configured name.
    pub token: String,
    /// The client's address.
    pub client: String,
    /// The target's name.
    pub target: String,
    /// The action (`terminate`, `cancel`, `create_user`).
    pub action: &'static str,
    /// What it acts on.
    #[serde(flatten)]
    pub subject: AuditSubject,
    /// Outcome records: how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AuditOutcome>,
    /// Outcome records: the HTTP status answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Outcome records of errors: the failure reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Outcome records of database errors: the SQLSTATE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
}

impl AuditRecord {
    /// The outcome record of this intent.
    pub fn outcome(&self, outcome: AuditOutcome, status: u16) -> Self {
        Self {
            event: AuditEvent::Outcome,
            outcome: Some(outcome),
            status: Some(status),
            ..self.clone()
        }
    }

    /// The outcome record of an intent that no HTTP request answers (the reaper's).
    pub fn finished(&self, outcome: AuditOutcome) -> Self {
        Self {
            event: AuditEvent::Outcome,
            outcome: Some(outcome),
            ..self.clone()
        }
    }
}

/// A record with the time it was written.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

/// A warning when the audit log's folder may be written by others (without the sticky bit):
/// anyone who can write the folder can replace the file between two records.
pub fn folder_warning(path: &Path) -> Option<String> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mode = std::fs::metadata(folder).ok()?.mode();
    (mode & 0o002 != 0 && mode & 0o1000 == 0).then(|| {
        format!(
            "the audit log's folder {} is writable by others (mode {:o}): anyone can replace the log; chmod o-w it",
            folder.display(),
            mode & 0o7777
        )
    })
}

impl AuditLog {
    /// Audits to `path` (created 0600 on first write). An existing file must be a file, not a
    /// symbolic link, and must not be writable by group or others.
    pub fn open(path: PathBuf) -> Result<Self, AuditError> {
        check_existing(&path)?;
        Ok(Self {
            path,
            lock: Mutex::new(()),
        })
    }

    /// Appends one record, with `time` added, and syncs it to disk. On failure the file is
    /// truncated back to its length before the append.
    pub fn write(&self, record: &AuditRecord) -> std::io::Result<()> {
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            record,
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // O_NONBLOCK: a FIFO planted at the path would block the open until a reader came
        // (mutations hung 30 s); it fails at once instead, and fstat refuses anything but a
        // regular file.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&self.path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other(format!(
                "audit log {} is not a regular file",
                self.path.display()
            )));
        }
        append_whole(&mut file, text.as_bytes())
    }
}

/// Where a record is appended: the audit file, or a fake in tests.
trait Append {
    /// The current length of a regular file; `None` for what cannot be synced or truncated
    /// (the audit file is always regular now, but a fake in the tests is not).
    fn len_if_file(&self) -> std::io::Result<Option<u64>>;
    /// Appends all of `bytes`, and with `sync` makes them durable.
    fn append(&mut self, bytes: &[u8], sync: bool) -> std::io::Result<()>;
    /// Cuts the file back to `len` bytes.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

impl Append for std::fs::File {
    fn len_if_file(&self) -> std::io::Result<Option<u64>> {
        let meta = self.metadata()?;
        Ok(meta.is_file().then_some(meta.len()))
    }

    fn append(&mut self, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        self.write_all(bytes)?;
        if sync {
            self.sync_data()?;
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Appends `bytes` whole or not at all: a failed append to a regular file is cut back off;
/// a regular file is synced, a pipe is not.
fn append_whole(target: &mut impl Append, bytes: &[u8]) -> std::io::Result<()> {
    let before = target.len_if_file()?;
    let written = target.append(bytes, before.is_some());
    if let (Err(_), Some(len)) = (&written, before) {
        // Best effort: if even this fails, the next append starts after a torn line, which a
        // JSON Lines reader skips as one bad line.
        let _ = target.truncate(len);
    }
    written
}

fn check_existing(path: &Path) -> Result<(), AuditError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(AuditError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    if meta.file_type().is_symlink() {
        return Err(AuditError::Symlink {
            path: path.to_owned(),
        });
    }
    if !meta.is_file() {
        return Err(AuditError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(AuditError::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Appends a record off the async threads (the write ends with an fsync).
pub async fn append(log: &std::sync::Arc<AuditLog>, record: AuditRecord) -> std::io::Result<()> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || log.write(&record))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesa-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    fn record() -> AuditRecord {
        AuditRecord {
            event: AuditEvent::Intent,
            request_id: "00".to_owned(),
            token: "t".to_owned(),
            client: "127.0.0.1:1".to_owned(),
            target: "main".to_owned(),
            action: "terminate",
            subject: AuditSubject::Backend {
                pid: 42,
                backend_start: None,
            },
            outcome: None,
            status: None,
            reason: None,
            sqlstate: None,
        }
    }

    #[test]
    fn a_fifo_at_the_path_is_refused_at_once_and_never_blocks_a_write() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = dir("fifo");
        let path = d.join("audit.jsonl");
        let log = AuditLog::open(path.clone()).expect("absent file is fine");
        // Planted after start, with no reader: opening it for writing would block.
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let started = std::time::Instant::now();
        let err = log.write(&record()).expect_err("a FIFO is refused");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(!err.to_string().is_empty());
        assert!(matches!(
            AuditLog::open(path.clone()),
            Err(AuditError::NotAFile { .. })
        ));
        // A folder anyone may write is a warning; with the sticky bit (/tmp) it is not.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(folder_warning(&path).is_some_and(|w| w.contains("writable by others")));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert_eq!(folder_warning(&path), None);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assert_eq!(folder_warning(&path), None);
    }

    #[test]
    fn symlinks_and_writable_files_are_refused_and_links_never_followed() {
        let d = dir("links");
        let real = d.join("real.jsonl");
        std::fs::write(&real, "").expect("real");
        let link = d.join("link.jsonl");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(matches!(
            AuditLog::open(link.clone()),
            Err(AuditError::Symlink { .. })
        ));
        // A link planted after start is not followed either.
        let log = AuditLog::open(d.join("later.jsonl")).expect("absent file is fine");
        std::os::unix::fs::symlink(&real, d.join("later.jsonl")).expect("plant");
        assert!(log.write(&record()).is_err());
        assert_eq!(std::fs::read_to_string(&real).expect("real"), "");

        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o620)).expect("chmod");
        let err = AuditLog::open(real.clone()).expect_err("group-writable");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let log = AuditLog::open(real.clone()).expect("group-readable is fine");
        log.write(&record()).expect("append");
        let line = std::fs::read_to_string(&real).expect("read");
        let json: serde_json::Value = serde_json::from_str(line.trim()).expect("JSON");
        assert_eq!(json["event"], "intent");
        assert_eq!(json["pid"], 42);
        assert!(json["time"].is_string() && json.get("outcome").is_none());
    }

    /// A disk that fills up after `room` more bytes.
    struct FillingDisk {
        data: Vec<u8>,
        room: usize,
    }

    impl Append for FillingDisk {
        fn len_if_file(&self) -> std::io::Result<Option<u64>> {
            Ok(Some(self.data.len() as u64))
        }

        fn append(&mut self, bytes: &[u8], _sync: bool) -> std::io::Result<()> {
            let fits = bytes.len().min(self.room);
            self.data.extend_from_slice(&bytes[..fits]);
            self.room -= fits;
            if fits < bytes.len() {
                return Err(std::io::Error::other("no space left on device"));
            }
            Ok(())
        }

        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.data.truncate(usize::try_from(len).expect("small"));
            Ok(())
        }
    }

    #[test]
    fn a_failed_append_leaves_no_torn_line() {
        let mut disk = FillingDisk {
            data: b"{\"first\":1}\n".to_vec(),
            room: 10,
        };
        let err = append_whole(&mut disk, b"{\"second\":\"a long record\"}\n");
        assert!(err.is_err());
        assert_eq!(
            disk.data, b"{\"first\":1}\n",
            "the torn half was cut back off"
        );
        disk.room = 100;
        append_whole(&mut disk, b"{\"third\":3}\n").expect("fits");
        assert_eq!(disk.data, b"{\"first\":1}\n{\"third\":3}\n");
    }
}

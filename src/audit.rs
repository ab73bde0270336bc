//! The audit log: `$XDG_STATE_HOME/tether/audit.jsonl`, append-only, one
//! JSON object a line, private to its owner.
//!
//! Each line has `time` (RFC 3339 UTC), `event`, `session`, `fingerprint`,
//! `comment` (the key's), `role`, `address` and, where useful, `detail`.
//! Lines are written with one `write` on an `O_APPEND` file, so concurrent
//! writers never interleave within a line.

use crate::clock::now_rfc3339;
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use tether_proto::Role;

/// What happened.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A TCP connection was accepted.
    Connection,
    /// A key was accepted.
    AuthSuccess,
    /// A key was refused.
    AuthFailure,
    /// A session was created.
    SessionCreate,
    /// An interactive attachment began.
    Attach,
    /// An attachment ended.
    Detach,
    /// A read-only attachment began.
    Watch,
    /// A read-only attachment ended.
    Unwatch,
    /// A job was killed.
    Kill,
    /// A session was forgotten.
    Rm,
    /// An operation was refused for lack of a right.
    Refused,
    /// A session's processes were stopped.
    Freeze,
    /// They were continued.
    Thaw,
    /// An evidence bundle was captured.
    Snapshot,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// RFC 3339 UTC.
    pub time: String,
    /// What happened.
    pub event: Event,
    /// The session concerned, if any.
    pub session: Option<String>,
    /// `SHA256:…` of the key, if known.
    pub fingerprint: Option<String>,
    /// The key's comment, if known.
    pub comment: Option<String>,
    /// The role granted, if authenticated.
    pub role: Option<Role>,
    /// The peer's address.
    pub address: Option<String>,
    /// Anything else worth keeping (a refusal's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Entry {
    /// An entry for `event` now, with nothing else filled in.
    pub fn new(event: Event) -> Self {
        Entry {
            time: now_rfc3339(),
            event,
            session: None,
            fingerprint: None,
            comment: None,
            role: None,
            address: None,
            detail: None,
        }
    }
}

/// The audit log file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The log at `path`.
    pub fn new(path: PathBuf) -> Self {
        AuditLog { path }
    }

    /// Appends `entry`. Failures are logged, never fatal: the audit log
    /// must not take the service down.
    pub fn record(&self, entry: &Entry) {
        let mut line = match serde_json::to_vec(entry) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("encoding an audit entry: {e}");
                return;
            }
        };
        line.push(b'\n');
        let file =
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path);
        match file.and_then(|mut f| f.write_all(&line)) {
            Ok(()) => {}
            Err(e) => tracing::error!("writing the audit log {}: {e}", self.path.display()),
        }
    }
}

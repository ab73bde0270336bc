//! The audit log: `$XDG_STATE_HOME/tether/audit.jsonl`, append-only, one
//! JSON object a line, private to its owner.
//!
//! The line format is in `tether_proto::audit`; this is the file. Lines
//! are written with one `write` on an `O_APPEND` file, so concurrent
//! writers never interleave within a line.

use crate::clock::now_rfc3339;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
pub use tether_proto::audit::{Entry, Event};

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
        let stamped;
        let entry = if entry.time.is_empty() {
            stamped = Entry { time: now_rfc3339(), ..entry.clone() };
            &stamped
        } else {
            entry
        };
        let line = match tether_proto::audit::encode_line(entry) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("encoding an audit entry: {e}");
                return;
            }
        };
        let file =
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path);
        match file.and_then(|mut f| f.write_all(&line)) {
            Ok(()) => {}
            Err(e) => tracing::error!("writing the audit log {}: {e}", self.path.display()),
        }
    }
}

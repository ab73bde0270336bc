//! The audit log's line format: `$XDG_STATE_HOME/tether/audit.jsonl`,
//! one JSON object a line (JSON Lines), appended, never rewritten.
//!
//! ```text
//! {"time":"2026-12-06T02:30:00Z","event":"refused","session":"db","fingerprint":"SHA256:…",
//!  "comment":"ci@runner","role":"operator","address":"10.0.0.7:51514","detail":"…"}
//! ```
//!
//! Every line has `time` (RFC 3339 UTC), `event` (snake_case, see
//! [`Event`]), `session`, `fingerprint`, `comment` (the key's), `role` and
//! `address` (null when not known); `detail` only where useful (a
//! refusal's reason); `from_session` and `started_by` only for a request
//! made from inside a session (by its job or a process it started).
//! Readers must ignore fields they do not know.

use crate::Role;
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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
    /// An open connection was closed because authorized_keys no longer
    /// grants its key (or grants it less); `detail` says why.
    Revoked,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The request came from inside this session: the requesting process
    /// descends from its keeper (the session's job, or something the job
    /// started), so it runs as the user whatever role started the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_session: Option<String>,
    /// Who started the session named by `from_session` (its owner: a user
    /// name or a key's comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

impl Entry {
    /// An entry for `event`, with nothing else filled in; the log stamps
    /// the time when it writes an entry whose time is empty.
    pub fn new(event: Event) -> Self {
        Entry {
            time: String::new(),
            event,
            session: None,
            fingerprint: None,
            comment: None,
            role: None,
            address: None,
            detail: None,
            from_session: None,
            started_by: None,
        }
    }
}

/// One entry as a line of the log, newline included.
///
/// # Errors
///
/// Never in practice (every field serializes).
pub fn encode_line(entry: &Entry) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(entry)?;
    line.push(b'\n');
    Ok(line)
}

/// One line of the log (without its newline).
///
/// # Errors
///
/// The line is not an entry.
pub fn decode_line(line: &str) -> Result<Entry, serde_json::Error> {
    serde_json::from_str(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_as_on_disk() {
        let entry = Entry {
            time: "2026-12-06T02:30:00Z".into(),
            session: Some("db".into()),
            role: Some(Role::Operator),
            detail: Some("no".into()),
            ..Entry::new(Event::Refused)
        };
        let line = encode_line(&entry).unwrap();
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "{\"time\":\"2026-12-06T02:30:00Z\",\"event\":\"refused\",\"session\":\"db\",\"fingerprint\":null,\"comment\":null,\"role\":\"operator\",\"address\":null,\"detail\":\"no\"}\n"
        );
        let back = decode_line(std::str::from_utf8(&line).unwrap().trim_end()).unwrap();
        assert_eq!(back, entry);
        let without_detail = Entry { detail: None, ..entry.clone() };
        assert!(
            !String::from_utf8(encode_line(&without_detail).unwrap()).unwrap().contains("detail")
        );
        let inside = Entry {
            from_session: Some("agent".into()),
            started_by: Some("ci@runner".into()),
            ..entry
        };
        let line = String::from_utf8(encode_line(&inside).unwrap()).unwrap();
        assert!(
            line.ends_with(",\"from_session\":\"agent\",\"started_by\":\"ci@runner\"}\n"),
            "{line}"
        );
        assert_eq!(decode_line(line.trim_end()).unwrap(), inside);
    }
}

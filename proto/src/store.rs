//! On-disk session files under `$XDG_STATE_HOME/tether/sessions/`.
//!
//! ```text
//! sessions/
//!   build.json     the session's record: a SessionInfo object, pretty-printed JSON
//!   build.screen   the final screen, written when the job ends: a FinalScreen, one line of JSON
//!   build.lock     empty; its keeper holds an exclusive flock on it for its whole life
//! ```
//!
//! * `NAME.json`: the record, a [`crate::SessionInfo`]. Its `state` is
//!   `running` or `ended`; `lost` is never written, it is derived by
//!   readers when the keeper's lock (`NAME.lock`) is not held. Written
//!   whole (a temporary file renamed over it), so readers never see half.
//! * `NAME.screen`: a [`FinalScreen`].
//!
//! `NAME` is a [`SessionName`], which is always a safe file name. This
//! module names the files and turns their contents into bytes and back;
//! the main crate reads, writes and locks them.

use crate::{SessionInfo, SessionName};
use serde::{Deserialize, Serialize};

/// The screen a session ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalScreen {
    /// Bytes that repaint a terminal with the final screen (a redraw).
    pub redraw: String,
    /// The session's text at the end: history and screen, as logical lines.
    pub text: Vec<String>,
}

impl FinalScreen {
    /// The `.screen` file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Strings only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a `.screen` file's bytes.
    ///
    /// # Errors
    ///
    /// Not a final screen.
    pub fn decode(bytes: &[u8]) -> serde_json::Result<FinalScreen> {
        serde_json::from_slice(bytes)
    }
}

const RECORD_SUFFIX: &str = ".json";

/// `NAME.json`: the file name of a session's record.
pub fn record_file_name(name: &SessionName) -> String {
    format!("{name}{RECORD_SUFFIX}")
}

/// `NAME.screen`: the file name of a session's final screen.
pub fn final_screen_file_name(name: &SessionName) -> String {
    format!("{name}.screen")
}

/// `NAME.lock`: the file name of the lock a session's keeper holds.
pub fn lock_file_name(name: &SessionName) -> String {
    format!("{name}.lock")
}

/// The session whose record `file` is, if it is one (`NAME.json` with a
/// valid name); other files in the directory give `None`.
pub fn record_of_file_name(file: &str) -> Option<SessionName> {
    SessionName::new(file.strip_suffix(RECORD_SUFFIX)?).ok()
}

/// A record file's bytes: pretty-printed JSON, so an operator can read it.
pub fn encode_record(info: &SessionInfo) -> Vec<u8> {
    // Serializing a record cannot fail (string keys, finite numbers).
    serde_json::to_vec_pretty(info).unwrap_or_default()
}

/// Reads a record file's bytes (pretty-printed or not; fields added by
/// later versions are ignored, missing optional ones take defaults).
///
/// # Errors
///
/// Not a session record.
pub fn decode_record(bytes: &[u8]) -> serde_json::Result<SessionInfo> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordingState, SessionState};

    fn info() -> SessionInfo {
        SessionInfo {
            name: SessionName::new("build").unwrap(),
            state: SessionState::Ended,
            frozen: false,
            pid: Some(42),
            keeper_pid: Some(41),
            exit_code: Some(0),
            signal: None,
            started: Some("2026-11-28T03:00:00Z".into()),
            ended: Some("2026-11-28T03:05:00Z".into()),
            cols: 80,
            rows: 24,
            clients: 0,
            watchers: 0,
            protected: false,
            recording: RecordingState::Off,
            recording_path: None,
            recording_end: None,
            command: vec!["/bin/sh".into()],
            owner: Some("alice".into()),
            consent: false,
            end_reason: None,
            probe: false,
            archived: None,
        }
    }

    const RECORD: &str = r#"{
  "name": "build",
  "state": "ended",
  "frozen": false,
  "pid": 42,
  "keeper_pid": 41,
  "exit_code": 0,
  "signal": null,
  "started": "2026-11-28T03:00:00Z",
  "ended": "2026-11-28T03:05:00Z",
  "cols": 80,
  "rows": 24,
  "clients": 0,
  "watchers": 0,
  "protected": false,
  "recording": "off",
  "recording_path": null,
  "command": [
    "/bin/sh"
  ],
  "owner": "alice",
  "consent": false,
  "end_reason": null,
  "probe": false
}"#;

    #[test]
    fn a_record_as_on_disk() {
        assert_eq!(String::from_utf8(encode_record(&info())).unwrap(), RECORD);
        assert_eq!(decode_record(RECORD.as_bytes()).unwrap(), info());
        // A record from before `command`, `owner` and `consent` existed.
        let old = r#"{"name":"build","state":"ended","frozen":false,"pid":42,"keeper_pid":41,
            "exit_code":0,"signal":null,"started":"2026-11-28T03:00:00Z",
            "ended":"2026-11-28T03:05:00Z","cols":80,"rows":24,"clients":0,"watchers":0,
            "protected":false,"recording":"off","recording_path":null,"future":1}"#;
        let read = decode_record(old.as_bytes()).unwrap();
        assert_eq!(read, SessionInfo { command: vec![], owner: None, ..info() });
        assert!(decode_record(br#"{"name":"../x"}"#).is_err());
    }

    #[test]
    fn a_final_screen_as_on_disk() {
        let sample = r#"{"redraw":"\u001b[H\u001b[2J$ ","text":["$ make","ok"]}"#;
        let screen = FinalScreen {
            redraw: "\u{1b}[H\u{1b}[2J$ ".into(),
            text: vec!["$ make".into(), "ok".into()],
        };
        assert_eq!(FinalScreen::encode(&screen), sample.as_bytes());
        assert_eq!(FinalScreen::decode(sample.as_bytes()).unwrap(), screen);
    }

    #[test]
    fn file_names() {
        let name = SessionName::new("a-b.c").unwrap();
        assert_eq!(record_file_name(&name), "a-b.c.json");
        assert_eq!(final_screen_file_name(&name), "a-b.c.screen");
        assert_eq!(lock_file_name(&name), "a-b.c.lock");
        assert_eq!(record_of_file_name("a-b.c.json"), Some(name));
        assert_eq!(record_of_file_name("a-b.c.screen"), None);
        assert_eq!(record_of_file_name(".json"), None);
        assert_eq!(record_of_file_name(".x.json"), None);
    }
}

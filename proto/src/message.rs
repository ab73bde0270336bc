//! The messages of the client/keeper protocol and their frame kinds.
//!
//! Each message documents its kind byte, its payload and which message
//! answers it. A connection starts with [`HelloRequest`] → [`HelloReply`],
//! then carries one request:
//!
//! * [`AttachRequest`] → [`AttachReply`], then a stream: the keeper sends
//!   [`Message::Redraw`] (a full screen, first and after any resync),
//!   [`Message::Output`], [`Message::Notice`] and finally [`Message::Exit`];
//!   the client sends [`Message::Input`], [`Message::Resize`] and
//!   [`Message::Detach`].
//! * [`Request`] → one [`Reply`] (several for a following tail), or
//!   [`ErrorReply`].

use crate::name::SessionName;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Every message, one per frame kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Kind `0x01`, JSON [`HelloRequest`]. First frame from a client.
    /// Answered by [`Message::HelloReply`] or [`Message::Error`].
    Hello(HelloRequest),
    /// Kind `0x02`, JSON [`HelloReply`].
    HelloReply(HelloReply),
    /// Kind `0x03`, JSON [`RouteRequest`]: sent to a daemon (the `tether` SSH
    /// subsystem) after the hello, to talk to one session's keeper from then
    /// on. Answered by that keeper's [`Message::HelloReply`] or an error.
    Route(RouteRequest),
    /// Kind `0x10`, JSON [`AttachRequest`]. Answered by [`Message::AttachReply`]
    /// followed by a [`Message::Redraw`], or by [`Message::Error`].
    Attach(AttachRequest),
    /// Kind `0x11`, JSON [`AttachReply`].
    AttachReply(AttachReply),
    /// Kind `0x12`, raw bytes typed by an interactive client, for the job.
    /// The keeper drops input from read-only attachments.
    Input(Bytes),
    /// Kind `0x13`, raw bytes the job printed (terminal queries removed, see
    /// the keeper's `vtscan`).
    Output(Bytes),
    /// Kind `0x14`, raw bytes that repaint a terminal from scratch: the
    /// session's screens, cursor and modes. A redraw may span several
    /// consecutive frames; a consumer can treat it as output.
    Redraw(Bytes),
    /// Kind `0x15`: the client's terminal size changed. Payload: `cols: u16
    /// BE`, `rows: u16 BE`, exactly 4 bytes. Zero means "unknown" (80x24).
    Resize(WindowSize),
    /// Kind `0x16`, empty payload: the client leaves; the keeper answers
    /// nothing and closes.
    Detach,
    /// Kind `0x17`, JSON [`JobExit`]: the job ended; the keeper closes next.
    Exit(JobExit),
    /// Kind `0x18`, JSON [`Notice`]: a message for the human, shown by the
    /// client outside the session's screen.
    Notice(Notice),
    /// Kind `0x20`, JSON [`Request`]: a control operation.
    Request(Request),
    /// Kind `0x21`, JSON [`Reply`].
    Reply(Reply),
    /// Kind `0x7f`, JSON [`ErrorReply`]: the request failed; the sender closes next.
    Error(ErrorReply),
}

/// Frame kind bytes, in one place so that a new kind cannot reuse an old one.
pub(crate) mod kind {
    pub const HELLO: u8 = 0x01;
    pub const HELLO_REPLY: u8 = 0x02;
    pub const ROUTE: u8 = 0x03;
    pub const ATTACH: u8 = 0x10;
    pub const ATTACH_REPLY: u8 = 0x11;
    pub const INPUT: u8 = 0x12;
    pub const OUTPUT: u8 = 0x13;
    pub const REDRAW: u8 = 0x14;
    pub const RESIZE: u8 = 0x15;
    pub const DETACH: u8 = 0x16;
    pub const EXIT: u8 = 0x17;
    pub const NOTICE: u8 = 0x18;
    pub const REQUEST: u8 = 0x20;
    pub const REPLY: u8 = 0x21;
    pub const ERROR: u8 = 0x7f;
}

/// The first message of every connection.
///
/// # Format
///
/// `{"protocol": 1, "software": "tether 0.1.0"}`. These two fields keep their
/// names and types in every version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloRequest {
    /// The sender's [`crate::PROTOCOL_VERSION`].
    pub protocol: u16,
    /// Human-readable software name and version, for error messages.
    pub software: String,
}

/// The keeper's answer to a compatible [`HelloRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloReply {
    /// The keeper's protocol version (equal to the client's).
    pub protocol: u16,
    /// The keeper's software name and version.
    pub software: String,
    /// The session this keeper owns; `None` from a daemon.
    pub session: Option<SessionName>,
}

/// Talk to `session`'s keeper through a daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRequest {
    /// The session.
    pub session: SessionName,
}

/// What a host says about itself for `tether check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Bytes free for tether's data directory.
    pub free_bytes: u64,
    /// The configured minimum.
    pub min_free_bytes: u64,
    /// The probe's recording: `verify`'s status (`intact` when healthy).
    pub probe_recording: Option<String>,
    /// Why a new file cannot be written in the recordings directory
    /// (`None`: it can).
    #[serde(default)]
    pub recordings_unwritable: Option<String>,
}

/// Capture an evidence bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRequest {
    /// The directory to create the bundle in; `None` for the evidence directory.
    pub out: Option<String>,
    /// Freeze the session's processes during the capture.
    pub freeze: bool,
    /// Also dump their readable memory.
    pub memory: bool,
    /// The most memory to dump, in bytes.
    pub memory_limit: u64,
    /// Who asked (set by the daemon for SSH callers).
    pub requested_by: String,
}

/// Create a session (a daemon-level request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The session's name.
    pub name: SessionName,
    /// argv; empty for the user's shell on the server.
    pub command: Vec<String>,
    /// Working directory; `None` for the server's default.
    pub cwd: Option<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Initial size.
    pub size: WindowSize,
    /// `TERM`; `None` for the server's default.
    pub term: Option<String>,
    /// `kill` needs `--force`.
    pub protect: bool,
    /// `--no-record`.
    #[serde(default)]
    pub no_record: bool,
    /// `--record-input`.
    #[serde(default)]
    pub record_input: bool,
    /// `--consent`: watchers wait for an interactive client's yes.
    #[serde(default)]
    pub consent: bool,
    /// A `tether check` probe. Honoured only for the local owner (never
    /// for an SSH caller, through any path) and only for a name of the
    /// probe form (`check-` and 8 hex digits, [`SessionName::is_probe`]);
    /// otherwise the create is refused ([`ErrorCode::Refused`]). A probe
    /// records to a scratch place that `remove` deletes, unless the host
    /// requires recording: then it records like any session.
    #[serde(default)]
    pub probe: bool,
}

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

impl WindowSize {
    /// The size assumed when a client does not know its own (e.g. `ssh -T`).
    pub const DEFAULT: WindowSize = WindowSize { cols: 80, rows: 24 };
    /// The largest accepted dimension; larger values are clamped to it, so a
    /// hostile size cannot make the keeper allocate a huge screen.
    pub const MAX_DIM: u16 = 1000;

    /// Zero dimensions become the default; others are clamped to `1..=MAX_DIM`.
    pub fn sanitized(self) -> WindowSize {
        let fix = |v: u16, default: u16| if v == 0 { default } else { v.min(Self::MAX_DIM) };
        WindowSize { cols: fix(self.cols, 80), rows: fix(self.rows, 24) }
    }
}

/// What an attachment may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachMode {
    /// Sees output, types, resizes.
    Interactive,
    /// Sees output only (shadowing); its input is dropped by the keeper.
    ReadOnly,
}

/// A role granted to an identity (per SSH key; a local user owns their sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Owner,
    /// Attach, watch, create; no kill or rm.
    Operator,
    /// Watch only.
    Watcher,
}

impl Role {
    /// `owner`, `operator` or `watcher`, as written in `authorized_keys`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Operator => "operator",
            Role::Watcher => "watcher",
        }
    }
}

/// Who is on the other end, carried from the first protocol version so that
/// presence, markers and audit never need a version bump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The SSH key's comment, or the local user name.
    pub name: String,
    /// `SHA256:…` of the SSH key; `None` for a local client.
    pub fingerprint: Option<String>,
    /// The role the daemon granted (local users are owners).
    pub role: Role,
    /// The peer's network address; `None` for a local client.
    pub address: Option<String>,
}

/// Join a session's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// Interactive or read-only.
    pub mode: AttachMode,
    /// The client's terminal size.
    pub size: WindowSize,
    /// Who attaches.
    pub identity: Identity,
    /// The client's terminal type (`TERM`): a redraw uses an optional
    /// capability only where this terminal's terminfo entry has it.
    #[serde(default)]
    pub term: Option<String>,
}

/// The keeper accepted an [`AttachRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachReply {
    /// The session as it is now.
    pub session: SessionInfo,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobExit {
    /// The exit code, when the job exited normally.
    pub code: Option<i32>,
    /// The signal number, when a signal killed the job.
    pub signal: Option<i32>,
    /// When it ended, RFC 3339 UTC.
    pub ended: String,
}

impl JobExit {
    /// The shell convention: the code, or 128 + the signal number.
    pub fn status(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 125,
        }
    }

    /// "exit code 3" or "signal 9".
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "unknown status".to_owned(),
        }
    }
}

/// A line for the human at the client, outside the session's screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The text, without escape sequences.
    pub text: String,
    /// Interactive attachments now, on presence changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<u32>,
    /// Read-only attachments now, on presence changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchers: Option<u32>,
}

/// Control operations on one session (the keeper) or on all of them (the
/// daemon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// → [`Reply::Info`].
    Info,
    /// → [`Reply::List`]. A keeper lists its own session.
    List,
    /// End the job (SIGHUP to its process group, SIGKILL after a grace
    /// period). A protected session needs `force`. → [`Reply::Exited`] once the
    /// job is gone, or [`ErrorReply`] with [`ErrorCode::Conflict`].
    Kill {
        /// Required for a protected session.
        force: bool,
    },
    /// The session's text: history and screen. → one [`Reply::Text`]; with
    /// `follow`, more [`Reply::Text`] as lines complete, until the job ends.
    Tail {
        /// How many trailing lines; `None` for all.
        lines: Option<u32>,
        /// Keep the connection and send new lines as they complete.
        follow: bool,
    },
    /// → [`Reply::Exited`] when the job ends.
    Wait,
    /// → [`Reply::Who`].
    Who,
    /// Capture an evidence bundle of the session. → [`Reply::Snapshot`].
    Snapshot(SnapshotRequest),
    /// Stop every process of the session (SIGSTOP). → [`Reply::Done`].
    Freeze,
    /// Continue them (SIGCONT). → [`Reply::Done`].
    Thaw,
    /// Daemon-level: the host's side of `tether check`: free space, and the
    /// probe session's recording verified. → [`Reply::Health`].
    Health {
        /// The probe session whose recording to verify.
        probe: Option<SessionName>,
    },
    /// Daemon-level: create a session. → [`Reply::Info`].
    Create(CreateRequest),
    /// Daemon-level: one session's record, including ended and lost ones.
    /// → [`Reply::Info`] or [`ErrorCode::NoSuchSession`].
    Lookup {
        /// The session.
        name: SessionName,
    },
    /// Daemon-level: forget an ended or lost session. → [`Reply::Done`].
    Remove {
        /// The session.
        name: SessionName,
    },
    /// Daemon-level: an ended session's final screen. → [`Reply::FinalScreen`].
    FinalScreen {
        /// The session.
        name: SessionName,
    },
    /// Daemon-level: may the caller exercise `right` (on `session`)? Asked
    /// by `tether --host` before each command, so that a remote command is
    /// refused exactly as it would be over `ssh host COMMAND`.
    /// → [`Reply::Done`] or [`ErrorCode::Refused`].
    Authorize {
        /// The right: `ls`, `who`, `watch`, `attach`, `new`, `tail`,
        /// `wait`, `kill`, `rm`, `review` or `forensics`.
        right: String,
        /// The session the command names, if any.
        session: Option<SessionName>,
    },
}

/// Answers to [`Request`].
// One reply per request crosses the wire: the size of the enum does not
// matter, and boxing would only add noise at every construction.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// One session.
    Info {
        /// The session.
        session: SessionInfo,
    },
    /// Several sessions.
    List {
        /// The sessions.
        sessions: Vec<SessionInfo>,
    },
    /// Lines of text, oldest first.
    Text {
        /// Logical lines (soft wraps joined), trailing blanks trimmed.
        lines: Vec<String>,
    },
    /// The job ended.
    Exited {
        /// How.
        exit: JobExit,
    },
    /// Who is attached.
    Who {
        /// One entry per attachment.
        attachments: Vec<Presence>,
    },
    /// The request was carried out.
    Done,
    /// The host's side of `tether check`.
    Health {
        /// The facts.
        health: Health,
    },
    /// Where the evidence bundle was written.
    Snapshot {
        /// The bundle's directory.
        path: String,
    },
    /// An ended session's final screen, if one was recorded.
    FinalScreen {
        /// The screen.
        screen: Option<crate::store::FinalScreen>,
    },
}

/// One attachment, as `tether who --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// `client` (interactive) or `watcher` (read-only).
    pub kind: String,
    /// Key comment or local user name.
    pub identity: String,
    /// `SHA256:…` or null for a local client.
    pub fingerprint: Option<String>,
    /// The attachment's role.
    pub role: Role,
    /// Peer address or null for a local client.
    pub address: Option<String>,
    /// When it attached, RFC 3339 UTC.
    pub since: String,
}

/// A session as `tether ls --json` prints it (PRODUCT.md's schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session's name.
    pub name: SessionName,
    /// `running`, `ended`, or `lost` (the keeper died without recording an end).
    pub state: SessionState,
    /// Whether the session's processes are stopped by `tether freeze`.
    pub frozen: bool,
    /// The job's pid.
    pub pid: Option<u32>,
    /// The keeper's pid.
    pub keeper_pid: Option<u32>,
    /// The job's exit code; null while running or after a signal death.
    pub exit_code: Option<i32>,
    /// The signal that ended the job; null otherwise.
    pub signal: Option<i32>,
    /// RFC 3339 UTC.
    pub started: Option<String>,
    /// RFC 3339 UTC; null while running.
    pub ended: Option<String>,
    /// Current (or final) columns.
    pub cols: u16,
    /// Current (or final) rows.
    pub rows: u16,
    /// Interactive attachments.
    pub clients: u32,
    /// Read-only attachments.
    pub watchers: u32,
    /// `kill` needs `--force`.
    pub protected: bool,
    /// `ok`, `degraded` or `off`.
    pub recording: RecordingState,
    /// The recording file, when there is one.
    pub recording_path: Option<String>,
    /// The signed end of the recording, once the job has ended: kept
    /// outside the recording so that a cut file can be told from a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_end: Option<crate::record::Checkpoint>,
    /// The command the job runs (argv).
    #[serde(default)]
    pub command: Vec<String>,
    /// Who created the session (user name or key comment).
    #[serde(default)]
    pub owner: Option<String>,
    /// Watchers need an interactive client's consent.
    #[serde(default)]
    pub consent: bool,
    /// Why the keeper ended the session itself, when it was not the job's
    /// own doing: "keeper thread parser panicked: …". Set as soon as the
    /// keeper starts ending the session (so it survives even a keeper that
    /// then dies), null otherwise; always present in `ls --json`.
    #[serde(default)]
    pub end_reason: Option<String>,
    /// A `tether check` probe (see [`CreateRequest::probe`]); `false` in
    /// records written before this field.
    #[serde(default)]
    pub probe: bool,
    /// How far the archive has shipped the recording: `off` (no archive,
    /// or no recording), `pending` (nothing yet), `partial`, `done` (every
    /// segment and the end). Filled in by `ls`; never in a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<String>,
}

/// The lifecycle state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The keeper and the job are alive.
    Running,
    /// The job ended and the keeper recorded how.
    Ended,
    /// The keeper died without recording an end.
    Lost,
}

impl SessionState {
    /// The word used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Running => "running",
            SessionState::Ended => "ended",
            SessionState::Lost => "lost",
        }
    }
}

/// The state of a session's recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Every byte is being written.
    Ok,
    /// Writes are failing; the job runs on and a gap will be recorded.
    Degraded,
    /// Not recorded.
    Off,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The category, which decides the CLI's exit code.
    pub code: ErrorCode,
    /// One clear line for the human.
    pub message: String,
}

/// Error categories, mapped one to one onto PRODUCT.md's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Invalid input (exit 2).
    Invalid,
    /// No such session (exit 3).
    NoSuchSession,
    /// Name in use, protected session, already running (exit 4).
    Conflict,
    /// Not allowed (exit 5).
    Refused,
    /// Cannot reach the daemon, keeper or host (exit 6).
    Unavailable,
    /// Client and keeper speak different protocol versions (exit 6).
    VersionMismatch,
    /// A bug or an unexpected OS failure (exit 1).
    Internal,
}

impl ErrorCode {
    /// The CLI exit code for this category (PRODUCT.md).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::Invalid => 2,
            ErrorCode::NoSuchSession => 3,
            ErrorCode::Conflict => 4,
            ErrorCode::Refused => 5,
            ErrorCode::Unavailable | ErrorCode::VersionMismatch => 6,
            ErrorCode::Internal => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_size_is_sanitized() {
        let s = |c, r| WindowSize { cols: c, rows: r }.sanitized();
        assert_eq!(s(0, 0), WindowSize::DEFAULT);
        assert_eq!(s(65535, 3), WindowSize { cols: 1000, rows: 3 });
        assert_eq!(s(120, 0), WindowSize { cols: 120, rows: 24 });
    }

    #[test]
    fn exit_status_follows_shell_convention() {
        let e = |code, signal| JobExit { code, signal, ended: String::new() };
        assert_eq!(e(Some(3), None).status(), 3);
        assert_eq!(e(None, Some(9)).status(), 137);
        assert_eq!(e(None, Some(15)).describe(), "signal 15");
    }
}

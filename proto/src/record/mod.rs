//! The recording format: asciicast v3 with tether's extensions.
//!
//! One definition shared by the keeper's recorder, the replayer, `verify`
//! and any outside audit tool. See `docs/RECORDING.md` for the byte-level
//! description; [`v3`] encodes and decodes the lines of a segment, [`chain`]
//! is the hash chain, [`split`] cuts output into events without ever
//! splitting a UTF-8 character or dropping a byte. [`segment`] names a
//! recording's files; [`index`] and [`keyframe`] are the two sidecars that
//! make seeking fast.

pub mod base64;
pub mod chain;
pub mod index;
pub mod keyframe;
pub mod segment;
pub mod split;
pub mod v3;

/// What happened, with its time in seconds since the recording began.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the start of the recording (absolute, not the
    /// interval written to the file).
    pub time: f64,
    /// What.
    pub data: EventData,
}

/// The kinds of events.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// `o`: output, valid UTF-8.
    Output(String),
    /// `b` (tether): output bytes that are not valid UTF-8, exactly as the
    /// job wrote them. Players ignore the code; `export --format raw` keeps them.
    Bytes(Vec<u8>),
    /// `i`: input (only with `--record-input`; masked while echo is off).
    Input(String),
    /// `r`: the terminal was resized.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// `m`: a marker (attach, detach, watch…), with its label.
    Marker(String),
    /// `x`: the job's exit status.
    Exit(i32),
    /// `g` (tether): output lost while the disk refused writes.
    Gap(Gap),
    /// `t` (tether): the PTY's output processing changed. With `onlcr` the
    /// terminal turned each `\n` the job wrote into `\r\n`; `export
    /// --format raw` undoes that to give the bytes the job wrote.
    TtyMode {
        /// `OPOST` and `ONLCR` are on (the default for a new PTY).
        onlcr: bool,
    },
    /// `c` (tether): a command the shell ran, found from its OSC 133
    /// marks (docs/COMMANDS.md): one event when it starts, one when it
    /// ends. Players skip the code.
    Command(Command),
    /// Any other code, kept as read.
    Other(String, String),
}

/// What a `c` event says (its data is this, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Command {
    /// The command's number in the recording, from 1.
    pub n: u64,
    /// `start` or `end`.
    pub phase: Phase,
    /// The command line as the screen showed it when it started (start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The working directory the shell last reported (OSC 7), if any (start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Who typed it: the identity of the interactive client whose input
    /// last held an Enter (an SSH key's comment, or the local user) (start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// That client's key fingerprint (`SHA256:…`), over SSH (start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The exit status the shell reported (end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Output bytes (`o` and `b` data) before the mark: where in the
    /// output the command began or ended (the event itself may come a
    /// little later than that output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<u64>,
    /// Who wrote the marks: tether's shell integration, or anything else
    /// in the session (a prompt of the user's own, or a job printing them).
    pub marks: MarkSource,
}

/// A command event's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The command began (OSC 133 C).
    Start,
    /// It ended (OSC 133 D).
    End,
}

/// Who wrote a command's marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkSource {
    /// tether's shell integration: each mark carried the session's secret,
    /// which the keeper removed before anything else saw the output.
    Tether,
    /// Anything else: the marks are only as good as what printed them.
    Job,
}

/// What a gap event says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// Output bytes that could not be written.
    pub lost_bytes: u64,
    /// Events that could not be written.
    pub lost_events: u64,
    /// Seconds since the start when the loss began.
    pub since: f64,
}

/// tether's own part of the v3 header (under the `tether` key).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TetherHeader {
    /// The extension's format version (1).
    pub format: u32,
    /// The session's name.
    pub session: String,
    /// 0 for the first segment, then 1, 2, …
    pub segment: u32,
    /// When the recording began, RFC 3339 UTC (the same in every segment).
    pub started: String,
    /// `SHA256:…` of the key that signs the checkpoints.
    pub key: String,
    /// The chain head at the end of the previous segment, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// Seconds since the recording began at this segment's start.
    #[serde(default)]
    pub offset: f64,
}

/// A signed checkpoint: a `#tether:checkpoint {...}` or `#tether:end
/// {...}` comment line. It vouches for every event line before it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// 1, 2, 3… across the whole recording.
    pub seq: u64,
    /// Event lines in the whole recording so far.
    pub lines: u64,
    /// Event lines since the previous checkpoint.
    pub count: u64,
    /// Order-independent digest of those lines (sum of their SHA-256 mod
    /// 2^256), hex: tells reordering from modification.
    pub set: String,
    /// The chain head after the last line, hex.
    pub hash: String,
    /// Seconds since the start.
    pub time: f64,
    /// Wall-clock time, RFC 3339 UTC.
    pub wall: String,
    /// The job's exit status, on the end line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// SSHSIG (namespace `tether-recording`) over [`Checkpoint::message`],
    /// base64 of its binary encoding.
    pub sig: String,
}

/// The SSHSIG namespace of checkpoint signatures.
pub const SIG_NAMESPACE: &str = "tether-recording";

impl Checkpoint {
    /// The exact bytes the signature covers.
    pub fn message(&self, session: &str, end: bool) -> Vec<u8> {
        format!(
            "tether-checkpoint-v1\n{kind}\n{session}\n{}\n{}\n{}\n{}\n{}\n{:.6}\n{}\n{}\n",
            self.seq,
            self.lines,
            self.count,
            self.set,
            self.hash,
            self.time,
            self.wall,
            self.exit.map_or_else(String::new, |e| e.to_string()),
            kind = if end { "end" } else { "checkpoint" },
        )
        .into_bytes()
    }
}

/// The comment prefix of checkpoint lines.
pub const CHECKPOINT_PREFIX: &str = "#tether:checkpoint ";
/// The comment prefix of the final line.
pub const END_PREFIX: &str = "#tether:end ";

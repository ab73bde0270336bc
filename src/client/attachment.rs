//! One attachment to a session, as a state machine with no I/O: the local
//! client ([`super::attach`]) and the SSH bridge (`sshd::bridge`) both
//! drive it, so that what a user sees and what reaches the job cannot
//! differ between them.
//!
//! ```text
//!   start ──Attach──▶ keeper          on_reply(AttachReply) ─▶ Attached
//!   Attached: on_keeper(Output|Redraw|Resize|Notice|Exit) ─▶ terminal bytes
//!             on_input(bytes) ─▶ Input for the keeper (interactive only),
//!                                or leave (detach key, twice = send once)
//!             on_terminal_resized ─▶ Resize (interactive) or a repaint (watcher)
//!             paint(now) ─▶ a watcher's frame, at most every FRAME_INTERVAL
//!   leave()  ─▶ Detach for the keeper; reset + "[detached from NAME]"
//!   closed() ─▶ reset + "[session NAME ended: …]" (or Lost)
//! ```
//!
//! Every way out puts the user's terminal back: an interactive client
//! undoes the modes the job turned on (tracked from the output it was
//! given), a watcher leaves the view's alternate screen. [`ended_screen`]
//! is the same for a session that had already ended when the user came.

use crate::Failure;
use crate::term::detach::DetachKey;
use crate::term::scan::ModeTracker;
use crate::term::view::{self, WatchView};
use std::time::{Duration, Instant};
use tether_proto::store::FinalScreen;
use tether_proto::{
    AttachMode, AttachReply, AttachRequest, ErrorCode, ErrorReply, Identity, JobExit, Message,
    SessionInfo, SessionName, SessionState, WindowSize,
};

/// Watchers' views are repainted at most this often: enough to follow a
/// session, cheap even over a slow link.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(50);

/// What one attachment is.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The session.
    pub name: SessionName,
    /// Interactive or read-only.
    pub mode: AttachMode,
    /// Who attaches, as the keeper will show and record it.
    pub identity: Identity,
    /// The detach key's byte (0: none).
    pub detach_key: u8,
    /// How the detach key is written, for a watcher's status line.
    pub detach_name: String,
    /// The user's terminal size.
    pub size: WindowSize,
    /// The user's terminal type (`TERM`), if known.
    pub term: Option<String>,
}

/// How an attachment ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The user detached (key, closed terminal or connection, signal).
    Detached,
    /// The job ended.
    Ended(JobExit),
    /// The keeper went away without saying how the job ended.
    Lost,
}

impl Outcome {
    /// The exit status of the command that attached: 0 for a detach, the
    /// job's for its end, 6 when the keeper was lost.
    pub fn status(&self) -> i32 {
        match self {
            Outcome::Detached => 0,
            Outcome::Ended(exit) => exit.status(),
            Outcome::Lost => tether_proto::ErrorCode::Unavailable.exit_code(),
        }
    }
}

/// The keeper's answer to the attach request.
#[derive(Debug)]
pub enum Start {
    /// Attached: write these bytes to the terminal, then pump.
    Attached(Vec<u8>),
    /// The keeper refused (its reason decides the exit code).
    Refused(ErrorReply),
    /// The keeper closed without answering.
    Lost,
}

/// What to do with a chunk the user typed.
#[derive(Debug, Default, PartialEq)]
pub struct Typed {
    /// A message for the keeper (interactive attachments only).
    pub to_keeper: Option<Message>,
    /// The user asked to leave: call [`Attachment::leave`].
    pub leave: bool,
}

/// The state of one attachment.
pub struct Attachment {
    settings: Settings,
    detach: DetachKey,
    /// The modes the job's output turned on in the user's terminal.
    tracker: ModeTracker,
    /// A watcher's rendered view (read-only attachments only).
    view: Option<WatchView>,
    /// The view changed since it was last painted.
    dirty: bool,
    last_frame: Option<Instant>,
    ended: Option<JobExit>,
}

impl Attachment {
    /// A new attachment and the request that starts it.
    pub fn start(settings: Settings) -> (Attachment, Message) {
        let request = Message::Attach(AttachRequest {
            mode: settings.mode,
            size: settings.size,
            identity: settings.identity.clone(),
            term: settings.term.clone(),
        });
        let attachment = Attachment {
            detach: DetachKey::new(settings.detach_key),
            settings,
            tracker: ModeTracker::new(),
            view: None,
            dirty: false,
            last_frame: None,
            ended: None,
        };
        (attachment, request)
    }

    /// The session.
    pub fn name(&self) -> &SessionName {
        &self.settings.name
    }

    /// Whether this is a read-only attachment.
    pub fn read_only(&self) -> bool {
        self.settings.mode == AttachMode::ReadOnly
    }

    /// The keeper's first message after the request (`None`: it closed).
    pub fn on_reply(&mut self, reply: Option<Message>) -> Start {
        let session = match reply {
            Some(Message::AttachReply(AttachReply { session })) => session,
            Some(Message::Error(e)) => return Start::Refused(e),
            _ => return Start::Lost,
        };
        if !self.read_only() {
            return Start::Attached(Vec::new());
        }
        let size = WindowSize { cols: session.cols, rows: session.rows };
        let owner = session.owner.clone().unwrap_or_else(|| "?".into());
        let mut v = WatchView::new(
            self.settings.name.as_str(),
            &owner,
            size,
            self.settings.size,
            &self.settings.detach_name,
        );
        v.set_watchers(session.watchers.max(1));
        self.view = Some(v);
        Start::Attached(view::ENTER.as_bytes().to_vec())
    }

    /// A message from the keeper; bytes for the terminal go to `terminal`.
    pub fn on_keeper(&mut self, msg: Message, terminal: &mut Vec<u8>) {
        match (msg, &mut self.view) {
            (Message::Output(bytes) | Message::Redraw(bytes), Some(view)) => {
                view.feed(&bytes);
                self.dirty = true;
            }
            (Message::Output(bytes) | Message::Redraw(bytes), None) => {
                self.tracker.feed(&bytes);
                terminal.extend_from_slice(&bytes);
            }
            (Message::Resize(size), Some(view)) => {
                view.session_resized(size);
                self.dirty = true;
            }
            (Message::Notice(n), Some(view)) => {
                if let Some(w) = n.watchers {
                    view.set_watchers(w);
                }
                view.set_note(Some(n.text));
                self.dirty = true;
            }
            (Message::Exit(exit), _) => self.ended = Some(exit),
            _ => {}
        }
    }

    /// Bytes the user typed at `now`.
    pub fn on_input(&mut self, bytes: &[u8], now: Instant) -> Typed {
        let step = self.detach.feed(bytes, now);
        // Read-only: nothing typed is sent at all.
        let to_keeper = (!step.forward.is_empty() && !self.read_only())
            .then(|| Message::Input(step.forward.into()));
        Typed { to_keeper, leave: step.detach }
    }

    /// The user's terminal changed size: a resize for the keeper from an
    /// interactive client; watchers never resize the session.
    pub fn on_terminal_resized(&mut self, size: WindowSize) -> Option<Message> {
        self.settings.size = size;
        match &mut self.view {
            Some(view) => {
                view.terminal_resized(size);
                self.dirty = true;
                None
            }
            None => Some(Message::Resize(size)),
        }
    }

    /// When the driver must call [`Attachment::tick`] or
    /// [`Attachment::paint`] next, if nothing else happens first.
    pub fn deadline(&self) -> Option<Instant> {
        let frame =
            self.dirty.then(|| self.last_frame.map_or_else(Instant::now, |t| t + FRAME_INTERVAL));
        [self.detach.deadline(), frame].into_iter().flatten().min()
    }

    /// Time passed: `true` when a lone detach-key press has now waited
    /// long enough (call [`Attachment::leave`]).
    pub fn tick(&mut self, now: Instant) -> bool {
        self.detach.tick(now).detach
    }

    /// A watcher's frame, if its view changed and the last frame is at
    /// least [`FRAME_INTERVAL`] old.
    pub fn paint(&mut self, now: Instant) -> Option<Vec<u8>> {
        let view = self.view.as_ref()?;
        if !self.dirty || self.last_frame.is_some_and(|t| now < t + FRAME_INTERVAL) {
            return None;
        }
        self.dirty = false;
        self.last_frame = Some(now);
        Some(view.frame())
    }

    /// What puts the user's terminal back as it was before attaching.
    fn reset(&self) -> Vec<u8> {
        match &self.view {
            Some(_) => view::LEAVE.as_bytes().to_vec(),
            None => self.tracker.modes().reset_sequence().into_bytes(),
        }
    }

    /// The user leaves: a detach for the keeper, and the bytes that reset
    /// the terminal and say so.
    pub fn leave(&mut self) -> (Message, Vec<u8>, Outcome) {
        let mut out = self.reset();
        out.extend_from_slice(format!("\r\n[detached from {}]\r\n", self.settings.name).as_bytes());
        (Message::Detach, out, Outcome::Detached)
    }

    /// The keeper closed the connection: the job ended (it said how just
    /// before) or the keeper died. The bytes show a watcher the last
    /// state, reset the terminal and say what happened.
    pub fn closed(&mut self) -> (Vec<u8>, Outcome) {
        let mut out = Vec::new();
        if let Some(view) = &self.view
            && self.dirty
        {
            out.extend_from_slice(&view.frame());
        }
        out.extend_from_slice(&self.reset());
        match self.ended.take() {
            Some(exit) => {
                let text =
                    format!("\r\n[session {} ended: {}]\r\n", self.settings.name, exit.describe());
                out.extend_from_slice(text.as_bytes());
                (out, Outcome::Ended(exit))
            }
            None => (out, Outcome::Lost),
        }
    }
}

/// Why an attachment could not start, decided from the session's record
/// as read after the failure: `Ok` with the record of a session that has
/// ended (show it with [`ended_screen`]), else the error to report.
///
/// # Errors
///
/// The refusal, "no such session", "lost", or `err` itself.
pub fn explain_failure(
    name: &SessionName,
    record: Option<SessionInfo>,
    err: anyhow::Error,
) -> anyhow::Result<SessionInfo> {
    if crate::error::exit_code(&err) == ErrorCode::Refused.exit_code() {
        return Err(err);
    }
    match record {
        None => Err(Failure::no_such_session(name).into()),
        Some(info) if info.state == SessionState::Ended => Ok(info),
        Some(info) if info.state == SessionState::Lost => Err(lost(name).into()),
        Some(_) => Err(err),
    }
}

/// A session whose keeper died without recording an end.
pub fn lost(name: &SessionName) -> Failure {
    Failure::unavailable(format!(
        "session {name} was lost (its keeper died); `tether rm {name}` forgets it"
    ))
}

/// How an ended session's job ended, from its record.
pub fn exit_of(info: &SessionInfo) -> JobExit {
    JobExit {
        code: info.exit_code,
        signal: info.signal,
        ended: info.ended.clone().unwrap_or_default(),
    }
}

/// The message for an attachment whose keeper went away unannounced.
pub fn lost_message(name: &SessionName) -> String {
    format!("lost the connection to the keeper of session {name}")
}

/// Attaching to a session that had already ended: its final screen, the
/// terminal put back (the job may have left modes on), and how it ended.
/// A read-only client (`mode`) gets the screen drawn by tether
/// ([`view::still`]), as a watcher's view always is: the final redraw
/// would carry the job's window title and modes to the viewer.
pub fn ended_screen(info: &SessionInfo, screen: Option<&FinalScreen>, mode: AttachMode) -> Vec<u8> {
    use crate::term::text::visible;
    let (name, exit, ended_at) = (&info.name, exit_of(info), info.ended.as_deref());
    let mut out = Vec::new();
    match screen {
        Some(screen) if mode == AttachMode::ReadOnly => {
            let size = WindowSize { cols: info.cols, rows: info.rows };
            out.extend_from_slice(&view::still(screen.redraw.as_bytes(), size));
        }
        Some(screen) => {
            out.extend_from_slice(screen.redraw.as_bytes());
            let mut tracker = ModeTracker::new();
            tracker.feed(screen.redraw.as_bytes());
            out.extend_from_slice(tracker.modes().reset_sequence().as_bytes());
        }
        None => {}
    }
    let why = info.end_reason.as_ref().map(|r| format!(" ({})", visible(r))).unwrap_or_default();
    let text = format!(
        "\r\n[session {name} ended: {} at {}{why}]\r\n",
        exit.describe(),
        visible(ended_at.unwrap_or("an unknown time"))
    );
    out.extend_from_slice(text.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tether_proto::{Notice, Role};

    fn settings(mode: AttachMode) -> Settings {
        Settings {
            name: SessionName::new("s").unwrap(),
            mode,
            identity: Identity {
                name: "me".into(),
                fingerprint: None,
                role: Role::Owner,
                address: None,
            },
            detach_key: 0x1c,
            detach_name: "Ctrl-\\".into(),
            size: WindowSize { cols: 40, rows: 10 },
            term: None,
        }
    }

    fn info() -> SessionInfo {
        serde_json::from_value(serde_json::json!({
            "name": "s", "state": "running", "frozen": false, "pid": 1, "keeper_pid": 2,
            "exit_code": null, "signal": null, "started": null, "ended": null, "cols": 40,
            "rows": 10, "clients": 1, "watchers": 1, "protected": false, "recording": "off",
            "recording_path": null, "command": ["sh"]
        }))
        .unwrap()
    }

    fn reply() -> Option<Message> {
        Some(Message::AttachReply(AttachReply { session: info() }))
    }

    #[test]
    fn interactive_passes_bytes_both_ways_and_resets_modes_on_leaving() {
        let (mut a, req) = Attachment::start(settings(AttachMode::Interactive));
        assert!(matches!(req, Message::Attach(r) if r.mode == AttachMode::Interactive));
        assert!(matches!(a.on_reply(reply()), Start::Attached(b) if b.is_empty()));
        let mut term = Vec::new();
        a.on_keeper(Message::Output(Bytes::from_static(b"\x1b[?1049h\x1b[?2004hvim")), &mut term);
        assert_eq!(term, b"\x1b[?1049h\x1b[?2004hvim");
        let now = Instant::now();
        let typed = a.on_input(b"ls\r", now);
        assert_eq!(typed.to_keeper, Some(Message::Input(Bytes::from_static(b"ls\r"))));
        assert_eq!(
            a.on_terminal_resized(WindowSize { cols: 50, rows: 20 }),
            Some(Message::Resize(WindowSize { cols: 50, rows: 20 }))
        );
        // The detach key twice sends it once; once (then a pause) leaves.
        let twice = a.on_input(b"\x1c\x1c", now);
        assert_eq!(twice.to_keeper, Some(Message::Input(Bytes::from_static(b"\x1c"))));
        assert!(!a.on_input(b"\x1c", now).leave);
        assert!(a.deadline().is_some());
        assert!(a.tick(now + Duration::from_secs(1)));
        let (msg, out, outcome) = a.leave();
        assert_eq!((msg, outcome), (Message::Detach, Outcome::Detached));
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("\x1b[?2004l") && out.contains("\x1b[?1049l"), "{out:?}");
        assert!(out.ends_with("[detached from s]\r\n"));
    }

    #[test]
    fn the_job_ending_resets_the_terminal_too() {
        let (mut a, _) = Attachment::start(settings(AttachMode::Interactive));
        a.on_reply(reply());
        let mut term = Vec::new();
        a.on_keeper(Message::Output(Bytes::from_static(b"\x1b[?1000h\x1b[?25l")), &mut term);
        a.on_keeper(
            Message::Exit(JobExit { code: Some(3), signal: None, ended: String::new() }),
            &mut term,
        );
        let (out, outcome) = a.closed();
        assert_eq!(
            outcome,
            Outcome::Ended(JobExit { code: Some(3), signal: None, ended: String::new() })
        );
        assert_eq!(outcome.status(), 3);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("\x1b[?1000l") && out.contains("\x1b[?25h"), "{out:?}");
        assert!(out.ends_with("[session s ended: exit code 3]\r\n"));
        let (mut b, _) = Attachment::start(settings(AttachMode::Interactive));
        b.on_reply(reply());
        assert_eq!(b.closed().1, Outcome::Lost);
        assert_eq!(Outcome::Lost.status(), 6);
    }

    #[test]
    fn a_watcher_never_types_never_resizes_and_sees_a_rendered_view() {
        let (mut a, req) = Attachment::start(settings(AttachMode::ReadOnly));
        assert!(matches!(req, Message::Attach(r) if r.mode == AttachMode::ReadOnly));
        let Start::Attached(enter) = a.on_reply(reply()) else { panic!() };
        assert_eq!(enter, view::ENTER.as_bytes());
        let mut term = Vec::new();
        a.on_keeper(Message::Output(Bytes::from_static(b"\x1b]52;c;aGk=\x07secret")), &mut term);
        assert!(term.is_empty(), "raw output reached a watcher");
        assert_eq!(a.on_input(b"rm -rf /\r", Instant::now()).to_keeper, None);
        assert_eq!(a.on_terminal_resized(WindowSize { cols: 30, rows: 8 }), None);
        let now = Instant::now();
        let frame = String::from_utf8(a.paint(now).unwrap()).unwrap();
        assert!(frame.contains("secret") && !frame.contains("52;"), "{frame:?}");
        assert!(a.paint(now).is_none(), "painted twice without a change");
        a.on_keeper(
            Message::Notice(Notice { text: "bob joined".into(), clients: None, watchers: Some(2) }),
            &mut term,
        );
        assert!(a.paint(now).is_none(), "painted within the frame interval");
        assert!(a.paint(now + FRAME_INTERVAL).is_some());
        let (_, out, _) = a.leave();
        assert!(String::from_utf8(out).unwrap().starts_with(view::LEAVE));
    }

    #[test]
    fn refusals_and_silence_are_told_apart() {
        let (mut a, _) = Attachment::start(settings(AttachMode::ReadOnly));
        let refusal = ErrorReply { code: tether_proto::ErrorCode::Refused, message: "no".into() };
        assert!(matches!(a.on_reply(Some(Message::Error(refusal))), Start::Refused(_)));
        assert!(matches!(a.on_reply(None), Start::Lost));
    }

    #[test]
    fn an_ended_session_shows_its_screen_and_resets_what_it_left_on() {
        let screen = FinalScreen {
            redraw: "\x1b[?1049h\x1b[?1000h\x1b[?2004hbye".into(),
            text: vec!["bye".into()],
        };
        let mut record = info();
        record.state = SessionState::Ended;
        record.signal = Some(9);
        record.ended = Some("2026-12-06T00:00:00Z".into());
        let out = ended_screen(&record, Some(&screen), AttachMode::Interactive);
        let out = String::from_utf8(out).unwrap();
        let reset = out.find("\x1b[?1000l").expect("mouse mode left on");
        assert!(reset > out.find("bye").unwrap());
        assert!(out.contains("\x1b[?2004l") && out.contains("\x1b[?1049l"), "{out:?}");
        assert!(out.ends_with("[session s ended: signal 9 at 2026-12-06T00:00:00Z]\r\n"));
        // A watcher gets the screen drawn by tether: no title, no modes.
        let titled = FinalScreen { redraw: format!("\x1b]2;EVIL\x07{}", screen.redraw), ..screen };
        let out = ended_screen(&record, Some(&titled), AttachMode::ReadOnly);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("bye") && !out.contains("EVIL") && !out.contains("\x1b[?"), "{out:?}");
    }
}

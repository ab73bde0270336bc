//! The keeper: one process per session, owning the PTY, the job, the
//! screen model and the attachments.
//!
//! ```text
//!            ┌──────────── keeper process (tether-keeper) ──────────────┐
//!  job ─PTY─▶│ pty-reader: read → route → live outboxes ────────────────│──▶ clients
//!            │             └──▶ recorder (lossless)                     │
//!            │             └──▶ backlog → parser: Screen::feed          │
//!            │                    └──▶ outboxes catching up ────────────│──▶ clients
//!  job ◀─PTY─│ pty-writer: input queue → PTY                            │◀── clients
//!            │ accept: one thread pair per connection (conn.rs)         │
//!            │ main thread: reaps the job, records the end, exits       │
//!            │ supervisor: a thread panicked → end the session (kill)   │
//!            └──────────────────────────────────────────────────────────┘
//! ```
//!
//! The reader never waits for a client or for the screen model: outboxes
//! are bounded and lossy (resync by redraw), and live attachments get
//! output straight from the reader (stream.rs explains when an attachment
//! is live and when it catches up behind the parser). Locks are held only
//! for in-memory work.
//!
//! Started by [`launch`] fully detached (own session id, stdio on
//! `/dev/null` and a log file), it depends on no other tether process.

pub mod backlog;
pub mod capture;
pub mod conn;
pub mod fanout;
pub mod input;
pub mod launch;
pub mod marks;
mod output;
pub mod panics;
pub mod presence;
pub mod pty;
pub mod stream;

use crate::Failure;
use crate::clock::now_rfc3339;
use crate::paths::Paths;
use crate::recorder::Recorder;
use crate::term::screen::Screen;
use bytes::Bytes;
use fanout::Outbox;
use pty::{ExitStatus, Job};
use rustix::process::Signal;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use stream::{Stream, Subscriber};
use tether_proto::store::{self, FinalScreen};
use tether_proto::{
    AttachMode, AttachReply, AttachRequest, Identity, JobExit, Message, Presence, RecordingState,
    SessionInfo, SessionName, SessionState, WindowSize,
};

/// How long `kill` waits after SIGHUP before it sends SIGKILL: enough for a
/// shell to pass the hangup on and for programs to save their state.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// How long `kill` waits after SIGKILL (the kernel needs a moment to reap).
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Facts fixed at session creation.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The session's name.
    pub name: SessionName,
    /// The job's argv.
    pub command: Vec<String>,
    /// `kill` needs `--force`.
    pub protected: bool,
    /// RFC 3339 UTC.
    pub started: String,
    /// Who created it.
    pub owner: String,
    /// A `tether check` probe.
    pub probe: bool,
}

/// One attachment (interactive client or watcher).
struct Attachment {
    id: u64,
    mode: AttachMode,
    identity: Identity,
    /// The session the attaching process runs inside, if any (local
    /// attachments only: the daemon audits its own).
    origin: Option<crate::session::origin::Origin>,
    since: String,
    size: WindowSize,
    /// What its terminal can draw beyond the common set (from its TERM).
    caps: crate::term::redraw::Caps,
    outbox: Arc<Outbox>,
}

/// Everything that changes, behind [`Keeper::state`].
struct State {
    screen: Screen,
    attachments: Vec<Attachment>,
    /// `tail -f` connections: notified of output, not counted as attached.
    followers: Vec<Arc<Outbox>>,
    /// Watch requests waiting for an interactive client's consent, oldest
    /// first; the first is the one on screen.
    consents: std::collections::VecDeque<presence::Consent>,
    next_id: u64,
    /// The most recently active interactive attachment: its size wins, and
    /// it alone sees queries only one terminal should answer.
    active: Option<u64>,
    /// Set once, when the job has ended and its end is recorded.
    exit: Option<JobExit>,
    /// Writer threads still sending to clients.
    writers: usize,
    /// Output bytes the parser has taken (for keyframes).
    parsed: u64,
    /// Attachments catching up behind the live stream: the parser feeds
    /// them until it has caught up with the reader (stream.rs).
    catchup: Vec<Subscriber>,
    /// When the next keyframe is due.
    next_keyframe: u64,
    /// The recording's signed end, once written.
    recording_end: Option<tether_proto::record::Checkpoint>,
    /// The session's processes are stopped by `freeze`.
    frozen: bool,
    /// Why the keeper is ending the session itself (a thread panicked).
    end_reason: Option<String>,
    /// Who last pressed Enter (an interactive client whose input held a
    /// carriage return or newline): name and key fingerprint.
    enter_by: Option<(String, Option<String>)>,
    /// Commands begun so far (the shell's marks).
    commands: u64,
}

/// The pieces a keeper is built from.
pub struct Parts {
    /// Facts fixed at creation.
    pub meta: Meta,
    /// Where things live.
    pub paths: Paths,
    /// The job.
    pub job: Job,
    /// The screen model.
    pub screen: Screen,
    /// The way into the job's terminal.
    pub input: input::PtyInput,
    /// The recording, if the session is recorded.
    pub recorder: Option<Recorder>,
    /// Record input events.
    pub record_input: bool,
    /// The shell integration's mark secret, when the job has it.
    pub marks: Option<Arc<marks::MarkSecret>>,
    /// The shell's start-up file (removed when the keeper ends, if the
    /// shell did not remove it).
    pub startup: Option<std::path::PathBuf>,
    /// Send watchers the sequences that act on a viewer's machine too.
    pub watchers_unsafe_ok: bool,
    /// What interactive clients get of those (the screen's routing must
    /// have the same setting).
    pub passthrough: crate::term::scan::Passthrough,
    /// `new --consent`: watchers wait for an interactive client's yes.
    pub consent: bool,
}

/// Output parsed between keyframes for the recording's seek index: seeking
/// replays at most this much.
const KEYFRAME_EVERY: u64 = 4 << 20;

/// A session's keeper, shared by all its threads.
pub struct Keeper {
    meta: Meta,
    paths: Paths,
    job: Job,
    /// The recording; `None` when not recorded or when it could not start.
    recorder: Option<Recorder>,
    record_input: bool,
    watchers_unsafe_ok: bool,
    consent: bool,
    /// The shell integration's mark secret, when the job has it.
    pub(crate) marks: Option<Arc<marks::MarkSecret>>,
    /// The shell's start-up file, removed when the keeper ends.
    pub(crate) startup: Option<std::path::PathBuf>,
    /// Held by the parser for each read it interprets, and by control
    /// operations.
    state: Mutex<State>,
    /// The live fan-out: held by the reader for each read (never waiting
    /// for the parser), and briefly by whoever (re)subscribes an
    /// attachment. Taken after `state` when both are needed.
    stream: Mutex<Stream>,
    /// Signalled when the job's end is recorded and when a writer finishes.
    changed: Condvar,
    /// The way into the job's terminal: a job that does not read its input
    /// stalls only the clients typing at it.
    pub(crate) input: input::PtyInput,
    /// Serialises record file writes so the newest state always lands last.
    record_write: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent between
    // statements, so a panicking thread does not make it unusable: the
    // supervisor (panics.rs) can still end the session cleanly.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Keeper {
    /// A keeper for a job that has just started.
    pub fn new(parts: Parts) -> Self {
        let state = State {
            screen: parts.screen,
            attachments: Vec::new(),
            followers: Vec::new(),
            next_id: 1,
            active: None,
            exit: None,
            writers: 0,
            parsed: 0,
            catchup: Vec::new(),
            next_keyframe: KEYFRAME_EVERY,
            recording_end: None,
            consents: std::collections::VecDeque::new(),
            frozen: false,
            end_reason: None,
            enter_by: None,
            commands: 0,
        };
        Keeper {
            meta: parts.meta,
            paths: parts.paths,
            job: parts.job,
            recorder: parts.recorder,
            record_input: parts.record_input,
            watchers_unsafe_ok: parts.watchers_unsafe_ok,
            consent: parts.consent,
            marks: parts.marks,
            startup: parts.startup,
            state: Mutex::new(state),
            stream: Mutex::new(Stream::new(parts.passthrough)),
            changed: Condvar::new(),
            input: parts.input,
            record_write: Mutex::new(()),
        }
    }

    /// The session's name.
    pub fn name(&self) -> &SessionName {
        &self.meta.name
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn info_of(&self, st: &State) -> SessionInfo {
        let size = st.screen.size();
        let count = |m| st.attachments.iter().filter(|a| a.mode == m).count() as u32;
        SessionInfo {
            name: self.meta.name.clone(),
            state: if st.exit.is_some() { SessionState::Ended } else { SessionState::Running },
            frozen: st.frozen,
            pid: Some(self.job.pid),
            keeper_pid: Some(std::process::id()),
            exit_code: st.exit.as_ref().and_then(|e| e.code),
            signal: st.exit.as_ref().and_then(|e| e.signal),
            started: Some(self.meta.started.clone()),
            ended: st.exit.as_ref().map(|e| e.ended.clone()),
            cols: size.cols,
            rows: size.rows,
            clients: count(AttachMode::Interactive),
            watchers: count(AttachMode::ReadOnly),
            protected: self.meta.protected,
            recording: self.recorder.as_ref().map_or(RecordingState::Off, Recorder::state),
            recording_path: self.recorder.as_ref().map(|r| r.path().display().to_string()),
            recording_end: st.recording_end.clone(),
            command: self.meta.command.clone(),
            owner: Some(self.meta.owner.clone()),
            consent: self.consent,
            end_reason: st.end_reason.clone(),
            probe: self.meta.probe,
            archived: None,
        }
    }

    /// The session as `ls` shows it.
    pub fn info(&self) -> SessionInfo {
        self.info_of(&self.state())
    }

    /// Writes the session record with the current state.
    pub fn save_record(&self) {
        let _serial = lock(&self.record_write);
        let info = self.info();
        if let Err(e) = write_record(&self.paths, &info) {
            tracing::error!("writing the session record: {e:#}");
        }
    }

    /// Adds a marker to the recording.
    pub(crate) fn mark(&self, label: String) {
        if let Some(r) = &self.recorder {
            r.marker(label);
        }
    }

    /// The session the process `peer` runs inside, if it descends from a
    /// keeper (`session::origin`): requests made by a job are marked so.
    pub(crate) fn origin_of(&self, peer: u32) -> Option<crate::session::origin::Origin> {
        crate::session::origin::of_process(peer, &self.paths)
    }

    /// Audits a local attachment's coming or going, marked when it was
    /// asked from inside a session (`origin`). Attachments through the
    /// daemon (which carry an address) are audited by the daemon, with
    /// their key.
    pub(crate) fn audit_local(
        &self,
        event: crate::audit::Event,
        who: &Identity,
        origin: Option<&crate::session::origin::Origin>,
    ) {
        if who.address.is_some() {
            return;
        }
        let entry = crate::audit::Entry {
            session: Some(self.name().to_string()),
            comment: Some(who.name.clone()),
            role: Some(who.role),
            from_session: origin.map(|o| o.session.clone()),
            started_by: origin.and_then(|o| o.started_by.clone()),
            ..crate::audit::Entry::new(event)
        };
        crate::audit::AuditLog::new(self.paths.state_dir.join("audit.jsonl")).record(&entry);
    }

    /// Registers an attachment. Its outbox receives the attach reply and a
    /// full redraw first, queued under the state lock so that the live
    /// stream continues exactly where the redraw ends.
    ///
    /// # Errors
    ///
    /// The job has already ended.
    pub fn attach(
        self: &Arc<Self>,
        req: &AttachRequest,
        outbox: &Arc<Outbox>,
        peer: u32,
    ) -> Result<u64, Failure> {
        // Looked up outside the lock: it reads /proc and the records, and
        // the client's terminfo entry.
        let origin = req.identity.address.is_none().then(|| self.origin_of(peer)).flatten();
        let caps = crate::term::terminfo::caps(req.term.as_deref());
        let id = {
            let mut st = self.state();
            if st.exit.is_some() {
                return Err(Failure::no_such_session(format!("{} (it has ended)", self.name())));
            }
            let id = st.next_id;
            st.next_id += 1;
            let size = req.size.sanitized();
            st.attachments.push(Attachment {
                id,
                mode: req.mode,
                identity: req.identity.clone(),
                origin: origin.clone(),
                since: now_rfc3339(),
                size,
                caps,
                outbox: outbox.clone(),
            });
            if req.mode == AttachMode::Interactive {
                // Attaching counts as activity: the newcomer's size wins.
                self.set_active(&mut st, Some(id));
                self.apply_size(&mut st, size);
            }
            let session = self.info_of(&st);
            let reply = Message::AttachReply(AttachReply { session });
            self.restart_stream(&mut st, id, vec![reply]);
            if req.mode == AttachMode::Interactive {
                // A pending watch request is shown to every client that can answer it.
                self.show_prompt(&st, outbox);
            } else {
                self.announce(&st, &format!("{} is watching", describe_identity(&req.identity)));
            }
            id
        };
        tracing::info!(id, identity = %req.identity.name, mode = ?req.mode, "attached");
        let verb = if req.mode == AttachMode::ReadOnly { "watch" } else { "attach" };
        self.mark(format!("{verb} {}", describe_identity(&req.identity)));
        let event = if req.mode == AttachMode::ReadOnly {
            crate::audit::Event::Watch
        } else {
            crate::audit::Event::Attach
        };
        self.audit_local(event, &req.identity, origin.as_ref());
        self.save_record();
        Ok(id)
    }

    /// Removes an attachment (idempotent).
    pub fn detach(self: &Arc<Self>, id: u64) {
        let removed = {
            let mut st = self.state();
            let gone =
                st.attachments.iter().position(|a| a.id == id).map(|i| st.attachments.remove(i));
            st.catchup.retain(|s| s.id != id);
            lock(&self.stream).remove(id);
            if st.active == Some(id) {
                self.set_active(&mut st, None);
            }
            if let Some(a) = gone.as_ref().filter(|a| a.mode == AttachMode::ReadOnly) {
                self.announce(&st, &format!("{} stopped watching", describe_identity(&a.identity)));
            }
            gone
        };
        if let Some(a) = removed {
            tracing::info!(id, "detached");
            let verb = if a.mode == AttachMode::ReadOnly { "unwatch" } else { "detach" };
            self.mark(format!("{verb} {}", describe_identity(&a.identity)));
            let event = if a.mode == AttachMode::ReadOnly {
                crate::audit::Event::Unwatch
            } else {
                crate::audit::Event::Detach
            };
            self.audit_local(event, &a.identity, a.origin.as_ref());
            self.save_record();
        }
    }

    /// Input from attachment `id`. Input from read-only attachments is
    /// dropped here, the one place input enters the job.
    pub fn input_from(self: &Arc<Self>, id: u64, bytes: Bytes) {
        let resized = {
            let mut st = self.state();
            let Some(a) = st.attachments.iter().find(|a| a.id == id) else { return };
            if a.mode != AttachMode::Interactive {
                return;
            }
            let size = a.size;
            if bytes.iter().any(|b| matches!(b, b'\r' | b'\n')) {
                st.enter_by = Some((a.identity.name.clone(), a.identity.fingerprint.clone()));
            }
            // A y or n while a watch request is on screen answers it.
            if self.answer_prompt(&mut st, &bytes) {
                return;
            }
            st.active != Some(id) && {
                self.set_active(&mut st, Some(id));
                self.apply_size(&mut st, size)
            }
        };
        if resized {
            self.save_record();
        }
        if self.record_input
            && let Some(r) = &self.recorder
        {
            let text = String::from_utf8_lossy(&bytes);
            // A terminal that does not echo is asking for a secret: keep the
            // count and the timing, not the characters.
            let text = if self.job.echo_off() {
                "*".repeat(text.chars().count())
            } else {
                text.into_owned()
            };
            r.input(text);
        }
        // Blocks only this client's connection thread when the job does
        // not read its input.
        self.input.send(bytes, || self.job.input_ready());
    }

    /// Attachment `id`'s terminal changed size.
    pub fn resize_from(&self, id: u64, size: WindowSize) {
        let size = size.sanitized();
        let resized = {
            let mut st = self.state();
            let active = st.active;
            let Some(a) = st.attachments.iter_mut().find(|a| a.id == id) else { return };
            a.size = size;
            a.mode == AttachMode::Interactive
                && active == Some(id)
                && self.apply_size(&mut st, size)
        };
        if resized {
            self.save_record();
        }
    }

    /// Resizes the screen and the PTY; returns whether the size changed.
    fn apply_size(&self, st: &mut State, size: WindowSize) -> bool {
        if st.screen.size() == size {
            return false;
        }
        st.screen.resize(size);
        self.job.resize(size);
        for a in st.attachments.iter().filter(|a| a.mode == AttachMode::ReadOnly) {
            a.outbox.push_control(Message::Resize(size));
        }
        if let Some(r) = &self.recorder {
            r.resize(size.cols, size.rows);
        }
        true
    }

    /// The session's text (history and screen).
    pub fn text(&self, lines: Option<usize>) -> Vec<String> {
        self.state().screen.text(lines)
    }

    /// Starts following completed lines: registers `outbox` for change
    /// notifications and returns the last `lines` completed lines and the
    /// position to continue from. `None` if the job has ended.
    pub fn follow(&self, outbox: &Arc<Outbox>, lines: Option<usize>) -> Option<(Vec<String>, u64)> {
        let mut st = self.state();
        if st.exit.is_some() {
            return None;
        }
        st.followers.push(outbox.clone());
        let (mut text, next) = st.screen.completed_lines(0, false);
        if let Some(n) = lines {
            text.drain(..text.len().saturating_sub(n));
        }
        Some((text, next))
    }

    /// Lines completed since `from`, and where to continue; with `to_end`
    /// the rest of the screen too.
    pub fn completed_lines(&self, from: u64, to_end: bool) -> (Vec<String>, u64) {
        self.state().screen.completed_lines(from, to_end)
    }

    /// Stops notifying `outbox`.
    pub fn unfollow(&self, outbox: &Arc<Outbox>) {
        self.state().followers.retain(|f| !Arc::ptr_eq(f, outbox));
    }

    /// Who is attached.
    pub fn who(&self) -> Vec<Presence> {
        let st = self.state();
        st.attachments
            .iter()
            .map(|a| Presence {
                kind: match a.mode {
                    AttachMode::Interactive => "client".into(),
                    AttachMode::ReadOnly => "watcher".into(),
                },
                identity: a.identity.name.clone(),
                fingerprint: a.identity.fingerprint.clone(),
                role: a.identity.role,
                address: a.identity.address.clone(),
                since: a.since.clone(),
            })
            .collect()
    }

    /// Ends the job: SIGHUP (a terminal hangup, which interactive shells
    /// obey and pass on), then SIGKILL after `KILL_GRACE` (3 s).
    ///
    /// # Errors
    ///
    /// A protected session without `force` (conflict), or a job that
    /// survives SIGKILL (cannot happen short of an uninterruptible sleep).
    pub fn kill(&self, force: bool) -> Result<JobExit, Failure> {
        if self.meta.protected && !force {
            return Err(Failure::conflict(format!(
                "session {} is protected; use `tether kill --force {}` to end it",
                self.name(),
                self.name()
            )));
        }
        tracing::info!(force, "kill requested");
        // A job already reaped is not signalled: its group id may be reused.
        if let Some(exit) = self.state().exit.clone() {
            return Ok(exit);
        }
        self.job.signal(Signal::HUP);
        if let Some(exit) = self.wait_exit(Some(KILL_GRACE)) {
            return Ok(exit);
        }
        self.job.signal(Signal::KILL);
        self.wait_exit(Some(KILL_TIMEOUT)).ok_or_else(|| {
            Failure::unavailable(format!("the job of {} did not end after SIGKILL", self.name()))
        })
    }

    /// Ends the session because of `reason` (a keeper thread panicked):
    /// the reason goes into the session record at once (so it is known
    /// even if the keeper dies before the end), attached clients are told,
    /// and the job is ended the way `kill --force` ends it. The end itself
    /// is recorded by the main thread, as for any job that ends.
    ///
    /// # Errors
    ///
    /// As [`Keeper::kill`]: the job's end was not recorded in time.
    pub fn end_for(&self, reason: String) -> Result<JobExit, Failure> {
        tracing::error!("{reason}; ending the session");
        {
            let mut st = self.state();
            let text = format!("tether: {reason}; ending the session");
            self.notify(&st, &text);
            st.end_reason = Some(reason);
        }
        self.save_record();
        self.kill(true)
    }

    /// Waits until the job's end is recorded, at most `timeout` if given.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> Option<JobExit> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.state();
        loop {
            if let Some(exit) = &st.exit {
                return Some(exit.clone());
            }
            st = match deadline {
                None => self.changed.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.changed.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    /// Counts a writer thread in; [`Keeper::writer_finished`] counts it out.
    pub fn writer_started(&self) {
        self.state().writers += 1;
    }

    /// Counts a writer thread out.
    pub fn writer_finished(&self) {
        self.state().writers -= 1;
        self.changed.notify_all();
    }

    /// Records the job's end: the record and final screen on disk first (so
    /// the session is never seen as lost), then every attachment gets the
    /// exit and its outbox is closed. Returns once writers have flushed, or
    /// after `flush_timeout`.
    pub fn finish(&self, status: ExitStatus, flush_timeout: Duration) {
        let exit = JobExit { code: status.code, signal: status.signal, ended: now_rfc3339() };
        tracing::info!(exit = %exit.describe(), "job ended");
        if let Some(r) = &self.recorder {
            // Why the keeper ended it, next to the exit in the recording.
            if let Some(reason) = self.state().end_reason.clone() {
                r.marker(reason);
            }
        }
        // The recording's signed end first, so the record can keep it (a
        // dead recorder answers at once, without one).
        let end = self.recorder.as_ref().and_then(|r| r.finish(Some(exit.status())));
        {
            // Record writes in one order (see save_record): the ended record
            // must land after any earlier one.
            let _serial = lock(&self.record_write);
            let mut st = self.state();
            st.exit = Some(exit.clone());
            st.recording_end = end.map(|h| h.end);
            // The screen model may be what a panicking parser left half
            // updated: without a final screen, the end is still recorded.
            let final_screen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                FinalScreen { redraw: redraw_string(&st.screen), text: st.screen.text(None) }
            }))
            .ok();
            if final_screen.is_none() {
                st.end_reason.get_or_insert_with(|| {
                    panics::reason_so_far().unwrap_or_else(|| "the final screen failed".into())
                });
            }
            let info = self.info_of(&st);
            if let Err(e) = write_final(&self.paths, &info, final_screen.as_ref()) {
                tracing::error!("recording the end: {e:#}");
            }
            for a in &st.attachments {
                a.outbox.push_control(Message::Exit(exit.clone()));
                a.outbox.close();
            }
            for f in &st.followers {
                f.close();
            }
        }
        self.changed.notify_all();
        let deadline = Instant::now() + flush_timeout;
        let mut st = self.state();
        while st.writers > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            st = self.changed.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// "alice@laptop (owner, 10.1.2.3:40444)" for markers, notices and the
/// consent prompt: shown to other people's terminals, so whatever the
/// name and address hold is escaped (`crate::term::text`).
pub fn describe_identity(id: &Identity) -> String {
    use crate::term::text::visible;
    let role = id.role.name();
    match &id.address {
        Some(addr) => format!("{} ({role}, {})", visible(&id.name), visible(addr)),
        None => format!("{} ({role}, local)", visible(&id.name)),
    }
}

/// A redraw as frames (it may exceed one frame on a huge screen).
pub(crate) fn redraw_frames(screen: &Screen, caps: crate::term::redraw::Caps) -> Vec<Message> {
    Message::data_frames(Bytes::from(screen.redraw_for(caps)), Message::Redraw).collect()
}

fn redraw_string(screen: &Screen) -> String {
    String::from_utf8_lossy(&screen.redraw()).into_owned()
}

/// Writes a session record.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_record(paths: &Paths, info: &SessionInfo) -> anyhow::Result<()> {
    crate::fsutil::write_atomic(&paths.record_file(&info.name), &store::encode_record(info))
}

fn write_final(
    paths: &Paths,
    info: &SessionInfo,
    screen: Option<&FinalScreen>,
) -> anyhow::Result<()> {
    if let Some(screen) = screen {
        crate::fsutil::write_atomic(&paths.final_screen_file(&info.name), &screen.encode())?;
    }
    write_record(paths, info)
}

//! The recorder: every byte a session prints, on disk, tamper-evidently.
//!
//! The keeper's PTY reader hands each read to [`Recorder::output`] (before
//! the screen model sees it); a recorder thread turns it into asciicast v3
//! events, extends the hash chain, writes signed checkpoints, rotates
//! segments and keeps a seek index. See `docs/RECORDING.md`; every byte
//! it writes is encoded by `tether_proto::record`, this module does the
//! I/O.
//!
//! Policy (PRODUCT.md): the recorder is lossless. Its queue is bounded; when
//! it is full the reader waits, so the job slows rather than a byte being
//! dropped. Two things end the waiting: a queue stuck for [`STALL_LIMIT`]
//! (a hung disk), and the disk refusing writes. Either way the job runs on,
//! the session shows `recording: degraded`, the loss is counted, and a gap
//! event recording it is written as soon as writes succeed again. A
//! recording is never deleted by tether.
//!
//! A recorder thread that panics marks the recorder dead: from then on
//! nothing waits for it (output is dropped and counted, `finish` and
//! `checkpoint_now` answer `None` at once), the state is `degraded`, and the
//! keeper ends the session (keeper/panics.rs), its record saying why.

pub mod writer;

use crate::signing::SigningKey;
use bytes::Bytes;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tether_proto::RecordingState;
use tether_proto::record::Checkpoint;
use tether_proto::record::keyframe::Keyframe;
pub use writer::FinalHead;

/// Output queued for the recorder before the reader waits (the job slows).
const QUEUE_MAX: usize = 16 << 20;

/// How long the reader waits on a full queue before declaring the
/// recording degraded and going on without it (a hung disk must not stop
/// the job forever).
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Everything needed to start a recording.
pub struct RecorderSpec {
    /// The session's name (the title).
    pub session: String,
    /// The first segment's path; later segments get `.1`, `.2`… before `.cast`.
    pub path: PathBuf,
    /// The job's command, for the header.
    pub command: String,
    /// `TERM`.
    pub term: String,
    /// Initial size.
    pub cols: u16,
    /// Initial size.
    pub rows: u16,
    /// The key that signs checkpoints.
    pub key: SigningKey,
    /// Bytes per segment before rotating.
    pub segment_bytes: u64,
}

#[cfg(test)]
impl RecorderSpec {
    /// A session `s` running `sh` on an 80×24 xterm, recorded to `path`.
    pub(crate) fn for_test(path: PathBuf, key: SigningKey) -> RecorderSpec {
        RecorderSpec {
            session: "s".into(),
            path,
            command: "sh".into(),
            term: "xterm".into(),
            cols: 80,
            rows: 24,
            key,
            segment_bytes: 64 << 20,
        }
    }
}

/// What the recorder is told, in order.
enum Item {
    Output(Bytes, Instant),
    TtyMode(bool, Instant),
    Input(String, Instant),
    Resize(u16, u16, Instant),
    Marker(String, Instant),
    Command(tether_proto::record::Command, Instant),
    Keyframe(Keyframe),
    Checkpoint(std::sync::mpsc::SyncSender<Option<Checkpoint>>),
    Finish(Option<i32>, std::sync::mpsc::SyncSender<Option<FinalHead>>),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    /// Output dropped because the recorder stalled, not yet reported.
    dropped_bytes: u64,
    dropped_events: u64,
}

/// Called when the recording's state changes (so `ls` can show it).
pub type OnChange = Box<dyn Fn(RecordingState) + Send + Sync>;

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    status: AtomicU8,
    on_change: std::sync::OnceLock<OnChange>,
    /// The recorder thread died (a panic): nothing may wait for it. Set
    /// under the queue lock, so an item is either cleared by the dying
    /// thread or never queued.
    dead: AtomicBool,
}

impl Shared {
    fn set_status(&self, degraded: bool) {
        let new = if degraded { DEGRADED } else { OK };
        if self.status.swap(new, Ordering::SeqCst) != new
            && let Some(f) = self.on_change.get()
        {
            f(if degraded { RecordingState::Degraded } else { RecordingState::Ok });
        }
    }
}

/// The keeper's handle on its recording.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
    start: Instant,
    path: PathBuf,
}

const OK: u8 = 0;
const DEGRADED: u8 = 1;

impl Shared {
    fn new() -> Self {
        Shared {
            queue: Mutex::default(),
            changed: Condvar::new(),
            status: AtomicU8::new(OK),
            on_change: std::sync::OnceLock::new(),
            dead: AtomicBool::new(false),
        }
    }
}

impl Recorder {
    /// Creates the first segment (0600 in a 0700 directory) and starts the
    /// recorder thread.
    ///
    /// # Errors
    ///
    /// The recording cannot be created at all (a session whose recording is
    /// required then does not start).
    pub fn start(spec: RecorderSpec) -> anyhow::Result<Recorder> {
        let start = Instant::now();
        let path = spec.path.clone();
        let writer = writer::Writer::create(spec, start)?;
        let shared = Arc::new(Shared::new());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(&thread_shared, writer))?;
        Ok(Recorder { shared, start, path })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets what to call when the state changes (once).
    pub fn on_change(&self, f: OnChange) {
        let _ = self.shared.on_change.set(f);
    }

    /// The first segment's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// `ok` or `degraded`.
    pub fn state(&self) -> RecordingState {
        match self.shared.status.load(Ordering::SeqCst) {
            OK => RecordingState::Ok,
            _ => RecordingState::Degraded,
        }
    }

    /// Records output read at `at`. Waits while the queue is full (the job
    /// slows), at most [`STALL_LIMIT`].
    pub fn output(&self, chunk: Bytes, at: Instant) {
        let len = chunk.len();
        let deadline = Instant::now() + STALL_LIMIT;
        let mut q = self.lock();
        if self.shared.dead.load(Ordering::SeqCst) {
            q.dropped_bytes += len as u64;
            q.dropped_events += 1;
            return;
        }
        while q.bytes + len > QUEUE_MAX {
            let now = Instant::now();
            if now >= deadline || self.shared.dead.load(Ordering::SeqCst) {
                q.dropped_bytes += len as u64;
                q.dropped_events += 1;
                drop(q);
                self.shared.set_status(true);
                return;
            }
            q = self
                .shared
                .changed
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        q.bytes += len;
        q.items.push_back(Item::Output(chunk, at));
        drop(q);
        self.shared.changed.notify_all();
    }

    fn push(&self, item: Item) {
        let mut q = self.lock();
        if self.shared.dead.load(Ordering::SeqCst) {
            // Dropped: a reply channel in it tells its waiter at once.
            return;
        }
        q.items.push_back(item);
        drop(q);
        self.shared.changed.notify_all();
    }

    /// Records that the PTY's `\n` → `\r\n` translation is now on or off.
    pub fn tty_mode(&self, onlcr: bool) {
        self.push(Item::TtyMode(onlcr, Instant::now()));
    }

    /// Records input (already masked if echo was off).
    pub fn input(&self, text: String) {
        self.push(Item::Input(text, Instant::now()));
    }

    /// Records a resize.
    pub fn resize(&self, cols: u16, rows: u16) {
        self.push(Item::Resize(cols, rows, Instant::now()));
    }

    /// Records a marker (attach, detach, watch, freeze…).
    pub fn marker(&self, label: String) {
        self.push(Item::Marker(label, Instant::now()));
    }

    /// Records a command that began or ended (docs/COMMANDS.md).
    pub fn command(&self, command: tether_proto::record::Command) {
        self.push(Item::Command(command, Instant::now()));
    }

    /// Hands over a keyframe for the seek index.
    pub fn keyframe(&self, frame: Keyframe) {
        self.push(Item::Keyframe(frame));
    }

    /// Writes a signed checkpoint now and returns it: the chain head a
    /// capture refers to.
    pub fn checkpoint_now(&self) -> Option<Checkpoint> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.push(Item::Checkpoint(tx));
        rx.recv_timeout(Duration::from_secs(10)).ok().flatten()
    }

    /// Writes the exit and the signed end, and waits until it is on disk.
    /// Returns the end checkpoint (for the session record), or `None` if the
    /// recording could not be completed.
    pub fn finish(&self, exit: Option<i32>) -> Option<FinalHead> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.push(Item::Finish(exit, tx));
        rx.recv().ok().flatten()
    }

    /// Seconds since the recording started.
    pub fn elapsed(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }
}

/// Marks the recorder dead when its thread unwinds.
struct DeathNotice<'a>(&'a Shared);

impl Drop for DeathNotice<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let shared = self.0;
        // The thread's own queue guard is already released (poisoned) by
        // now: it was declared after this one.
        let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        shared.dead.store(true, Ordering::SeqCst);
        shared.status.store(DEGRADED, Ordering::SeqCst);
        // Dropping the items drops the reply channels of `finish` and
        // `checkpoint_now`: their callers stop waiting.
        let lost = q.items.drain(..).filter(|i| matches!(i, Item::Output(..))).count();
        q.dropped_events += lost as u64;
        q.dropped_bytes += q.bytes as u64;
        q.bytes = 0;
        drop(q);
        shared.changed.notify_all();
    }
}

/// The recorder thread.
fn run(shared: &Shared, mut writer: writer::Writer) {
    let _notice = DeathNotice(shared);
    loop {
        let (item, dropped) = {
            let mut q = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(item) = q.items.pop_front() {
                    if let Item::Output(chunk, _) = &item {
                        q.bytes -= chunk.len();
                    }
                    let dropped = (q.dropped_bytes, q.dropped_events);
                    q.dropped_bytes = 0;
                    q.dropped_events = 0;
                    break (Some(item), dropped);
                }
                // Idle: make what was written durable and checkpointed.
                let (guard, timeout) = shared
                    .changed
                    .wait_timeout(q, writer::CHECKPOINT_EVERY)
                    .unwrap_or_else(PoisonError::into_inner);
                q = guard;
                if timeout.timed_out() && q.items.is_empty() {
                    break (None, (0, 0));
                }
            }
        };
        shared.changed.notify_all();
        if item.is_some() {
            crate::keeper::panics::test_point("recorder");
        }
        if dropped.0 > 0 {
            writer.lost(dropped.0, dropped.1);
        }
        let finish = match item {
            None => {
                writer.idle();
                None
            }
            Some(Item::Output(chunk, at)) => {
                writer.output(&chunk, at);
                None
            }
            Some(Item::TtyMode(onlcr, at)) => {
                writer.tty_mode(onlcr, at);
                None
            }
            Some(Item::Input(text, at)) => {
                writer.input(text, at);
                None
            }
            Some(Item::Resize(c, r, at)) => {
                writer.resize(c, r, at);
                None
            }
            Some(Item::Marker(label, at)) => {
                writer.marker(label, at);
                None
            }
            Some(Item::Command(command, at)) => {
                writer.command(command, at);
                None
            }
            Some(Item::Keyframe(k)) => {
                writer.keyframe(&k);
                None
            }
            Some(Item::Checkpoint(reply)) => {
                let _ = reply.send(writer.checkpoint_now());
                None
            }
            Some(Item::Finish(exit, reply)) => Some((exit, reply)),
        };
        let queue_empty = shared.queue.lock().map(|q| q.items.is_empty()).unwrap_or(true);
        if queue_empty {
            writer.flush();
        }
        shared.set_status(writer.degraded());
        if let Some((exit, reply)) = finish {
            let head = writer.finish(exit);
            let _ = reply.send(head);
            return;
        }
    }
}

/// The end checkpoint as stored in the session record.
pub fn end_of(head: &FinalHead) -> Checkpoint {
    head.end.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_events_checkpoints_and_a_signed_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec/s.cast");
        let key = SigningKey::generate().unwrap();
        let r = Recorder::start(RecorderSpec::for_test(path.clone(), key)).unwrap();
        r.output(Bytes::from_static(b"hello\r\n"), Instant::now());
        r.marker("attach alice".into());
        let end = r.finish(Some(3)).expect("a signed end");
        assert_eq!(end.end.exit, Some(3));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("{\"version\":3"), "{text}");
        assert!(lines.iter().any(|l| l.contains("\"x\", \"3\"")), "{text}");
        assert!(lines.last().unwrap().starts_with("#tether:end "), "{text}");
    }

    #[test]
    fn a_dead_recorder_thread_makes_nobody_wait() {
        let shared = Arc::new(Shared::new());
        let r = Recorder { shared: shared.clone(), start: Instant::now(), path: PathBuf::new() };
        // Queued before the death: a finish whose reply must not hang.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        r.push(Item::Finish(Some(0), tx));
        r.output(Bytes::from_static(b"queued"), Instant::now());
        let thread = std::thread::spawn(move || {
            let _notice = DeathNotice(&shared);
            let _held = shared.queue.lock().unwrap();
            panic!("the recorder thread dies holding its queue");
        });
        assert!(thread.join().is_err());
        assert!(r.shared.dead.load(Ordering::SeqCst));
        assert_eq!(r.state(), RecordingState::Degraded);
        assert!(rx.recv().is_err(), "the queued finish is answered");
        // A full queue's worth of output returns at once instead of
        // waiting for the stall limit.
        let started = Instant::now();
        for _ in 0..4 {
            r.output(Bytes::from(vec![0; QUEUE_MAX / 2]), Instant::now());
        }
        assert!(started.elapsed() < STALL_LIMIT / 2);
        assert!(r.finish(Some(1)).is_none());
        assert!(r.checkpoint_now().is_none());
        assert!(r.lock().dropped_events >= 5);
    }
}

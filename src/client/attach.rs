//! The attached terminal: raw stdin bytes to the keeper, the keeper's output
//! to stdout, SIGWINCH to resizes, the detach key, and a terminal that is
//! always put back the way the shell expects.
//!
//! One thread, one `poll` over stdin, the keeper's socket and a signal
//! self-pipe. Writing to stdout blocks when the user's terminal is slow;
//! the keeper then drops our backlog and sends a redraw, and the job never
//! notices.

use super::KeeperClient;
use super::terminal::{self, RawMode};
use crate::term::detach::DetachKey;
use crate::term::scan::ModeTracker;
use crate::term::view::{self, WatchView};
use anyhow::{Context, Result};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tether_proto::{AttachMode, AttachRequest, JobExit, Message, SessionName};

/// How an attachment ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The user detached (key, closed terminal, SIGTERM/SIGHUP).
    Detached,
    /// The job ended.
    Ended(JobExit),
    /// The keeper went away without saying how the job ended.
    Lost,
}

/// Options of one attachment.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// The session, for messages.
    pub name: SessionName,
    /// Interactive or read-only.
    pub mode: AttachMode,
    /// The detach key's byte (0: none).
    pub detach_key: u8,
    /// How the detach key is written, for a watcher's status line.
    pub detach_name: String,
}

/// Watchers' views are repainted at most this often: enough to follow a
/// session, cheap even over a slow link.
const FRAME_INTERVAL: Duration = Duration::from_millis(50);

/// Signals the loop cares about, set by handlers and read by the loop.
struct Flags {
    winch: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    /// Read end of the self-pipe that wakes `poll`.
    wake: UnixStream,
}

impl Flags {
    fn register() -> Result<Flags> {
        use signal_hook::consts::{SIGHUP, SIGTERM, SIGWINCH};
        let (wake, wake_tx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let winch = Arc::new(AtomicBool::new(false));
        let quit = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGWINCH, winch.clone())?;
        for sig in [SIGTERM, SIGHUP] {
            signal_hook::flag::register(sig, quit.clone())?;
        }
        for sig in [SIGWINCH, SIGTERM, SIGHUP] {
            signal_hook::low_level::pipe::register(sig, wake_tx.try_clone()?)?;
        }
        Ok(Flags { winch, quit, wake })
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// Attaches the current terminal to `client`'s session until detach or end.
///
/// # Errors
///
/// The keeper refuses the attachment, or the terminal cannot be set up.
pub fn run(mut client: KeeperClient, opts: &AttachOptions) -> Result<Outcome> {
    let request = AttachRequest {
        mode: opts.mode,
        size: terminal::size(),
        identity: super::local_identity(),
    };
    client.writer.write_message(&Message::Attach(request))?;
    let session = match client.reader.read_message()? {
        Some(Message::AttachReply(reply)) => reply.session,
        Some(Message::Error(e)) => return Err(crate::Failure::from(e).into()),
        _ => return Ok(Outcome::Lost),
    };
    let flags = Flags::register().context("installing signal handlers")?;
    let raw = RawMode::enable().context("switching the terminal to raw mode")?;
    let view = (opts.mode == AttachMode::ReadOnly).then(|| {
        let size = tether_proto::WindowSize { cols: session.cols, rows: session.rows };
        let owner = session.owner.clone().unwrap_or_else(|| "?".into());
        let mut v = WatchView::new(
            session.name.as_str(),
            &owner,
            size,
            terminal::size(),
            &opts.detach_name,
        );
        v.set_watchers(session.watchers.max(1));
        v
    });
    let mut out = std::io::stdout().lock();
    if view.is_some() {
        let _ = out.write_all(view::ENTER.as_bytes());
        let _ = out.flush();
    }
    drop(out);
    let mut attached = Attached {
        client,
        tracker: ModeTracker::new(),
        ended: None,
        view,
        dirty: false,
        last_frame: Instant::now() - FRAME_INTERVAL,
        out: Vec::new(),
    };
    let outcome = attached.pump(&flags, opts);
    let reset = match &attached.view {
        Some(_) => view::LEAVE.to_owned(),
        None => attached.tracker.modes().reset_sequence(),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(reset.as_bytes());
    let _ = out.flush();
    drop(raw);
    outcome
}

struct Attached {
    client: KeeperClient,
    tracker: ModeTracker,
    ended: Option<JobExit>,
    /// A watcher's rendered view (read-only attachments only).
    view: Option<WatchView>,
    /// The view changed since it was last painted.
    dirty: bool,
    last_frame: Instant,
    /// Output of one read of the socket, written to the terminal at once.
    out: Vec<u8>,
}

/// The output buffer is kept between reads up to this size (a redraw of a
/// huge screen is not kept for the attachment's life).
const OUT_KEEP_BYTES: usize = 1 << 20;

/// Writes `bytes` to stdout directly (stdout's own buffer is line-based:
/// it would split a burst of output into several writes).
fn write_terminal(mut bytes: &[u8]) -> Result<()> {
    let stdout = std::io::stdout();
    while !bytes.is_empty() {
        match rustix::io::write(&stdout, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(std::io::Error::from(e)).context("writing to the terminal"),
        }
    }
    Ok(())
}

impl Attached {
    fn pump(&mut self, flags: &Flags, opts: &AttachOptions) -> Result<Outcome> {
        let mut detach = DetachKey::new(opts.detach_key);
        let stdin = std::io::stdin();
        let mut input = [0u8; 4096];
        // Output already decoded but not yet written (a read can carry
        // several frames).
        self.flush_messages()?;
        loop {
            let frame_due = self.dirty.then(|| self.last_frame + FRAME_INTERVAL);
            let wake = [detach.deadline(), frame_due].into_iter().flatten().min();
            let timeout = wake.map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                Timespec::try_from(left).unwrap_or(Timespec { tv_sec: 0, tv_nsec: 0 })
            });
            let mut fds = [
                PollFd::new(&stdin, PollFlags::IN),
                PollFd::new(self.client.reader.stream(), PollFlags::IN),
                PollFd::new(&flags.wake, PollFlags::IN),
            ];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e).context("waiting for input"),
            }
            let ready = fds.map(|f| !f.revents().is_empty());
            if ready[2] {
                flags.drain();
                if flags.quit.load(Ordering::SeqCst) {
                    return self.leave();
                }
                if flags.winch.swap(false, Ordering::SeqCst) {
                    match &mut self.view {
                        // Watchers never resize the session.
                        Some(view) => {
                            view.terminal_resized(terminal::size());
                            self.dirty = true;
                        }
                        None => {
                            self.client.writer.write_message(&Message::Resize(terminal::size()))?;
                        }
                    }
                }
            }
            if ready[1] {
                if !self.client.reader.fill()? {
                    return Ok(self.ended.take().map_or(Outcome::Lost, Outcome::Ended));
                }
                self.flush_messages()?;
            }
            if ready[0] {
                let n = match (&stdin).read(&mut input) {
                    Ok(0) | Err(_) => return self.leave(),
                    Ok(n) => n,
                };
                let step = detach.feed(&input[..n], Instant::now());
                if !step.forward.is_empty() && opts.mode == AttachMode::Interactive {
                    let _ = self.client.writer.write_message(&Message::Input(step.forward.into()));
                }
                if step.detach {
                    return self.leave();
                }
            } else if detach.tick(Instant::now()).detach {
                return self.leave();
            }
            self.paint_if_due()?;
        }
    }

    /// Repaints a watcher's view, at most every [`FRAME_INTERVAL`].
    fn paint_if_due(&mut self) -> Result<()> {
        let Some(view) = &self.view else { return Ok(()) };
        if !self.dirty || self.last_frame.elapsed() < FRAME_INTERVAL {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&view.frame()).context("writing to the terminal")?;
        out.flush()?;
        self.dirty = false;
        self.last_frame = Instant::now();
        Ok(())
    }

    /// Writes every decoded output frame to the terminal, in one write.
    fn flush_messages(&mut self) -> Result<()> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        while let Some(msg) = self.client.reader.try_message()? {
            match (msg, &mut self.view) {
                (Message::Output(bytes) | Message::Redraw(bytes), Some(view)) => {
                    view.feed(&bytes);
                    self.dirty = true;
                }
                (Message::Output(bytes) | Message::Redraw(bytes), None) => {
                    self.tracker.feed(&bytes);
                    out.extend_from_slice(&bytes);
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
        let written = write_terminal(&out);
        if out.capacity() <= OUT_KEEP_BYTES {
            self.out = out;
        }
        written
    }

    fn leave(&mut self) -> Result<Outcome> {
        let _ = self.client.writer.write_message(&Message::Detach);
        Ok(Outcome::Detached)
    }
}

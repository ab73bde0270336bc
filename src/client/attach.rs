//! The local attached terminal: drives an [`Attachment`] with raw stdin
//! bytes, the keeper's socket, SIGWINCH and the clock.
//!
//! One thread, one `poll` over stdin, the keeper's socket and a signal
//! self-pipe. Writing to stdout blocks when the user's terminal is slow;
//! the keeper then drops our backlog and sends a redraw, and the job never
//! notices. What is shown and sent is decided by the state machine, which
//! the SSH bridge drives too.

use super::KeeperClient;
pub use super::attachment::Outcome;
use super::attachment::{Attachment, Settings, Start};
use crate::Failure;
use crate::term::tty::{self as terminal, RawMode};
use anyhow::{Context, Result};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tether_proto::{AttachMode, SessionName};

/// Options of one local attachment.
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

/// Attaches the current terminal to `client`'s session until detach or
/// end. The terminal is put back whatever happens, and the last words
/// (`[detached from …]`, `[session … ended: …]`) are written.
///
/// # Errors
///
/// The keeper refuses the attachment or closes without answering (exit
/// 6), or the terminal cannot be set up.
pub fn run(mut client: KeeperClient, opts: &AttachOptions) -> Result<Outcome> {
    let (mut attachment, request) = Attachment::start(Settings {
        name: opts.name.clone(),
        mode: opts.mode,
        identity: super::local_identity(),
        detach_key: opts.detach_key,
        detach_name: opts.detach_name.clone(),
        size: terminal::size(),
        term: std::env::var("TERM").ok(),
    });
    client.writer.write_message(&request)?;
    let enter = match attachment.on_reply(client.reader.read_message()?) {
        Start::Attached(bytes) => bytes,
        Start::Refused(e) => return Err(Failure::from(e).into()),
        Start::Lost => {
            return Err(Failure::unavailable(super::attachment::lost_message(&opts.name)).into());
        }
    };
    let flags = Flags::register().context("installing signal handlers")?;
    let raw = RawMode::enable().context("switching the terminal to raw mode")?;
    let mut pump = Pump { client, attachment, out: enter };
    let result = pump.run(&flags);
    // Whatever went wrong, leave the terminal as the shell expects it.
    let (last_words, outcome) = match result {
        Ok(done) => done,
        Err(e) => {
            let (_, words, _) = pump.attachment.leave();
            let _ = write_terminal(&words);
            drop(raw);
            return Err(e);
        }
    };
    let _ = write_terminal(&last_words);
    drop(raw);
    Ok(outcome)
}

struct Pump {
    client: KeeperClient,
    attachment: Attachment,
    /// Terminal bytes of one read of the socket, written at once.
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

impl Pump {
    /// Runs until the attachment ends; returns the last bytes for the
    /// terminal and how it ended.
    fn run(&mut self, flags: &Flags) -> Result<(Vec<u8>, Outcome)> {
        let stdin = std::io::stdin();
        let mut input = [0u8; 4096];
        // The reply's read may have brought output too.
        self.flush_messages()?;
        loop {
            let timeout = self.attachment.deadline().map(|d| {
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
                    return Ok(self.leave());
                }
                if flags.winch.swap(false, Ordering::SeqCst)
                    && let Some(msg) = self.attachment.on_terminal_resized(terminal::size())
                {
                    self.client.writer.write_message(&msg)?;
                }
            }
            if ready[1] {
                // A reset or a cut frame is the keeper going away too.
                let more = self.client.reader.fill().unwrap_or(false);
                self.flush_messages()?;
                if !more {
                    return Ok(self.attachment.closed());
                }
            }
            let now = Instant::now();
            if ready[0] {
                let n = match (&stdin).read(&mut input) {
                    Ok(0) | Err(_) => return Ok(self.leave()),
                    Ok(n) => n,
                };
                let typed = self.attachment.on_input(&input[..n], now);
                if let Some(msg) = typed.to_keeper {
                    let _ = self.client.writer.write_message(&msg);
                }
                if typed.leave {
                    return Ok(self.leave());
                }
            } else if self.attachment.tick(now) {
                return Ok(self.leave());
            }
            if let Some(frame) = self.attachment.paint(now) {
                write_terminal(&frame)?;
            }
        }
    }

    /// Writes every decoded frame's terminal bytes, in one write.
    fn flush_messages(&mut self) -> Result<()> {
        let mut out = std::mem::take(&mut self.out);
        while let Some(msg) = self.client.reader.try_message()? {
            self.attachment.on_keeper(msg, &mut out);
        }
        let written = write_terminal(&out);
        out.clear();
        if out.capacity() <= OUT_KEEP_BYTES {
            self.out = out;
        }
        written
    }

    fn leave(&mut self) -> (Vec<u8>, Outcome) {
        let (detach, words, outcome) = self.attachment.leave();
        let _ = self.client.writer.write_message(&detach);
        (words, outcome)
    }
}

//! The job and its PTY: spawning, resizing, signalling, reaping.
//!
//! The keeper is the job's parent, so it reaps it and keeps its exit status
//! (code or signal). The PTY master's reader and writer are handed to the
//! keeper's dedicated threads; the writer lives as long as the keeper,
//! because dropping portable-pty's writer sends EOF to the job.

use anyhow::{Context, Result, anyhow};
use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use rustix::process::{Pid, Signal};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use tether_proto::{SessionName, WindowSize};

/// What to run and how.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// argv; the first element is looked up in `PATH`.
    pub command: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Extra environment, applied last.
    pub env: Vec<(String, String)>,
    /// `TERM` for the job.
    pub term: String,
    /// The session, exported as `TETHER_SESSION`.
    pub session: SessionName,
    /// Initial size.
    pub size: WindowSize,
}

/// A running job.
pub struct Job {
    /// The job's pid; also its process group and session id (portable-pty
    /// calls `setsid` before exec).
    pub pid: u32,
    /// Resizes go through the master; `MasterPty` is `Send` but not `Sync`.
    master: Mutex<Box<dyn MasterPty + Send>>,
}

/// The job's I/O ends, for the keeper's threads.
pub struct JobIo {
    /// PTY output.
    pub reader: Box<dyn Read + Send>,
    /// PTY input. Must never be dropped before the keeper exits.
    pub writer: Box<dyn Write + Send>,
    /// The child handle, for reaping.
    pub child: Box<dyn Child + Send + Sync>,
}

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code for a normal exit.
    pub code: Option<i32>,
    /// Signal number for a signal death.
    pub signal: Option<i32>,
}

impl Job {
    /// Starts `spec` in a new PTY.
    ///
    /// # Errors
    ///
    /// The PTY cannot be opened or the command cannot be started (not
    /// found, not executable, bad directory).
    pub fn spawn(spec: &JobSpec) -> Result<(Job, JobIo)> {
        let size = spec.size.sanitized();
        let pair = native_pty_system()
            .openpty(pty_size(size))
            .map_err(|e| anyhow!("{e:#}"))
            .context("opening a PTY")?;
        let mut cmd = CommandBuilder::from_argv(spec.command.iter().map(Into::into).collect());
        cmd.cwd(&spec.cwd);
        for var in ["COLUMNS", "LINES", "TETHER_SESSION"] {
            cmd.env_remove(var);
        }
        cmd.env("TERM", &spec.term);
        cmd.env("TETHER_SESSION", spec.session.as_str());
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).map_err(|e| anyhow!("{e:#}"))?;
        // The slave must be closed here, or the reader never sees EOF.
        drop(pair.slave);
        let pid = child.process_id().ok_or_else(|| anyhow!("the job has no pid"))?;
        let reader = pair.master.try_clone_reader().map_err(|e| anyhow!("{e:#}"))?;
        let writer = pair.master.take_writer().map_err(|e| anyhow!("{e:#}"))?;
        let job = Job { pid, master: Mutex::new(pair.master) };
        Ok((job, JobIo { reader, writer, child }))
    }

    /// Tells the PTY (and so the job, by SIGWINCH) its new size.
    pub fn resize(&self, size: WindowSize) {
        let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = master.resize(pty_size(size.sanitized())) {
            tracing::warn!("resizing the PTY: {e:#}");
        }
    }

    /// Whether the PTY takes input right now without the writer waiting
    /// (the job reads its input; its terminal's input buffer has room).
    pub fn input_ready(&self) -> bool {
        let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(fd) = master.as_raw_fd() else { return false };
        // SAFETY: `fd` is the PTY master, owned by `master`, which is held
        // (locked) for the whole borrow and lives as long as the job.
        #[allow(unsafe_code)]
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::OUT)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(1))
            && fds[0].revents().contains(rustix::event::PollFlags::OUT)
    }

    /// Waits at most `timeout` for output to read; whether there is some
    /// (or the PTY was hung up: a read then ends).
    pub fn output_within(&self, timeout: std::time::Duration) -> bool {
        let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(fd) = master.as_raw_fd() else { return true };
        drop(master);
        // SAFETY: `fd` is the PTY master, which the job owns and keeps open
        // for its whole life (it is closed only when the job is dropped,
        // after the reader thread that calls this has ended).
        #[allow(unsafe_code)]
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        let wait = rustix::event::Timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        !matches!(rustix::event::poll(&mut fds, Some(&wait)), Ok(0))
    }

    /// Whether the terminal has echo turned off (a password prompt).
    pub fn echo_off(&self) -> bool {
        let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        master
            .get_termios()
            .is_some_and(|t| t.local_flags.bits() & rustix::termios::LocalModes::ECHO.bits() == 0)
    }

    /// Whether the PTY turns `\n` into `\r\n` (OPOST and ONLCR, and no
    /// other output translation). `None` if it cannot be read.
    pub fn onlcr(&self) -> Option<bool> {
        use rustix::termios::OutputModes as O;
        let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        let flags = master.get_termios()?.output_flags.bits();
        let on = |f: O| flags & f.bits() != 0;
        Some(on(O::OPOST) && on(O::ONLCR))
    }

    /// Sends `signal` to the job's process group and to the terminal's
    /// foreground process group (a shell's running command has its own).
    /// Processes that are already gone are not an error.
    pub fn signal(&self, signal: Signal) {
        let foreground = {
            let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
            master.process_group_leader()
        };
        let mut groups = vec![self.pid as i32];
        groups.extend(foreground.filter(|g| *g > 0 && *g != self.pid as i32));
        for group in groups {
            if let Some(pid) = Pid::from_raw(group) {
                let _ = rustix::process::kill_process_group(pid, signal);
            }
        }
    }
}

/// Waits for the job to end and says how.
///
/// # Errors
///
/// The child handle is not a process (cannot happen with portable-pty's
/// native backend) or `waitpid` fails.
pub fn wait(child: &mut Box<dyn Child + Send + Sync>) -> Result<ExitStatus> {
    // portable-pty's own ExitStatus turns a signal into code 1 and a signal
    // *description*; the std child underneath keeps the real numbers.
    let child: &mut dyn Child = &mut **child;
    let std_child = child
        .downcast_mut::<std::process::Child>()
        .ok_or_else(|| anyhow!("the job is not a native process"))?;
    let status = std_child.wait().context("waiting for the job")?;
    Ok(ExitStatus { code: status.code(), signal: status.signal() })
}

fn pty_size(size: WindowSize) -> PtySize {
    PtySize { rows: size.rows, cols: size.cols, pixel_width: 0, pixel_height: 0 }
}

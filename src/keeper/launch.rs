//! Starting a keeper (from the CLI or the daemon) and the keeper process's
//! own `main`.
//!
//! The launcher runs `tether __keeper` with the [`KeeperSpec`] as JSON on
//! its stdin and reads one [`Started`] line from its stdout. The keeper
//! makes itself a session leader (so no terminal hangup or job-control
//! signal of the caller reaches it), takes the session lock, binds its
//! socket, starts the job, writes the session record, reports, and points
//! its stdio at `/dev/null` and its log file. From then on the caller may
//! exit or be killed: nothing ties the keeper to it.

use super::backlog::Backlog;
use super::input::PtyInput;
use super::pty::{ExitStatus, Job, JobIo, JobSpec};
use super::{Keeper, Meta, conn, panics};
use crate::Failure;
use crate::clock::now_rfc3339;
use crate::paths::Paths;
use crate::recorder::{Recorder, RecorderSpec};
use crate::session::{Registry, SessionLock};
use crate::term::screen::Screen;
use anyhow::{Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};
use tether_proto::record::segment::base_name;
use tether_proto::{ErrorCode, ErrorReply, SessionName, SessionState, WindowSize};

/// Set in the environment of a daemon started by `tether daemon` without
/// `--foreground`.
pub const DAEMONIZED_ENV: &str = "TETHER_DAEMONIZED";

/// Environment variables of a service manager that must not leak into
/// keepers (and from there into jobs).
pub const SERVICE_ENV: &[&str] = &[
    "RUST_LOG",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    DAEMONIZED_ENV,
];

/// The hidden subcommand that runs a keeper.
pub const KEEPER_SUBCOMMAND: &str = "__keeper";

/// How long a launcher waits for the keeper to report. Starting a job is a
/// fork and an exec; this only guards against a keeper that hangs.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the keeper keeps reading after the job exits, for output still
/// in the PTY (a background process holding the PTY open can delay EOF
/// forever, so this is bounded).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How long attachments get to receive the exit before the keeper leaves.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// After a keeper thread panicked, how long the parser may take to catch
/// up with the job's last output before the end is recorded without it
/// (the supervisor gives the main thread 8 s to record the end).
const PANIC_CATCH_UP: Duration = Duration::from_secs(2);

/// How often the main thread looks for a panic while the parser catches up.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);

/// After `kill` gave up waiting for the end to be recorded, how much longer
/// the supervisor waits for the main thread before the keeper exits
/// without it (the session is then `lost`, its record saying why).
const PANIC_LAST_WAIT: Duration = Duration::from_secs(10);

/// How long a main thread that panicked after reaping the job leaves the
/// supervisor to end the session before the keeper exits: longer than
/// `kill` plus [`PANIC_LAST_WAIT`], after which the supervisor exits.
const MAIN_PANIC_WAIT: Duration = Duration::from_secs(20);

/// The keeper's exit status after a keeper thread panicked (EX_SOFTWARE).
const PANICKED_EXIT: i32 = 70;

/// How many panics of the main thread waiting for the job it survives.
const REAP_TRIES: u32 = 2;

/// Connections served at once; more are refused, so that a flood of
/// connections cannot exhaust the keeper's threads.
const MAX_CONNECTIONS: usize = 512;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// accept loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Everything a keeper needs to start a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeeperSpec {
    /// The session's name.
    pub name: SessionName,
    /// The job's argv.
    pub command: Vec<String>,
    /// The job's working directory.
    pub cwd: PathBuf,
    /// Extra environment for the job.
    pub env: Vec<(String, String)>,
    /// Initial terminal size.
    pub size: WindowSize,
    /// `TERM` for the job.
    pub term: String,
    /// `kill` needs `--force`.
    pub protected: bool,
    /// Scrollback bound, in cells.
    pub scrollback_cells: usize,
    /// Record the session.
    pub record: bool,
    /// Record input too.
    pub record_input: bool,
    /// Start the command (the default shell) with tether's shell
    /// integration, if it is a shell tether integrates with.
    #[serde(default)]
    pub shell_integration: bool,
    /// Bytes per recording segment.
    pub segment_bytes: u64,
    /// Watchers need consent.
    pub consent: bool,
    /// Watchers also get sequences that act on their machine.
    pub watchers_unsafe_ok: bool,
    /// What interactive clients get of those: clipboard writes, file
    /// transfers, tmux passthrough (config.toml; nothing by default).
    #[serde(default)]
    pub passthrough: crate::term::scan::Passthrough,
    /// Who created the session.
    pub owner: String,
    /// Where the recording goes instead of the recordings directory (a
    /// `check` probe's scratch place).
    #[serde(default)]
    pub recording_dir: Option<PathBuf>,
    /// A `tether check` probe (listed as one).
    #[serde(default)]
    pub probe: bool,
}

/// The keeper's one-line report to its launcher.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Started {
    /// The job runs.
    Ok {
        /// The keeper's pid.
        keeper_pid: u32,
        /// The job's pid.
        pid: u32,
    },
    /// Nothing was created.
    Failed(ErrorReply),
}

/// Starts a keeper for `spec` and waits until its job runs.
///
/// # Errors
///
/// The keeper refused (name in use: exit 4; command cannot start: exit 2)
/// or could not be started.
pub fn launch(spec: &KeeperSpec) -> Result<(u32, u32)> {
    let exe = std::env::current_exe().context("finding the tether executable")?;
    let keeper = exe.with_file_name("tether-keeper");
    let mut command = if keeper.is_file() {
        Command::new(keeper)
    } else {
        let mut c = Command::new(exe);
        c.arg(KEEPER_SUBCOMMAND);
        c
    };
    for var in SERVICE_ENV {
        command.env_remove(var);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting a keeper")?;
    let mut stdin = child.stdin.take().context("keeper stdin")?;
    let mut stdout = child.stdout.take().context("keeper stdout")?;
    stdin.write_all(&serde_json::to_vec(spec)?).context("sending the session spec")?;
    drop(stdin);
    let (tx, rx) = sync_channel(1);
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(LAUNCH_TIMEOUT)
        .map_err(|_| Failure::unavailable("the keeper did not report within 15 s"))?;
    // The keeper stays running; the std Child handle is dropped without
    // waiting (it does not kill).
    match serde_json::from_slice::<Started>(&out) {
        Ok(Started::Ok { keeper_pid, pid }) => Ok((keeper_pid, pid)),
        Ok(Started::Failed(e)) => Err(Failure::from(e).into()),
        Err(_) => {
            let _ = child.wait();
            Err(Failure::unavailable(format!(
                "the keeper for {} failed to start; see its log in the state directory",
                spec.name
            ))
            .into())
        }
    }
}

/// The keeper process's `main`: never returns while the job runs.
pub fn keeper_main() -> i32 {
    // A session leader has no controlling terminal, so the caller's
    // terminal closing cannot hang us up.
    let _ = rustix::process::setsid();
    let _ = rustix::thread::set_name(c"tether-keeper");
    // Orphans of the job (even ones that started their own session) come
    // back to the keeper instead of init: they stay part of the session
    // for capture and freezing, and the keeper reaps them.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    panics::install();
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        report(&Started::Failed(internal(format!("reading the session spec: {e}"))));
        return 1;
    }
    let spec: KeeperSpec = match serde_json::from_slice(&input) {
        Ok(s) => s,
        Err(e) => {
            report(&Started::Failed(internal(format!("bad session spec: {e}"))));
            return 2;
        }
    };
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| start(&spec)))
        .unwrap_or_else(|_| {
            let reason = panics::reason_so_far().unwrap_or_else(|| "the keeper panicked".into());
            Err(Failure::new(ErrorCode::Internal, reason).into())
        });
    match started {
        Ok(running) => {
            report(&Started::Ok { keeper_pid: std::process::id(), pid: running.keeper.job.pid });
            detach_stdio();
            let keeper = running.keeper.clone();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(running))) {
                Ok(_) if panics::reason_so_far().is_some() => PANICKED_EXIT,
                Ok(code) => code,
                Err(_) => {
                    // The hook logged it and woke the supervisor, which ends
                    // the job; the end cannot be recorded without this
                    // thread, so the supervisor leaves once it gives up.
                    drop(keeper);
                    std::thread::sleep(MAIN_PANIC_WAIT);
                    PANICKED_EXIT
                }
            }
        }
        Err(e) => {
            tracing::error!("starting session {}: {e:#}", spec.name);
            let reply = match e.downcast_ref::<Failure>() {
                Some(f) => f.to_reply(),
                None => internal(format!("{e:#}")),
            };
            report(&Started::Failed(reply));
            1
        }
    }
}

fn internal(message: String) -> ErrorReply {
    ErrorReply { code: ErrorCode::Internal, message }
}

fn report(started: &Started) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, started);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Points stdin and stdout at /dev/null, which also closes the report pipe.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

/// A started session, before its threads run.
struct Running {
    keeper: Arc<Keeper>,
    listener: UnixListener,
    reader: Box<dyn Read + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    /// Input waiting for the `pty-writer` thread.
    input: Receiver<Bytes>,
    socket: PathBuf,
    /// Held until the process exits.
    _lock: SessionLock,
}

fn start(spec: &KeeperSpec) -> Result<Running> {
    let paths = Paths::from_env()?;
    paths.prepare()?;
    init_log(&paths, &spec.name);
    let name = &spec.name;
    let lock = SessionLock::try_acquire(&paths.lock_file(name))?
        .ok_or_else(|| Failure::conflict(format!("session {name} already exists")))?;
    if let Some(info) = Registry::new(paths.clone()).get(name)? {
        let why = match info.state {
            SessionState::Ended => "has ended",
            _ => "was lost (its keeper died)",
        };
        return Err(Failure::conflict(format!(
            "session {name} {why}; `tether rm {name}` forgets it so the name can be reused"
        ))
        .into());
    }
    let socket = paths.socket_file(name);
    crate::fsutil::remove_if_exists(&socket)?;
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    // The default shell with the integration: marks carrying a secret the
    // reader removes (keeper/marks.rs).
    let mut command = spec.command.clone();
    let mut env = spec.env.clone();
    let mut marks = None;
    let mut startup = None;
    if spec.shell_integration && spec.record {
        let secret = super::marks::MarkSecret::new();
        let dir = paths.runtime_dir.join("shell");
        let program = spec.command.first().map_or("", String::as_str);
        let zdotdir = spec
            .env
            .iter()
            .find(|(k, _)| k == "ZDOTDIR")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("ZDOTDIR").ok());
        match crate::shell::prepare(
            &dir,
            name.as_str(),
            program,
            secret.secret(),
            zdotdir.as_deref(),
        ) {
            Ok(Some(prepared)) => {
                command = prepared.command;
                env.extend(prepared.env);
                startup = Some(prepared.file);
                marks = Some(Arc::new(secret));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("shell integration for {name}: {e:#}; starting without it"),
        }
    }
    let job_spec = JobSpec {
        command,
        cwd: spec.cwd.clone(),
        env,
        term: spec.term.clone(),
        session: name.clone(),
        size: spec.size,
    };
    let (job, io) = match Job::spawn(&job_spec) {
        Ok(j) => j,
        Err(e) => {
            let _ = crate::fsutil::remove_if_exists(&socket);
            let program = spec.command.first().map_or("", String::as_str);
            return Err(Failure::invalid(format!("cannot start {program}: {e:#}")).into());
        }
    };
    let meta = Meta {
        name: name.clone(),
        command: spec.command.clone(),
        protected: spec.protected,
        started: now_rfc3339(),
        owner: spec.owner.clone(),
        probe: spec.probe,
    };
    let recorder = if spec.record {
        match start_recording(&paths, spec, &meta) {
            Ok(r) => Some(r),
            Err(e) => {
                // The job already runs; it must not be left without a keeper.
                tracing::error!("recording {name}: {e:#}; continuing without a recording");
                None
            }
        }
    } else {
        None
    };
    let JobIo { reader, writer, child } = io;
    let (pty_input, input) = PtyInput::new(writer);
    let screen = Screen::new(spec.size, spec.scrollback_cells).with_passthrough(spec.passthrough);
    let parts = super::Parts {
        meta,
        paths,
        job,
        screen,
        input: pty_input,
        recorder,
        record_input: spec.record_input,
        watchers_unsafe_ok: spec.watchers_unsafe_ok,
        passthrough: spec.passthrough,
        consent: spec.consent,
        marks,
        startup,
    };
    let keeper = Arc::new(Keeper::new(parts));
    if let Some(recorder) = &keeper.recorder {
        let weak = Arc::downgrade(&keeper);
        recorder.on_change(Box::new(move |state| {
            tracing::warn!(?state, "recording state changed");
            if let Some(k) = weak.upgrade() {
                k.save_record();
            }
        }));
    }
    keeper.save_record();
    tracing::info!(pid = keeper.job.pid, command = ?spec.command, "session started");
    Ok(Running { keeper, listener, reader, child, input, socket, _lock: lock })
}

/// Starts the recorder: `recordings/NAME-<UTC start>.cast`, signed with
/// this host's signing key (created if needed, atomically, so keepers never
/// depend on the daemon).
fn start_recording(paths: &Paths, spec: &KeeperSpec, meta: &Meta) -> Result<Recorder> {
    let key = crate::signing::SigningKey::load_or_create(&paths.signing_key_file())?;
    let dir = spec.recording_dir.clone().unwrap_or_else(|| paths.recordings_dir());
    let path = dir.join(base_name(spec.name.as_str(), &meta.started));
    Recorder::start(RecorderSpec {
        session: spec.name.to_string(),
        path,
        command: spec.command.join(" "),
        term: spec.term.clone(),
        cols: spec.size.sanitized().cols,
        rows: spec.size.sanitized().rows,
        key,
        segment_bytes: spec.segment_bytes,
    })
}

fn init_log(paths: &Paths, name: &SessionName) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(paths.log_file(name));
    if let Ok(file) = file {
        let _ = rustix::stdio::dup2_stderr(&file);
    }
    // A plain level (no filter expressions): the keeper's resident memory
    // is a budget, and a filter parser would be part of it.
    let level = std::env::var("TETHER_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(level)
        .try_init();
}

fn run(running: Running) -> i32 {
    let Running { keeper, listener, reader, mut child, input, socket, _lock } = running;
    let (done_tx, done_rx) = sync_channel::<()>(1);
    let (parsed_tx, parsed_rx) = sync_channel::<()>(1);
    let backlog = Arc::new(Backlog::new(&keeper.paths.spill_dir()));
    let threads = [
        spawn_named("pty-reader", {
            let (backlog, keeper) = (backlog.clone(), keeper.clone());
            move || read_pty(reader, &backlog, &keeper, &done_tx)
        }),
        spawn_named("parser", {
            let (keeper, backlog) = (keeper.clone(), backlog.clone());
            move || parse_output(&keeper, &backlog, &parsed_tx)
        }),
        spawn_named("pty-writer", {
            let keeper = keeper.clone();
            move || keeper.input.pump(&input)
        }),
        spawn_named("accept", {
            let keeper = keeper.clone();
            move || accept_loop(&keeper, &listener)
        }),
        spawn_named("signals", {
            let keeper = keeper.clone();
            move || handle_signals(&keeper)
        }),
        spawn_named("orphans", {
            let job = keeper.job.pid as i32;
            move || reap_orphans(job)
        }),
        spawn_named("supervisor", {
            let keeper = keeper.clone();
            move || supervise(&keeper)
        }),
    ];
    if threads.iter().any(Option::is_none) {
        tracing::error!("could not start the keeper's threads; ending the job");
        keeper.job.signal(rustix::process::Signal::KILL);
    }
    let status = reap(&keeper, &mut child);
    let _ = done_rx.recv_timeout(DRAIN_TIMEOUT);
    // Everything the job printed is read; let the screen catch up with it
    // before recording the final screen (however long a flood takes,
    // unless a keeper thread panicked).
    backlog.close();
    wait_for_parser(&parsed_rx);
    keeper.finish(status, FLUSH_TIMEOUT);
    let _ = crate::fsutil::remove_if_exists(&socket);
    if let Some(file) = &keeper.startup {
        // The shell removes it when it reads it; a shell that never did.
        let _ = if file.is_dir() {
            std::fs::remove_dir_all(file)
        } else {
            crate::fsutil::remove_if_exists(file)
        };
    }
    tracing::info!("keeper exits");
    0
}

/// Waits for the job to end and says how. A panic here (the hook has
/// logged it and the supervisor is ending the job) does not stop the main
/// thread from reaping the job and recording its end.
fn reap(keeper: &Keeper, child: &mut Box<dyn portable_pty::Child + Send + Sync>) -> ExitStatus {
    for _ in 0..REAP_TRIES {
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            panics::test_point("main");
            super::pty::wait(child)
        }));
        match waited {
            Ok(Ok(status)) => return status,
            Ok(Err(e)) => {
                tracing::error!("{e:#}");
                return ExitStatus { code: None, signal: None };
            }
            Err(_) => {}
        }
    }
    // Waiting itself keeps failing: make sure no job outlives its keeper.
    keeper.job.signal(rustix::process::Signal::KILL);
    ExitStatus { code: None, signal: None }
}

/// Waits until the parser has taken every read, for as long as that takes;
/// after a keeper thread panicked, at most [`PANIC_CATCH_UP`] more.
fn wait_for_parser(parsed: &Receiver<()>) {
    let mut deadline = None;
    loop {
        match parsed.recv_timeout(CATCH_UP_POLL) {
            // Done, or the parser is gone (it panicked).
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                if panics::reason_so_far().is_none() {
                    continue;
                }
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + PANIC_CATCH_UP);
                if Instant::now() >= deadline {
                    tracing::warn!("recording the end without the parser's last output");
                    return;
                }
            }
        }
    }
}

/// The supervisor: idle until a keeper thread panics, then ends the
/// session (keeper/panics.rs). If the end is still not recorded well
/// after the job was killed (the main thread is stuck or gone), the keeper
/// exits rather than hang: the session is then `lost`, and its record
/// already says why.
fn supervise(keeper: &Keeper) {
    let reason = panics::wait();
    if let Err(e) = keeper.end_for(reason) {
        tracing::error!("{e}");
        if keeper.wait_exit(Some(PANIC_LAST_WAIT)).is_none() {
            tracing::error!("the end of the session was not recorded; the keeper exits");
            std::process::exit(PANICKED_EXIT);
        }
    }
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> Option<()> {
    std::thread::Builder::new().name(name.into()).spawn(f).map(|_| ()).ok()
}

/// The PTY reader: runs for the job's whole life, so a job never blocks on
/// output, attached or not, and never waits for the screen model.
fn read_pty(
    mut reader: Box<dyn Read + Send>,
    backlog: &Backlog,
    keeper: &Keeper,
    done: &std::sync::mpsc::SyncSender<()>,
) {
    let recorder = keeper.recorder.as_ref();
    let mut onlcr = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut chunks = ChunkAllocator::default();
    // With the shell integration: the mark secret is removed here, before
    // anyone sees the output (keeper/marks.rs), and where it was is noted
    // in terms of the output passed on.
    let mut passed = 0u64;
    let mut held: Vec<u8> = Vec::new();
    let mut pass_on = |chunk: bytes::Bytes| {
        // Live attachments first: an echo should not wait for the recorder.
        keeper.on_read(&chunk);
        if let Some(r) = recorder {
            // The recording keeps the terminal's bytes; noting the output
            // translation lets `export --format raw` give the job's own.
            let mode = keeper.job.onlcr();
            if mode.is_some() && mode != onlcr {
                onlcr = mode;
                r.tty_mode(mode.unwrap_or(true));
            }
            // Lossless: may wait (the job slows) while the recorder catches up.
            r.output(chunk.clone(), std::time::Instant::now());
        }
        backlog.push(chunk);
    };
    loop {
        // Bytes held back (the start of a mark secret, perhaps) wait a
        // moment for the rest, not for the next output however late.
        if !held.is_empty() && !keeper.job.output_within(super::marks::HOLD) {
            super::marks::MarkSecret::expire(&mut held);
            if !held.is_empty() {
                passed += held.len() as u64;
                pass_on(chunks.copy(&std::mem::take(&mut held)));
            }
            continue;
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: every slave fd is closed (the job and its children are gone).
            Err(_) => break,
        };
        panics::test_point("pty-reader");
        let chunk = match &keeper.marks {
            // Most reads hold no piece of a secret: passed on as read.
            Some(marks) if held.is_empty() && marks.untouched(&buf[..n]) => {
                passed += n as u64;
                chunks.copy(&buf[..n])
            }
            None => chunks.copy(&buf[..n]),
            Some(marks) => {
                held.extend_from_slice(&buf[..n]);
                let now = marks.strip(&mut held, passed);
                let rest = held.split_off(now);
                let data = std::mem::replace(&mut held, rest);
                if data.is_empty() {
                    continue;
                }
                passed += data.len() as u64;
                chunks.copy(&data)
            }
        };
        pass_on(chunk);
    }
    super::marks::MarkSecret::expire(&mut held);
    if !held.is_empty() {
        pass_on(chunks.copy(&held));
    }
    let _ = done.try_send(());
}

/// Carves the reader's chunks out of larger blocks: a PTY read is about
/// 4 KiB, and one allocation each (freed by another thread, the parser or
/// the recorder, whichever drops it last) made the allocator grow and
/// shrink its heap on every read.
#[derive(Default)]
struct ChunkAllocator {
    block: bytes::BytesMut,
}

/// The size of one block of chunks.
const CHUNK_BLOCK: usize = 64 * 1024;

impl ChunkAllocator {
    /// `data` as a shared chunk.
    fn copy(&mut self, data: &[u8]) -> Bytes {
        if self.block.capacity() - self.block.len() < data.len() {
            self.block = bytes::BytesMut::with_capacity(CHUNK_BLOCK.max(data.len()));
        }
        self.block.extend_from_slice(data);
        self.block.split().freeze()
    }
}

/// The parser: feeds the screen model (and the attachments catching up
/// behind it), at its own pace.
fn parse_output(keeper: &Keeper, backlog: &Backlog, done: &std::sync::mpsc::SyncSender<()>) {
    while let Some(chunk) = backlog.pop() {
        panics::test_point("parser");
        let skipped = backlog.take_skipped();
        if skipped > 0 {
            keeper.output_lost(skipped);
        }
        let replies = keeper.on_output(&chunk);
        if !replies.is_empty() {
            // Never block here: if the input queue is full the job is not
            // reading anyway, and a lost answer is a timeout for it.
            keeper.input.try_send(Bytes::from(replies));
        }
    }
    let _ = done.try_send(());
}

fn accept_loop(keeper: &Arc<Keeper>, listener: &UnixListener) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        panics::test_point("accept");
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            tracing::warn!("refusing a connection: {MAX_CONNECTIONS} already open");
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (keeper, active2) = (keeper.clone(), active.clone());
        let spawned = std::thread::Builder::new().name("conn".into()).spawn(move || {
            conn::serve(keeper, stream);
            active2.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// How often orphaned descendants that exited are reaped.
const ORPHAN_SWEEP: Duration = Duration::from_secs(2);

/// Reaps exited orphans (children of the keeper other than the job, which
/// the main thread waits for itself, to keep its exit status).
fn reap_orphans(job: i32) {
    let me = std::process::id() as i32;
    loop {
        std::thread::sleep(ORPHAN_SWEEP);
        panics::test_point("orphans");
        // Only this process's children, never all of /proc: with hundreds
        // of sessions a full scan from every keeper would cost the host
        // O(sessions²) work every sweep.
        let children = match own_children(me) {
            Some(c) => c,
            None => {
                // No /proc/PID/task/TID/children on this kernel: scan
                // everything, but rarely.
                std::thread::sleep(ORPHAN_SWEEP * 14);
                crate::forensic::procfs::all_pids()
            }
        };
        for pid in children {
            if pid == job {
                continue;
            }
            if let Ok(s) = crate::forensic::procfs::stat(pid)
                && s.ppid == me
                && s.state == 'Z'
                && let Some(p) = rustix::process::Pid::from_raw(pid)
            {
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
            }
        }
    }
}

/// This process's children, from `/proc/PID/task/*/children`; `None`
/// when the kernel does not provide those files.
fn own_children(me: i32) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    let mut found = false;
    for task in std::fs::read_dir(format!("/proc/{me}/task")).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else { continue };
        found = true;
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    found.then_some(out)
}

/// SIGTERM/SIGINT end the job the way `kill` does, so a clean shutdown
/// records how the session ended instead of leaving it lost. SIGHUP is
/// ignored: a keeper has no terminal to lose.
fn handle_signals(keeper: &Keeper) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    panics::test_point("signals");
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) else {
        return;
    };
    for sig in signals.forever() {
        if sig != SIGHUP {
            tracing::info!(sig, "signal received; ending the job");
            let _ = keeper.kill(true);
        }
    }
}

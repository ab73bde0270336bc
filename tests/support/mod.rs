//! Black-box test support: the real `tether` binary, a fresh `HOME` and
//! `XDG_*` tree per test, real PTYs as the user's terminal (rendered by the
//! independent `vt100` emulator), and cleanup of every process on drop.

#![allow(dead_code)]

pub mod rssh;
pub mod ssh;

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest any single condition may take to become true.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tether")
}

/// Polls `cond` with backoff until it holds; panics with `what` after `timeout`.
pub fn wait_until_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// [`wait_until_for`] with the default [`TIMEOUT`].
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_for(TIMEOUT, what, cond);
}

/// Holds a job back until the test is ready: the job's script waits for
/// a file that [`Gate::open`] creates.
pub struct Gate {
    path: PathBuf,
}

impl Gate {
    /// A closed gate in `env`'s directory.
    pub fn new(env: &TestEnv) -> Gate {
        Gate { path: env.root().join("go") }
    }

    /// A shell script that waits for the gate, then runs `then`.
    pub fn script(&self, then: &str) -> String {
        format!("while [ ! -e {} ]; do sleep 0.05; done; {then}", self.path.display())
    }

    /// Lets the job go on.
    pub fn open(&self) {
        std::fs::write(&self.path, "").unwrap();
    }
}

/// The name of the user the tests run as, as tether names a local user
/// (from the uid, never from `$USER`, which the tests set to `tester`).
pub fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// SIGKILLs a process, ignoring "already gone".
pub fn kill9(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Sends `sig` to a process.
pub fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Load tests run alone: every other test holds this lock shared.
static EXCLUSIVE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Holds [`EXCLUSIVE`] for as long as the test runs.
enum Turn {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

/// An isolated tether installation: its own HOME and XDG directories.
pub struct TestEnv {
    dir: tempfile::TempDir,
    // Dropped last: the test's processes are gone before another starts.
    _turn: Turn,
}

impl TestEnv {
    /// A fresh tree of empty directories.
    pub fn new() -> Self {
        let turn =
            Turn::Shared(EXCLUSIVE.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        Self::with_turn(turn)
    }

    /// Like [`TestEnv::new`], for a load test: waits until no other test
    /// runs and keeps them waiting until it is dropped, so that the load
    /// weighs on nothing else and nothing else on its report.
    pub fn alone() -> Self {
        let turn =
            Turn::Alone(EXCLUSIVE.write().unwrap_or_else(std::sync::PoisonError::into_inner));
        Self::with_turn(turn)
    }

    fn with_turn(turn: Turn) -> Self {
        let dir = tempfile::Builder::new().prefix("tether-test").tempdir().unwrap();
        for sub in ["home", "run", "state", "data", "config"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("run"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        TestEnv { dir, _turn: turn }
    }

    /// The root of the tree.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `$XDG_STATE_HOME/tether`.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join("state/tether")
    }

    /// `$XDG_RUNTIME_DIR/tether`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.root().join("run/tether")
    }

    /// `$XDG_CONFIG_HOME/tether`.
    pub fn config_dir(&self) -> PathBuf {
        self.root().join("config/tether")
    }

    /// The environment every tether process of this test gets, and nothing else.
    pub fn envs(&self) -> Vec<(String, String)> {
        let r = |s: &str| self.root().join(s).display().to_string();
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())),
            ("HOME".into(), r("home")),
            ("XDG_RUNTIME_DIR".into(), r("run")),
            ("XDG_STATE_HOME".into(), r("state")),
            ("XDG_DATA_HOME".into(), r("data")),
            ("XDG_CONFIG_HOME".into(), r("config")),
            ("SHELL".into(), "/bin/sh".into()),
            ("USER".into(), "tester".into()),
            ("TERM".into(), "xterm-256color".into()),
            ("LANG".into(), "C.UTF-8".into()),
            // The same prompt for root and others.
            ("PS1".into(), "$ ".into()),
        ]
    }

    /// `tether ARGS` with this environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args).env_clear().envs(self.envs()).stdin(Stdio::null()).current_dir(self.root());
        c
    }

    /// Runs `tether ARGS` to completion (killed after [`TIMEOUT`]).
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_timeout(self.cmd(args), TIMEOUT)
    }

    /// Runs `tether ARGS`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tether {args:?} failed with {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `tether new -d NAME -- CMD…`.
    pub fn start(&self, name: &str, command: &[&str]) {
        let mut args = vec!["new", "-d", name, "--"];
        args.extend_from_slice(command);
        self.ok(&args);
    }

    /// `tether ls --json`.
    pub fn sessions(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["ls", "--json"])).unwrap()
    }

    /// One session's `ls --json` object.
    pub fn session(&self, name: &str) -> Value {
        self.sessions()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no session {name} in ls"))
    }

    /// `tether tail NAME`.
    pub fn tail(&self, name: &str) -> String {
        self.ok(&["tail", name])
    }

    /// The socket of the only running keeper (for raw protocol tests).
    pub fn keeper_socket(&self) -> PathBuf {
        std::fs::read_dir(self.runtime_dir())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".sock"))
            .expect("a keeper socket")
            .path()
    }

    /// Waits until the session's text contains `needle`.
    pub fn wait_text(&self, name: &str, needle: &str) {
        wait_until(&format!("{needle:?} in session {name}"), || self.tail(name).contains(needle));
    }

    /// Starts `tether ARGS` in a new PTY of `cols`x`rows`, the way a user's
    /// terminal would.
    pub fn terminal(&self, args: &[&str], cols: u16, rows: u16) -> Terminal {
        let mut argv = vec![bin()];
        argv.extend_from_slice(args);
        Terminal::spawn(self, &argv, cols, rows)
    }

    /// Starts any program in a new PTY with this environment.
    pub fn terminal_program(&self, argv: &[&str], cols: u16, rows: u16) -> Terminal {
        Terminal::spawn(self, argv, cols, rows)
    }

    /// `$HOME` of this environment.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Lines of each keeper log shown when a test fails.
const LOG_TAIL_LINES: usize = 40;

impl TestEnv {
    /// After a failure: the end of every keeper's log on stderr (the test
    /// harness shows it with the failure, in CI too), and with
    /// `TETHER_LEAVE_TEST_DIRS` set the whole tree is kept for a look.
    fn report_failure(&mut self) {
        let logs = self.state_dir().join("logs");
        let mut files: Vec<_> =
            std::fs::read_dir(&logs).into_iter().flatten().flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- the end of {}:", path.display());
            for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
                eprintln!("{line}");
            }
        }
        if std::env::var_os("TETHER_LEAVE_TEST_DIRS").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("--- the test's files are kept in {}", self.root().display());
        }
    }
}

impl Drop for TestEnv {
    /// Kills every keeper and job this test started (their pids are in the
    /// session records).
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.report_failure();
        }
        if let Ok(pid) = std::fs::read_to_string(self.runtime_dir().join("daemon.pid"))
            && let Ok(pid) = pid.trim().parse()
        {
            kill9(pid);
        }
        let Ok(entries) = std::fs::read_dir(self.state_dir().join("sessions")) else { return };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
            for key in ["pid", "keeper_pid"] {
                if let Some(pid) = v[key].as_u64() {
                    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                        let _ =
                            rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                    }
                    kill9(pid as u32);
                }
            }
        }
    }
}

/// Runs `cmd`, killing it if it takes longer than `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command timed out after {timeout:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
}

/// How every redraw begins (see the keeper's screen module).
const REDRAW_START: &[u8] = b"\x1b[?1049l\x1b[?1047l";
/// How a watcher's view begins (see the client's view module).
const VIEW_START: &[u8] = b"\x1b[?1049h\x1b[H\x1b[2J";

/// A user's terminal: a PTY running a tether command, rendered by vt100.
pub struct Terminal {
    child: Box<dyn Child + Send + Sync>,
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    parser: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    pid: u32,
}

impl Terminal {
    fn spawn(env: &TestEnv, argv: &[&str], cols: u16, rows: u16) -> Terminal {
        let pair = native_pty_system()
            .openpty(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 })
            .unwrap();
        let mut cmd = CommandBuilder::new(argv[0]);
        cmd.args(&argv[1..]);
        cmd.env_clear();
        for (k, v) in env.envs() {
            cmd.env(k, v);
        }
        cmd.cwd(env.root());
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let pid = child.process_id().unwrap();
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let parser = Arc::new(Mutex::new(vt100::Parser::new(
            rows.try_into().unwrap(),
            cols.try_into().unwrap(),
            1000,
        )));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (p2, r2) = (parser.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                p2.lock().unwrap().process(&buf[..n]);
                r2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal { child, master: pair.master, writer, parser, raw, pid }
    }

    /// The client process's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// The visible screen's text.
    pub fn contents(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Whether the terminal shows its alternate screen.
    pub fn alternate_screen(&self) -> bool {
        self.parser.lock().unwrap().screen().alternate_screen()
    }

    /// Everything the terminal received.
    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    /// Runs `f` on the rendered screen.
    pub fn with_screen<T>(&self, f: impl FnOnce(&vt100::Screen) -> T) -> T {
        f(self.parser.lock().unwrap().screen())
    }

    /// Waits until the screen shows `needle`.
    pub fn wait_text(&self, needle: &str) {
        wait_until(&format!("{needle:?} on the terminal"), || self.contents().contains(needle));
    }

    /// Waits until the client is attached with its terminal in raw mode:
    /// a redraw (which starts by leaving any alternate screen) has arrived.
    /// Keys typed before that would meet the terminal in cooked mode.
    pub fn wait_attached(&self) {
        wait_until("the client to attach", || {
            let raw = self.raw();
            [REDRAW_START, VIEW_START]
                .iter()
                .any(|start| raw.windows(start.len()).any(|w| w == *start))
        });
    }

    /// Waits until `cond` holds for the screen.
    pub fn wait_screen(&self, what: &str, cond: impl Fn(&vt100::Screen) -> bool) {
        wait_until(what, || self.with_screen(&cond));
    }

    /// Resizes the terminal (the client gets SIGWINCH).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.master.resize(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 }).unwrap();
        self.parser.lock().unwrap().set_size(rows.try_into().unwrap(), cols.try_into().unwrap());
    }

    /// Waits for the client to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.exit_code();
            }
            assert!(Instant::now() < deadline, "the client did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Detaches with the detach key and waits for the client to exit.
    pub fn detach(&mut self) -> u32 {
        self.send(b"\x1c");
        self.wait_text("[detached from");
        self.wait_exit()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        kill9(self.pid);
        let _ = self.child.try_wait();
    }
}

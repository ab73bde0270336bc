//! Reattach is exact on the terminals people attach from, not only in our
//! own emulator: the screen a reattach paints equals the screen the job
//! drew, seen continuously, in pyte (an independent emulator without REP),
//! in tmux and in GNU screen as the user's terminal.
//!
//! The fixture holds what collapsed or shifted before: runs of equal cells
//! (meters, indentation, box drawing, `ls` columns, coloured blanks),
//! colours in the colon form, `tabs 4`, decomposed and zero-width
//! characters, an underline colour.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const COLS: u16 = 80;
const ROWS: u16 = 24;

/// Lines of the fixture that a terminal may lack a rendering of.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// Colours in the colon form (pyte misreads the job's own output).
    Colon,
    /// Decomposed and zero-width characters (pyte stops drawing the line
    /// at VS16; GNU screen draws them as garbage).
    ZeroWidth,
    /// `tabs 4` (GNU screen 4.9 ignores HTS in the job's own output).
    Tabs,
    /// An underline colour (the model does not keep it: issue 14).
    UnderlineColour,
}

/// What the job prints (then it waits), without the parts in `skip`.
fn fixture(skip: &[Part]) -> String {
    let mut f = String::new();
    f.push_str("CPU[||||||||||||||||||        45.0%]   Tasks: 97, 1 running\r\n");
    f.push_str("        indented by eight\r\n");
    f.push_str("┌──────────────────────────────┐\r\n");
    f.push_str("│ \x1b[1;37;44m  mc-style panel title    \x1b[0m  │\r\n");
    f.push_str("└──────────────────────────────┘\r\n");
    if !skip.contains(&Part::Colon) {
        f.push_str("\x1b[38:5:208morange\x1b[0m \x1b[38:2::10:200:30mrgb\x1b[0m ");
    }
    f.push_str("\x1b[38;5;208morange\x1b[0m \x1b[48;5;236m            \x1b[0m|\r\n");
    if !skip.contains(&Part::ZeroWidth) {
        f.push_str("cafe\u{301} ok \u{2714}\u{fe0f} done a\u{200b}b|after\r\n");
    }
    if !skip.contains(&Part::Tabs) {
        // What `tabs 4` does, then text on those stops.
        f.push_str("\x1b[3g");
        for col in (4..COLS).step_by(4) {
            f.push_str(&format!("\x1b[{}G\x1bH", col + 1));
        }
        f.push_str("\r\ta\tb\tc|\r\n");
    }
    f.push_str("a          b          c          d\r\n");
    if !skip.contains(&Part::UnderlineColour) {
        f.push_str("\x1b[58;5;196m");
    }
    f.push_str("\x1b[4mno blink\x1b[0m ================\r\n");
    f.push_str("\x1b[7mEND\x1b[0m");
    f
}

/// A session that has printed the fixture, and the fixture's file.
fn session(env: &TestEnv, name: &str, skip: &[Part]) -> PathBuf {
    let file = env.root().join("fixture.txt");
    std::fs::write(&file, fixture(skip)).unwrap();
    let script = format!("cat {}; exec sleep 600", file.display());
    env.start(name, &["sh", "-c", &script]);
    env.wait_text(name, "END");
    file
}

/// pyte's rendering of `bytes` (tests/py/pyte_screen.py).
fn pyte(env: &TestEnv, bytes: &[u8], what: &str) -> serde_json::Value {
    let path = env.root().join(format!("{what}.bin"));
    std::fs::write(&path, bytes).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/pyte_screen.py");
    let mut cmd = Command::new("python3");
    cmd.args([script, &COLS.to_string(), &ROWS.to_string()]).arg(&path);
    let out = run_with_timeout(cmd, TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pyte is missing: python3 -m pip install pyte ({stderr})");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_reattached_screen_equals_the_continuous_one_in_an_emulator_without_rep() {
    let env = TestEnv::new();
    let fixture = session(&env, "fid", &[Part::Colon, Part::ZeroWidth, Part::UnderlineColour]);
    let seen = pyte(&env, &std::fs::read(fixture).unwrap(), "continuous");

    let mut term = env.terminal(&["attach", "fid"], COLS, ROWS);
    term.wait_attached();
    term.wait_text("END");
    let raw = term.raw();
    term.detach();
    let redrawn = pyte(&env, &raw, "reattached");

    assert_eq!(redrawn["text"], seen["text"], "text differs");
    for (row, (a, b)) in redrawn["cells"]
        .as_array()
        .unwrap()
        .iter()
        .zip(seen["cells"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(a, b, "cells of row {row} differ");
    }
    assert_eq!(redrawn["cursor"], seen["cursor"], "cursor differs");
}

/// A tmux server of its own, killed (by PID) when dropped.
struct Tmux {
    socket: PathBuf,
    envs: Vec<(String, String)>,
    pid: Option<u32>,
}

impl Tmux {
    fn new(env: &TestEnv) -> Tmux {
        Tmux { socket: env.root().join("tmux.sock"), envs: env.envs(), pid: None }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(["-f", "/dev/null"]).args(args);
        c.env_clear().envs(self.envs.clone()).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = run_with_timeout(self.cmd(args), TIMEOUT);
        assert!(
            out.status.success(),
            "tmux {args:?}: {} (is tmux installed?)",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A detached session `name` of COLSxROWS running `command`.
    fn window(&mut self, name: &str, command: &str) {
        let (x, y) = (COLS.to_string(), ROWS.to_string());
        self.run(&["new-session", "-d", "-s", name, "-x", &x, "-y", &y, command]);
        if self.pid.is_none() {
            self.pid = self.run(&["display-message", "-p", "#{pid}"]).trim().parse().ok();
        }
    }

    /// The pane's cells with their attributes, and its cursor.
    fn capture(&self, name: &str) -> (String, String) {
        let cells = self.run(&["capture-pane", "-p", "-e", "-t", name]);
        let cursor = self.run(&["display-message", "-p", "-t", name, "#{cursor_x},#{cursor_y}"]);
        (cells, cursor)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = run_with_timeout(self.cmd(&["kill-server"]), TIMEOUT);
        if let Some(pid) = self.pid.filter(|p| alive(*p)) {
            kill9(pid);
        }
    }
}

/// Polls `f` until `done` holds for what it returns, or the test's
/// timeout passes; returns the last value either way (the caller asserts,
/// so that a failure shows both sides).
fn poll<T>(mut f: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let v = f();
        if done(&v) || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_reattached_screen_equals_the_continuous_one_in_tmux() {
    let env = TestEnv::new();
    let fixture = session(&env, "fid", &[Part::UnderlineColour]);
    let mut tmux = Tmux::new(&env);
    tmux.window("direct", &format!("cat {}; exec sleep 600", fixture.display()));
    tmux.window("attached", &format!("{} attach fid", bin()));
    let direct = poll(|| tmux.capture("direct"), |c| c.0.contains("END"));
    assert!(direct.0.contains("END"), "the fixture in tmux: {direct:?}");
    // tmux keeps a zero-width character in the cell before it; the model
    // composes it where Unicode can and otherwise keeps the cell without it
    // (docs/ARCHITECTURE.md). Same cells, same columns.
    let cells = direct.0.replace("e\u{301}", "é").replace(['\u{fe0f}', '\u{200b}'], "");
    let direct = (cells, direct.1);
    let attached = poll(|| tmux.capture("attached"), |c| *c == direct);
    assert_eq!(attached, direct);
}

/// A GNU screen session of its own, quit (and its PID killed) when dropped.
struct GnuScreen {
    name: String,
    dir: PathBuf,
    envs: Vec<(String, String)>,
    /// The session's server process (`screen -ls` names it PID.NAME).
    pid: Option<u32>,
}

impl GnuScreen {
    fn start(env: &TestEnv, name: &str, command: &str) -> GnuScreen {
        let dir = env.root().join("screens");
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let rc = env.root().join("screenrc");
        std::fs::write(&rc, format!("defutf8 on\nstartup_message off\nwidth {COLS}\n")).unwrap();
        let mut s = GnuScreen { name: name.to_owned(), dir, envs: env.envs(), pid: None };
        let out = run_with_timeout(
            s.cmd(&["-dmS", name, "-c", &rc.display().to_string(), "sh", "-c", command]),
            TIMEOUT,
        );
        assert!(out.status.success(), "screen: {}", String::from_utf8_lossy(&out.stderr));
        let list = run_with_timeout(s.cmd(&["-ls"]), TIMEOUT);
        let suffix = format!(".{name}");
        s.pid = String::from_utf8_lossy(&list.stdout)
            .split_whitespace()
            .find_map(|w| w.strip_suffix(suffix.as_str())?.parse().ok());
        s
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("screen");
        c.args(args).env_clear().envs(self.envs.clone()).env("SCREENDIR", &self.dir);
        c.stdin(Stdio::null());
        c
    }

    /// The session's text, as its hardcopy command writes it (empty while
    /// the session cannot be reached yet).
    fn hardcopy(&self, file: &Path) -> String {
        let _ = std::fs::remove_file(file);
        let out = run_with_timeout(
            self.cmd(&["-S", &self.name, "-X", "hardcopy", &file.display().to_string()]),
            TIMEOUT,
        );
        if !out.status.success() {
            return String::new();
        }
        // screen writes the file after the command returns; a hardcopy has
        // a line per row.
        let rows = usize::from(ROWS);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if text.matches('\n').count() >= rows || std::time::Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for GnuScreen {
    fn drop(&mut self) {
        let _ = run_with_timeout(self.cmd(&["-S", &self.name, "-X", "quit"]), TIMEOUT);
        if let Some(pid) = self.pid.filter(|p| alive(*p)) {
            kill9(pid);
        }
    }
}

#[test]
fn a_reattached_screen_equals_the_continuous_one_in_gnu_screen() {
    let env = TestEnv::new();
    let fixture = session(&env, "fid", &[Part::ZeroWidth, Part::Tabs, Part::UnderlineColour]);
    let direct =
        GnuScreen::start(&env, "direct", &format!("cat {}; exec sleep 600", fixture.display()));
    let attached = GnuScreen::start(&env, "attached", &format!("{} attach fid", bin()));
    let (a, b) = (env.root().join("direct.txt"), env.root().join("attached.txt"));
    let seen = poll(|| direct.hardcopy(&a), |t| t.contains("END"));
    assert!(seen.contains("END"), "the fixture in screen: {seen:?}");
    let redrawn = poll(|| attached.hardcopy(&b), |t| *t == seen);
    assert_eq!(redrawn, seen);
}

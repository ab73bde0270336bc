//! Reattach is exact on the terminals people attach from, not only in our
//! own emulator: the screen a reattach paints equals the screen the job
//! drew, seen continuously, in pyte (an independent emulator without REP),
//! in tmux and in GNU screen as the user's terminal.
//!
//! The fixture holds what collapsed or shifted before: runs of equal cells
//! (meters, indentation, box drawing, `ls` columns, coloured blanks),
//! colours in the colon form, `tabs 4`, decomposed and zero-width
//! characters, an underline colour, a curly underline, concealed text.
//! Each terminal gets the parts it can draw from the job's own output.

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
    /// An underline colour: drawn on reattach only for a terminal whose
    /// terminfo entry has `Setulc` (tmux-256color has not).
    UnderlineColour,
    /// A curly underline: drawn on reattach only for a terminal whose
    /// terminfo entry has `Smulx` (pyte and GNU screen have none).
    Curly,
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
    if !skip.contains(&Part::Curly) {
        f.push_str("\x1b[4:3mcurly\x1b[0m \x1b[8mconcealed\x1b[0m|\r\n");
    }
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
    let skip = [Part::Colon, Part::ZeroWidth, Part::UnderlineColour, Part::Curly];
    let fixture = session(&env, "fid", &skip);
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

#[test]
fn a_reattach_opens_and_closes_each_hyperlink_where_the_job_did() {
    // Found by an outside check: only the link open at the end came back;
    // text printed under a link lost it on reattach.
    let env = TestEnv::new();
    let file = env.root().join("links.txt");
    let text = concat!(
        "see \x1b]8;id=7;https://example.com/docs\x1b\\the docs\x1b]8;;\x1b\\ or ",
        "\x1b]8;;file:///etc/hosts\x07\x1b[1mhosts\x1b[0m!\x1b]8;;\x07 plain\r\n",
        "LINKS-END"
    );
    std::fs::write(&file, text).unwrap();
    let script = format!("cat {}; exec sleep 600", file.display());
    env.start("links", &["sh", "-c", &script]);
    env.wait_text("links", "LINKS-END");

    let mut term = env.terminal(&["attach", "links"], COLS, ROWS);
    term.wait_attached();
    term.wait_text("LINKS-END");
    let raw = String::from_utf8_lossy(&term.raw()).into_owned();
    term.detach();
    let docs = "\x1b]8;id=7;https://example.com/docs\x1b\\the docs\x1b]8;;\x1b\\ or ";
    assert!(raw.contains(docs), "the docs link is not where the job put it: {raw:?}");
    let open = "\x1b]8;;file:///etc/hosts\x1b\\";
    let start = raw.find(open).expect("the hosts link is lost") + open.len();
    let end = start + raw[start..].find("\x1b]8;;\x1b\\").expect("the hosts link is not closed");
    assert_eq!(without_csi(&raw[start..end]), "hosts!", "{raw:?}");
    assert!(raw[end..].contains(" plain"), "{raw:?}");
}

/// `s` without its CSI sequences (colours, moves).
fn without_csi(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let body = &rest[at + 2..];
        let fin = body.find(|c: char| ('@'..='~').contains(&c)).map_or(body.len(), |i| i + 1);
        rest = &body[fin..];
    }
    out.push_str(rest);
    out
}

/// A tmux server of its own, killed (by PID) when dropped.
struct Tmux {
    socket: PathBuf,
    conf: PathBuf,
    envs: Vec<(String, String)>,
    pid: Option<u32>,
}

impl Tmux {
    fn new(env: &TestEnv) -> Tmux {
        // Panes get TERM=tmux-256color, whose terminfo entry has Smulx.
        let conf = env.root().join("tmux.conf");
        std::fs::write(&conf, "set -g default-terminal tmux-256color\n").unwrap();
        Tmux { socket: env.root().join("tmux.sock"), conf, envs: env.envs(), pid: None }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).arg("-f").arg(&self.conf).args(args);
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

    /// What the pane shows.
    fn capture(&self, name: &str) -> Capture {
        let raw = self.run(&["capture-pane", "-p", "-e", "-N", "-t", name]);
        let cursor = self.run(&["display-message", "-p", "-t", name, "#{cursor_x},#{cursor_y}"]);
        let (cells, text) = cells_of(&raw);
        Capture { cells, text, extended: extended_sgr(&raw), cursor }
    }
}

/// What a tmux pane shows.
#[derive(Debug)]
struct Capture {
    /// Each row's cells: text and attributes.
    cells: Vec<String>,
    /// The rows' text (for messages: a cleared cell and a space differ).
    text: String,
    /// The SGR attributes vt100 does not keep (underline styles and
    /// colours, concealed) that the pane's cells use.
    extended: std::collections::BTreeSet<String>,
    cursor: String,
}

impl PartialEq for Capture {
    fn eq(&self, other: &Capture) -> bool {
        self.cells == other.cells && self.extended == other.extended && self.cursor == other.cursor
    }
}

/// Asserts that two captures show the same, naming the first row that
/// differs.
fn assert_same(got: &Capture, want: &Capture, what: &str) {
    for (row, (a, b)) in got.cells.iter().zip(&want.cells).enumerate() {
        assert_eq!(a, b, "{what}: row {row} differs\n{}\n---\n{}", got.text, want.text);
    }
    assert_eq!(got.extended, want.extended, "{what}: extended attributes");
    assert_eq!(got.cursor, want.cursor, "{what}: cursor");
}

/// The SGR parameters in `raw` that vt100 does not keep.
fn extended_sgr(raw: &str) -> std::collections::BTreeSet<String> {
    let mut set = std::collections::BTreeSet::new();
    for seq in raw.split("\x1b[").skip(1) {
        let Some(end) = seq.find('m') else { continue };
        let params = &seq[..end];
        if !params.bytes().all(|b| b.is_ascii_digit() || b == b';' || b == b':') {
            continue;
        }
        for group in params.split(';') {
            if group.starts_with("4:") || group == "8" || group.starts_with("58") {
                set.insert(group.to_owned());
            }
        }
    }
    set
}

/// The cells of a `capture-pane -e` dump, one string per row (each cell's
/// text and attributes), and the rows' text. tmux writes a cell it was
/// told to clear and a space differently, and trims trailing spaces
/// whatever their colours; drawn again by vt100, both are what the user
/// sees: a blank of some colour.
fn cells_of(capture: &str) -> (Vec<String>, String) {
    let mut p = vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 0);
    for (i, line) in capture.trim_end_matches('\n').split('\n').enumerate() {
        if i > 0 {
            p.process(b"\r\n");
        }
        p.process(line.as_bytes());
    }
    let screen = p.screen();
    let cells = (0..ROWS)
        .map(|r| {
            let mut row = String::new();
            for c in 0..COLS {
                let cell = screen.cell(r, c).unwrap();
                let text = if cell.contents().is_empty() { " " } else { cell.contents() };
                row.push_str(&format!(
                    "{text}[{:?} {:?} {}{}{}{}]",
                    cell.fgcolor(),
                    cell.bgcolor(),
                    u8::from(cell.bold()),
                    u8::from(cell.italic()),
                    u8::from(cell.underline()),
                    u8::from(cell.inverse())
                ));
            }
            row
        })
        .collect();
    (cells, screen.contents())
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
    let direct = poll(|| tmux.capture("direct"), |c| c.text.contains("END"));
    assert!(direct.text.contains("END"), "the fixture in tmux: {direct:?}");
    let attached = poll(|| tmux.capture("attached"), |c| *c == direct);
    assert_same(&attached, &direct, "reattached fixture");
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
    let skip = [Part::ZeroWidth, Part::Tabs, Part::UnderlineColour, Part::Curly];
    let fixture = session(&env, "fid", &skip);
    let direct =
        GnuScreen::start(&env, "direct", &format!("cat {}; exec sleep 600", fixture.display()));
    let attached = GnuScreen::start(&env, "attached", &format!("{} attach fid", bin()));
    let (a, b) = (env.root().join("direct.txt"), env.root().join("attached.txt"));
    let seen = poll(|| direct.hardcopy(&a), |t| t.contains("END"));
    assert!(seen.contains("END"), "the fixture in screen: {seen:?}");
    let redrawn = poll(|| attached.hardcopy(&b), |t| *t == seen);
    assert_eq!(redrawn, seen);
}

/// A Python file for vim to colour.
const SOURCE: &str = "import os\n\n\ndef main():\n    # a comment\n    for i in range(3):\n        print(f\"line {i}\", os.getcwd())\n\n\nif __name__ == \"__main__\":\n    main()\n";

/// vim as users run it: syntax colours, comments with undercurl (as
/// diagnostics are marked), a split, a visual selection. The
/// same terminal type inside tether as in tmux's own pane: vim draws for
/// the terminal it is told it has.
fn vim_command(dir: &Path) -> String {
    format!(
        "cd {} && TERM=tmux-256color exec vim -N -u NONE -i NONE -n -c 'syntax on' \
         -c 'set number cursorline laststatus=2' -c 'hi Comment cterm=undercurl' \
         -c 'let &t_Cs = \"\\e[4:3m\"' -c 'let &t_Ce = \"\\e[4:0m\"' main.py",
        dir.display()
    )
}

#[test]
fn a_reattached_vim_equals_the_continuous_one_in_tmux() {
    let env = TestEnv::new();
    std::fs::write(env.root().join("main.py"), SOURCE).unwrap();
    env.start("vim", &["sh", "-c", &vim_command(env.root())]);
    let mut tmux = Tmux::new(&env);
    // Seen continuously: attached from the start, keys typed through it.
    // (Not compared with a vim run in tmux directly: vim draws according
    // to the device attributes its terminal reports, and the keeper
    // answers those itself.)
    tmux.window("live", &format!("{} attach vim", bin()));
    let ready = poll(|| tmux.capture("live"), |c| c.text.contains("main.py"));
    assert!(ready.text.contains("main.py"), "vim: {ready:?}");
    for k in [":split\r", "gg", "3G", "Vj"] {
        tmux.run(&["send-keys", "-t", "live", "-l", k]);
    }
    let live = poll(|| tmux.capture("live"), |c| c.text.contains("VISUAL LINE"));
    assert!(live.text.contains("VISUAL LINE"), "{live:?}");
    assert!(live.extended.contains("4:3"), "undercurl: {:?}", live.extended);
    // Detach, then reattach in a new pane.
    tmux.run(&["send-keys", "-t", "live", "C-\\"]);
    tmux.window("reattached", &format!("{} attach vim", bin()));
    let reattached = poll(|| tmux.capture("reattached"), |c| *c == live);
    assert_same(&reattached, &live, "reattached vim");
}

/// A full-screen program in a session, seen continuously by a client
/// attached from the start (keys typed through it), and by a client that
/// attaches afterwards: once the program has settled, the new client's
/// pane equals the continuous one (cells, attributes, cursor). The
/// continuous client stays attached, so a program that redraws on its
/// own (htop) changes both panes alike.
fn reattached_equals_continuous(name: &str, command: &str, ready: &str, keys: &[&str]) {
    let env = TestEnv::new();
    env.start(name, &["sh", "-c", &format!("cd {} && {command}", env.root().display())]);
    let mut tmux = Tmux::new(&env);
    tmux.window("live", &format!("{} attach {name}", bin()));
    let first = poll(|| tmux.capture("live"), |c| c.text.contains(ready));
    assert!(first.text.contains(ready), "{name} did not draw {ready:?}: {first:?}");
    for k in keys {
        tmux.run(&["send-keys", "-t", "live", k]);
    }
    // Settled: the same screen twice in a row.
    let mut last = tmux.capture("live");
    let _ = poll(
        || {
            let now = tmux.capture("live");
            let same = now == last;
            last = now;
            same
        },
        |same| *same,
    );
    tmux.window("reattached", &format!("{} attach {name}", bin()));
    let (live, reattached) =
        poll(|| (tmux.capture("live"), tmux.capture("reattached")), |(l, r)| l == r);
    assert_same(&reattached, &live, &format!("reattached {name}"));
}

#[test]
fn a_reattached_man_page_equals_the_continuous_one_in_tmux() {
    // Bold, underlined and indented text through man and less, after a
    // search (standout).
    let source = ".TH DEMO 1 2026-12-06 tether Tests\n.SH NAME\ndemo \\- a page for \
                    the reattach test\n.SH SYNOPSIS\n.B demo\n[\\fIOPTION\\fR]... \\fIFILE\\fR\n\
                    .SH DESCRIPTION\n.TP\n.B \\-a\nall of it, indented under the option\n\
                    .TP\n.BR \\-\\-long =\\fIVALUE\\fR\nwith an underlined value\n\
                    .SH SEE ALSO\n.BR ls (1)\n";
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("demo.1");
    std::fs::write(&page, source).unwrap();
    let command = format!("TERM=tmux-256color MANPAGER=less exec man -l {}", page.display());
    reattached_equals_continuous("man", &command, "DEMO(1)", &["/indented", "Enter"]);
}

#[test]
fn a_reattached_mc_equals_the_continuous_one_in_tmux() {
    // Line drawing, two panels, a menu bar, the selection bar moved.
    let command = "mkdir -p a b && touch f1 f2 && TERM=tmux-256color exec mc -u -d";
    reattached_equals_continuous("mc", command, "Left", &["Down", "Down", "Tab"]);
}

#[test]
fn a_reattached_htop_equals_the_continuous_one_in_tmux() {
    // Meters (runs of equal cells), colours, a process list; htop redraws
    // on its own every 10 s here.
    let command = "TERM=tmux-256color exec htop -d 100";
    reattached_equals_continuous("htop", command, "PID", &["Down"]);
}

//! Attached clients: typing, detaching, several clients, killed and stalled
//! clients, resizing, terminal queries.

use crate::support::*;
use rustix::process::Signal;

#[test]
fn attach_creates_runs_and_detaches_with_the_key() {
    let env = TestEnv::new();
    let mut term = env.terminal(&["attach", "fresh", "--", "sh"], 80, 24);
    term.wait_text("$");
    term.send(b"echo hello $((6*7))\r");
    term.wait_text("hello 42");
    assert_eq!(env.session("fresh")["clients"], 1);
    assert_eq!(term.detach(), 0);
    assert!(term.contents().contains("[detached from fresh]"));
    let s = env.session("fresh");
    assert_eq!((s["state"].as_str(), s["clients"].as_u64()), (Some("running"), Some(0)));
}

#[test]
fn the_job_keeps_running_when_the_client_is_killed() {
    let env = TestEnv::new();
    let mut term = env.terminal(
        &[
            "attach",
            "tick",
            "--",
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo t$i; sleep 0.05; done",
        ],
        80,
        24,
    );
    term.wait_text("t3");
    kill9(term.pid());
    term.wait_exit();
    let count = |e: &TestEnv| {
        e.tail("tick").lines().filter_map(|l| l.strip_prefix('t')?.parse::<u64>().ok()).max()
    };
    let before = count(&env).unwrap();
    wait_until("the job to keep counting", || count(&env).unwrap() > before + 5);
    let s = env.session("tick");
    assert_eq!((s["state"].as_str(), s["clients"].as_u64()), (Some("running"), Some(0)));
    // And a new client sees the current screen.
    let term2 = env.terminal(&["attach", "tick"], 80, 24);
    let now = count(&env).unwrap();
    term2.wait_text(&format!("t{}", now + 2));
}

#[test]
fn two_interactive_clients_both_see_output_and_both_type() {
    let env = TestEnv::new();
    env.start("pair", &["sh"]);
    let mut a = env.terminal(&["attach", "pair"], 80, 24);
    let mut b = env.terminal(&["attach", "pair"], 80, 24);
    a.wait_attached();
    b.wait_attached();
    a.send(b"echo from-$((1+1))-a\r");
    b.send(b"echo from-$((2+1))-b\r");
    for t in [&a, &b] {
        t.wait_text("from-2-a");
        t.wait_text("from-3-b");
    }
}

#[test]
fn pressing_the_detach_key_twice_sends_it_once() {
    let env = TestEnv::new();
    // With ISIG off, Ctrl-\ is an ordinary byte; `od` shows what arrived.
    env.start(
        "keys",
        &["sh", "-c", "stty -isig -icanon -echo min 1; while :; do echo \"got$(dd bs=1 count=1 2>/dev/null | od -An -tx1)\"; done"],
    );
    let mut term = env.terminal(&["attach", "keys"], 80, 24);
    term.wait_attached();
    term.send(b"\x1c\x1c");
    term.wait_text("got 1c");
    term.send(b"z");
    term.wait_text("got 7a");
    let hits = term.contents().matches("got 1c").count();
    assert_eq!(hits, 1, "{}", term.contents());
    assert!(!term.contents().contains("detached"));
}

#[test]
fn resizing_the_terminal_resizes_the_job() {
    let env = TestEnv::new();
    let mut term = env.terminal(&["attach", "size", "--", "sh"], 100, 30);
    term.wait_text("$");
    term.send(b"stty size\r");
    term.wait_text("30 100");
    term.resize(120, 40);
    wait_until("the session to follow", || env.session("size")["cols"] == 120);
    term.send(b"clear; stty size\r");
    term.wait_text("40 120");
}

#[test]
fn the_most_recently_active_client_sets_the_size() {
    let env = TestEnv::new();
    env.start("sizes", &["sh"]);
    let mut big = env.terminal(&["attach", "sizes"], 120, 40);
    big.wait_attached();
    wait_until("the first size", || env.session("sizes")["cols"] == 120);
    let _small = env.terminal(&["attach", "sizes"], 70, 20);
    wait_until("the newcomer's size", || env.session("sizes")["cols"] == 70);
    big.send(b" ");
    wait_until("the typist's size", || env.session("sizes")["cols"] == 120);
}

#[test]
fn a_stalled_client_never_slows_the_job() {
    let env = TestEnv::new();
    let gate = Gate::new(&env);
    let script = gate.script("seq 1 300000; echo flood-done; sleep 60");
    env.start("flood", &["sh", "-c", &script]);
    let term = env.terminal(&["attach", "flood"], 80, 24);
    wait_until("the client to attach", || env.session("flood")["clients"] == 1);
    // Stop the client: it reads nothing more from the keeper.
    signal(term.pid(), Signal::STOP);
    gate.open();
    env.wait_text("flood", "flood-done");
    // The keeper's memory stayed bounded while the client stalled.
    let keeper = env.session("flood")["keeper_pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{keeper}/status")).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kb < 64 * 1024, "keeper RSS {rss_kb} kB");
    // Resumed, the client catches up with a redraw of the final screen.
    signal(term.pid(), Signal::CONT);
    term.wait_text("flood-done");
    wait_until("the client's screen to be the session's", || {
        screen_lines(&term) == last_lines(&env, "flood", 23)
    });
}

/// The terminal's non-blank rows.
fn screen_lines(term: &Terminal) -> Vec<String> {
    term.contents().lines().map(|l| l.trim_end().to_owned()).filter(|l| !l.is_empty()).collect()
}

/// The session's last `n` lines of text.
fn last_lines(env: &TestEnv, name: &str, n: usize) -> Vec<String> {
    env.ok(&["tail", name, "-n", &n.to_string()]).lines().map(str::to_owned).collect()
}

#[test]
fn a_client_attached_before_a_flood_gets_every_byte_in_order() {
    // Attached clients are served straight from the PTY reader, ahead of
    // the screen model: nothing may be lost, repeated or reordered there.
    let env = TestEnv::new();
    let gate = Gate::new(&env);
    let script = gate.script("echo flood-start; seq 1 100000; echo flood-done; sleep 60");
    env.start("live", &["sh", "-c", &script]);
    let term = env.terminal(&["attach", "live"], 80, 24);
    term.wait_attached();
    gate.open();
    term.wait_text("flood-done");
    let raw = String::from_utf8(term.raw()).unwrap();
    // Everything after the attach's redraw: the numbers, one a line.
    let redraw = raw.rfind("\x1b[?1049l").unwrap();
    let start = redraw + raw[redraw..].find("flood-start\r\n").unwrap();
    let numbers: Vec<u64> =
        raw[start..].split("\r\n").filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(numbers.len(), 100_000, "every line arrived once");
    assert!(numbers.iter().zip(1..).all(|(n, want)| *n == want), "in order");
}

#[test]
fn a_client_attaching_during_a_flood_catches_up_to_the_exact_screen() {
    // Attaching while the screen model is behind the PTY: the client gets a
    // redraw where the model is, catches up behind it, then goes live.
    let env = TestEnv::new();
    env.start(
        "busy",
        &["sh", "-c", "seq 1 1500000; echo flood-done; read x; echo got-$x; sleep 60"],
    );
    wait_until("the flood to start", || env.tail("busy").contains("1000"));
    let term = env.terminal(&["attach", "busy"], 80, 24);
    term.wait_text("flood-done");
    wait_until("the client's screen to be the session's", || {
        screen_lines(&term) == last_lines(&env, "busy", 23)
    });
    // And the attachment goes on: typing reaches the job, its echo comes back.
    let mut term = term;
    term.send(b"hi\r");
    term.wait_text("got-hi");
}

#[test]
fn terminal_queries_are_answered_once_by_the_keeper() {
    let env = TestEnv::new();
    // The job asks for the cursor position with no client attached and
    // prints what it got back.
    let script = "stty raw -echo; printf 'ab\\033[6n'; dd bs=1 count=6 2>/dev/null | od -An -c | tr -d ' \\n'; printf '\\r\\n'; stty sane; sleep 60";
    env.start("query", &["sh", "-c", script]);
    env.wait_text("query", "033[1;3R");
    // With a client attached, the client's terminal never sees the query.
    env.start("query2", &["sh", "-c", &format!("read go; {script}")]);
    let mut term = env.terminal(&["attach", "query2"], 80, 24);
    term.wait_attached();
    term.send(b"go\r");
    env.wait_text("query2", "033[2;3R");
    let raw = term.raw();
    assert!(!raw.windows(4).any(|w| w == b"\x1b[6n"), "the query reached the client");
}

#[test]
fn watch_is_read_only() {
    let env = TestEnv::new();
    let file = env.root().join("typed.txt");
    let cmd = format!("cat > {}", file.display());
    env.start("ro", &["sh", "-c", &cmd]);
    let mut watcher = env.terminal(&["watch", "ro"], 80, 24);
    watcher.wait_attached();
    watcher.send(b"should not arrive\r\x04");
    let mut owner = env.terminal(&["attach", "ro"], 80, 24);
    owner.wait_attached();
    owner.send(b"owner-line\r");
    watcher.wait_text("owner-line");
    owner.send(b"\x04");
    assert_eq!(env.run(&["wait", "ro"]).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "owner-line\n");
}

/// A job's clipboard writes (OSC 52), file transfers (iTerm2 OSC 1337
/// `File=`) and tmux passthrough reach an interactive client only when
/// config.toml allows them (off by default, as in tmux); what a terminal
/// needs to draw (a hyperlink, colours) always does.
#[test]
fn clipboard_files_and_passthrough_reach_a_client_only_when_config_allows() {
    let env = TestEnv::new();
    let script = concat!(
        "read x; printf 'A\\033]52;c;aGk=\\007B\\033]1337;File=name=eA==;inline=0:QUFB\\007C",
        "\\033Ptmux;\\033\\033]52;c;eA==\\007\\033\\\\D\\033]8;;http://x\\007link\\033]8;;\\007",
        "\\302\\23552;c;QzE=\\302\\234\\033[31mred\\033[0m done\\n'; sleep 60"
    );
    let sent = |name: &str| {
        env.start(name, &["sh", "-c", script]);
        let mut term = env.terminal(&["attach", name], 80, 24);
        term.wait_attached();
        term.send(b"go\r");
        term.wait_text("red done");
        let raw = term.raw();
        let has = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        let got = [
            has(b"\x1b]52;c;aGk="),
            has(b"\x1b]1337;File="),
            has(b"\x1bPtmux;"),
            has(b"\x1b]8;;http://x"),
            has(b"\x1b[31mred"),
            // OSC 52 with C1 controls written as UTF-8 (U+009D … U+009C).
            has(b"52;c;QzE="),
        ];
        term.detach();
        got
    };
    assert_eq!(sent("plain"), [false, false, false, true, true, false], "by default");
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(
        env.config_dir().join("config.toml"),
        "clipboard = true\nfile_transfer = true\npassthrough = true\n",
    )
    .unwrap();
    assert_eq!(sent("allowed"), [true, true, true, true, true, true], "with all three allowed");
    std::fs::write(env.config_dir().join("config.toml"), "clipboard = true\n").unwrap();
    assert_eq!(sent("clip"), [true, false, false, true, true, true], "with the clipboard only");
}

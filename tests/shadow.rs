//! Shadowing: read-only watchers over SSH and locally, presence the owner
//! sees, consent, views that fit any terminal, and watchers that can
//! neither type nor slow anything down.

use crate::support::ssh::{Daemon, Key, Ssh, authorize};
use crate::support::*;
use rustix::process::Signal;

struct Team {
    env: TestEnv,
    _daemon: Daemon,
    owner: Ssh,
    mentor: Ssh,
}

/// A daemon with an owner key and a watcher key ("mentor@example").
fn team() -> Team {
    let env = TestEnv::new();
    let keys = env.root().join("keys");
    let (owner_key, mentor_key) =
        (Key::new(&keys, "owner", "alice@laptop"), Key::new(&keys, "mentor", "mentor@example"));
    authorize(
        &env,
        &[owner_key.public(), format!("tether-role=\"watcher\" {}", mentor_key.public())],
    );
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let (owner, mentor) =
        (Ssh::new(&env, &daemon, &owner_key), Ssh::new(&env, &daemon, &mentor_key));
    Team { env, _daemon: daemon, owner, mentor }
}

fn over_ssh(env: &TestEnv, ssh: &Ssh, command: &[&str], cols: u16, rows: u16) -> Terminal {
    let argv = ssh.argv(&["-tt"], command);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    env.terminal_program(&argv, cols, rows)
}

#[test]
fn a_watcher_cannot_type_paste_or_answer_into_the_session() {
    let t = team();
    let file = t.env.root().join("typed.txt");
    t.owner.ok(
        &t.env,
        &["new", "-d", "job", "--", "sh", "-c", &format!("'cat > {}'", file.display())],
    );
    let mut watcher = over_ssh(&t.env, &t.mentor, &["watch", "job"], 80, 24);
    watcher.wait_text("watching job");
    // Keys, a bracketed paste, and what a terminal answers to a query.
    watcher.send(b"typed by the watcher\r");
    watcher.send(b"\x1b[200~pasted text\x1b[201~\r");
    watcher.send(b"\x1b[12;40R\x04");
    let who: serde_json::Value =
        serde_json::from_str(&t.owner.ok(&t.env, &["who", "job", "--json"])).unwrap();
    let entry = &who[0];
    assert_eq!(
        (entry["kind"].as_str(), entry["identity"].as_str(), entry["role"].as_str()),
        (Some("watcher"), Some("mentor@example"), Some("watcher"))
    );
    assert!(entry["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert!(entry["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(t.env.session("job")["watchers"], 1);
    // The job is still waiting for input: nothing arrived.
    let mut owner = over_ssh(&t.env, &t.owner, &["attach", "job"], 80, 24);
    owner.wait_attached();
    owner.send(b"from the owner\r\x04");
    assert_eq!(t.env.run(&["wait", "job"]).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "from the owner\n");
    // The refusals name the role.
    for command in [&["attach", "job"][..], &["kill", "job"], &["new", "-d", "x", "--", "true"]] {
        let out = t.mentor.run_with(&t.env, &["-tt"], command);
        assert_eq!(out.status.code(), Some(5), "{command:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("watcher role"), "{command:?}: {text}");
    }
    let audit = std::fs::read_to_string(t.env.state_dir().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"refused\"") && audit.contains("\"watch\""), "{audit}");
}

#[test]
fn the_owner_sees_who_joins_and_leaves_and_gets_the_screen_back() {
    let t = team();
    t.owner.ok(
        &t.env,
        &["new", "-d", "pair", "--", "sh", "-c", "'printf \"line one\\nline two\\n\"; sleep 60'"],
    );
    let owner = over_ssh(&t.env, &t.owner, &["attach", "pair"], 80, 24);
    owner.wait_text("line two");
    let before = owner.contents();
    let mut watcher = over_ssh(&t.env, &t.mentor, &["watch", "pair"], 80, 24);
    owner.wait_text("mentor@example (watcher, 127.0.0.1");
    owner.wait_text("is watching");
    // The notice goes away by itself and the screen is as it was.
    owner.wait_screen("the notice to be repainted away", |s| s.contents() == before);
    watcher.wait_text("line two");
    watcher.send(b"\x1c");
    watcher.wait_exit();
    owner.wait_text("stopped watching");
    owner.wait_screen("the screen to come back", |s| s.contents() == before);
    let recording =
        std::fs::read_to_string(t.env.session("pair")["recording_path"].as_str().unwrap()).unwrap();
    assert!(recording.contains("\"watch mentor@example (watcher,"), "{recording}");
    assert!(recording.contains("\"unwatch mentor@example (watcher,"), "{recording}");
}

#[test]
fn a_small_watcher_terminal_gets_a_cropped_view_and_a_status_line() {
    let t = team();
    t.owner.ok(&t.env, &["new", "-d", "wide", "--", "sh", "-c", "'i=0; while [ $i -lt 30 ]; do printf \"%02d W%090d\\n\" $i 0; i=$((i+1)); done; printf \"the end\"; sleep 60'"]);
    let mut owner = over_ssh(&t.env, &t.owner, &["attach", "wide"], 100, 30);
    owner.wait_text("the end");
    let watcher = over_ssh(&t.env, &t.mentor, &["watch", "wide"], 80, 12);
    watcher.wait_text("the end");
    watcher.with_screen(|s| {
        let rows: Vec<String> = s.rows(0, 80).collect();
        assert_eq!(rows.len(), 12);
        assert!(
            rows[11].starts_with(" watching wide (owner alice@laptop) · read-only · 1 watching"),
            "{rows:?}"
        );
        assert!(rows[11].contains("cropped 100x30"), "{rows:?}");
        // Cropped, never wrapped: each row is the start of one session row.
        for r in &rows[..11] {
            assert!(
                r.is_empty()
                    || r.starts_with(|c: char| c.is_ascii_digit()
                        || c == 't'
                        || c == 'W'
                        || c == '-'),
                "{r:?} in {rows:?}"
            );
        }
    });
    owner.send(b"\x1c");
}

#[test]
fn watching_a_consent_session_waits_for_a_yes() {
    let t = team();
    t.owner.ok(
        &t.env,
        &["new", "-d", "--consent", "private", "--", "sh", "-c", "'echo secret stuff; sleep 60'"],
    );
    let mut owner = over_ssh(&t.env, &t.owner, &["attach", "private"], 80, 24);
    owner.wait_text("secret stuff");
    let watcher = over_ssh(&t.env, &t.mentor, &["watch", "private"], 80, 24);
    owner.wait_text("wants to watch. Allow? [y/n]");
    assert!(!watcher.contents().contains("secret"));
    owner.send(b"y");
    watcher.wait_text("secret stuff");
    // A refusal.
    let mut second = over_ssh(&t.env, &t.mentor, &["watch", "private"], 80, 24);
    owner.wait_text("wants to watch. Allow? [y/n]");
    owner.send(b"n");
    assert_eq!(second.wait_exit(), 5);
    second.wait_text("declined");
}

#[test]
fn stalled_and_busy_watchers_never_slow_or_break_the_session() {
    let t = team();
    let gate = Gate::new(&t.env);
    // Quoted: ssh joins the remote command's words with spaces.
    let script = format!("'{}'", gate.script("seq 1 200000; echo flood-finished; sleep 60"));
    t.owner.ok(&t.env, &["new", "-d", "busy", "--", "sh", "-c", &script]);
    let stalled = over_ssh(&t.env, &t.mentor, &["watch", "busy"], 80, 24);
    stalled.wait_text("watching busy");
    signal(stalled.pid(), Signal::STOP);
    let active: Vec<Terminal> =
        (0..3).map(|_| over_ssh(&t.env, &t.mentor, &["watch", "busy"], 80, 24)).collect();
    for w in &active {
        w.wait_text("watching busy");
    }
    wait_until("four watchers", || t.env.session("busy")["watchers"] == 4);
    gate.open();
    t.env.wait_text("busy", "flood-finished");
    for w in &active {
        w.wait_text("flood-finished");
    }
    let keeper = t.env.session("busy")["keeper_pid"].as_u64().unwrap() as u32;
    let rss = std::fs::read_to_string(format!("/proc/{keeper}/status")).unwrap();
    let rss_kb: u64 = rss
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kb < 64 * 1024, "keeper RSS {rss_kb} kB");
    signal(stalled.pid(), Signal::CONT);
    stalled.wait_text("flood-finished");
}

#[test]
fn local_watch_is_read_only_and_shows_the_view() {
    let env = TestEnv::new();
    env.start("solo", &["sh", "-c", "echo visible; read x; echo got $x"]);
    let mut watcher = env.terminal(&["watch", "solo"], 60, 10);
    watcher.wait_text("visible");
    watcher.wait_text(&format!("watching solo (owner {}) · read-only", user_name()));
    watcher.send(b"ignored\r");
    let mut owner = env.terminal(&["attach", "solo"], 60, 10);
    owner.wait_attached();
    owner.send(b"real\r");
    env.wait_text("solo", "got real");
    assert!(!env.tail("solo").contains("ignored"));
    // Local watchers are audited too.
    drop(watcher);
    wait_until("the unwatch", || {
        std::fs::read_to_string(env.state_dir().join("audit.jsonl"))
            .is_ok_and(|a| a.contains("\"unwatch\""))
    });
    let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"watch\",\"session\":\"solo\""), "{audit}");
}

#[test]
fn sequences_that_act_on_a_viewer_never_reach_watchers() {
    use std::io::{Read, Write};
    use tether_proto::{
        AttachMode, AttachRequest, FrameDecoder, HelloRequest, Identity, Message, Role, WindowSize,
        encode,
    };
    let env = TestEnv::new();
    // Interactive clients may have clipboard writes here; watchers never.
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("config.toml"), "clipboard = true\n").unwrap();
    env.start(
        "osc",
        &["sh", "-c", "read x; printf 'before\\033]52;c;aGVsbG8=\\007after\\n'; sleep 60"],
    );
    let sock = env.keeper_socket();
    let attach = |mode| {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let identity =
            Identity { name: "probe".into(), fingerprint: None, role: Role::Owner, address: None };
        s.write_all(
            &encode(&Message::Hello(HelloRequest { protocol: 1, software: "test".into() }))
                .unwrap(),
        )
        .unwrap();
        s.write_all(
            &encode(&Message::Attach(AttachRequest {
                mode,
                size: WindowSize::DEFAULT,
                identity,
                term: None,
            }))
            .unwrap(),
        )
        .unwrap();
        s
    };
    let collect = |mut s: std::os::unix::net::UnixStream| {
        let mut dec = FrameDecoder::new();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !out.windows(5).any(|w| w == b"after") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            dec.extend(&buf[..n]);
            while let Some(m) = dec.next_message().unwrap() {
                if let Message::Output(b) = m {
                    out.extend_from_slice(&b);
                }
            }
        }
        out
    };
    let watcher = attach(AttachMode::ReadOnly);
    let mut owner = attach(AttachMode::Interactive);
    // Both attached before the job prints: a watcher that came later would
    // get the screen as a redraw instead (found by CI, under load).
    wait_until("the watcher and the owner to attach", || {
        let s = env.session("osc");
        s["clients"] == 1 && s["watchers"] == 1
    });
    owner.write_all(&encode(&Message::Input(bytes::Bytes::from_static(b"go\r"))).unwrap()).unwrap();
    let to_owner = collect(owner);
    let to_watcher = collect(watcher);
    assert!(to_owner.windows(4).any(|w| w == b"\x1b]52"), "the interactive client gets it");
    assert!(!to_watcher.windows(4).any(|w| w == b"\x1b]52"), "the watcher does not");
    assert!(to_watcher.windows(6).any(|w| w == b"before"));
}

/// A `--consent` session is watched only with a yes from someone attached;
/// once it has ended nobody can say yes, so a watcher is refused its final
/// screen (exit 5), while its owner still sees it.
#[test]
fn the_final_screen_of_an_ended_consent_session_is_not_shown_to_watchers() {
    let t = team();
    t.owner.ok(
        &t.env,
        &["new", "-d", "--consent", "private", "--", "sh", "-c", "'echo secret stuff; exit 3'"],
    );
    wait_until("the job to end", || t.env.session("private")["state"] == "ended");
    let mut watcher = over_ssh(&t.env, &t.mentor, &["watch", "private"], 80, 24);
    assert_eq!(watcher.wait_exit(), 5);
    watcher.wait_text("--consent");
    assert!(!String::from_utf8_lossy(&watcher.raw()).contains("secret"), "{}", watcher.contents());
    let audit = std::fs::read_to_string(t.env.state_dir().join("audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"refused\"") && l.contains("--consent")), "{audit}");
    let mut owner = over_ssh(&t.env, &t.owner, &["attach", "private"], 80, 24);
    assert_eq!(owner.wait_exit(), 3);
    owner.wait_text("secret stuff");
}

/// The final screen of an ended session reaches a read-only client drawn
/// by tether, like the live view: the job's window title (and anything
/// else of its own sequences) does not reach the watcher's terminal.
#[test]
fn an_ended_sessions_title_never_reaches_a_watcher() {
    let t = team();
    t.owner.ok(
        &t.env,
        &[
            "new",
            "-d",
            "titled",
            "--",
            "sh",
            "-c",
            "'printf \"\\033]2;EVIL-TITLE\\007\\033[?2004h\\033[31mfinal words\\033[0m\\n\"'",
        ],
    );
    wait_until("the job to end", || t.env.session("titled")["state"] == "ended");
    let watchers = [
        ("ssh -t", over_ssh(&t.env, &t.mentor, &["watch", "titled"], 80, 24)),
        ("local", t.env.terminal(&["watch", "titled"], 80, 24)),
    ];
    for (path, mut watcher) in watchers {
        assert_eq!(watcher.wait_exit(), 0, "{path}");
        watcher.wait_text("final words");
        watcher.wait_text("[session titled ended: exit code 0");
        let raw = String::from_utf8_lossy(&watcher.raw()).into_owned();
        assert!(!raw.contains("EVIL-TITLE") && !raw.contains("\x1b[?2004h"), "{path}: {raw:?}");
        // Drawn with its colours.
        assert!(raw.contains("\x1b[0;31mfinal words"), "{path}: {raw:?}");
    }
    // An interactive client gets the screen as the job left it (then the
    // modes undone).
    let mut owner = over_ssh(&t.env, &t.owner, &["attach", "titled"], 80, 24);
    owner.wait_exit();
    assert!(String::from_utf8_lossy(&owner.raw()).contains("EVIL-TITLE"));
}

//! One question, one answer, on every path: a key's role and its
//! `tether-sessions` decide every operation the same way whether it
//! arrives as `ssh host CMD`, `ssh -t host CMD`, through the session
//! picker or through `tether --host` (the `tether` subsystem), and every
//! refusal is exit 5, names the right that is missing, and is audited.
//!
//! And every way of leaving an attachment puts the user's terminal back:
//! checked with an independent emulator (vt100) on each path.

use crate::support::ssh::{Daemon, Key, Ssh, authorize, known_hosts_line};
use crate::support::*;
use serde_json::Value;
use std::process::Output;

const ROLES: [&str; 3] = ["owner", "operator", "watcher"];

/// Whether PRODUCT.md's table lets `role` do `op`.
fn permits(role: &str, op: &str) -> bool {
    match op {
        "ls" | "who" | "watch" => true,
        "attach" | "new" | "tail" | "wait" | "export" | "replay" | "grep" | "verify" => {
            role != "watcher"
        }
        "kill" | "rm" | "freeze" | "thaw" | "snapshot" => role == "owner",
        other => panic!("no rule for {other}"),
    }
}

/// A daemon, one key per role (each limited to `pub-*`), and sessions
/// inside and outside that glob.
struct Fixture {
    env: TestEnv,
    daemon: Daemon,
    keys: Vec<(&'static str, Key)>,
}

impl Fixture {
    fn new() -> Fixture {
        let env = TestEnv::new();
        let dir = env.root().join("keys");
        let keys: Vec<(&str, Key)> = ROLES
            .iter()
            .map(|role| (*role, Key::new(&dir, role, &format!("{role}@pub"))))
            .collect();
        let lines: Vec<String> = keys
            .iter()
            .map(|(role, key)| {
                format!("tether-role=\"{role}\",tether-sessions=\"pub-*\" {}", key.public())
            })
            .collect();
        authorize(&env, &lines);
        let daemon = Daemon::start(&env, "127.0.0.1:0");
        for (name, script) in [
            ("pub-run", "echo pub-text; sleep 300"),
            ("secret-run", "echo secret-text; sleep 300"),
            ("pub-end", "echo pub-done"),
            ("secret-end", "echo secret-done"),
        ] {
            env.start(name, &["sh", "-c", script]);
        }
        for name in ["pub-end", "secret-end"] {
            wait_until("the job to end", || env.session(name)["state"] == "ended");
        }
        let ssh_dir = env.home().join(".ssh");
        std::fs::create_dir_all(&ssh_dir).unwrap();
        std::fs::write(ssh_dir.join("known_hosts"), known_hosts_line(&env, daemon.port)).unwrap();
        Fixture { env, daemon, keys }
    }

    fn ssh(&self, role: &str) -> Ssh {
        let key = &self.keys.iter().find(|(r, _)| *r == role).unwrap().1;
        Ssh::new(&self.env, &self.daemon, key)
    }

    fn key(&self, role: &str) -> String {
        self.keys.iter().find(|(r, _)| *r == role).unwrap().1.path.display().to_string()
    }

    /// `tether --host … --identity KEY ARGS`.
    fn host_args(&self, role: &str, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            "--host".to_owned(),
            format!("127.0.0.1:{}", self.daemon.port),
            "--identity".to_owned(),
            self.key(role),
        ];
        v.extend(args.iter().map(|s| (*s).to_owned()));
        v
    }

    fn refusals(&self) -> Vec<Value> {
        let audit =
            std::fs::read_to_string(self.env.state_dir().join("audit.jsonl")).unwrap_or_default();
        audit
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "refused")
            .collect()
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The non-interactive operations, on a session in or out of `pub-*`
/// (`SIDE` is `pub` or `secret`); `ROLE` makes names unique per role.
/// Operations that would destroy the fixture name sessions that do not
/// exist: allowed, they answer "no such session" (3), refused, 5, since a
/// refusal never depends on what exists.
const OPERATIONS: &[(&str, &[&str], i32)] = &[
    ("who", &["who", "SIDE-run"], 0),
    ("tail", &["tail", "SIDE-run"], 0),
    ("wait", &["wait", "SIDE-end"], 0),
    ("export", &["export", "SIDE-end", "--format", "txt"], 0),
    ("replay", &["replay", "SIDE-end", "--at", "+0s"], 0),
    ("grep", &["grep", "done", "SIDE-end"], 0),
    // A refusal never depends on what exists: 5, not "no such session".
    ("grep", &["grep", "done", "SIDE-none"], 3),
    ("verify", &["verify", "SIDE-end"], 0),
    ("new", &["new", "-d", "SIDE-new-ROLE", "--", "true"], 0),
    ("kill", &["kill", "SIDE-none"], 3),
    ("rm", &["rm", "SIDE-none"], 3),
    ("freeze", &["freeze", "SIDE-none"], 3),
    ("thaw", &["thaw", "SIDE-none"], 3),
    ("snapshot", &["snapshot", "SIDE-none"], 3),
    // Interactive without a terminal: allowed, it asks for one (2).
    ("watch", &["watch", "SIDE-run"], 2),
    ("attach", &["attach", "SIDE-run"], 2),
];

/// Runs the table on one path; `run(role, args)` runs one command there.
fn check_table(fx: &Fixture, path: &str, run: &dyn Fn(&str, &[String]) -> Output) {
    let mut failures = Vec::new();
    for role in ROLES {
        for side in ["pub", "secret"] {
            for (op, args, allowed_code) in OPERATIONS {
                // Recordings are read where they are: --host says so (2).
                // With --host, verify reads a local file (none is named so).
                if *op == "verify" && path == "tether --host" {
                    continue;
                }
                let elsewhere =
                    matches!(*op, "export" | "replay" | "grep") && path == "tether --host";
                let allowed_code = if elsewhere { &2 } else { allowed_code };
                let args: Vec<String> =
                    args.iter().map(|a| a.replace("SIDE", side).replace("ROLE", role)).collect();
                let allowed = permits(role, op) && side == "pub";
                let before = fx.refusals().len();
                let out = run(role, &args);
                let code = out.status.code();
                let want = if allowed { *allowed_code } else { 5 };
                let what = format!("{path}: {role} {args:?}");
                if code != Some(want) {
                    failures.push(format!("{what}: exit {code:?}, not {want}: {}", text(&out)));
                    continue;
                }
                if allowed {
                    continue;
                }
                let said = text(&out);
                let named = if permits(role, op) {
                    said.contains(&format!("may not reach session {side}-"))
                } else {
                    said.contains(&format!("the {role} role may not"))
                };
                if !named {
                    failures.push(format!("{what}: the refusal does not name the right: {said}"));
                }
                let refusals = fx.refusals();
                // grep and verify name recordings, not one session: a role
                // refusal comes before any is looked at.
                let sessionless = matches!(*op, "grep" | "verify") && !permits(role, op);
                let audited = refusals[before..].iter().any(|e| {
                    (e["session"].as_str().is_some_and(|s| s.starts_with(side))
                        || (sessionless && e["session"].is_null()))
                        && e["comment"] == format!("{role}@pub")
                        && e["detail"].as_str().is_some_and(|d| d.contains("may not"))
                });
                if !audited {
                    failures.push(format!("{what}: refused but not audited"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} cases wrong:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_operation_is_decided_alike_over_plain_ssh() {
    let fx = Fixture::new();
    check_table(&fx, "ssh host CMD", &|role, args| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fx.ssh(role).run(&fx.env, &args)
    });
    // ls only ever lists what the key may reach, and grep without a
    // target searches only those recordings.
    for role in ROLES {
        let listed = fx.ssh(role).ok(&fx.env, &["ls"]);
        assert!(listed.contains("pub-run") && !listed.contains("secret"), "{role}: {listed}");
    }
    let found = fx.ssh("operator").ok(&fx.env, &["grep", "done"]);
    assert!(found.contains("pub-done") && !found.contains("secret"), "{found}");
    // A limited key names recordings and bundles by session, never by a
    // path on the host (which would tell what exists there).
    let secret = fx.env.session("secret-end")["recording_path"].as_str().unwrap().to_owned();
    for args in [&["verify", secret.as_str()][..], &["grep", "x", &secret], &["verify", "/etc"]] {
        let out = fx.ssh("owner").run(&fx.env, args);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", text(&out));
    }
}

#[test]
fn every_operation_is_decided_alike_through_tether_host() {
    let fx = Fixture::new();
    check_table(&fx, "tether --host", &|role, args| {
        let args = fx.host_args(role, &args.iter().map(String::as_str).collect::<Vec<_>>());
        fx.env.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    });
    for role in ROLES {
        let listed =
            fx.env.ok(&fx.host_args(role, &["ls"]).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(listed.contains("pub-run") && !listed.contains("secret"), "{role}: {listed}");
    }
}

/// `ssh -t host watch|attach NAME` and `tether --host … watch|attach NAME`
/// in a real terminal: allowed ones attach (and detach with the key),
/// refused ones exit 5 without showing anything of the session.
#[test]
fn interactive_attachments_are_decided_alike_on_every_path() {
    let fx = Fixture::new();
    let mut failures = Vec::new();
    for role in ROLES {
        for side in ["pub", "secret"] {
            for op in ["watch", "attach"] {
                let target = format!("{side}-run");
                let allowed = permits(role, op) && side == "pub";
                let ssh_argv = fx.ssh(role).argv(&["-tt"], &[op, &target]);
                let host_argv: Vec<String> = std::iter::once(bin().to_owned())
                    .chain(fx.host_args(role, &[op, &target]))
                    .collect();
                for (path, argv) in [("ssh -t", ssh_argv), ("tether --host", host_argv)] {
                    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                    let mut term = fx.env.terminal_program(&argv, 100, 30);
                    if allowed {
                        term.wait_text(&format!("{side}-text"));
                        let code = term.detach();
                        if code != 0 {
                            failures.push(format!("{path} {role} {op} {target}: exit {code}"));
                        }
                    } else {
                        let code = term.wait_exit();
                        // The client has exited; its last words may still
                        // be on their way through the terminal.
                        term.wait_text("may not");
                        let shown = term.contents();
                        if code != 5 || shown.contains("secret-text") {
                            failures.push(format!(
                                "{path} {role} {op} {target}: exit {code}, screen {shown:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The defect that started this: a key limited to pub-* watched `secret`.
    let audit = fx.refusals();
    assert!(
        audit.iter().any(|e| e["session"] == "secret-run" && e["comment"] == "watcher@pub"),
        "the refused watch is not audited: {audit:?}"
    );
}

/// The picker (`ssh -t host`) lists only what the key may reach and will
/// not create a session outside it.
#[test]
fn the_picker_shows_and_creates_only_what_the_key_may_reach() {
    let fx = Fixture::new();
    let argv = fx.ssh("operator").argv(&["-tt"], &[]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut term = fx.env.terminal_program(&argv, 100, 30);
    term.wait_text("pub-run");
    assert!(!term.contents().contains("secret"), "{}", term.contents());
    term.send(b"n");
    term.wait_text("new session name");
    term.send(b"secret-x\r");
    term.wait_text("may not reach session secret-x");
    assert!(fx.env.run(&["who", "secret-x"]).status.code() == Some(3), "it was created");
    term.send(b"q");
    assert_eq!(term.wait_exit(), 0);
    assert!(fx.refusals().iter().any(|e| e["session"] == "secret-x"));
}

/// A job that leaves modes on: mouse reporting, bracketed paste, a hidden
/// cursor, the alternate screen, application keypad.
const MODES: &str =
    r"printf '\033[?1049h\033[?1000h\033[?1006h\033[?2004h\033[?25l\033=modes-on\n'";

/// Whether an independent emulator's screen is back to normal.
fn terminal_is_back(term: &Terminal) -> Result<(), String> {
    term.with_screen(|s| {
        let mut wrong = Vec::new();
        if s.alternate_screen() {
            wrong.push("alternate screen");
        }
        if s.mouse_protocol_mode() != vt100::MouseProtocolMode::None {
            wrong.push("mouse reporting");
        }
        if s.bracketed_paste() {
            wrong.push("bracketed paste");
        }
        if s.hide_cursor() {
            wrong.push("hidden cursor");
        }
        if s.application_keypad() {
            wrong.push("application keypad");
        }
        if wrong.is_empty() { Ok(()) } else { Err(wrong.join(", ")) }
    })
}

/// A daemon with one unlimited owner key, trusted by ssh and --host.
fn owner_setup() -> (TestEnv, Daemon, Key) {
    let env = TestEnv::new();
    let key = Key::new(&env.root().join("keys"), "alice", "alice@laptop");
    authorize(&env, &[key.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh_dir = env.home().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(ssh_dir.join("known_hosts"), known_hosts_line(&env, daemon.port)).unwrap();
    (env, daemon, key)
}

/// Attaching to a session that has already ended shows its final screen
/// and leaves the user's terminal as it was, on every path.
#[test]
fn attaching_to_an_ended_session_resets_the_terminal_on_every_path() {
    let (env, daemon, key) = owner_setup();
    env.start("done", &["sh", "-c", &format!("{MODES}; exit 3")]);
    wait_until("the job to end", || env.session("done")["state"] == "ended");
    let ssh = Ssh::new(&env, &daemon, &key);
    let host = format!("127.0.0.1:{}", daemon.port);
    let keyfile = key.path.display().to_string();
    let paths: Vec<(&str, Vec<String>)> = vec![
        ("local", vec![bin().into(), "attach".into(), "done".into()]),
        ("ssh -t", ssh.argv(&["-tt"], &["attach", "done"])),
        (
            "tether --host",
            [bin(), "--host", &host, "--identity", &keyfile, "attach", "done"]
                .map(str::to_owned)
                .to_vec(),
        ),
    ];
    for (path, argv) in paths {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut term = env.terminal_program(&argv, 80, 24);
        assert_eq!(term.wait_exit(), 3, "{path}");
        term.wait_text("[session done ended: exit code 3");
        assert!(term.raw().windows(8).any(|w| w == b"modes-on"), "{path}: no final screen");
        if let Err(left) = terminal_is_back(&term) {
            panic!("{path}: the terminal was left with {left}");
        }
    }
}

/// The job ending while attached resets the terminal too, on every path.
#[test]
fn a_job_ending_while_attached_resets_the_terminal_on_every_path() {
    let (env, daemon, key) = owner_setup();
    let ssh = Ssh::new(&env, &daemon, &key);
    let host = format!("127.0.0.1:{}", daemon.port);
    let keyfile = key.path.display().to_string();
    for (i, path) in ["local", "ssh -t", "tether --host"].into_iter().enumerate() {
        let name = format!("live{i}");
        env.start(&name, &["sh", "-c", &format!("{MODES}; read x; exit 4")]);
        let argv: Vec<String> = match path {
            "local" => vec![bin().into(), "attach".into(), name.clone()],
            "ssh -t" => ssh.argv(&["-tt"], &["attach", &name]),
            _ => [bin(), "--host", &host, "--identity", &keyfile, "attach", &name]
                .map(str::to_owned)
                .to_vec(),
        };
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut term = env.terminal_program(&argv, 80, 24);
        term.wait_text("modes-on");
        term.wait_screen("the job's modes to reach the terminal", |s| s.bracketed_paste());
        term.send(b"bye\r");
        assert_eq!(term.wait_exit(), 4, "{path}");
        term.wait_text("ended: exit code 4");
        if let Err(left) = terminal_is_back(&term) {
            panic!("{path}: the terminal was left with {left}");
        }
    }
}

/// `check` over ssh, by an operator: its probe is created, ended and
/// forgotten with the operator's rights, and a refused kill of a protected
/// session is not audited as a kill.
#[test]
fn an_operator_can_check_and_refused_kills_are_not_audited() {
    let env = TestEnv::new();
    let key = Key::new(&env.root().join("keys"), "op", "op@desk");
    authorize(&env, &[format!("tether-role=\"operator\" {}", key.public())]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &key);
    let out = ssh.run(&env, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(env.ok(&["ls", "--json"]).trim(), "[]", "check left its probe behind");
    // Through the subsystem, as the owner: a kill the keeper refuses.
    let owner = Key::new(&env.root().join("keys"), "owner", "owner@desk");
    authorize(&env, &[owner.public()]);
    let ssh_dir = env.home().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(ssh_dir.join("known_hosts"), known_hosts_line(&env, daemon.port)).unwrap();
    env.ok(&["new", "-d", "--protect", "guarded", "--", "sleep", "60"]);
    let host = format!("127.0.0.1:{}", daemon.port);
    let keyfile = owner.path.display().to_string();
    let out = env.run(&["--host", &host, "--identity", &keyfile, "kill", "guarded"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
    assert!(!audit.lines().any(|l| l.contains("\"event\":\"kill\"")), "{audit}");
    env.ok(&["--host", &host, "--identity", &keyfile, "kill", "--force", "guarded"]);
    let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
    assert!(audit.lines().any(|l| l.contains("\"event\":\"kill\"")), "{audit}");
}

/// Regression: through the subsystem an SSH key could send a create
/// request marked as a `check` probe; the session then recorded into the
/// scratch place that `rm` deletes, so what was typed in it left no
/// recording. Probes are for the local user's `tether check` alone: the
/// request is refused (exit 5) and audited, for every role, whatever the
/// name, and nothing is created; `check` over SSH still works (the daemon
/// makes its own probe).
#[test]
fn no_ssh_caller_can_create_a_probe_session() {
    use crate::support::rssh::{connect, finish, runtime};
    use tether_proto::{
        CreateRequest, ErrorCode, FrameDecoder, HelloRequest, Message, Request, SessionName,
        WindowSize, encode,
    };
    let env = TestEnv::new();
    let dir = env.root().join("keys");
    let owner = Key::new(&dir, "owner", "owner@desk");
    let operator = Key::new(&dir, "op", "op@desk");
    authorize(&env, &[owner.public(), format!("tether-role=\"operator\" {}", operator.public())]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let rt = runtime();
    for (key, name) in
        [(&owner, "check-0123abcd"), (&operator, "check-89abcdef"), (&operator, "work")]
    {
        let create = CreateRequest {
            name: SessionName::new(name).unwrap(),
            command: vec!["sh".into(), "-c".into(), "echo unrecorded; sleep 60".into()],
            cwd: None,
            env: Vec::new(),
            size: WindowSize::DEFAULT,
            term: None,
            protect: false,
            no_record: false,
            record_input: false,
            consent: false,
            probe: true,
        };
        let messages = rt.block_on(async {
            let handle = connect(daemon.port, &key.path).await;
            let mut ch = handle.channel_open_session().await.unwrap();
            ch.request_subsystem(true, "tether").await.unwrap();
            let hello = Message::Hello(HelloRequest { protocol: 1, software: "probe".into() });
            let mut bytes = encode(&hello).unwrap();
            bytes.extend(encode(&Message::Request(Request::Create(create))).unwrap());
            ch.data(&bytes[..]).await.unwrap();
            let out = finish(&mut ch, TIMEOUT).await;
            let mut dec = FrameDecoder::new();
            dec.extend(&out.output);
            let mut messages = Vec::new();
            while let Ok(Some(m)) = dec.next_message() {
                messages.push(m);
            }
            messages
        });
        match messages.last() {
            Some(Message::Error(e)) => {
                assert_eq!(e.code, ErrorCode::Refused, "{name}: {e:?}");
                assert!(e.message.contains("probe"), "{name}: {}", e.message);
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
        assert!(
            audit.lines().any(|l| l.contains("\"event\":\"refused\"")
                && l.contains(&format!("\"session\":\"{name}\""))),
            "{audit}"
        );
    }
    assert_eq!(env.ok(&["ls", "--json"]).trim(), "[]");
    // `check` over ssh, as the operator, still works: its probe is the
    // daemon's, and it is gone afterwards.
    let ssh = Ssh::new(&env, &daemon, &operator);
    let out = ssh.run(&env, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(env.ok(&["ls", "--json"]).trim(), "[]");
}

/// Over ssh, even an unlimited key names files on the host only inside
/// tether's recordings and evidence directories: any other path is
/// refused with the same message whether or not it exists, so `verify`,
/// `grep` and `export` tell nothing about the rest of the host's files.
#[test]
fn over_ssh_a_path_outside_tethers_directories_tells_nothing() {
    let (env, daemon, key) = owner_setup();
    env.start("rec", &["sh", "-c", "echo recorded"]);
    wait_until("the job to end", || env.session("rec")["state"] == "ended");
    let recording = env.session("rec")["recording_path"].as_str().unwrap().to_owned();
    let recordings = std::path::Path::new(&recording).parent().unwrap().to_owned();
    // A link inside the recordings directory that leads out.
    std::os::unix::fs::symlink("/etc/passwd", recordings.join("leak.cast")).unwrap();
    let ssh = Ssh::new(&env, &daemon, &key);
    let mut answers = Vec::new();
    for path in [
        "/etc/passwd",
        "/etc",
        "/no/such/file.cast",
        &format!("{}/../../../../../etc/passwd", recordings.display()),
        &recordings.join("leak.cast").display().to_string(),
        "relative.cast",
        "../x/y",
    ] {
        for command in
            [&["verify", path][..], &["grep", "root", path], &["export", path, "--format", "txt"]]
        {
            let out = ssh.run(&env, command);
            assert_eq!(out.status.code(), Some(5), "{command:?}: {}", text(&out));
            answers.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "the answers differ: {answers:?}");
    assert!(answers[0].contains("recordings or evidence directory"), "{answers:?}");
    // Inside, by path or by session, it works.
    for target in [recording.as_str(), "rec"] {
        let out = ssh.run(&env, &["verify", target]);
        assert_eq!(out.status.code(), Some(0), "{target}: {}", text(&out));
    }
    // Locally, any path is the user's own business.
    assert_ne!(env.run(&["verify", "/etc/passwd"]).status.code(), Some(5));
}

/// The host's side of `check` (free space, whether recordings can be
/// written) answers only a key that may run `check`; a watcher asking
/// through the subsystem is refused.
#[test]
fn the_health_request_answers_only_who_may_check() {
    use tether_proto::{FrameDecoder, HelloRequest, Message, Request, encode};
    let fx = Fixture::new();
    let rt = crate::support::rssh::runtime();
    let ask = |role: &str| {
        let key = fx.keys.iter().find(|(r, _)| *r == role).unwrap().1.path.clone();
        rt.block_on(async {
            let handle = crate::support::rssh::connect(fx.daemon.port, &key).await;
            let mut ch = handle.channel_open_session().await.unwrap();
            ch.request_subsystem(true, "tether").await.unwrap();
            let hello = Message::Hello(HelloRequest { protocol: 1, software: "test".into() });
            let mut bytes = encode(&hello).unwrap();
            bytes.extend(encode(&Message::Request(Request::Health { probe: None })).unwrap());
            ch.data(&bytes[..]).await.unwrap();
            let out = crate::support::rssh::finish(&mut ch, TIMEOUT).await;
            let mut dec = FrameDecoder::new();
            dec.extend(&out.output);
            let mut messages = Vec::new();
            while let Ok(Some(m)) = dec.next_message() {
                messages.push(m);
            }
            messages.pop().unwrap()
        })
    };
    match ask("watcher") {
        Message::Error(e) => assert_eq!(e.code.exit_code(), 5, "{e:?}"),
        other => panic!("a watcher was answered: {other:?}"),
    }
    assert!(matches!(ask("operator"), Message::Reply(_)));
}

/// An operator may not kill, but a job it starts runs as the user and can
/// run `tether kill` itself. Every request made from inside a session is
/// marked in the audit log with that session and who started it; the same
/// request from outside is not.
#[test]
fn requests_from_inside_a_session_are_marked_in_the_audit_log() {
    let env = TestEnv::new();
    let key = Key::new(&env.root().join("keys"), "ci", "ci@runner");
    authorize(&env, &[format!("tether-role=\"operator\" {}", key.public())]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &key);
    env.start("target", &["sleep", "300"]);
    let out = ssh.run(&env, &["kill", "target"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let t = bin();
    // What the operator's job does as the user.
    let script = format!(
        "'TETHER_SESSION=innocent; export TETHER_SESSION; {t} freeze target; {t} thaw target; {t} kill --force target; {t} rm target; echo agent-done; sleep 300'"
    );
    ssh.ok(&env, &["new", "-d", "agent", "--", "sh", "-c", &script]);
    env.wait_text("agent", "agent-done");
    assert!(env.sessions().iter().all(|s| s["name"] != "target"), "the job's rm failed");
    env.ok(&["kill", "agent"]);
    let audit: Vec<Value> = std::fs::read_to_string(env.state_dir().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for event in ["freeze", "thaw", "kill", "rm"] {
        let entry = audit
            .iter()
            .find(|e| e["event"] == event && e["session"] == "target")
            .unwrap_or_else(|| panic!("no {event} of target in {audit:?}"));
        assert_eq!(entry["from_session"], "agent", "{entry}");
        assert_eq!(entry["started_by"], "ci@runner", "{entry}");
    }
    let kill = audit.iter().find(|e| e["event"] == "kill" && e["session"] == "target").unwrap();
    assert_eq!(kill["comment"].as_str(), Some(user_name().as_str()), "{kill}");
    // From outside: no mark.
    let outside = audit
        .iter()
        .find(|e| e["event"] == "kill" && e["session"] == "agent")
        .unwrap_or_else(|| panic!("the local kill is not audited: {audit:?}"));
    assert!(outside.get("from_session").is_none(), "{outside}");
}

//! The daemon with the real OpenSSH client: commands, attach, auth, roles,
//! audit, and a daemon that can die without taking a session with it.

use crate::support::ssh::{Daemon, Key, Ssh, authorize, known_hosts_line};
use crate::support::*;
use rustix::process::Signal;
use std::time::Duration;

/// A daemon with one owner key, and a client for it.
fn setup() -> (TestEnv, Daemon, Key, Ssh) {
    let env = TestEnv::new();
    let key = Key::new(&env.root().join("keys"), "alice", "alice@laptop");
    authorize(&env, &[key.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &key);
    (env, daemon, key, ssh)
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn commands_over_ssh_have_the_same_output_and_exit_codes() {
    let (env, _daemon, _key, ssh) = setup();
    assert_eq!(ssh.ok(&env, &["ls", "--json"]).trim(), "[]");
    // Quotes survive: OpenSSH joins the words, the daemon splits them again.
    ssh.ok(&env, &["new", "-d", "q", "--", "sh", "-c", "'echo hi there; exit 3'"]);
    assert_eq!(ssh.run(&env, &["wait", "q"]).status.code(), Some(3));
    assert!(ssh.ok(&env, &["tail", "q"]).contains("hi there"));
    let listed: serde_json::Value = serde_json::from_str(&ssh.ok(&env, &["ls", "--json"])).unwrap();
    assert_eq!(listed[0]["exit_code"], 3);
    assert_eq!(
        listed,
        serde_json::from_str::<serde_json::Value>(&env.ok(&["ls", "--json"])).unwrap()
    );
    let cases: &[(&[&str], i32)] = &[
        (&["kill", "nosuch"], 3),
        (&["new", "-d", "../x", "--", "true"], 2),
        (&["frobnicate"], 2),
        (&["wait", "nosuch"], 125),
        (&["new", "-d", "q", "--", "true"], 4),
        (&["attach", "q"], 2),
    ];
    for (command, code) in cases {
        let out = ssh.run(&env, command);
        assert_eq!(out.status.code(), Some(*code), "{command:?}: {}", text(&out));
    }
    let out = ssh.run(&env, &["attach", "q"]);
    assert!(text(&out).contains("ssh -t"), "{}", text(&out));
    ssh.ok(&env, &["rm", "q"]);
    assert_eq!(ssh.ok(&env, &["ls", "--json"]).trim(), "[]");
}

#[test]
fn attach_over_ssh_shows_the_screen_types_and_resizes() {
    let (env, _daemon, _key, ssh) = setup();
    ssh.ok(&env, &["new", "-d", "work", "--", "sh"]);
    let argv = ssh.argv(&["-tt"], &["attach", "work"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut term = env.terminal_program(&argv, 100, 30);
    term.wait_text("$");
    term.send(b"echo hello $((6*7)); stty size\r");
    term.wait_text("hello 42");
    term.wait_text("30 100");
    term.resize(120, 40);
    wait_until("the session to follow", || env.session("work")["cols"] == 120);
    term.send(b"clear; stty size\r");
    term.wait_text("40 120");
    assert_eq!(term.detach(), 0);
    assert_eq!(env.session("work")["state"], "running");
    // The audit log names the key that attached.
    let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
    let attach = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "attach")
        .expect("an attach entry");
    assert_eq!(attach["session"], "work");
    assert_eq!(attach["comment"], "alice@laptop");
    assert!(attach["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert!(attach["address"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn unknown_keys_and_passwords_are_refused() {
    let (env, daemon, _key, ssh) = setup();
    let stranger = Key::new(&env.root().join("keys"), "mallory", "mallory");
    let other = Ssh::new(&env, &daemon, &stranger);
    let out = other.run(&env, &["ls"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out));
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    let out = ssh.run_with(
        &env,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ],
        &["ls"],
    );
    assert_eq!(out.status.code(), Some(255));
    let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
    assert!(audit.contains(&stranger.fingerprint()), "the refusal names the key");
    assert!(audit.contains("\"auth_failure\""));
}

#[test]
fn killing_the_ssh_client_leaves_the_job_running() {
    let (env, _daemon, _key, ssh) = setup();
    let argv = ssh.argv(
        &["-tt"],
        &[
            "attach",
            "tick",
            "--",
            "sh",
            "-c",
            "'i=0; while :; do i=$((i+1)); echo t$i; sleep 0.05; done'",
        ],
    );
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut term = env.terminal_program(&argv, 80, 24);
    term.wait_text("t3");
    kill9(term.pid());
    term.wait_exit();
    let count = || {
        env.tail("tick")
            .lines()
            .filter_map(|l| l.strip_prefix('t')?.parse::<u64>().ok())
            .max()
            .unwrap()
    };
    let before = count();
    wait_until("the job to keep counting", || count() > before + 5);
    wait_until("the attachment to be gone", || env.session("tick")["clients"] == 0);
}

#[test]
fn the_daemon_is_disposable() {
    let (env, mut daemon, key, ssh) = setup();
    ssh.ok(
        &env,
        &[
            "new",
            "-d",
            "long",
            "--",
            "sh",
            "-c",
            "'i=0; while :; do i=$((i+1)); echo n$i; sleep 0.05; done'",
        ],
    );
    let argv = ssh.argv(&["-tt"], &["attach", "long"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut term = env.terminal_program(&argv, 80, 24);
    term.wait_text("n3");
    let pid = env.session("long")["pid"].as_u64().unwrap() as u32;
    let port = daemon.port;
    daemon.kill9();
    // The client reports the lost connection; the job does not notice.
    term.wait_exit();
    assert!(alive(pid));
    let count = || {
        env.tail("long")
            .lines()
            .filter_map(|l| l.strip_prefix('n')?.parse::<u64>().ok())
            .max()
            .unwrap()
    };
    let before = count();
    wait_until("the job to keep running without a daemon", || count() > before + 5);
    // A new daemon finds the session; attaching works.
    let _again = Daemon::start(&env, &format!("127.0.0.1:{port}"));
    let ssh = Ssh::new(&env, &_again, &key);
    assert!(ssh.ok(&env, &["ls"]).contains("long"));
    let argv = ssh.argv(&["-tt"], &["attach", "long"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let term = env.terminal_program(&argv, 80, 24);
    term.wait_text(&format!("n{}", count() + 2));
    assert_eq!(env.session("long")["pid"].as_u64().unwrap() as u32, pid);
}

#[test]
fn sigterm_stops_the_daemon_and_touches_no_session() {
    let (env, mut daemon, _key, ssh) = setup();
    ssh.ok(&env, &["new", "-d", "keep", "--", "sleep", "60"]);
    let pid = env.session("keep")["pid"].as_u64().unwrap() as u32;
    signal(daemon.pid(), Signal::TERM);
    assert!(daemon.wait().success());
    assert!(alive(pid));
    assert_eq!(env.session("keep")["state"], "running");
    assert!(!env.runtime_dir().join("daemon.pid").exists());
}

#[test]
fn a_second_daemon_on_the_same_dirs_refuses() {
    let (env, _daemon, _key, _ssh) = setup();
    let out = env.run(&["daemon", "--foreground", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out).contains("already running"), "{}", text(&out));
}

#[test]
fn the_daemon_detaches_without_foreground() {
    let env = TestEnv::new();
    let out = env.run(&["daemon", "--listen", "127.0.0.1:0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("listening on 127.0.0.1:"));
    let pid: u32 = std::fs::read_to_string(env.runtime_dir().join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid));
    let key = std::fs::metadata(env.root().join("data/tether/host_ed25519_key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    signal(pid, Signal::TERM);
    wait_until("the daemon to stop", || !alive(pid));
}

#[test]
fn tether_host_works_like_the_local_cli_and_checks_host_keys() {
    let (env, daemon, key, _ssh) = setup();
    // The remote CLI uses the user's ~/.ssh like ssh does.
    let ssh_dir = env.home().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::copy(&key.path, ssh_dir.join("id_ed25519")).unwrap();
    let host = format!("127.0.0.1:{}", daemon.port);
    let out = env.run(&["--host", &host, "ls"]);
    assert_eq!(out.status.code(), Some(6), "an unknown host is refused: {}", text(&out));
    assert!(
        text(&out).contains("SHA256:") && text(&out).contains("--trust-new-host"),
        "{}",
        text(&out)
    );

    std::fs::write(ssh_dir.join("known_hosts"), known_hosts_line(&env, daemon.port)).unwrap();
    env.ok(&[
        "--host",
        &host,
        "new",
        "-d",
        "remote",
        "--",
        "sh",
        "-c",
        "echo from afar; read x; exit 4",
    ]);
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["--host", &host, "ls", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "remote");
    env.wait_text("remote", "from afar");
    assert!(env.ok(&["--host", &host, "tail", "remote"]).contains("from afar"));
    let mut term = env.terminal(&["--host", &host, "attach", "remote"], 80, 24);
    term.wait_attached();
    term.wait_text("from afar");
    term.send(b"bye\r");
    assert_eq!(term.wait_exit(), 4);
    assert_eq!(env.run(&["--host", &host, "wait", "remote"]).status.code(), Some(4));
    assert_eq!(env.run(&["--host", &host, "kill", "nosuch"]).status.code(), Some(3));

    // A changed host key is a hard error naming both fingerprints.
    let impostor = Key::new(&env.root().join("keys"), "impostor", "x");
    let fake = impostor.public();
    let fake = fake.rsplit_once(' ').map_or(fake.as_str(), |(k, _)| k);
    std::fs::write(ssh_dir.join("known_hosts"), format!("[127.0.0.1]:{} {fake}\n", daemon.port))
        .unwrap();
    let out = env.run(&["--host", &host, "ls"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out).contains("CHANGED") && text(&out).contains(&impostor.fingerprint()),
        "{}",
        text(&out)
    );
}

#[test]
fn roles_and_session_globs_are_enforced() {
    let env = TestEnv::new();
    let owner = Key::new(&env.root().join("keys"), "owner", "owner");
    let mentor = Key::new(&env.root().join("keys"), "mentor", "mentor@example");
    let op = Key::new(&env.root().join("keys"), "op", "operator");
    authorize(
        &env,
        &[
            owner.public(),
            format!("tether-role=\"watcher\" {}", mentor.public()),
            format!("tether-role=\"operator\",tether-sessions=\"team-*\" {}", op.public()),
        ],
    );
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let (owner_ssh, mentor_ssh, op_ssh) = (
        Ssh::new(&env, &daemon, &owner),
        Ssh::new(&env, &daemon, &mentor),
        Ssh::new(&env, &daemon, &op),
    );
    owner_ssh.ok(&env, &["new", "-d", "team-a", "--", "sleep", "60"]);
    owner_ssh.ok(&env, &["new", "-d", "secret", "--", "sleep", "60"]);
    // A watcher sees everything but may not change anything.
    assert!(mentor_ssh.ok(&env, &["ls"]).contains("secret"));
    for command in [&["kill", "team-a"][..], &["new", "-d", "x", "--", "true"], &["tail", "team-a"]]
    {
        let out = mentor_ssh.run(&env, command);
        assert_eq!(out.status.code(), Some(5), "{command:?}");
        assert!(text(&out).contains("watcher role"), "{}", text(&out));
    }
    let out = mentor_ssh.run_with(&env, &["-tt"], &["attach", "team-a"]);
    assert_eq!(out.status.code(), Some(5));
    // An operator limited to team-* does not even see the others.
    let listed = op_ssh.ok(&env, &["ls"]);
    assert!(listed.contains("team-a") && !listed.contains("secret"), "{listed}");
    // Outside its sessions, refused (whether or not such a session exists).
    assert_eq!(op_ssh.run(&env, &["tail", "secret"]).status.code(), Some(5));
    assert_eq!(op_ssh.run(&env, &["kill", "team-a"]).status.code(), Some(5));
    op_ssh.ok(&env, &["tail", "team-a"]);
    assert_eq!(op_ssh.run(&env, &["new", "-d", "other", "--", "true"]).status.code(), Some(5));
}

#[test]
fn a_client_that_stops_reading_never_grows_the_daemon() {
    let (env, daemon, _key, ssh) = setup();
    let gate = Gate::new(&env);
    // Quoted: ssh joins the remote command's words with spaces.
    let flood =
        "i=0; while [ $i -lt 60 ]; do seq 1 20000; i=$((i+1)); done; echo flood-done; sleep 60";
    let script = format!("'{}'", gate.script(flood));
    ssh.ok(&env, &["new", "-d", "flood", "--", "sh", "-c", &script]);
    let argv = ssh.argv(&["-tt"], &["attach", "flood"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let term = env.terminal_program(&argv, 80, 24);
    wait_until("the attachment", || env.session("flood")["clients"] == 1);
    signal(term.pid(), Signal::STOP);
    let before = rss_kb(daemon.pid());
    gate.open();
    env.wait_text("flood", "flood-done");
    // 6.6 MB went to a client that reads nothing: with flow control the
    // daemon holds at most a window's worth, not the whole stream.
    let growth = rss_kb(daemon.pid()).saturating_sub(before);
    assert!(growth < 4 * 1024, "daemon RSS grew by {growth} kB for a stalled client");
    signal(term.pid(), Signal::CONT);
    term.wait_text("flood-done");
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A child process killed when the test ends.
struct Guarded(std::process::Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        kill9(self.0.id());
        let _ = self.0.wait();
    }
}

impl Guarded {
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn audit_events(env: &TestEnv, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.state_dir().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == event)
        .collect()
}

/// Regression: the daemon kept "the last good keys" while authorized_keys
/// had no usable line, and an open connection kept its key's rights until
/// it closed. The file as it is now grants: a revoked key is refused at
/// its next connection, SIGHUP closes what it still has open (its
/// attachment), and a file whose only line does not parse (or is a
/// `restrict` line) grants nothing, each bad line logged with its number.
#[test]
fn a_revoked_key_is_refused_at_once_and_sighup_closes_its_attachments() {
    let env = TestEnv::new();
    let dir = env.root().join("keys");
    let alice = Key::new(&dir, "alice", "alice@laptop");
    let bob = Key::new(&dir, "bob", "bob@laptop");
    authorize(&env, &[alice.public(), bob.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let (a, b) = (Ssh::new(&env, &daemon, &alice), Ssh::new(&env, &daemon, &bob));
    env.start("work", &["sh"]);
    let argv = a.argv(&["-tt"], &["attach", "work"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut term = env.terminal_program(&argv, 80, 24);
    term.wait_attached();
    term.send(b"echo typed-$((6*7))\r");
    term.wait_text("typed-42");

    // Revoked by editing the file: refused at the next connection.
    authorize(&env, &[bob.public()]);
    assert_eq!(a.run(&env, &["ls"]).status.code(), Some(255));
    assert_eq!(b.run(&env, &["ls"]).status.code(), Some(0));
    // SIGHUP closes the connection it still has, and so its attachment;
    // the job is untouched.
    signal(daemon.pid(), Signal::HUP);
    assert_eq!(term.wait_exit(), 255, "{}", term.contents());
    wait_until("the attachment to end", || env.session("work")["clients"] == 0);
    assert_eq!(env.session("work")["state"], "running");
    let revoked = audit_events(&env, "revoked");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["comment"], "alice@laptop");

    // A file whose only line does not parse grants nothing: no earlier
    // version of the file stays in effect.
    let keys = env.config_dir().join("authorized_keys");
    std::fs::write(&keys, format!("# bob\ntether-role=\"ownr\" {}\n", bob.public())).unwrap();
    assert_eq!(b.run(&env, &["ls"]).status.code(), Some(255));
    assert_eq!(a.run(&env, &["ls"]).status.code(), Some(255));
    std::fs::write(&keys, format!("restrict {}\n", bob.public())).unwrap();
    assert_eq!(b.run(&env, &["ls"]).status.code(), Some(255));
    let log = crate::support::ssh::daemon_log(&env);
    assert!(log.contains("line 2: unknown tether-role \"ownr\""), "{log}");
    assert!(log.contains("line 1: option restrict cannot be honoured"), "{log}");
    assert!(log.contains("no line grants access"), "{log}");
    // Logged once per change of the file, not at every login.
    assert_eq!(log.matches("line 1: option restrict").count(), 1, "{log}");
    // Fixed, it grants again.
    authorize(&env, &[bob.public()]);
    assert_eq!(b.run(&env, &["ls"]).status.code(), Some(0));
}

/// Regression: a key demoted in authorized_keys kept its old role on a
/// connection that was already open (OpenSSH's ControlMaster reuses one
/// connection for every command), and a revoked key kept using it. Each
/// new channel checks the key again: a demoted key's command runs with
/// its new role, a revoked key's is refused and its connection closed;
/// SIGHUP closes a connection whose rights shrank.
#[test]
fn a_demoted_or_revoked_key_loses_its_rights_on_an_open_connection() {
    let env = TestEnv::new();
    let key = Key::new(&env.root().join("keys"), "ops", "ops@desk");
    authorize(&env, &[key.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &key);
    env.start("a", &["sleep", "300"]);
    let control = env.root().join("cm");
    let control_arg = control.display().to_string();
    let master = || {
        let _ = std::fs::remove_file(&control);
        let argv = ssh.argv(&["-M", "-S", &control_arg, "-N"], &[]);
        let child = Guarded(
            std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .env_clear()
                .envs(env.envs())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until("the control socket", || control.exists());
        child
    };
    let via = |command: &[&str]| {
        ssh.run_with(&env, &["-S", &control_arg, "-o", "ControlMaster=no"], command)
    };
    let mut first = master();
    assert_eq!(via(&["ls"]).status.code(), Some(0));

    // Demoted: the next command over the open connection has the new role.
    authorize(&env, &[format!("tether-role=\"watcher\" {}", key.public())]);
    let out = via(&["kill", "a"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("the watcher role may not kill"), "{}", text(&out));
    assert_eq!(env.session("a")["state"], "running");
    // The commands went over the one open connection: one login.
    assert_eq!(audit_events(&env, "auth_success").len(), 1);
    let refused = audit_events(&env, "refused");
    assert_eq!(refused.last().unwrap()["role"], "watcher", "{refused:?}");
    // SIGHUP closes the connection whose rights shrank (it may carry
    // something started as an owner); a new one logs in as a watcher.
    signal(daemon.pid(), Signal::HUP);
    first.wait_exit();
    assert_eq!(audit_events(&env, "revoked").len(), 1);
    assert_eq!(ssh.run(&env, &["kill", "a"]).status.code(), Some(5));

    // Revoked: the next command over an open connection is refused and
    // the connection closed, without waiting for SIGHUP.
    let mut second = master();
    assert_eq!(via(&["ls"]).status.code(), Some(0));
    authorize(&env, &[]);
    assert_eq!(via(&["ls"]).status.code(), Some(255));
    second.wait_exit();
    let revoked = audit_events(&env, "revoked");
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert!(revoked[1]["detail"].as_str().unwrap().contains("key not in"), "{revoked:?}");
    assert_eq!(env.session("a")["state"], "running");
}

/// The options that make `ssh` share one connection (ControlMaster), with
/// the control socket under `dir`.
fn control_master(dir: &std::path::Path) -> Vec<String> {
    vec![
        "-o".into(),
        "ControlMaster=auto".into(),
        "-o".into(),
        format!("ControlPath={}", dir.join("cm").display()),
        "-o".into(),
        "ControlPersist=60".into(),
    ]
}

#[test]
fn a_control_master_runs_40_commands_over_one_connection() {
    let (env, _daemon, _key, ssh) = setup();
    let shared = control_master(env.root());
    let shared: Vec<&str> = shared.iter().map(String::as_str).collect();
    for i in 0..40 {
        let out = ssh.run_with(&env, &shared, &["ls"]);
        assert!(out.status.success(), "command {i}: {}", text(&out));
        // A master that fell back to a new connection says so on stderr.
        assert!(!text(&out).contains("refused"), "command {i}: {}", text(&out));
    }
    // One login, so one connection, served all 40.
    assert_eq!(audit_events(&env, "auth_success").len(), 1);
    let _ = ssh.run_with(&env, &[&shared[..], &["-O", "exit"]].concat(), &[]);
}

#[test]
fn clients_killed_during_wait_or_tail_f_leave_no_thread_or_socket() {
    let (env, daemon, _key, ssh) = setup();
    env.start("forever", &["sleep", "600"]);
    // A connection shared through a master stays up while its channels
    // close; plain clients take their connection down with them.
    let shared = control_master(env.root());
    let shared: Vec<&str> = shared.iter().map(String::as_str).collect();
    ssh.run_with(&env, &shared, &["ls"]);
    // Idle blocking threads leave after 1 s.
    std::thread::sleep(Duration::from_millis(1500));
    let (threads, fds) = daemon.threads_and_fds();
    let mut clients = Vec::new();
    for (extra, command) in [
        (&[][..], &["wait", "forever"][..]),
        (&[][..], &["tail", "-f", "forever"][..]),
        (&shared[..], &["wait", "forever"][..]),
        (&shared[..], &["tail", "-f", "forever"][..]),
    ] {
        for _ in 0..2 {
            let argv = ssh.argv(extra, command);
            let child = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .env_clear()
                .envs(env.envs())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            clients.push(child);
        }
    }
    // Each command holds a keeper connection (two descriptors at least).
    wait_until("the commands to reach the keeper", || {
        daemon.threads_and_fds().1 >= fds + 2 * clients.len()
    });
    for c in &mut clients {
        let _ = c.kill();
        let _ = c.wait();
    }
    wait_until("the daemon to release what the commands held", || {
        let now = daemon.threads_and_fds();
        now.0 <= threads && now.1 <= fds
    });
    assert_eq!(env.session("forever")["state"], "running");
    // The shared connection still works.
    let out = ssh.run_with(&env, &shared, &["ls"]);
    assert!(out.status.success(), "{}", text(&out));
    let _ = ssh.run_with(&env, &[&shared[..], &["-O", "exit"]].concat(), &[]);
}

#[test]
fn rsa_keys_sign_with_sha2_only_and_rsa_host_keys_serve_old_clients() {
    let env = TestEnv::new();
    let rsa = Key::new_rsa(&env.root().join("keys"), "rsa", "rsa@old-laptop");
    authorize(&env, &[rsa.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &rsa);
    // rsa-sha2-512 with the same key works; `ssh-rsa` (SHA-1) is not even
    // advertised, so OpenSSH will not use it.
    let out = ssh.run_with(&env, &["-v"], &["ls"]);
    assert!(out.status.success(), "{}", text(&out));
    let sig_algs = text(&out)
        .lines()
        .find_map(|l| l.split_once("server-sig-algs=").map(|(_, v)| v.to_owned()))
        .expect("server-sig-algs in ssh -v");
    assert!(sig_algs.contains("rsa-sha2-512"), "{sig_algs}");
    assert!(!sig_algs.contains("ssh-rsa"), "{sig_algs}");
    let out = ssh.run_with(&env, &["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"], &["ls"]);
    assert_eq!(out.status.code(), Some(255), "a SHA-1 signature was accepted: {}", text(&out));
    // Compression is offered only from authentication on.
    let out = ssh.run_with(&env, &["-C", "-v"], &["ls"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("compression: zlib@openssh.com"), "{}", text(&out));
    // A client that only takes RSA host keys gets one, and it is the
    // daemon's file (0600, created like the Ed25519 one).
    // (`ssh -o` keeps the first value of an option: the RSA key is added
    // to the known_hosts file the client already uses.)
    let known = env.root().join(format!("known_hosts_{}", daemon.port));
    let line = crate::support::ssh::known_hosts_line_of(&env, daemon.port, "rsa");
    std::fs::write(&known, std::fs::read_to_string(&known).unwrap() + &line).unwrap();
    let out = ssh.run_with(&env, &["-o", "HostKeyAlgorithms=rsa-sha2-512,rsa-sha2-256"], &["ls"]);
    assert!(out.status.success(), "{}", text(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.root().join("data/tether/host_rsa_key")).unwrap();
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
}

//! Sessions outlive their clients; ended sessions stay until `rm`; bad input
//! is refused with the documented exit codes.

use crate::support::*;
use rustix::process::Signal;

const COUNTER: &[&str] =
    &["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done"];

fn last_tick(env: &TestEnv, name: &str) -> u64 {
    env.tail(name)
        .lines()
        .filter_map(|l| l.strip_prefix("tick ").and_then(|n| n.trim().parse().ok()))
        .max()
        .unwrap_or(0)
}

#[test]
fn detached_job_keeps_running_after_every_tether_process_is_gone() {
    let env = TestEnv::new();
    env.start("count", COUNTER);
    // `new -d` has returned: no tether client process exists any more.
    let first = {
        wait_until("the counter to start", || last_tick(&env, "count") >= 3);
        last_tick(&env, "count")
    };
    wait_until("the counter to advance", || last_tick(&env, "count") > first + 5);
    let s = env.session("count");
    assert_eq!(s["state"], "running");
    let keeper = s["keeper_pid"].as_u64().unwrap() as u32;
    let comm = std::fs::read_to_string(format!("/proc/{keeper}/comm")).unwrap();
    assert_eq!(comm.trim(), "tether-keeper");
    // The keeper has its own session id, so no caller's terminal reaches it.
    let stat = std::fs::read_to_string(format!("/proc/{keeper}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    assert_eq!(fields[3], keeper.to_string(), "keeper is its own session leader");
}

#[test]
fn ls_json_has_the_documented_fields() {
    let env = TestEnv::new();
    env.start("s1", &["sleep", "60"]);
    let s = env.session("s1");
    for key in [
        "name",
        "state",
        "frozen",
        "pid",
        "keeper_pid",
        "exit_code",
        "signal",
        "started",
        "ended",
        "cols",
        "rows",
        "clients",
        "watchers",
        "protected",
        "recording",
        "recording_path",
        "end_reason",
    ] {
        assert!(s.get(key).is_some(), "missing {key} in {s}");
    }
    assert_eq!(s["state"], "running");
    assert!(s["end_reason"].is_null());
    assert_eq!(s["frozen"], false);
    assert!(s["exit_code"].is_null() && s["signal"].is_null() && s["ended"].is_null());
    assert!(s["started"].as_str().unwrap().ends_with('Z'));
    assert_eq!((s["cols"].as_u64(), s["rows"].as_u64()), (Some(80), Some(24)));
    assert_eq!((s["clients"].as_u64(), s["watchers"].as_u64()), (Some(0), Some(0)));
    assert!(alive(s["pid"].as_u64().unwrap() as u32));
}

#[test]
fn wait_returns_the_exit_code_or_128_plus_signal() {
    let env = TestEnv::new();
    env.start("seven", &["sh", "-c", "sleep 0.3; exit 7"]);
    assert_eq!(env.run(&["wait", "seven"]).status.code(), Some(7));
    env.start("killed", &["sh", "-c", "sleep 0.3; kill -9 $$"]);
    assert_eq!(env.run(&["wait", "killed"]).status.code(), Some(137));
    // Waiting for an ended session answers at once; an unknown one is 125.
    assert_eq!(env.run(&["wait", "seven"]).status.code(), Some(7));
    assert_eq!(env.run(&["wait", "nosuch"]).status.code(), Some(125));
    let s = env.session("killed");
    assert_eq!(s["state"], "ended");
    assert_eq!(s["signal"], 9);
    assert!(s["exit_code"].is_null());
    assert!(s["ended"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn path_like_and_invalid_names_are_refused_and_create_nothing() {
    let env = TestEnv::new();
    for bad in ["../x", ".hidden", "-x", "a/b", "", &"n".repeat(65), "sp ace"] {
        let out = env.run(&["new", "-d", bad, "--", "true"]);
        assert_eq!(out.status.code(), Some(2), "name {bad:?}");
        assert!(!out.stderr.is_empty());
    }
    let out = env.run(&["attach", "../x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !env.state_dir().exists()
            || std::fs::read_dir(env.state_dir().join("sessions"))
                .map_or(true, |mut d| d.next().is_none())
    );
    assert!(!env.root().join("x").exists() && !env.root().join("state/x.json").exists());
}

#[test]
fn usage_errors_and_missing_sessions_have_their_codes() {
    let env = TestEnv::new();
    assert_eq!(env.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(env.run(&["kill", "nosuch"]).status.code(), Some(3));
    assert_eq!(env.run(&["rm", "nosuch"]).status.code(), Some(3));
    assert_eq!(env.run(&["tail", "nosuch"]).status.code(), Some(3));
    let out = env.run(&["attach", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "attach without a terminal is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("terminal"));
    env.start("dup", &["sleep", "60"]);
    let out = env.run(&["new", "-d", "dup", "--", "true"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = env.run(&["new", "-d", "nocmd", "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(env.sessions().iter().all(|s| s["name"] != "nocmd"));
}

#[test]
fn ended_sessions_stay_listed_until_rm() {
    let env = TestEnv::new();
    env.start("done", &["sh", "-c", "echo final words; exit 3"]);
    assert_eq!(env.run(&["wait", "done"]).status.code(), Some(3));
    let s = env.session("done");
    assert_eq!((s["state"].as_str(), s["exit_code"].as_i64()), (Some("ended"), Some(3)));
    // No keeper process lingers.
    let keeper = s["keeper_pid"].as_u64().unwrap() as u32;
    wait_until("the keeper to exit", || !alive(keeper));
    assert!(env.tail("done").contains("final words"));
    // The name stays taken until rm.
    assert_eq!(env.run(&["new", "-d", "done", "--", "true"]).status.code(), Some(4));
    env.ok(&["rm", "done"]);
    assert!(env.sessions().is_empty());
    env.start("done", &["true"]);
}

#[test]
fn rm_right_after_wait_succeeds_while_the_keeper_finishes() {
    // Regression: the keeper of an ended session keeps its lock while it
    // gives attached clients the end (up to 2 s); `rm` in that moment
    // failed with "session is running".
    let env = TestEnv::new();
    let gate = Gate::new(&env);
    let script = gate.script("seq 1 200000; exit 0");
    env.start("brief", &["sh", "-c", &script]);
    let term = env.terminal(&["attach", "brief"], 80, 24);
    wait_until("the client to attach", || env.session("brief")["clients"] == 1);
    // A stopped client fills its socket: the keeper's writer for it blocks.
    signal(term.pid(), Signal::STOP);
    gate.open();
    assert_eq!(env.run(&["wait", "brief"]).status.code(), Some(0));
    let out = env.run(&["rm", "brief"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env.sessions().is_empty());
    signal(term.pid(), Signal::CONT);
}

#[test]
fn rm_refuses_a_running_session() {
    let env = TestEnv::new();
    env.start("busy", &["sleep", "60"]);
    assert_eq!(env.run(&["rm", "busy"]).status.code(), Some(4));
    assert_eq!(env.session("busy")["state"], "running");
}

#[test]
fn kill_ends_the_job_and_protected_sessions_need_force() {
    let env = TestEnv::new();
    env.start("plain", &["sleep", "60"]);
    let pid = env.session("plain")["pid"].as_u64().unwrap() as u32;
    env.ok(&["kill", "plain"]);
    assert!(!alive(pid));
    assert_eq!(env.session("plain")["state"], "ended");

    env.ok(&["new", "-d", "--protect", "guarded", "--", "sleep", "60"]);
    let s = env.session("guarded");
    assert_eq!(s["protected"], true);
    let out = env.run(&["kill", "guarded"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert!(alive(s["pid"].as_u64().unwrap() as u32));
    env.ok(&["kill", "--force", "guarded"]);
    assert_eq!(env.session("guarded")["state"], "ended");
}

#[test]
fn a_dead_keeper_leaves_a_lost_session_and_its_stale_socket_is_cleaned() {
    let env = TestEnv::new();
    env.start("doomed", &["sleep", "60"]);
    let keeper = env.session("doomed")["keeper_pid"].as_u64().unwrap() as u32;
    let sockets = || std::fs::read_dir(env.runtime_dir()).unwrap().count();
    assert_eq!(sockets(), 1);
    kill9(keeper);
    // The keeper's main thread turns zombie while its other threads are
    // still exiting and hold the lock; `lost` follows within moments.
    wait_until("the keeper to die", || !alive(keeper));
    wait_until("the session to be lost", || env.session("doomed")["state"] == "lost");
    assert_eq!(sockets(), 0, "the stale socket is removed");
    let out = env.run(&["kill", "doomed"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lost"));
    env.ok(&["rm", "doomed"]);
    assert!(env.sessions().is_empty());
}

#[test]
fn job_environment_has_term_and_session_name() {
    let env = TestEnv::new();
    env.ok(&[
        "new",
        "-d",
        "envy",
        "--env",
        "GREETING=hi there",
        "--",
        "sh",
        "-c",
        "echo \"$TERM|$TETHER_SESSION|$GREETING|$(pwd)\"; sleep 60",
    ]);
    let root = env.root().display().to_string();
    env.wait_text("envy", &format!("xterm-256color|envy|hi there|{root}"));
    let dir = env.root().join("home");
    env.ok(&[
        "new",
        "-d",
        "cwd",
        "--cwd",
        dir.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "pwd; sleep 60",
    ]);
    env.wait_text("cwd", &dir.display().to_string());
}

#[test]
fn tail_prints_history_and_follows_new_lines() {
    let env = TestEnv::new();
    env.start(
        "log",
        &[
            "sh",
            "-c",
            "for i in $(seq 1 40); do echo line $i; done; read x; echo after $x; sleep 0.2",
        ],
    );
    env.wait_text("log", "line 40");
    let all = env.tail("log");
    assert!(all.contains("line 1\n") && all.contains("line 40\n"), "{all}");
    let last = env.ok(&["tail", "log", "-n", "2"]);
    assert_eq!(last, "line 39\nline 40\n");

    let mut follow = env.cmd(&["tail", "-f", "-n", "1", "log"]);
    let mut child = follow.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let lines = line_channel(child.stdout.take().unwrap());
    let recv = || lines.recv_timeout(TIMEOUT).expect("a line from tail -f");
    assert_eq!(recv(), "line 40");
    // Type into the job through an attached terminal.
    let mut term = env.terminal(&["attach", "log"], 80, 24);
    term.wait_attached();
    term.send(b"go\r");
    assert_eq!(recv(), "go");
    assert_eq!(recv(), "after go");
    wait_until("tail -f to end with the job", || child.try_wait().unwrap().is_some());
    assert!(child.wait().unwrap().success());
}

/// Lines of `out`, as they arrive.
fn line_channel(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn attaching_from_inside_the_same_session_is_refused() {
    let env = TestEnv::new();
    env.start("self", &["sleep", "60"]);
    let mut cmd = env.cmd(&["attach", "self"]);
    cmd.env("TETHER_SESSION", "self");
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside itself"));
}

#[test]
fn directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.start("priv", &["sleep", "60"]);
    for dir in [env.runtime_dir(), env.state_dir().join("sessions")] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    let record = env.state_dir().join("sessions/priv.json");
    assert_eq!(std::fs::metadata(record).unwrap().permissions().mode() & 0o777, 0o600);
}

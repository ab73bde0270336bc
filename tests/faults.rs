//! Fault injection: `kill -9` of the daemon, of keepers and of clients at
//! random moments during heavy output and during attach, and a recording
//! filesystem that fills up and frees up. After each fault: every job
//! that should live does, no session vanished and none appeared, and every
//! recording holds the job's output without a hole up to where it ends.
//!
//! Timing is random; the seed is printed, and `TETHER_FAULT_SEED=N`
//! replays a run (`TETHER_FAULT_ROUNDS` sets how many faults).
//!
//! And a keeper thread that panics: the session ends, with the reason in
//! `ls`, instead of a job that stalls.

use crate::support::ssh::{Daemon, Key, Ssh, authorize};
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// A small deterministic generator (xorshift), seeded per run.
struct Rng(u64);

impl Rng {
    fn new() -> (Rng, u64) {
        let seed = std::env::var("TETHER_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64
                    | 1
            });
        (Rng(seed), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    fn pause(&mut self, max_ms: u64) {
        std::thread::sleep(Duration::from_millis(self.below(max_ms)));
    }
}

/// A job that counts, in bursts of 500 lines: heavy output whose every
/// line can be checked.
const COUNTER: &str = "i=0; while :; do seq $i $((i+499)); i=$((i+500)); sleep 0.02; done";

/// The job's output as the recording keeps it must be 0, 1, 2, … with no
/// hole (a last line cut short by a crash is allowed).
fn assert_no_hole(env: &TestEnv, name: &str) -> u64 {
    let out = env.run(&["export", name, "--format", "raw"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "export {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let lines: Vec<&str> = text.split('\n').collect();
    let complete = &lines[..lines.len().saturating_sub(1)];
    for (i, line) in complete.iter().enumerate() {
        assert_eq!(
            line.parse::<usize>().ok(),
            Some(i),
            "{name}: line {i} of its recording is {line:?}"
        );
    }
    complete.len() as u64
}

fn verify_status(env: &TestEnv, name: &str) -> String {
    let out = env.run(&["verify", name, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("verify {name}: {}", String::from_utf8_lossy(&out.stderr)));
    report["status"].as_str().unwrap().to_owned()
}

fn names(sessions: &[Value]) -> BTreeSet<String> {
    sessions.iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn kill_9_of_daemon_keepers_and_clients_loses_no_job_and_no_recorded_byte() {
    let env = TestEnv::new();
    let (mut rng, seed) = Rng::new();
    let rounds: u64 =
        std::env::var("TETHER_FAULT_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    eprintln!("fault injection: seed {seed}, {rounds} rounds (TETHER_FAULT_SEED to replay)");
    let key = Key::new(env.root(), "k", "tester@test");
    authorize(&env, &[key.public()]);
    let mut daemon = Daemon::start(&env, "127.0.0.1:0");
    let sessions = ["w0", "w1", "w2", "w3", "w4"];
    for name in sessions {
        env.start(name, &["sh", "-c", COUNTER]);
    }
    let expected: BTreeSet<String> = sessions.iter().map(|s| (*s).to_owned()).collect();
    let mut killed: BTreeSet<String> = BTreeSet::new();
    for round in 0..rounds {
        let live: Vec<&str> = sessions.iter().copied().filter(|s| !killed.contains(*s)).collect();
        let target = live[rng.below(live.len() as u64) as usize];
        // Clients attached locally and over SSH, in the middle of output.
        let ssh = Ssh::new(&env, &daemon, &key);
        let argv = ssh.argv(&["-tt"], &["attach", target]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut remote = env.terminal_program(&argv, 100, 30);
        let mut local = env.terminal(&["attach", target], 80, 24);
        match (round + rng.below(3)) % 3 {
            0 => {
                eprintln!("round {round}: kill -9 the daemon");
                rng.pause(400);
                daemon.kill9();
                daemon = Daemon::start(&env, "127.0.0.1:0");
            }
            1 if live.len() > 2 => {
                eprintln!("round {round}: kill -9 the keeper of {target}");
                rng.pause(400);
                kill9(env.session(target)["keeper_pid"].as_u64().unwrap() as u32);
                killed.insert(target.to_owned());
            }
            _ => {
                eprintln!("round {round}: kill -9 clients during attach");
                rng.pause(60);
            }
        }
        // Clients die at a random moment too, some while still attaching.
        rng.pause(100);
        kill9(remote.pid());
        kill9(local.pid());
        let _ = remote.wait_exit();
        let _ = local.wait_exit();

        // No ghost, none missing; the right state for each.
        let now = env.sessions();
        assert_eq!(names(&now), expected, "round {round} (seed {seed})");
        for name in sessions {
            if killed.contains(name) {
                wait_until("a killed keeper's session to show as lost", || {
                    env.session(name)["state"] == "lost"
                });
            } else {
                let s = env.session(name);
                assert_eq!(s["state"], "running", "{name}, round {round} (seed {seed}): {s}");
                assert!(alive(s["pid"].as_u64().unwrap() as u32), "{name}'s job died");
                assert!(alive(s["keeper_pid"].as_u64().unwrap() as u32));
            }
        }
        // The (new) daemon adopted everything.
        let ssh = Ssh::new(&env, &daemon, &key);
        let listed: Vec<Value> = serde_json::from_str(&ssh.ok(&env, &["ls", "--json"])).unwrap();
        assert_eq!(names(&listed), expected, "over SSH, round {round}");
    }
    // Every recording: intact up to its last checkpoint, interrupted where
    // its keeper died, and not one line missing.
    for name in sessions {
        let status = verify_status(&env, name);
        let want = if killed.contains(name) { "interrupted" } else { "live" };
        assert_eq!(status, want, "{name} (seed {seed})");
        let lines = assert_no_hole(&env, name);
        assert!(lines > 0, "{name} recorded nothing");
    }
    // The jobs that lived end normally and their recordings close intact.
    for name in sessions.iter().filter(|s| !killed.contains(**s)) {
        env.ok(&["kill", name]);
        wait_until("the job to end", || env.session(name)["state"] == "ended");
        assert_eq!(verify_status(&env, name), "intact", "{name} (seed {seed})");
        assert_no_hole(&env, name);
    }
}

/// A size-limited tmpfs mounted for one test; unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tether-test"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_recording_filesystem_that_fills_up_and_frees_up_loses_nothing_written() {
    if !rustix::process::getuid().is_root() {
        eprintln!(
            "skipped: mounting a small tmpfs needs root (the injected-error test covers the logic)"
        );
        return;
    }
    let env = TestEnv::new();
    let recordings = env.root().join("data/tether/recordings");
    let Some(_disk) = SmallDisk::mount(&recordings, "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    // Leave about 200 KB free.
    let filler = recordings.join("filler");
    let free = || rustix::fs::statvfs(&recordings).map(|s| s.f_bavail * s.f_frsize).unwrap();
    std::fs::write(&filler, vec![0u8; (free() - 200_000) as usize]).unwrap();
    env.start("full", &["sh", "-c", COUNTER]);
    let keeper = env.session("full")["keeper_pid"].as_u64().unwrap() as u32;
    let count =
        || env.tail("full").lines().filter_map(|l| l.trim().parse::<u64>().ok()).max().unwrap_or(0);
    wait_until_for(Duration::from_secs(60), "the disk to fill", || {
        env.session("full")["recording"] == "degraded"
    });
    // The job never stops while the disk refuses writes.
    let before = count();
    wait_until("the job to keep running", || count() > before + 5000);
    assert!(alive(keeper));
    // Free the space: the recorder resumes by itself and notes the gap.
    std::fs::remove_file(&filler).unwrap();
    wait_until_for(Duration::from_secs(30), "recovery", || {
        env.session("full")["recording"] == "ok"
    });
    let after = count();
    wait_until("more output after recovery", || count() > after + 1000);
    env.ok(&["kill", "full"]);
    wait_until("the end", || env.session("full")["state"] == "ended");
    // Nothing written is corrupted: the chain verifies end to end, the gap
    // is there, and the output is consecutive on both sides of it.
    let report = env.run(&["verify", "full", "--json"]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["status"], "intact", "{report:#}");
    let rec = std::fs::read_dir(&recordings)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "cast"))
        .unwrap();
    let text = std::fs::read_to_string(&rec).unwrap();
    let gap = text.lines().find(|l| l.contains("\"g\"")).expect("a gap event");
    assert!(gap.contains("lost_bytes"), "{gap}");
    let out = env.run(&["export", "full", "--format", "raw"]);
    let raw = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let numbers: Vec<Option<u64>> = raw.split('\n').map(|l| l.parse().ok()).collect();
    let mut jumps = 0;
    for pair in numbers.windows(2) {
        match pair {
            [Some(a), Some(b)] if *b == a + 1 => {}
            [Some(_), Some(_)] => jumps += 1,
            // A line cut where the gap began or ended.
            _ => jumps += 1,
        }
    }
    assert!(jumps <= 3, "{jumps} discontinuities besides the one gap");
    assert_eq!(numbers.first().copied().flatten(), Some(0));
}

// A keeper thread that panics (`TETHER_TEST_PANIC=THREAD`, with the
// `test-hooks` feature, makes THREAD panic at its first unit of work):
// the session ends, visibly, instead of a job that stalls.

/// A job that prints a line every 20 ms until it is ended.
const TICKER: &str = "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done";

/// `tether new -d NAME -- sh -c SCRIPT` with `thread` set to panic in
/// the session's keeper.
fn start_with_panic(env: &TestEnv, name: &str, thread: &str, script: &str) {
    let mut cmd = env.cmd(&["new", "-d", name, "--", "sh", "-c", script]);
    cmd.env("TETHER_TEST_PANIC", thread);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert!(out.status.success(), "new {name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What a keeper thread's panic must leave: the session `ended` with the
/// reason naming the thread (in `ls --json` and in plain `ls`), the job
/// gone (SIGHUP, as `kill` does it: `wait` says 129), the keeper gone.
/// Returns the session's `ls --json` object.
fn assert_ended_by_panic(env: &TestEnv, name: &str, thread: &str) -> Value {
    wait_until(&format!("{name} to end after its {thread} thread panicked"), || {
        env.session(name)["state"] == "ended"
    });
    let s = env.session(name);
    let reason = s["end_reason"].as_str().unwrap_or_else(|| panic!("no end_reason in {s}"));
    assert!(reason.starts_with(&format!("keeper thread {thread}")), "{reason}");
    assert!(reason.contains(" panicked: injected by TETHER_TEST_PANIC"), "{reason}");
    let job = s["pid"].as_u64().unwrap() as u32;
    assert!(!alive(job), "the job {job} outlived its session");
    assert_eq!(s["signal"], 1, "ended by SIGHUP: {s}");
    let out = run_with_timeout(env.cmd(&["wait", name]), TIMEOUT);
    assert_eq!(out.status.code(), Some(129), "{}", String::from_utf8_lossy(&out.stderr));
    let keeper = s["keeper_pid"].as_u64().unwrap() as u32;
    wait_until("the keeper to exit", || !alive(keeper));
    let table = env.ok(&["ls"]);
    assert!(table.contains(&format!("reason: {reason}")), "{table}");
    let log = std::fs::read_to_string(env.state_dir().join(format!("logs/{name}.log"))).unwrap();
    assert!(log.contains(&format!("keeper thread {thread}")) && log.contains("panicked"), "{log}");
    s
}

#[test]
fn a_panicking_pty_reader_ends_the_session_instead_of_stalling_the_job() {
    let env = TestEnv::new();
    // A flood: with nobody reading the PTY it would block within a moment.
    start_with_panic(&env, "reader", "pty-reader", "while :; do echo flood; done");
    assert_ended_by_panic(&env, "reader", "pty-reader");
}

#[test]
fn a_panicking_parser_ends_the_session_and_tells_the_attached_client() {
    let env = TestEnv::new();
    let gate = Gate::new(&env);
    start_with_panic(&env, "parser", "parser", &gate.script(TICKER));
    let mut term = env.terminal(&["attach", "parser"], 80, 24);
    term.wait_attached();
    // A `wait` already waiting when the parser panics returns too (given a
    // moment to connect; one that comes later reads the record: 129 too).
    let waiting = {
        let cmd = env.cmd(&["wait", "parser"]);
        std::thread::spawn(move || run_with_timeout(cmd, TIMEOUT).status.code())
    };
    std::thread::sleep(Duration::from_millis(300));
    gate.open();
    assert_eq!(term.wait_exit(), 129, "the client exits with the job's status");
    assert_eq!(waiting.join().unwrap(), Some(129));
    let seen = String::from_utf8_lossy(&term.raw()).into_owned();
    assert!(seen.contains("keeper thread parser panicked"), "the client was not told: {seen:?}");
    let s = assert_ended_by_panic(&env, "parser", "parser");
    // The recorder lived: the recording says why, and ends signed.
    let recording = std::fs::read_to_string(s["recording_path"].as_str().unwrap()).unwrap();
    assert!(recording.contains("keeper thread parser panicked"), "no marker in the recording");
    assert_eq!(verify_status(&env, "parser"), "intact");
}

#[test]
fn a_panicking_recorder_ends_the_session_and_the_record_says_why() {
    let env = TestEnv::new();
    start_with_panic(&env, "recorder", "recorder", TICKER);
    let s = assert_ended_by_panic(&env, "recorder", "recorder");
    assert_eq!(s["recording"], "degraded");
    // The recording stopped short without its signed end: interrupted,
    // not tampered with, and the report says why.
    let out = env.run(&["verify", "recorder", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "interrupted", "{report}");
    assert!(report["message"].as_str().unwrap().contains("keeper thread recorder"), "{report}");
}

#[test]
fn a_panicking_main_thread_or_connection_thread_ends_the_session() {
    let env = TestEnv::new();
    // The main thread panics before it waits for the job: it still reaps
    // the job the supervisor ends, and records the end.
    start_with_panic(&env, "main", "main", TICKER);
    assert_ended_by_panic(&env, "main", "main");
    // A connection thread panics serving `who`: that client sees the
    // connection close, and the session ends all the same.
    start_with_panic(&env, "conn", "conn", TICKER);
    let out = run_with_timeout(env.cmd(&["who", "conn"]), TIMEOUT);
    assert!(!out.status.success());
    assert_ended_by_panic(&env, "conn", "conn");
}

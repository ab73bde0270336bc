//! Third-party SSH software against the daemon: paramiko (what Ansible,
//! Fabric and many Python tools use), driven by `tests/py/paramiko_client.py`,
//! and the `ssh-audit` scanner. Both come from PyPI (`.ci/run` installs
//! them; `python3 -m pip install paramiko ssh-audit` does it by hand).

use crate::support::ssh::{Daemon, Key, authorize, host_key};
use crate::support::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// A daemon with one owner key, as in the other SSH tests.
fn setup() -> (TestEnv, Daemon, Key) {
    with_env(TestEnv::new())
}

/// [`setup`] for a test that floods the daemon (megabytes of input, or
/// thousands of connections a second): it runs alone, so that it neither
/// slows the other tests' timing nor is slowed by them.
fn setup_alone() -> (TestEnv, Daemon, Key) {
    with_env(TestEnv::alone())
}

fn with_env(env: TestEnv) -> (TestEnv, Daemon, Key) {
    let key = Key::new(&env.root().join("keys"), "alice", "alice@laptop");
    authorize(&env, &[key.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    (env, daemon, key)
}

/// Runs a scenario of the paramiko client and returns what it printed.
/// The Python tools run in the caller's environment (their packages live
/// under the real HOME), not the test's.
fn paramiko(daemon: &Daemon, key: &Key, host_key: &std::path::Path, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/paramiko_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(args)
        .args(["--port", &daemon.port.to_string(), "--key"])
        .arg(&key.path)
        .arg("--host-key")
        .arg(host_key);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "paramiko is missing: python3 -m pip install paramiko ({stderr})"
    );
    assert!(out.status.success(), "paramiko {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn paramiko_runs_many_commands_over_one_connection() {
    let (env, daemon, key) = setup();
    // More than max_channels (16): closed channels must not count.
    let seen = paramiko(&daemon, &key, &host_key(&env, "ed25519"), &["reuse", "--count", "40"]);
    assert_eq!(seen["commands"], 40);
    let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"auth_success\"").count(), 1, "{audit}");
}

#[test]
fn a_client_without_ed25519_gets_the_rsa_host_key() {
    let (env, daemon, key) = setup();
    let seen = paramiko(&daemon, &key, &host_key(&env, "rsa"), &["hostkey"]);
    assert_eq!(seen["host_key"], "ssh-rsa");
}

#[test]
fn requests_that_want_a_reply_get_one() {
    let (env, daemon, key) = setup();
    env.start("long", &["sleep", "600"]);
    let seen =
        paramiko(&daemon, &key, &host_key(&env, "ed25519"), &["requests", "--session", "long"]);
    // tether forwards no X11 and delivers no signals: it says so.
    assert_eq!(seen["x11-req"], false, "{seen}");
    assert_eq!(seen["signal"], false, "{seen}");
    assert_eq!(seen["window-change"], true, "{seen}");
    assert!(seen["ls"].as_str().unwrap().contains("long"), "{seen}");
    assert_eq!(env.session("long")["state"], "running");
}

#[test]
fn input_to_a_command_that_never_reads_it_stalls_nothing() {
    let (env, daemon, key) = setup_alone();
    env.start("sink", &["sleep", "600"]);
    // 16 MB to `wait`, which reads nothing, while other channels of the
    // same connection run commands and keepalives are answered.
    let seen = paramiko(
        &daemon,
        &key,
        &host_key(&env, "ed25519"),
        &["flood", "--session", "sink", "--mbytes", "16"],
    );
    assert_eq!(seen["flooded"], 16 << 20, "{seen}");
    eprintln!("flood: {seen}");
    // Discarded as it came: the daemon holds none of it.
    let rss = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let rss_kb: u64 = rss
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kb < 100 * 1024, "daemon RSS {rss_kb} kB after the flood");
}

#[test]
fn an_attachment_flooded_past_its_bound_is_closed_alone() {
    let (env, daemon, key) = setup_alone();
    // A job that reads nothing, its terminal in raw mode (no line
    // discipline dropping excess input): input backs up to the daemon.
    env.start("deaf", &["sh", "-c", "stty raw -echo; echo ready; sleep 600"]);
    env.wait_text("deaf", "ready");
    let (_, fds) = daemon.threads_and_fds();
    let seen = paramiko(
        &daemon,
        &key,
        &host_key(&env, "ed25519"),
        &["overflow", "--session", "deaf", "--mbytes", "64"],
    );
    eprintln!("overflow: {seen}");
    assert_eq!(seen["status"], 6, "{seen}");
    assert!(seen["said"].as_str().unwrap().contains("does not read them"), "{seen}");
    // Closed after a bounded amount, not after all 64 MB.
    assert!(seen["sent"].as_u64().unwrap() < 48 << 20, "{seen}");
    assert_eq!(env.session("deaf")["state"], "running");
    // The daemon let go of the keeper connection (the keeper itself notices
    // once its job reads again: it is blocked writing to the job).
    wait_until("the daemon to let go", || daemon.threads_and_fds().1 <= fds);
}

/// Warnings `ssh-audit` gives that tether cannot fix without locking out
/// every client older than OpenSSH 9.9 (the only post-quantum key exchange
/// russh has is `mlkem768x25519-sha256`, offered first).
const UNFIXABLE: &[&str] = &["does not provide protection against post-quantum attacks"];

#[test]
fn ssh_audit_finds_nothing_tether_can_fix() {
    let (env, daemon, _key) = setup_alone();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "ssh_audit", "-j", "-p", &daemon.port.to_string(), "127.0.0.1"]);
    // Its own connections include a 1.5 s connection-rate test (DHEat).
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "ssh-audit is missing: python3 -m pip install ssh-audit ({stderr})"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("ssh-audit: {e}: {}{stderr}", String::from_utf8_lossy(&out.stdout))
    });
    let mut problems = Vec::new();
    for kind in ["kex", "key", "enc", "mac"] {
        for alg in report[kind].as_array().unwrap() {
            let name = alg["algorithm"].as_str().unwrap();
            for fail in alg["notes"]["fail"].as_array().into_iter().flatten() {
                problems.push(format!("{kind} {name}: fail: {fail}"));
            }
            for warn in alg["notes"]["warn"].as_array().into_iter().flatten() {
                if !UNFIXABLE.contains(&warn.as_str().unwrap()) {
                    problems.push(format!("{kind} {name}: warn: {warn}"));
                }
            }
        }
    }
    for note in report["additional_notes"].as_array().into_iter().flatten() {
        if note.as_str().unwrap().contains("DHEat") {
            problems.push(format!("note: {note}"));
        }
    }
    assert!(problems.is_empty(), "ssh-audit:\n{}", problems.join("\n"));
    let names = |kind: &str| -> Vec<String> {
        report[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["algorithm"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("kex")[0], "mlkem768x25519-sha256");
    let keys = names("key");
    assert!(
        keys.contains(&"ssh-ed25519".into()) && keys.contains(&"rsa-sha2-512".into()),
        "{keys:?}"
    );
    assert!(!keys.contains(&"ssh-rsa".into()), "{keys:?}");
    assert!(names("mac").iter().all(|m| m.ends_with("-etm@openssh.com")), "{:?}", names("mac"));
    let compression: Vec<&str> =
        report["compression"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(!compression.contains(&"zlib"), "compression before login: {compression:?}");
    let _ = env;
}

//! Forensics: capture everything about a session without stopping it;
//! freeze and thaw; host-wide capture; signed, verifiable bundles.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A session like the one an incident leaves: a Python process with a
/// listening socket and an open file, a child in its own session, and a
/// process whose executable was deleted after it started. Returns the env,
/// the port, and the deleted binary's SHA-256.
fn incident() -> (TestEnv, u16, String) {
    let env = TestEnv::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = env.root().display().to_string();
    std::fs::copy("/bin/sleep", env.root().join("doomed-sleep")).unwrap();
    let digest = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(std::fs::read("/bin/sleep").unwrap());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let script = format!(
        "cd {dir}\n\
         python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", {port})); s.listen(); f=open(\"{dir}/held.txt\",\"w\"); time.sleep(600)' &\n\
         setsid sh -c 'sleep 600' &\n\
         {dir}/doomed-sleep 600 &\n\
         sleep 0.3; rm {dir}/doomed-sleep\n\
         echo ready; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done\n"
    );
    std::fs::write(env.root().join("job.sh"), script).unwrap();
    env.start("incident", &["sh", &format!("{dir}/job.sh")]);
    env.wait_text("incident", "tick 2");
    wait_until("the listener", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    (env, port, digest)
}

fn processes(bundle: &Path) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(bundle.join("processes.json")).unwrap()).unwrap()
}

fn cmdline(p: &Value) -> String {
    p["cmdline"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn state(pid: u64) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')').next().unwrap().trim_start().chars().next().unwrap()
}

#[test]
fn a_snapshot_finds_every_process_and_leaves_them_running() {
    let (env, port, digest) = incident();
    let bundle = PathBuf::from(env.ok(&["snapshot", "incident"]).trim());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777, 0o700);
    let procs = processes(&bundle);
    let find = |needle: &str| {
        procs
            .iter()
            .find(|p| cmdline(p).contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in {procs:#?}"))
    };
    let python = find("socket.socket()");
    let fds = python["fds"].as_array().unwrap();
    assert!(fds.iter().any(|f| f["target"].as_str().unwrap().ends_with("/held.txt")), "{fds:?}");
    assert!(
        fds.iter().any(|f| f["socket"]["local"] == format!("127.0.0.1:{port}")
            && f["socket"]["state"] == "LISTEN"),
        "{fds:?}"
    );
    assert_eq!(python["cwd"].as_str().unwrap(), env.root().display().to_string());
    assert!(python["environ"].as_array().unwrap().iter().any(|e| e == "TETHER_SESSION=incident"));
    let own_session = find("sh -c sleep 600");
    let job_pid = env.session("incident")["pid"].as_u64().unwrap();
    assert_ne!(own_session["stat"]["sid"].as_u64().unwrap(), job_pid, "it started its own session");
    let deleted = find("doomed-sleep");
    assert_eq!(deleted["exe"]["deleted"], true);
    assert_eq!(deleted["exe"]["sha256"], digest.as_str());
    // Nothing was stopped or killed, and the job goes on.
    for p in &procs {
        let pid = p["pid"].as_u64().unwrap();
        if alive(pid as u32) {
            assert_ne!(state(pid), 'T', "{} was stopped", cmdline(p));
        }
    }
    for needle in ["socket.socket()", "sh -c sleep 600", "doomed-sleep"] {
        assert!(alive(find(needle)["pid"].as_u64().unwrap() as u32), "{needle} died");
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap())
            .unwrap();
    for key in ["hostname", "machine_id", "boot_id", "kernel"] {
        assert!(manifest["host"].get(key).is_some(), "{key}");
    }
    assert!(manifest["requested_by"].as_str().unwrap().contains(&user_name()));
    assert_eq!(manifest["session"]["name"], "incident");
    assert!(manifest["files"].as_array().unwrap().iter().any(|f| f["path"] == "screen.txt"));
    assert!(std::fs::read_to_string(bundle.join("scrollback.txt")).unwrap().contains("ready"));
    let recording: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("recording.json")).unwrap())
            .unwrap();
    assert!(recording["last_checkpoint"]["hash"].as_str().is_some(), "{recording}");
}

#[test]
fn verify_names_the_changed_and_the_missing_file() {
    let (env, _, _) = incident();
    let bundle = PathBuf::from(env.ok(&["snapshot", "incident"]).trim());
    let b = bundle.to_str().unwrap();
    assert_eq!(env.run(&["verify", b]).status.code(), Some(0));
    // OpenSSH alone can check the signature.
    let out = std::process::Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", "tether-evidence", "-s"])
        .arg(bundle.join("manifest.sig"))
        .stdin(std::fs::File::open(bundle.join("manifest.json")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = bundle.join("processes.json");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let out = env.run(&["verify", b]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("modified: processes.json"));
    bytes[10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::remove_file(bundle.join("screen.txt")).unwrap();
    std::fs::write(bundle.join("planted.txt"), "x").unwrap();
    let out = env.run(&["verify", b, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["missing"], serde_json::json!(["screen.txt"]));
    assert_eq!(report["added"], serde_json::json!(["planted.txt"]));
    assert_eq!(report["modified"], serde_json::json!([]));
}

#[test]
fn freeze_stops_every_process_and_thaw_resumes_them() {
    let (env, _, _) = incident();
    let bundle = PathBuf::from(env.ok(&["snapshot", "incident"]).trim());
    let pids: Vec<u64> = processes(&bundle)
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .filter(|p| alive(*p as u32))
        .collect();
    env.ok(&["freeze", "incident"]);
    assert_eq!(env.session("incident")["frozen"], true);
    for pid in &pids {
        if alive(*pid as u32) {
            assert_eq!(state(*pid), 'T', "pid {pid}");
        }
    }
    let ticks = |e: &TestEnv| e.tail("incident").lines().filter(|l| l.starts_with("tick")).count();
    let frozen_at = ticks(&env);
    assert_eq!(env.run(&["freeze", "incident"]).status.code(), Some(4));
    env.ok(&["thaw", "incident"]);
    assert_eq!(env.session("incident")["frozen"], false);
    wait_until("output after thaw", || ticks(&env) > frozen_at + 2);
    let text = std::fs::read_to_string(env.session("incident")["recording_path"].as_str().unwrap())
        .unwrap();
    assert!(text.contains("\"m\", \"freeze (freeze)\"") && text.contains("\"m\", \"thaw (thaw)\""));
    // snapshot --freeze thaws afterwards.
    env.ok(&["snapshot", "--freeze", "incident"]);
    assert_eq!(env.session("incident")["frozen"], false);
    for pid in &pids {
        if alive(*pid as u32) {
            assert_ne!(state(*pid), 'T', "pid {pid} left stopped");
        }
    }
}

#[test]
fn memory_dumps_and_host_wide_capture() {
    let (env, port, _) = incident();
    let bundle = PathBuf::from(env.ok(&["snapshot", "--memory", "incident"]).trim());
    let regions: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("memory.json")).unwrap())
            .unwrap();
    let dumped: Vec<&Value> = regions.iter().filter(|r| r["file"].is_string()).collect();
    assert!(!dumped.is_empty(), "{regions:?}");
    assert_eq!(env.run(&["verify", bundle.to_str().unwrap()]).status.code(), Some(0));

    let system = PathBuf::from(env.ok(&["snapshot", "--system"]).trim());
    let procs = processes(&system);
    // The capture is host-wide: other tests' listeners are in it too.
    let bind = format!("\"127.0.0.1\", {port})");
    let python = procs
        .iter()
        .find(|p| cmdline(p).contains("socket.socket()") && cmdline(p).contains(&bind))
        .expect("the python process");
    let sockets: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(system.join("sockets.json")).unwrap())
            .unwrap();
    let listener =
        sockets.iter().find(|s| s["local"] == format!("127.0.0.1:{port}")).expect("its socket");
    assert_eq!(listener["state"], "LISTEN");
    assert!(listener["pids"].as_array().unwrap().contains(&python["pid"]));
    for file in ["logins.json", "network.json", "system.json", "kernel_log.json"] {
        assert!(system.join(file).exists(), "{file}");
    }
    assert_eq!(env.run(&["verify", system.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn a_protected_session_needs_force_and_watchers_cannot_capture() {
    let env = TestEnv::new();
    env.ok(&["new", "-d", "--protect", "keep", "--", "sleep", "60"]);
    assert_eq!(env.run(&["kill", "keep"]).status.code(), Some(4));
    assert_eq!(env.session("keep")["state"], "running");
    use crate::support::ssh::{Daemon, Key, Ssh, authorize};
    let key = Key::new(&env.root().join("keys"), "op", "operator@x");
    authorize(&env, &[format!("tether-role=\"operator\" {}", key.public())]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &key);
    for command in [&["snapshot", "keep"][..], &["freeze", "keep"], &["thaw", "keep"]] {
        let out = ssh.run(&env, command);
        assert_eq!(out.status.code(), Some(5), "{command:?}");
    }
}

/// Issue "Attacked from outside the repo", 10: verify followed symlinks in
/// a bundle (two `ln -s . loop`s hung it) and read whatever a listed name
/// pointed at.
#[test]
fn verify_never_follows_a_symlink_in_a_bundle() {
    let env = TestEnv::new();
    env.start("links", &["sh", "-c", "echo captured; sleep 60"]);
    env.wait_text("links", "captured");
    let bundle = PathBuf::from(env.ok(&["snapshot", "links"]).trim());
    let b = bundle.to_str().unwrap();
    assert_eq!(env.run(&["verify", b]).status.code(), Some(0));
    std::os::unix::fs::symlink(".", bundle.join("loop")).unwrap();
    std::os::unix::fs::symlink(".", bundle.join("loop2")).unwrap();
    // A listed file swapped for a link to a faithful copy outside.
    let outside = env.root().join("screen-copy.txt");
    std::fs::rename(bundle.join("screen.txt"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, bundle.join("screen.txt")).unwrap();
    // And one for a FIFO, which a reader would wait on forever.
    std::fs::remove_file(bundle.join("scrollback.txt")).unwrap();
    let status =
        std::process::Command::new("mkfifo").arg(bundle.join("scrollback.txt")).status().unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let out =
        run_with_timeout(env.cmd(&["verify", b, "--json"]), std::time::Duration::from_secs(10));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "damaged");
    assert_eq!(report["added"], serde_json::json!(["loop", "loop2"]), "{report}");
    assert_eq!(report["symlinks"], serde_json::json!(["loop", "loop2", "screen.txt"]), "{report}");
    assert_eq!(report["modified"], serde_json::json!(["screen.txt", "scrollback.txt"]), "{report}");
    let human = env.run(&["verify", b]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("symlink") && text.contains("loop"), "{text}");
}

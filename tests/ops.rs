//! Operability: the deep health check, service-manager integration,
//! completions and the man page.

use crate::support::ssh::{Daemon, Key, Ssh, authorize, known_hosts_line};
use crate::support::*;
use rustix::process::Signal;
use serde_json::Value;

fn check(env: &TestEnv, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), report)
}

fn failed(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn check_passes_when_healthy_and_names_what_fails() {
    let env = TestEnv::new();
    env.start("work", &["sleep", "60"]);
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    let names: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["service", "attach", "recording", "keepers", "degraded", "disk"]);
    // The probe left nothing behind, and user recordings were not touched.
    let sessions = env.sessions();
    assert_eq!(sessions.len(), 1);
    let recordings = std::fs::read_dir(env.root().join("data/tether/recordings")).unwrap().count();
    assert_eq!(recordings, 3, "one recording with its two sidecars");
    let human = env.ok(&["check"]);
    assert!(human.lines().all(|l| l.starts_with("ok")), "{human}");

    // A stopped keeper.
    let keeper = env.session("work")["keeper_pid"].as_u64().unwrap() as u32;
    signal(keeper, Signal::STOP);
    let (code, report) = check(&env, &[]);
    signal(keeper, Signal::CONT);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["keepers"], "{report}");
    assert!(report.to_string().contains("work"));
}

#[test]
fn check_fails_when_recording_is_degraded() {
    let env = TestEnv::new();
    let flag = env.root().join("fail");
    let mut cmd =
        env.cmd(&["new", "-d", "disk", "--", "sh", "-c", "while :; do echo x; sleep 0.05; done"]);
    cmd.env("TETHER_TEST_FAIL_RECORDING", &flag);
    assert!(run_with_timeout(cmd, TIMEOUT).status.success());
    std::fs::write(&flag, "").unwrap();
    wait_until("degraded", || env.session("disk")["recording"] == "degraded");
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["degraded"], "{report}");
}

#[test]
fn check_over_ssh_and_with_the_daemon_down() {
    let env = TestEnv::new();
    let key = Key::new(&env.root().join("keys"), "me", "me@x");
    authorize(&env, &[key.public()]);
    let mut daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh_dir = env.home().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::copy(&key.path, ssh_dir.join("id_ed25519")).unwrap();
    std::fs::write(ssh_dir.join("known_hosts"), known_hosts_line(&env, daemon.port)).unwrap();
    let host = format!("127.0.0.1:{}", daemon.port);
    let (code, report) = check(&env, &["--host", &host]);
    assert_eq!(code, 0, "{report}");
    // ssh host check works too.
    let ssh = Ssh::new(&env, &daemon, &key);
    assert!(ssh.ok(&env, &["check"]).contains("ok   attach"));
    daemon.kill9();
    let (code, report) = check(&env, &["--host", &host]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["service"]);
    assert!(report.to_string().contains("cannot reach"), "{report}");
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_and_reloads_on_sighup() {
    let env = TestEnv::new();
    let sock_path = env.root().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut cmd = env.cmd(&["daemon", "--foreground", "--listen", "127.0.0.1:0"]);
    cmd.env("NOTIFY_SOCKET", &sock_path).env("WATCHDOG_USEC", "400000");
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut buf = [0u8; 256];
    let mut got = String::new();
    while !(got.contains("READY=1") && got.contains("WATCHDOG=1")) {
        let n = sock.recv(&mut buf).expect("a notification");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("STATUS=listening on 127.0.0.1:"), "{got}");
    // A broken config is refused on reload; the daemon stays up.
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("config.toml"), "listen = 12\n").unwrap();
    signal(child.id(), Signal::HUP);
    let mut got = String::new();
    while !got.contains("RELOADING=1") || !got.contains("READY=1") {
        let n = sock.recv(&mut buf).expect("a notification");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Type=notify-reload needs the reload stamped with the monotonic clock.
    assert!(got.contains("RELOADING=1\nMONOTONIC_USEC="), "{got}");
    assert!(alive(child.id()));
    signal(child.id(), Signal::TERM);
    assert!(child.wait().unwrap().success());
}

#[test]
fn completions_man_page_and_version() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.ok(&["completions", shell]);
        assert!(out.contains("attach") && out.contains("snapshot"), "{shell}");
    }
    let man = env.ok(&["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH tether"), "{man}");
    assert!(env.ok(&["--version"]).contains("(protocol 1)"));
}

#[test]
fn check_fails_when_the_recordings_directory_refuses_writes() {
    let env = TestEnv::new();
    let recordings = env.root().join("data/tether/recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let (code, _) = check(&env, &[]);
    assert_eq!(code, 0);
    // As root, permissions do not stop writes: a read-only mount does.
    let root = rustix::process::getuid().is_root();
    let mounted = root
        && std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tether-test-ro"])
            .arg(&recordings)
            .status()
            .is_ok_and(|s| s.success());
    if root && !mounted {
        eprintln!("skipped: cannot mount a read-only tmpfs here");
        return;
    }
    if !root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&recordings, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let (code, report) = check(&env, &[]);
    if mounted {
        let _ = std::process::Command::new("umount").arg("-l").arg(&recordings).status();
    }
    assert_eq!(code, 1, "{report}");
    assert_eq!(failed(&report), ["disk"], "{report}");
    assert!(report.to_string().contains("refuses writes"), "{report}");
}

/// `check`'s probe is listed as a probe (`probe: true`, `[probe]` in the
/// table) while it exists, and cannot be attached: it is for `check`
/// alone. The probe is held back by a `sh` that waits for a gate before
/// printing the nonce.
#[test]
fn the_probe_is_listed_as_a_probe_and_cannot_be_attached() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let gate = Gate::new(&env);
    let bin_dir = env.root().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let sh = bin_dir.join("sh");
    std::fs::write(
        &sh,
        format!(
            "#!/bin/sh\ncase \"$2\" in *probe-*) {} ;; esac\nexec /bin/sh \"$@\"\n",
            gate.script(":")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = env.cmd(&["check", "--json"]);
    cmd.env("PATH", path);
    let check = std::thread::spawn(move || run_with_timeout(cmd, TIMEOUT));

    let mut probe = None;
    wait_until("the probe in ls", || {
        probe = env.sessions().into_iter().find(|s| s["probe"] == true);
        probe.is_some()
    });
    let name = probe.unwrap()["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("check-") && name.len() == 14, "{name}");
    let table = env.ok(&["ls"]);
    let line = table.lines().find(|l| l.starts_with(&name)).unwrap();
    assert!(line.contains("running [probe]"), "{table}");
    let mut term = env.terminal(&["attach", &name], 80, 24);
    assert_eq!(term.wait_exit(), 5, "{}", term.contents());
    term.wait_text("probe of `tether check`");

    gate.open();
    let out = check.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(env.ok(&["ls", "--json"]).trim(), "[]");
}

/// Regression: under `recording = "required"` the probe still recorded to
/// the scratch place `check` removes. Now nothing records less: the probe
/// records among the recordings, and its recording stays.
#[test]
fn under_required_recording_the_probe_records_like_any_session() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("config.toml"), "recording = \"required\"\n").unwrap();
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(env.ok(&["ls", "--json"]).trim(), "[]");
    let recordings: Vec<String> = std::fs::read_dir(env.root().join("data/tether/recordings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let cast = recordings
        .iter()
        .find(|n| n.starts_with("check-") && n.ends_with(".cast"))
        .unwrap_or_else(|| panic!("no probe recording in {recordings:?}"));
    let path = env.root().join("data/tether/recordings").join(cast);
    let out = env.run(&["verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

//! The keeper's socket under hostile or mismatched peers: a clear error,
//! and the session carries on.

use crate::support::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use tether_proto::{FrameDecoder, HelloRequest, Message, encode};

/// Sends `bytes` and returns the first frame the keeper answers with.
fn exchange(path: &std::path::Path, bytes: &[u8]) -> Option<Message> {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut dec = FrameDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = dec.next_message().unwrap() {
            return Some(m);
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => dec.extend(&buf[..n]),
        }
    }
}

#[test]
fn a_client_of_another_protocol_version_gets_both_versions_named() {
    let env = TestEnv::new();
    env.start("v", &["sleep", "60"]);
    let hello = Message::Hello(HelloRequest { protocol: 99, software: "tether 9.9".into() });
    match exchange(&env.keeper_socket(), &encode(&hello).unwrap()) {
        Some(Message::Error(e)) => {
            assert!(e.message.contains("protocol 99"), "{}", e.message);
            assert!(e.message.contains("protocol 1"), "{}", e.message);
        }
        other => panic!("expected a version error, got {other:?}"),
    }
}

#[test]
fn malformed_frames_get_a_clear_error_and_lose_nothing() {
    let env = TestEnv::new();
    env.start("m", &["sh", "-c", "i=0; while :; do i=$((i+1)); echo n$i; sleep 0.05; done"]);
    let sock = env.keeper_socket();
    let cases: &[&[u8]] = &[
        b"\xff\xff\xff\xff",         // absurd length
        b"\x00\x00\x00\x00",         // empty frame
        b"\x00\x00\x00\x01\x55",     // unknown kind
        b"\x00\x00\x00\x03\x01{}",   // hello without fields
        b"\x00\x00\x00\x05\x01nope", // hello that is not JSON
    ];
    for bytes in cases {
        match exchange(&sock, bytes) {
            Some(Message::Error(e)) => assert!(!e.message.is_empty()),
            other => panic!("expected an error for {bytes:?}, got {other:?}"),
        }
    }
    // A peer that connects and says nothing is not a problem either.
    let _idle = UnixStream::connect(&sock).unwrap();
    // The session is unharmed and still usable.
    let s = env.session("m");
    assert_eq!(s["state"], "running");
    let before = env.tail("m").lines().count();
    wait_until("more output", || env.tail("m").lines().count() > before);
    assert!(alive(s["keeper_pid"].as_u64().unwrap() as u32));
}

#[test]
fn another_local_user_cannot_use_a_keeper_socket() {
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.start("mine", &["sleep", "60"]);
    let sock = env.keeper_socket();
    // Open the directories and the socket to everyone, so that only the
    // keeper's own peer check stands in the way.
    for dir in [env.root().to_path_buf(), env.root().join("run"), env.runtime_dir()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(10)\ns.connect({:?})\n\
         s.sendall(bytes.fromhex('0000001e01')+b'{{\"protocol\":1,\"software\":\"x\"}}')\n\
         sys.stdout.write(s.recv(4096)[5:].decode())",
        sock.display().to_string()
    );
    // Regression (CI of 2026-11-28): the keeper closed right after writing
    // its refusal, so a peer whose hello came a moment later got EPIPE
    // instead of the reason. Several rounds give the race room to show.
    for _ in 0..5 {
        let mut cmd = std::process::Command::new("python3");
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        cmd.args(["-c", &script]);
        let out = run_with_timeout(cmd, Duration::from_secs(20));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("refused") && text.contains("another user"),
            "{text} / {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A fake keeper run by another user (`nobody`): python3 listening on a
/// socket and appending whatever it receives to a file.
struct FakeKeeper {
    child: std::process::Child,
    got: std::path::PathBuf,
}

impl FakeKeeper {
    fn start(socket: &std::path::Path, scratch: &std::path::Path) -> FakeKeeper {
        let got = scratch.join(format!("{}.got", socket.file_name().unwrap().to_string_lossy()));
        let ready = scratch.join("fake.ready");
        let _ = std::fs::remove_file(&ready);
        let script = format!(
            "import os, socket\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.bind({sock:?})\n\
             os.chmod({sock:?}, 0o777)\n\
             s.listen(8)\n\
             open({ready:?}, 'w').close()\n\
             while True:\n\
             \x20   c, _ = s.accept()\n\
             \x20   c.settimeout(2)\n\
             \x20   data = b''\n\
             \x20   try:\n\
             \x20       while True:\n\
             \x20           b = c.recv(4096)\n\
             \x20           if not b: break\n\
             \x20           data += b\n\
             \x20   except Exception:\n\
             \x20       pass\n\
             \x20   with open({got:?}, 'ab') as f:\n\
             \x20       f.write(data)\n\
             \x20   c.close()\n",
            sock = socket.display().to_string(),
            ready = ready.display().to_string(),
            got = got.display().to_string(),
        );
        let mut cmd = std::process::Command::new("python3");
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
        cmd.args(["-c", &script]).stdin(std::process::Stdio::null());
        let child = cmd.spawn().unwrap();
        let fake = FakeKeeper { child, got };
        wait_until("the fake keeper to listen", || ready.exists());
        fake
    }

    /// Every byte it was sent.
    fn received(&self) -> Vec<u8> {
        std::fs::read(&self.got).unwrap_or_default()
    }
}

impl Drop for FakeKeeper {
    fn drop(&mut self) {
        kill9(self.child.id());
        let _ = self.child.wait();
    }
}

/// Regression: without `XDG_RUNTIME_DIR` the sockets are in
/// `/tmp/tether-$UID/`, which another local user can create first, with a
/// fake keeper socket in it; `tether attach NAME` then sent the hello (and
/// would have sent the user's keystrokes) to that user's process. Every
/// client now checks, before sending anything, that the socket directory
/// is its user's and closed to others, and that the process on the other
/// end of a keeper socket runs as its user (`SO_PEERCRED`).
///
/// `TETHER_TEST_TMPDIR` (test builds only) stands for `/tmp`, so the test
/// never touches the real `/tmp/tether-$UID`.
#[test]
fn a_squatted_socket_directory_or_a_foreign_keeper_socket_gets_nothing() {
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    // A real session: its record says it runs, its keeper holds the lock.
    env.start("work", &["sleep", "300"]);
    let sock_name = env.keeper_socket().file_name().unwrap().to_owned();
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let uid = rustix::process::getuid().as_raw();
    let fallback = |tmp: &std::path::Path| {
        std::fs::create_dir_all(tmp).unwrap();
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let dir = tmp.join(format!("tether-{uid}"));
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    };
    // `tether ARGS` without XDG_RUNTIME_DIR, the fallback under `tmp`.
    let run = |tmp: &std::path::Path, args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env_remove("XDG_RUNTIME_DIR").env("TETHER_TEST_TMPDIR", tmp);
        run_with_timeout(cmd, TIMEOUT)
    };
    let attach = |tmp: &std::path::Path| {
        let tmp_env = format!("TETHER_TEST_TMPDIR={}", tmp.display());
        let mut term = env.terminal_program(
            &["env", "-u", "XDG_RUNTIME_DIR", &tmp_env, bin(), "attach", "work"],
            80,
            24,
        );
        let code = term.wait_exit();
        (code, term)
    };
    let text = |out: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };

    // 1. Another user created the fallback directory and a fake keeper
    //    socket in it.
    let tmp = env.root().join("tmp");
    let squatted = fallback(&tmp);
    let fake = FakeKeeper::start(&squatted.join(&sock_name), &tmp);
    let why = format!("refusing to use the socket directory {}", squatted.display());
    let (code, term) = attach(&tmp);
    assert_eq!(code, 6, "{}", term.contents());
    term.wait_text(&why);
    term.wait_text("uid 65534 (nobody)");
    for args in [&["ls"][..], &["kill", "work"], &["who", "work"]] {
        let out = run(&tmp, args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(&why), "{args:?}: {}", text(&out));
    }
    assert_eq!(fake.received(), b"", "the fake keeper was sent something");
    drop(fake);

    // 2. The directory is ours, but the socket in it is served by another
    //    user's process.
    let tmp = env.root().join("tmp2");
    let ours = fallback(&tmp);
    let fake = FakeKeeper::start(&ours.join(&sock_name), &tmp);
    std::os::unix::fs::chown(&ours, Some(uid), Some(0)).unwrap();
    std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o700)).unwrap();
    let why = "refusing to talk to the socket of session work";
    let (code, term) = attach(&tmp);
    assert_eq!(code, 6, "{}", term.contents());
    term.wait_text(why);
    term.wait_text("uid 65534 (nobody)");
    for args in [&["kill", "work"][..], &["who", "work"], &["tail", "work"]] {
        let out = run(&tmp, args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(why), "{args:?}: {}", text(&out));
    }
    assert_eq!(fake.received(), b"", "the fake keeper was sent something");
    // `ls` sends nothing to keepers, and the directory is ours: it works.
    assert!(run(&tmp, &["ls"]).status.success());
    // The real session never noticed.
    assert_eq!(env.session("work")["state"], "running");
}

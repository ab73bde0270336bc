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

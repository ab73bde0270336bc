//! Hostile input, each with a test: absurd sizes, megabyte names and
//! commands, thousands of channels, connections that never log in, frames
//! of the wrong shape, and output built to exhaust the emulator. Each
//! ends by proving the daemon or the session still works.

use crate::support::rssh::{self, connect, finish};
use crate::support::ssh::{Daemon, Key, Ssh, authorize};
use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tether_proto::{FrameDecoder, HelloRequest, Message, encode};

/// Resident memory of `pid` in MB.
fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

struct Remote {
    env: TestEnv,
    daemon: Daemon,
    key: Key,
}

fn remote(config: &str) -> Remote {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("config.toml"), config).unwrap();
    let key = Key::new(env.root(), "k", "tester@test");
    authorize(&env, &[key.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    Remote { env, daemon, key }
}

impl Remote {
    /// The daemon still serves a real OpenSSH client.
    fn still_serves(&self) {
        assert!(alive(self.daemon.pid()), "the daemon died");
        let ssh = Ssh::new(&self.env, &self.daemon, &self.key);
        let out = ssh.run(&self.env, &["ls", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "ls after the attack: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn absurd_pty_and_window_sizes_are_clamped() {
    let r = remote("");
    r.env.start("big", &["sh", "-c", "while :; do stty size; sleep 0.1; done"]);
    let rt = rssh::runtime();
    rt.block_on(async {
        let handle = connect(r.daemon.port, &r.key.path).await;
        let mut ch = handle.channel_open_session().await.unwrap();
        ch.request_pty(false, "xterm", u32::MAX, u32::MAX, u32::MAX, u32::MAX, &[]).await.unwrap();
        ch.exec(false, "attach big").await.unwrap();
        rssh::read_until(&mut ch, "1000 1000").await;
        ch.window_change(0, 0, 0, 0).await.unwrap();
        rssh::read_until(&mut ch, "24 80").await;
        ch.window_change(70_000, 3, 0, 0).await.unwrap();
        rssh::read_until(&mut ch, "3 1000").await;
        let _ = ch.close().await;
    });
    let s = r.env.session("big");
    assert!(s["cols"].as_u64().unwrap() <= 1000 && s["rows"].as_u64().unwrap() <= 1000);
    let keeper = s["keeper_pid"].as_u64().unwrap() as u32;
    assert!(rss_mb(keeper) < 200, "keeper RSS {} MB", rss_mb(keeper));
    r.still_serves();
}

#[test]
fn megabyte_names_and_commands_get_a_clear_error() {
    let r = remote("");
    let rt = rssh::runtime();
    let huge = "a".repeat(1 << 20);
    let long = "b".repeat(100_000);
    rt.block_on(async {
        let handle = connect(r.daemon.port, &r.key.path).await;
        // 100 KB fits an SSH packet: the name itself is refused.
        let mut ch = handle.channel_open_session().await.unwrap();
        ch.exec(false, format!("attach {long}")).await.unwrap();
        let out = finish(&mut ch, TIMEOUT).await;
        assert_eq!(out.status, Some(2), "{}", out.text());
        assert!(out.text().contains("name"), "{}", out.text());
        // 1 MB does not fit a packet: refused by the transport or by us,
        // never accepted, never a crash.
        for command in [format!("attach {huge}"), format!("new x -- echo {huge}")] {
            if let Ok(mut ch) = handle.channel_open_session().await
                && ch.exec(false, command).await.is_ok()
            {
                let out = finish(&mut ch, Duration::from_secs(5)).await;
                assert_ne!(out.status, Some(0), "a 1 MB command was accepted");
            }
        }
    });
    // The same name as raw frames through the `tether` subsystem, in
    // pieces that fit the channel.
    rt.block_on(async {
        let handle = connect(r.daemon.port, &r.key.path).await;
        let mut ch = handle.channel_open_session().await.unwrap();
        ch.request_subsystem(true, "tether").await.unwrap();
        let hello = Message::Hello(HelloRequest { protocol: 1, software: "hostile".into() });
        let mut bytes = encode(&hello).unwrap();
        let payload = format!("{{\"session\":\"{}\"}}", &huge[..1_000_000]);
        bytes.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        bytes.push(0x03); // route
        bytes.extend_from_slice(payload.as_bytes());
        for piece in bytes.chunks(30_000) {
            if ch.data(piece).await.is_err() {
                break;
            }
        }
        let out = finish(&mut ch, TIMEOUT).await;
        let mut dec = FrameDecoder::new();
        dec.extend(&out.output);
        let mut messages = Vec::new();
        while let Ok(Some(m)) = dec.next_message() {
            messages.push(m);
        }
        assert!(
            messages.iter().any(|m| matches!(m, Message::Error(e) if e.message.contains("name"))),
            "{messages:?}"
        );
    });
    // No session was created by any of it.
    assert!(r.env.sessions().is_empty(), "{:?}", r.env.sessions());
    r.still_serves();
}

#[test]
fn thousands_of_channels_on_one_connection_are_refused_past_the_limit() {
    let r = remote("max_channels = 16\n");
    let rt = rssh::runtime();
    let opened = rt.block_on(async {
        let handle = connect(r.daemon.port, &r.key.path).await;
        let mut open = Vec::new();
        let mut refused = 0;
        for _ in 0..3000 {
            match handle.channel_open_session().await {
                Ok(ch) => open.push(ch),
                Err(_) => refused += 1,
            }
            if handle.is_closed() {
                break;
            }
        }
        assert!(refused > 0 || handle.is_closed(), "3000 channels were all accepted");
        // The channels that were accepted work.
        if let Some(ch) = open.first_mut() {
            ch.exec(false, "ls").await.unwrap();
            let out = finish(ch, TIMEOUT).await;
            assert_eq!(out.status, Some(0), "{}", out.text());
        }
        open.len()
    });
    assert!(opened <= 16, "{opened} channels open at once");
    assert!(rss_mb(r.daemon.pid()) < 200, "daemon RSS {} MB", rss_mb(r.daemon.pid()));
    r.still_serves();
}

#[test]
fn connections_that_never_log_in_are_dropped_and_do_not_lock_users_out() {
    let r = remote("auth_timeout_secs = 2\nmax_connections = 40\n");
    let addr = format!("127.0.0.1:{}", r.daemon.port);
    // 60 connections: some say nothing, some only their version, some junk.
    let mut idle = Vec::new();
    for i in 0..60 {
        let Ok(mut s) = TcpStream::connect(&addr) else { continue };
        match i % 3 {
            0 => {}
            1 => {
                let _ = s.write_all(b"SSH-2.0-idle\r\n");
            }
            _ => {
                let _ = s.write_all(&[0xff; 4096]);
            }
        }
        idle.push(s);
    }
    // Every one of them is closed by the daemon: at once past
    // max_connections, after auth_timeout_secs otherwise.
    let started = Instant::now();
    for s in &mut idle {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("a connection that never logged in stayed open: {e}"),
            }
        }
    }
    assert!(started.elapsed() < TIMEOUT);
    r.still_serves();
}

#[test]
fn a_megabyte_name_in_a_frame_on_the_local_socket_gets_a_clear_error() {
    let env = TestEnv::new();
    env.start("here", &["sleep", "60"]);
    let sock = env.keeper_socket();
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let hello = Message::Hello(HelloRequest { protocol: 1, software: "hostile".into() });
    s.write_all(&encode(&hello).unwrap()).unwrap();
    let payload = format!("{{\"session\":\"{}\"}}", "n".repeat(1_000_000));
    let mut frame = (payload.len() as u32 + 1).to_be_bytes().to_vec();
    frame.push(0x03);
    frame.extend_from_slice(payload.as_bytes());
    let _ = s.write_all(&frame);
    let mut dec = FrameDecoder::new();
    let mut buf = [0u8; 65536];
    let mut got = Vec::new();
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        dec.extend(&buf[..n]);
        while let Ok(Some(m)) = dec.next_message() {
            got.push(m);
        }
    }
    assert!(got.iter().any(|m| matches!(m, Message::Error(_))), "{got:?}");
    let s = env.session("here");
    assert_eq!(s["state"], "running");
    assert!(alive(s["keeper_pid"].as_u64().unwrap() as u32));
}

#[test]
fn output_built_to_exhaust_the_emulator_keeps_memory_bounded() {
    let env = TestEnv::new();
    // Huge CSI parameters and repeat counts, 5 MB of OSC before its end,
    // an unterminated OSC cut by CAN, 20 MB without a newline, then 10,000
    // wide lines: none of it may grow memory without bound.
    let script = r#"
        printf 'A\033[2147483647b\033[99999999999;99999999999H\033[4294967296X\033[999999999@\033[999999999L'
        printf '\033[?99999999999h\033[38;2;999999999;1;1mC\033[0m\n'
        printf '\033]0;'; head -c 5000000 /dev/zero | tr '\0' 't'; printf '\007'
        printf '\033]2;'; head -c 3000000 /dev/zero | tr '\0' 'u'; printf '\030'
        head -c 20000000 /dev/zero | tr '\0' 'x'
        printf '\n'
        i=0; while [ $i -lt 10000 ]; do printf '%0200d\n' $i; i=$((i+1)); done
        echo SURVIVED; sleep 600
    "#;
    env.start("evil", &["sh", "-c", script]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let keeper = env.session("evil")["keeper_pid"].as_u64().unwrap() as u32;
    let mut peak = 0;
    loop {
        peak = peak.max(rss_mb(keeper));
        if env.tail("evil").contains("SURVIVED") {
            break;
        }
        assert!(Instant::now() < deadline, "the session never got past the attack");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("keeper peak RSS during the attack: {peak} MB");
    // Scrollback is bounded by cells (default 1,200,000), the backlog
    // spills to disk, the scanner's holdback stops at 64 KiB.
    assert!(peak < 256, "keeper RSS reached {peak} MB");
    // Still usable: an attach shows the screen, replay and export finish.
    let mut term = env.terminal(&["attach", "evil"], 80, 24);
    term.wait_text("SURVIVED");
    term.detach();
    let out = env.run(&["replay", "evil", "--at", "+10m"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SURVIVED"));
    // Rendering 28 MB of hostile output to text takes a while in a debug
    // build; it must finish, not be quick.
    let out =
        run_with_timeout(env.cmd(&["export", "evil", "--format", "txt"]), Duration::from_secs(180));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SURVIVED"));
}

/// Arguments a job was started with: an OSC 52 clipboard write, a BEL, a
/// C1 CSI and a right-to-left override.
const EVIL: &str = "evil\x1b]52;c;aGk=\x07\u{9b}31m\u{202e}";
/// The same, as human output shows it.
const EVIL_SHOWN: &str = "evil\\e]52;c;aGk=\\x07\\u{9b}31m\\u{202e}";

/// Nothing a terminal would act on: no C0 but newline, no DEL, no C1, no
/// bidirectional override.
fn inert(text: &str) -> bool {
    !text.chars().any(|c| (c.is_control() && c != '\n') || c == '\u{202e}')
}

/// Commands, identities and titles reach `ls` and `who` with every control
/// character shown, never executed (JSON stays exact); a local user's name
/// comes from the uid, whatever `$USER` says.
#[test]
fn control_characters_in_listings_are_shown_not_executed() {
    let env = TestEnv::new();
    let mut cmd = env.cmd(&["new", "-d", "listed", "--", "sh", "-c", "sleep 300", EVIL]);
    cmd.env("USER", "mallory\x1b]2;x\x07");
    let out = run_with_timeout(cmd, TIMEOUT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plain = env.ok(&["ls"]);
    assert!(inert(&plain), "{plain:?}");
    assert!(plain.contains(EVIL_SHOWN), "{plain:?}");
    let json = env.session("listed");
    assert_eq!(json["command"][3], EVIL, "JSON is exact");
    assert_eq!(json["owner"].as_str(), Some(user_name().as_str()), "the owner is the uid's");
    let mut term = env.terminal(&["attach", "listed"], 80, 24);
    term.wait_attached();
    let who = env.ok(&["who", "listed"]);
    assert!(inert(&who) && who.contains(&user_name()) && !who.contains("mallory"), "{who:?}");
    term.detach();
}

/// A key's comment (its identity) reaches other people's terminals only
/// escaped: in `who`, in the notice an owner sees when it starts watching,
/// and a job's command in the session picker.
#[test]
fn control_characters_in_key_comments_and_commands_reach_no_terminal() {
    let env = TestEnv::new();
    let key = Key::new(env.root(), "evil", "evil\x1b]2;pwned\x07@x");
    assert!(key.public().contains('\x1b'), "ssh-keygen dropped the escape");
    authorize(&env, &[format!("tether-role=\"watcher\" {}", key.public())]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &key);
    env.start("shown", &["sh", "-c", "echo ready; sleep 300", EVIL]);
    let owner = env.terminal(&["attach", "shown"], 100, 24);
    owner.wait_text("ready");
    let argv = ssh.argv(&["-tt"], &["watch", "shown"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let watcher = env.terminal_program(&argv, 100, 24);
    owner.wait_text("is watching");
    owner.wait_text("evil\\e]2;pwned\\x07@x (watcher");
    let raw = String::from_utf8_lossy(&owner.raw()).into_owned();
    assert!(!raw.contains("\x1b]2;pwned"), "{raw:?}");
    let who = env.ok(&["who", "shown"]);
    assert!(inert(&who) && who.contains("evil\\e]2;pwned\\x07@x"), "{who:?}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["who", "shown", "--json"])).unwrap();
    assert!(json.as_array().unwrap().iter().any(|p| p["identity"] == "evil\x1b]2;pwned\x07@x"));
    drop(watcher);
    // The picker lists the job's command escaped.
    let argv = ssh.argv(&["-tt"], &[]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut picker = env.terminal_program(&argv, 120, 20);
    picker.wait_text("tether sessions");
    picker.wait_text("evil\\e]52;c;aGk=");
    let raw = String::from_utf8_lossy(&picker.raw()).into_owned();
    assert!(!raw.contains("\x1b]52") && !raw.contains('\u{9b}'), "{raw:?}");
    picker.send(b"q");
    picker.wait_exit();
}

#[test]
fn a_connection_flood_from_one_address_is_cut_before_the_handshake() {
    // The default limits: 10 at once, then 5 a second.
    let r = remote("");
    let addr = format!("127.0.0.1:{}", r.daemon.port);
    // ssh-audit's DHEat test: connections as fast as they come.
    let socks: Vec<TcpStream> = (0..50).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    let (mut banners, mut cut) = (0, 0);
    for mut s in socks {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut first = [0u8; 4];
        match s.read_exact(&mut first) {
            Ok(()) if &first == b"SSH-" => banners += 1,
            _ => cut += 1,
        }
    }
    assert!(banners <= 12, "{banners} of 50 connections got a handshake");
    assert!(cut >= 38, "{cut}");
    // The audit log has the first connection and a summary, not 50 lines.
    let audit = || std::fs::read_to_string(r.env.state_dir().join("audit.jsonl")).unwrap();
    wait_until("the summary line", || audit().contains("refused"));
    let lines = audit().matches("\"event\":\"connection\"").count();
    assert!(lines <= 4, "{lines} connection lines:\n{}", audit());
    // Logins are not limited, and each one is audited.
    wait_until("the address to be served again", || {
        let ssh = Ssh::new(&r.env, &r.daemon, &r.key);
        ssh.run(&r.env, &["ls"]).status.success()
    });
    let before = audit().matches("\"auth_success\"").count();
    let ssh = Ssh::new(&r.env, &r.daemon, &r.key);
    for i in 0..25 {
        let out = ssh.run(&r.env, &["ls"]);
        assert!(out.status.success(), "login {i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(audit().matches("\"auth_success\"").count(), before + 25);
}

#[test]
fn sha1_rsa_signatures_are_refused_sha2_ones_accepted() {
    let env = TestEnv::new();
    let key = Key::new_rsa(env.root(), "rsa", "rsa@test");
    authorize(&env, &[key.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let rt = rssh::runtime();
    rt.block_on(async {
        let (_h, accepted) = rssh::connect_signing(daemon.port, &key.path, None).await;
        assert!(!accepted, "an ssh-rsa (SHA-1) signature was accepted");
        let sha512 = Some(russh::keys::HashAlg::Sha512);
        let (_h, accepted) = rssh::connect_signing(daemon.port, &key.path, sha512).await;
        assert!(accepted, "rsa-sha2-512 was refused");
    });
    let audit = std::fs::read_to_string(env.state_dir().join("audit.jsonl")).unwrap();
    assert!(audit.contains("ssh-rsa signatures (SHA-1) are refused"), "{audit}");
}

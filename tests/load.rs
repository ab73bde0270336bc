//! Load: 500 sessions; 100 SSH connections attaching and detaching in a
//! loop; 50 watchers on one session at full output speed. Each test runs
//! alone (no other test at the same time), asserts what must hold (no
//! error, no job dead, memory bounded) and prints what it measured; it
//! never asserts a timing.

use crate::support::rssh::{self, connect};
use crate::support::ssh::{Daemon, Key, Ssh, authorize};
use crate::support::*;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tether_proto::{
    AttachMode, AttachRequest, FrameDecoder, HelloRequest, Identity, Message, Role, WindowSize,
    encode,
};

/// (RSS, PSS) in MB summed over `pids`.
fn memory_mb(pids: &[u32]) -> (f64, f64) {
    let (mut rss, mut pss) = (0u64, 0u64);
    for pid in pids {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        for line in text.lines() {
            let kb = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok());
            if line.starts_with("Rss:") {
                rss += kb(line).unwrap_or(0);
            } else if line.starts_with("Pss:") {
                pss += kb(line).unwrap_or(0);
            }
        }
    }
    (rss as f64 / 1024.0, pss as f64 / 1024.0)
}

fn keeper_pids(env: &TestEnv) -> Vec<u32> {
    env.sessions().iter().filter_map(|s| s["keeper_pid"].as_u64()).map(|p| p as u32).collect()
}

#[test]
fn five_hundred_sessions_start_list_attach_and_check() {
    const N: usize = 500;
    let env = TestEnv::alone();
    let started = Instant::now();
    // Two creators at once (the machine has two cores).
    std::thread::scope(|scope| {
        for half in 0..2 {
            let env = &env;
            scope.spawn(move || {
                for i in (half..N).step_by(2) {
                    let name = format!("s{i:03}");
                    let out = env.run(&[
                        "new",
                        "-d",
                        &name,
                        "--",
                        "sh",
                        "-c",
                        "echo up-$0; exec sleep 3600",
                        &name,
                    ]);
                    assert!(
                        out.status.success(),
                        "{name}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            });
        }
    });
    let create_s = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let sessions = env.sessions();
    let ls_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(sessions.len(), N);
    assert!(sessions.iter().all(|s| s["state"] == "running"));
    let (rss, pss) = memory_mb(&keeper_pids(&env));
    // Attach to the last one and see its screen.
    let mut term = env.terminal(&["attach", "s499"], 80, 24);
    term.wait_text("up-s499");
    term.detach();
    let t = Instant::now();
    let out = env.run(&["check"]);
    let check_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    eprintln!(
        "load: {N} sessions created in {create_s:.1}s; ls --json {ls_ms:.0} ms; keepers \
         {rss:.0} MB RSS / {pss:.0} MB PSS in all ({:.2} MB PSS a session); check {check_ms:.0} ms",
        pss / N as f64
    );
}

#[test]
fn a_hundred_ssh_connections_attach_and_detach_in_a_loop() {
    const CLIENTS: usize = 100;
    const ROUNDS: usize = 3;
    let env = TestEnv::alone();
    let key = Key::new(env.root(), "k", "tester@test");
    authorize(&env, &[key.public()]);
    // A hundred handshakes at once from one address is this test's point,
    // not an attack: no per-address limit.
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("config.toml"), "per_address_burst = 0\n").unwrap();
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    env.start("busy", &["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.01; done"]);
    env.wait_text("busy", "tick 5");
    let ticks = || {
        env.tail("busy").lines().filter_map(|l| l.strip_prefix("tick ")?.parse::<u64>().ok()).max()
    };
    let before = (ticks().unwrap(), Instant::now());
    let errors = Arc::new(AtomicUsize::new(0));
    let attaches = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    let daemon_pid = daemon.pid();
    let watch_peak = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            for _ in 0..600 {
                let (rss, _) = memory_mb(&[daemon_pid]);
                peak.fetch_max(rss as u64, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (errors, attaches, path, port) =
                (errors.clone(), attaches.clone(), key.path.clone(), daemon.port);
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let handle = connect(port, &path).await;
                    let ok = async {
                        let mut ch = handle.channel_open_session().await.ok()?;
                        ch.request_pty(false, "xterm", 80, 24, 0, 0, &[]).await.ok()?;
                        ch.exec(false, "attach busy").await.ok()?;
                        rssh::read_until(&mut ch, "tick").await;
                        ch.data(&b"\x1c"[..]).await.ok()?;
                        let out = rssh::finish(&mut ch, TIMEOUT).await;
                        (out.status == Some(0)).then_some(())
                    }
                    .await;
                    match ok {
                        Some(()) => attaches.fetch_add(1, Ordering::SeqCst),
                        None => errors.fetch_add(1, Ordering::SeqCst) as u64,
                    };
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let after = (ticks().unwrap(), Instant::now());
    drop(watch_peak);
    let rate_during = (after.0 - before.0) as f64 / (after.1 - before.1).as_secs_f64();
    let t0 = (ticks().unwrap(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let t1 = (ticks().unwrap(), Instant::now());
    let rate_quiet = (t1.0 - t0.0) as f64 / (t1.1 - t0.1).as_secs_f64();
    eprintln!(
        "load: {} attach/detach over SSH by {CLIENTS} connections x {ROUNDS} in {elapsed:.1}s, \
         {} errors; daemon peak RSS {} MB; the job ticked {rate_during:.0}/s during, {rate_quiet:.0}/s after",
        attaches.load(Ordering::SeqCst),
        errors.load(Ordering::SeqCst),
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    assert_eq!(attaches.load(Ordering::SeqCst), (CLIENTS * ROUNDS) as u64);
    let s = env.session("busy");
    assert_eq!(s["state"], "running");
    assert!(alive(s["pid"].as_u64().unwrap() as u32));
    assert_eq!(s["clients"], 0, "an attachment outlived its connection: {s}");
    // Nobody is left attached, and the daemon still serves.
    let ssh = Ssh::new(&env, &daemon, &key);
    assert!(ssh.ok(&env, &["ls"]).contains("busy"));
}

/// A watcher speaking the protocol on the keeper's socket; with `read`
/// false it never reads (a stalled client).
fn watcher(sock: &std::path::Path, read: bool) -> std::thread::JoinHandle<(u64, bool)> {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let identity =
        Identity { name: "watcher".into(), fingerprint: None, role: Role::Owner, address: None };
    let mut hello =
        encode(&Message::Hello(HelloRequest { protocol: 1, software: "load".into() })).unwrap();
    hello.extend(
        encode(&Message::Attach(AttachRequest {
            mode: AttachMode::ReadOnly,
            size: WindowSize { cols: 80, rows: 24 },
            identity,
            term: None,
        }))
        .unwrap(),
    );
    s.write_all(&hello).unwrap();
    std::thread::spawn(move || {
        if !read {
            std::thread::sleep(Duration::from_secs(600));
            return (0, false);
        }
        let (mut bytes, mut dec, mut buf) = (0u64, FrameDecoder::new(), vec![0u8; 1 << 16]);
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) | Err(_) => return (bytes, false),
                Ok(n) => n,
            };
            dec.extend(&buf[..n]);
            while let Ok(Some(m)) = dec.next_message() {
                match m {
                    Message::Output(b) | Message::Redraw(b) => bytes += b.len() as u64,
                    Message::Exit(_) => return (bytes, true),
                    _ => {}
                }
            }
        }
    })
}

#[test]
fn fifty_watchers_on_one_session_at_full_output_speed() {
    const WATCHERS: usize = 50;
    const STALLED: usize = 10;
    let env = TestEnv::alone();
    let job = |go: &std::path::Path, time: &std::path::Path| {
        format!(
            "while [ ! -e {go} ]; do sleep 0.02; done; s=$(date +%s%N); seq 1 2000000; \
             e=$(date +%s%N); echo $(( (e-s)/1000000 )) > {time}",
            go = go.display(),
            time = time.display()
        )
    };
    // Once alone, for the baseline; then with the watchers.
    let mut times = Vec::new();
    for (round, watchers) in [0, WATCHERS].into_iter().enumerate() {
        let (go, time) =
            (env.root().join(format!("go{round}")), env.root().join(format!("t{round}")));
        let name = format!("flood{round}");
        env.start(&name, &["sh", "-c", &job(&go, &time)]);
        let sock = std::fs::read_dir(env.runtime_dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "sock"))
            .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .unwrap();
        let handles: Vec<_> = (0..watchers).map(|i| watcher(&sock, i >= STALLED)).collect();
        if watchers > 0 {
            wait_until("the watchers to be counted", || env.session(&name)["watchers"] == watchers);
        }
        let keeper = env.session(&name)["keeper_pid"].as_u64().unwrap() as u32;
        std::fs::write(&go, "").unwrap();
        let mut peak = 0.0f64;
        wait_until_for(Duration::from_secs(180), "the flood to end", || {
            peak = peak.max(memory_mb(&[keeper]).0);
            time.exists() && std::fs::read_to_string(&time).is_ok_and(|t| !t.trim().is_empty())
        });
        let ms: u64 = std::fs::read_to_string(&time).unwrap().trim().parse().unwrap();
        wait_until_for(Duration::from_secs(120), "the job's end", || {
            env.session(&name)["state"] == "ended"
        });
        let results: Vec<(u64, bool)> =
            handles.into_iter().skip(STALLED.min(watchers)).map(|h| h.join().unwrap()).collect();
        let complete = results.iter().filter(|(_, exit)| *exit).count();
        eprintln!(
            "load: seq 1 2000000 with {watchers} watchers ({} stalled): job {ms} ms, keeper peak RSS \
             {peak:.0} MB, {complete} readers saw the end, {:.1} MB each on average",
            STALLED.min(watchers),
            results.iter().map(|(b, _)| *b as f64).sum::<f64>() / results.len().max(1) as f64 / 1e6
        );
        assert_eq!(complete, results.len(), "a reading watcher never saw the job end");
        assert!(peak < 400.0, "keeper RSS {peak} MB with {watchers} watchers");
        assert_eq!(env.session(&name)["exit_code"], 0);
        times.push(ms);
    }
    eprintln!(
        "load: job time with {WATCHERS} watchers / alone = {:.2}",
        times[1] as f64 / times[0].max(1) as f64
    );
}

//! `tether daemon`: the process that listens for SSH.
//!
//! Startup: one daemon per state (a `flock`ed pid file), the host key
//! (created on first start), the listener, then `listening on ADDR:PORT` on
//! stdout. Without `--foreground` the command starts itself again detached
//! (new session id, stdio on `/dev/null` and the daemon log) and returns
//! once the child listens.
//!
//! The daemon never ends a session: SIGTERM stops it gracefully, SIGKILL
//! just stops it, and in both cases every keeper keeps running; the next
//! daemon serves them, whatever its version. SIGHUP re-reads config.toml
//! (a broken file is refused and the old settings kept) and authorized_keys,
//! and closes every open connection whose key the file no longer grants, or
//! grants less (`Shared::enforce_keys`); authorized_keys is also read at
//! every authentication and every new channel.

use crate::Failure;
use crate::audit::{Entry, Event};
use crate::config::Config;
use crate::keeper::launch::DAEMONIZED_ENV;
use crate::keys::KeyKind;
use crate::paths::Paths;
use crate::sshd::Shared;
use crate::sshd::handler::Connection;
use crate::sshd::throttle::{AUDIT_INTERVAL, Limits, Summary, Verdict};
use anyhow::{Context, Result};
use russh::keys::{Algorithm, PrivateKey};
use russh::{MethodKind, MethodSet, Preferred, SshId};
use rustix::fs::FlockOperation;
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tether_proto::ErrorCode;

/// How long `tether daemon` waits for its detached child to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `tether daemon`.
///
/// # Errors
///
/// A bad address (exit 2), another daemon running (exit 4), or a failure
/// to start.
pub fn run(paths: Paths, config: Config, listen: Option<String>, foreground: bool) -> Result<i32> {
    let listen = listen.unwrap_or_else(|| config.listen.clone());
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| Failure::invalid(format!("--listen {listen:?} is not an ADDRESS:PORT")))?;
    if !foreground {
        return daemonize(&paths, addr);
    }
    let daemonized = std::env::var_os(DAEMONIZED_ENV).is_some();
    if daemonized {
        let _ = rustix::process::setsid();
    }
    init_log(&config.log_level);
    match serve(paths, config, addr, daemonized) {
        Ok(()) => Ok(0),
        Err(e) => {
            if daemonized {
                // The parent relays this line to the user.
                println!("error {}: {}", crate::error::exit_code(&e), crate::error::message(&e));
            }
            Err(e)
        }
    }
}

/// `RUST_LOG` (or `TETHER_LOG`) if set, else `log_level` from config.toml.
fn init_log(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// Starts `tether daemon --foreground` detached and relays its first line.
fn daemonize(paths: &Paths, addr: SocketAddr) -> Result<i32> {
    paths.prepare()?;
    let log_path = paths.state_dir.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the tether executable")?;
    let mut child = Command::new(exe)
        .args(["daemon", "--foreground", "--listen", &addr.to_string()])
        .env(DAEMONIZED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting the daemon")?;
    let stdout = child.stdout.take().context("daemon stdout")?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
    let line = line.trim_end();
    if line.starts_with("listening on ") {
        println!("{line}");
        return Ok(0);
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Some(rest) = line.strip_prefix("error ") {
        let (code, msg) = rest.split_once(": ").unwrap_or(("1", rest));
        eprintln!("tether: {msg}");
        return Ok(code.parse().unwrap_or(1));
    }
    Err(anyhow::anyhow!("the daemon did not start; see {}", log_path.display()))
}

/// The daemon's pid file, locked for its whole life.
struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    fn acquire(path: &Path) -> Result<PidFile> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if let Err(e) = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(Failure::conflict(format!(
                    "a tether daemon is already running (pid {}); stop it first",
                    pid.trim()
                ))
                .into());
            }
            return Err(e).context("locking the pid file");
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(PidFile { path: path.to_owned(), _file: file })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(paths: Paths, config: Config, addr: SocketAddr, daemonized: bool) -> Result<()> {
    paths.prepare()?;
    crate::fsutil::ensure_private_dir(&paths.data_dir)?;
    let pid_file = PidFile::acquire(&paths.daemon_pid_file())?;
    let mut host_keys = Vec::new();
    for kind in [KeyKind::Ed25519, KeyKind::Rsa] {
        let key_path = paths.data_dir.join(kind.file_name());
        let key = crate::keys::load_or_create(&key_path, kind)?;
        tracing::info!(
            "host key {} ({})",
            crate::keys::fingerprint(key.public_key()),
            key_path.display()
        );
        host_keys.push(key);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
    let shared = Arc::new(Shared::new(paths, config, home));
    // Reads authorized_keys once now, so that its problems are logged at start.
    let _ = shared.authorized_keys();
    spawn_reaper();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Blocking threads (commands run over ssh) are not kept idle for
        // long: a closed channel's thread should be gone, not parked.
        .thread_keep_alive(Duration::from_secs(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(accept_loop(shared, host_keys, addr, daemonized));
    drop(pid_file);
    // Connections still open are dropped with the runtime: their clients
    // see the connection close; their sessions are untouched.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Keepers started by the daemon are its children until they exit; reap
/// them so none lingers as a zombie.
fn spawn_reaper() {
    let _ = std::thread::Builder::new().name("reaper".into()).spawn(|| {
        loop {
            match rustix::process::wait(rustix::process::WaitOptions::empty()) {
                Ok(_) => {}
                // No children right now.
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    });
}

/// The algorithms offered, strongest first, each list cut to what leaves
/// `ssh-audit` nothing to warn about that tether can change:
///
/// * key exchange: the post-quantum hybrid `mlkem768x25519-sha256` first
///   (OpenSSH 9.9+), then the classical ones older clients need, without
///   `diffie-hellman-group14-sha256` (2048 bits);
/// * MACs: encrypt-then-MAC only (the ciphers that need a MAC are all
///   CTR; the AEAD ones need none);
/// * compression: none, or `zlib@openssh.com`, which starts only after
///   authentication (plain `zlib` would decompress a stranger's data);
/// * host keys and `server-sig-algs`: no `ssh-rsa`, which signs with SHA-1.
fn preferred() -> Preferred {
    use russh::{compression, kex, mac};
    let kex = Preferred::DEFAULT.kex.iter().copied().filter(|k| *k != kex::DH_G14_SHA256);
    Preferred {
        kex: Cow::Owned(kex.collect()),
        key: Cow::Owned(
            Preferred::DEFAULT
                .key
                .iter()
                .filter(|a| **a != Algorithm::Rsa { hash: None })
                .cloned()
                .collect(),
        ),
        mac: Cow::Borrowed(&[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM]),
        compression: Cow::Borrowed(&[compression::NONE, compression::ZLIB_LEGACY]),
        ..Preferred::DEFAULT
    }
}

fn ssh_config(host_keys: Vec<PrivateKey>, config: &Config) -> russh::server::Config {
    russh::server::Config {
        server_id: SshId::Standard(format!("SSH-2.0-tether_{}", env!("CARGO_PKG_VERSION")).into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // OpenSSH probes with "none" first; answering it at once saves a
        // second per connection. Real refusals still take constant time.
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        // The client's preference picks one; every current client puts
        // Ed25519 first.
        keys: host_keys,
        preferred: preferred(),
        max_auth_attempts: config.max_auth_attempts,
        // Attached clients may be idle for days; keepalives find dead peers.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    host_keys: Vec<PrivateKey>,
    addr: SocketAddr,
    daemonized: bool,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::new(ErrorCode::Conflict, format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let ssh = Arc::new(ssh_config(host_keys, &shared.config()));
    println!("listening on {local}");
    let _ = std::io::stdout().flush();
    if daemonized {
        detach_stdout();
    }
    tracing::info!("listening on {local}");
    notify(&format!("READY=1\nSTATUS=listening on {local}"));
    let mut watchdog = watchdog_interval();
    let active = Arc::new(AtomicUsize::new(0));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut summaries = tokio::time::interval(AUDIT_INTERVAL);
    summaries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => admit(&shared, &ssh, &active, socket, peer),
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // MONOTONIC_USEC lets systemd's Type=notify-reload match
                // this reload to the SIGHUP it sent.
                notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                reload(&shared);
                notify(&format!("READY=1\nSTATUS=listening on {local}"));
            }
            // Sent from the accept loop itself: it proves the loop turns.
            _ = tick(&mut watchdog) => notify("WATCHDOG=1"),
            _ = summaries.tick() => audit_summaries(&shared, false),
        }
    }
    audit_summaries(&shared, true);
    notify("STOPPING=1");
    tracing::info!("stopping; sessions keep running");
    Ok(())
}

/// Tells a service manager (systemd `Type=notify`) how we are, if it asked
/// (`NOTIFY_SOCKET`, a path or an abstract `@name`).
pub fn notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let target = target.to_string_lossy().into_owned();
    let sent = match target.strip_prefix('@') {
        Some(name) => {
            UnixAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
        }
        None => sock.send_to(state.as_bytes(), &target),
    };
    if let Err(e) = sent {
        tracing::warn!("notifying the service manager at {target}: {e}");
    }
}

/// CLOCK_MONOTONIC in microseconds, as sd_notify's MONOTONIC_USEC wants it.
fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// Half the watchdog period systemd asked for (`WATCHDOG_USEC`), if any.
fn watchdog_interval() -> Option<tokio::time::Interval> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(tokio::time::interval(Duration::from_micros(usec / 2).max(Duration::from_millis(100))))
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

fn reload(shared: &Arc<Shared>) {
    match Config::load(&shared.paths.config_file()) {
        Ok(config) => {
            if let Ok(mut c) = shared.config.write() {
                *c = config;
            }
            tracing::info!("configuration reloaded");
        }
        Err(e) => tracing::error!("keeping the old configuration: {}", crate::error::message(&e)),
    }
    let (path, keys) = shared.enforce_keys();
    tracing::info!("{}: {} keys in effect", path.display(), keys.keys.len());
}

/// The per-address limits in effect.
fn limits(config: &Config) -> Limits {
    Limits { burst: config.per_address_burst, rate: config.per_address_rate }
}

/// Writes the audit summaries of connections not audited one by one.
fn audit_summaries(shared: &Shared, all: bool) {
    let config = shared.config();
    for summary in shared.throttle.flush(Instant::now(), limits(&config), all) {
        audit_summary(shared, &summary);
    }
}

fn audit_summary(shared: &Shared, summary: &Summary) {
    shared.audit.record(&Entry {
        address: Some(summary.source.to_string()),
        detail: Some(summary.describe()),
        ..Entry::new(Event::Connection)
    });
}

/// What a refused client reads before the connection closes (`ssh -v`
/// shows it; RFC 4253 allows lines before the version).
const REFUSED_LINE: &[u8] = b"tether: too many connections from this address; try again later\r\n";

/// Serves one TCP connection, unless too many are open or its address
/// opens connections faster than its limit allows.
fn admit(
    shared: &Arc<Shared>,
    ssh: &Arc<russh::server::Config>,
    active: &Arc<AtomicUsize>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let config = shared.config();
    let max = config.max_connections;
    if active.load(Ordering::SeqCst) >= max {
        tracing::warn!(%peer, "refusing a connection: {max} already open");
        return;
    }
    let (verdict, earlier) = shared.throttle.admit(peer.ip(), Instant::now(), limits(&config));
    if let Some(summary) = earlier {
        audit_summary(shared, &summary);
    }
    match verdict {
        Verdict::Refuse { log } => {
            if let Some(refused) = log {
                tracing::warn!(
                    address = %peer.ip(),
                    "refusing connections: more than {} at once or {} a second from this address ({refused} refused since the last message)",
                    config.per_address_burst,
                    config.per_address_rate
                );
            }
            // Never waits: whatever the socket does not take is dropped.
            let _ = socket.try_write(REFUSED_LINE);
            return;
        }
        Verdict::Admit { audit: true } => shared
            .audit
            .record(&Entry { address: Some(peer.to_string()), ..Entry::new(Event::Connection) }),
        Verdict::Admit { audit: false } => {}
    }
    active.fetch_add(1, Ordering::SeqCst);
    let (shared, ssh, active) = (shared.clone(), ssh.clone(), active.clone());
    tokio::spawn(async move {
        let _ = socket.set_nodelay(true);
        // A second handle on the socket, to shut it down from here: the
        // SSH session runs in a task of its own that we cannot cancel.
        let (socket, killer) = match socket.into_std().and_then(|s| {
            let killer = s.try_clone()?;
            Ok((tokio::net::TcpStream::from_std(s)?, killer))
        }) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(%peer, "cannot set up the connection: {e}");
                active.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        };
        let authenticated = Arc::new(AtomicBool::new(false));
        let timeout = Duration::from_secs(shared.config().auth_timeout_secs);
        let live = shared.register(Some(peer));
        let handler = Connection::new(shared.clone(), live.clone(), authenticated.clone());
        // A peer that connects and says nothing must not hold a slot.
        let started =
            tokio::time::timeout(timeout, russh::server::run_stream(ssh, socket, handler));
        match started.await.unwrap_or_else(|_| Err(anyhow::anyhow!("no SSH handshake in time"))) {
            Ok(session) => {
                if let Ok(socket) = killer.try_clone() {
                    live.set_closers(session.handle(), socket);
                }
                // Until it logs in, a connection lives at most `timeout`:
                // the socket is shut down, whatever stage the handshake is
                // stuck at (a disconnect message would wait for a peer
                // that may never read).
                tokio::pin!(session);
                let ended = tokio::select! {
                    ended = &mut session => Some(ended),
                    () = tokio::time::sleep(timeout) => None,
                };
                let ended = match ended {
                    Some(ended) => ended,
                    None if authenticated.load(Ordering::SeqCst) => session.await,
                    None => {
                        tracing::warn!(%peer, "authentication timed out");
                        let _ = killer.shutdown(std::net::Shutdown::Both);
                        tokio::time::timeout(Duration::from_secs(5), session)
                            .await
                            .unwrap_or(Ok(()))
                    }
                };
                if let Err(e) = ended {
                    tracing::debug!(%peer, "connection ended: {e:#}");
                }
            }
            Err(e) => tracing::debug!(%peer, "handshake failed: {e:#}"),
        }
        shared.unregister(&live);
        active.fetch_sub(1, Ordering::SeqCst);
    });
}

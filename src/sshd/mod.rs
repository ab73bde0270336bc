//! The SSH front end: a russh server mapping SSH requests onto session
//! operations. It holds no session state: every session lives in its
//! keeper, so this process can die, restart or be upgraded freely.
//!
//! A connection ([`handler::Connection`]) authenticates a key against
//! `authorized_keys` ([`auth`]), then serves session channels:
//!
//! * `exec` ([`exec`]): `ssh host ls`, `ssh -t host attach NAME`, …; the
//!   command line is parsed like a shell would and run with the same code
//!   as the local CLI;
//! * `shell` ([`picker`]): `ssh -t host` opens a session picker;
//! * the `tether` subsystem ([`subsystem`]): the framed protocol for
//!   `tether --host`.
//!
//! Every path reaches sessions through one [`Local`] backend made for the
//! caller ([`Shared::backend_for`]): the keeper client, where the key's role
//! and `tether-sessions` are checked ([`crate::client::access`]) and
//! refusals audited. Every attach goes through [`bridge`], which drives the
//! same attachment state machine as the local client and carries output
//! with SSH flow control, so a client that stops reading costs the daemon a
//! bounded amount of memory. [`channel`] keeps channels apart: one whose
//! program does not keep up never stalls the others, and one that closes
//! releases what it held at once. [`throttle`] limits connections per
//! source address before they cost a handshake.

pub mod auth;
pub mod bridge;
pub mod channel;
pub mod exec;
pub mod handler;
pub mod picker;
pub mod subsystem;
pub mod throttle;

use crate::audit::{AuditLog, Entry, Event};
use crate::backend::Local;
use crate::client::access::{Access, Visibility};
use crate::config::Config;
use crate::paths::Paths;
use bytes::Bytes;
pub use channel::Output;
use russh::keys::PublicKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tether_proto::{Identity, Role, WindowSize};

/// What every connection shares.
pub struct Shared {
    /// Where sessions live.
    pub paths: Paths,
    /// Settings; replaced on SIGHUP.
    pub config: RwLock<Config>,
    /// The audit log.
    pub audit: AuditLog,
    /// The daemon user's home: `~/.ssh/authorized_keys` and the default
    /// working directory of sessions created over SSH.
    pub home: PathBuf,
    /// The problems of authorized_keys last written to the log, so that a
    /// flood of logins does not repeat them.
    logged: Mutex<Option<(PathBuf, Vec<String>)>>,
    /// The open connections, to check again at SIGHUP.
    connections: Mutex<HashMap<u64, Arc<Live>>>,
    next_connection: AtomicU64,
    /// Connections per source address, and their audit lines.
    pub throttle: throttle::Throttle,
}

impl Shared {
    /// The state shared by the connections of one daemon.
    pub fn new(paths: Paths, config: Config, home: PathBuf) -> Self {
        Shared {
            audit: AuditLog::new(paths.state_dir.join("audit.jsonl")),
            paths,
            config: RwLock::new(config),
            home,
            logged: Mutex::new(None),
            connections: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            throttle: throttle::Throttle::new(),
        }
    }

    /// The authorized keys as the file is now: what grants, with no
    /// fallback to an earlier version (a line that does not parse grants
    /// nothing, a file with no usable line refuses every key). Each
    /// problem is logged with its line number once per change of the
    /// file's problems, not at every login.
    pub fn authorized_keys(&self) -> (PathBuf, auth::KeyFile) {
        self.load_keys(false)
    }

    /// Like [`Shared::authorized_keys`]; `always_log` logs the problems
    /// even when they were logged before (a reload).
    fn load_keys(&self, always_log: bool) -> (PathBuf, auth::KeyFile) {
        let (path, source) = auth::key_file_path(&self.paths.config_dir, Some(&self.home));
        let file = auth::load(&path, source);
        let seen = (path.clone(), file.problems.clone());
        let fresh = match self.logged.lock() {
            Ok(mut logged) => {
                let fresh = logged.as_ref() != Some(&seen);
                *logged = Some(seen);
                fresh
            }
            Err(_) => true,
        };
        if fresh || always_log {
            for problem in &file.problems {
                if problem.starts_with("line ") {
                    tracing::error!("{}: {problem}: this line grants nothing", path.display());
                } else {
                    tracing::error!("{}: {problem}", path.display());
                }
            }
            if file.grants_nothing() {
                tracing::error!("{}: no line grants access; every key is refused", path.display());
            }
        }
        (path, file)
    }

    /// A new connection from `peer`, registered until it is dropped.
    pub fn register(self: &Arc<Self>, peer: Option<SocketAddr>) -> Arc<Live> {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let live = Arc::new(Live {
            id,
            peer,
            login: Mutex::new(None),
            handle: Mutex::new(None),
            socket: Mutex::new(None),
        });
        if let Ok(mut all) = self.connections.lock() {
            all.insert(id, live.clone());
        }
        live
    }

    /// Forgets a connection that ended.
    pub fn unregister(&self, live: &Live) {
        if let Ok(mut all) = self.connections.lock() {
            all.remove(&live.id);
        }
    }

    /// SIGHUP: reads authorized_keys again (logging its problems) and
    /// checks every open connection against it. A connection whose key is
    /// no longer granted, or whose rights shrank (a lower role, other
    /// `tether-sessions`), is closed, and with it every attachment it
    /// carries; the others take their new rights at their next channel.
    pub fn enforce_keys(self: &Arc<Self>) -> (PathBuf, auth::KeyFile) {
        let (path, file) = self.load_keys(true);
        let open: Vec<Arc<Live>> =
            self.connections.lock().map(|all| all.values().cloned().collect()).unwrap_or_default();
        for live in open {
            let Some((key, caller)) = live.login() else { continue };
            let why = match auth::grant(&file, &key, live.peer.map(|p| p.ip()), &path) {
                Err(why) => Some(why),
                // Channels opened under any earlier grant may still run.
                Ok(entry) if live.used().iter().any(|used| shrinks(used, entry)) => Some(format!(
                    "its rights were reduced (line {}: role {}{})",
                    entry.line,
                    entry.role.name(),
                    entry
                        .visibility
                        .describe()
                        .map(|g| format!(", tether-sessions {g}"))
                        .unwrap_or_default()
                )),
                Ok(entry) => {
                    live.reset_used(Caller::new(&key, entry, live.peer));
                    None
                }
            };
            if let Some(why) = why {
                self.close(&live, &caller, &why);
            }
        }
        (path, file)
    }

    /// Closes `live` because its key lost access: logged, audited, an SSH
    /// disconnect with the reason, and the socket shut down soon after in
    /// case the peer does not read.
    pub fn close(self: &Arc<Self>, live: &Arc<Live>, caller: &Caller, why: &str) {
        tracing::warn!(
            fingerprint = %caller.fingerprint,
            address = ?caller.address,
            "closing the connection: {why}"
        );
        audit(self, &Entry { detail: Some(why.to_owned()), ..caller.audit(Event::Revoked, None) });
        let handle = live.handle.lock().ok().and_then(|h| h.clone());
        let socket =
            live.socket.lock().ok().and_then(|s| s.as_ref().and_then(|s| s.try_clone().ok()));
        let (shared, live, text) = (self.clone(), live.clone(), format!("tether: {why}"));
        tokio::spawn(async move {
            if let Some(handle) = handle {
                let _ =
                    handle.disconnect(russh::Disconnect::ByApplication, text, String::new()).await;
            }
            tokio::time::sleep(CLOSE_GRACE).await;
            let still_open =
                shared.connections.lock().map(|all| all.contains_key(&live.id)).unwrap_or(true);
            if still_open && let Some(socket) = socket {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        });
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// This host's sessions as `caller` may see them.
    pub fn backend_for(&self, caller: &Caller) -> Local {
        Local::new(self.paths.clone(), self.config(), self.home.clone())
            .with_access(Access::remote(
                caller.role,
                caller.visibility.clone(),
                self.audit.clone(),
                caller.audit(Event::Refused, None),
            ))
            .with_creator(&caller.identity.name)
            .with_requester(format!(
                "{} ({}, role {}, from {})",
                caller.comment,
                caller.fingerprint,
                caller.role.name(),
                caller.address.as_deref().unwrap_or("?")
            ))
    }

    /// [`Shared::backend_for`], for a program on the channel `out`: the
    /// keeper connections it makes are cut when the channel goes away.
    pub fn channel_backend(&self, caller: &Caller, out: &Output) -> Local {
        self.backend_for(caller).with_cancel(out.cancel().clone())
    }
}

/// An authenticated key and what it may do.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who, as carried to keepers.
    pub identity: Identity,
    /// The key's `SHA256:…` fingerprint.
    pub fingerprint: String,
    /// The key's comment.
    pub comment: String,
    /// What the key may do.
    pub role: Role,
    /// Which sessions the key sees.
    pub visibility: Visibility,
    /// `IP:port` of the peer.
    pub address: Option<String>,
}

impl Caller {
    /// The caller `key` is, per its line `entry`, from `peer`.
    pub fn new(key: &PublicKey, entry: &auth::AuthorizedKey, peer: Option<SocketAddr>) -> Self {
        let fp = crate::keys::fingerprint(key);
        let name = if entry.comment.is_empty() { fp.clone() } else { entry.comment.clone() };
        let address = peer.map(|p| p.to_string());
        Caller {
            identity: Identity {
                name,
                fingerprint: Some(fp.clone()),
                role: entry.role,
                address: address.clone(),
            },
            fingerprint: fp,
            comment: entry.comment.clone(),
            role: entry.role,
            visibility: entry.visibility.clone(),
            address,
        }
    }

    /// An audit entry about this caller.
    pub fn audit(&self, event: Event, session: Option<&str>) -> Entry {
        Entry {
            session: session.map(str::to_owned),
            fingerprint: Some(self.fingerprint.clone()),
            comment: Some(self.comment.clone()),
            role: Some(self.role),
            address: self.address.clone(),
            ..Entry::new(event)
        }
    }
}

/// Whether `entry` grants less than `caller` had: a lower role, or other
/// `tether-sessions` (unless now every session).
fn shrinks(caller: &Caller, entry: &auth::AuthorizedKey) -> bool {
    let rank = |r: Role| match r {
        Role::Owner => 2,
        Role::Operator => 1,
        Role::Watcher => 0,
    };
    rank(entry.role) < rank(caller.role)
        || (entry.visibility != caller.visibility && entry.visibility != Visibility::all())
}

/// How long a closed connection's peer has to read the disconnect before
/// its socket is shut down.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// One open connection, as the daemon keeps track of it.
pub struct Live {
    id: u64,
    /// The peer.
    pub peer: Option<SocketAddr>,
    /// The key it logged in with, and every grant its channels were
    /// started with (the latest last): what may still be running on it.
    login: Mutex<Option<(PublicKey, Vec<Caller>)>>,
    /// russh's handle, to send a disconnect.
    handle: Mutex<Option<russh::server::Handle>>,
    /// The TCP socket, to shut it down whatever state the peer is in.
    socket: Mutex<Option<std::net::TcpStream>>,
}

impl Live {
    /// The key and its rights as last checked, once logged in.
    pub fn login(&self) -> Option<(PublicKey, Caller)> {
        let login = self.login.lock().ok()?;
        let (key, used) = login.as_ref()?;
        Some((key.clone(), used.last()?.clone()))
    }

    /// Every grant channels of this connection were started with.
    fn used(&self) -> Vec<Caller> {
        self.login
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(|(_, used)| used.clone()))
            .unwrap_or_default()
    }

    /// Records the login of `key` as `caller`.
    pub fn set_login(&self, key: PublicKey, caller: Caller) {
        if let Ok(mut l) = self.login.lock() {
            *l = Some((key, vec![caller]));
        }
    }

    /// Records the rights the key has now (checked for a new channel).
    pub fn note_caller(&self, caller: Caller) {
        if let Ok(mut l) = self.login.lock()
            && let Some((_, used)) = l.as_mut()
        {
            used.retain(|c| c.role != caller.role || c.visibility != caller.visibility);
            used.push(caller);
        }
    }

    /// After a reload that grants at least every earlier grant: only the
    /// new one matters.
    fn reset_used(&self, caller: Caller) {
        if let Ok(mut l) = self.login.lock()
            && let Some((_, used)) = l.as_mut()
        {
            *used = vec![caller];
        }
    }

    /// How to end the connection: russh's handle and the TCP socket.
    pub fn set_closers(&self, handle: russh::server::Handle, socket: std::net::TcpStream) {
        if let Ok(mut h) = self.handle.lock() {
            *h = Some(handle);
        }
        if let Ok(mut s) = self.socket.lock() {
            *s = Some(socket);
        }
    }
}

/// The terminal a client asked for with `pty-req`.
#[derive(Debug, Clone)]
pub struct Pty {
    /// `TERM`.
    pub term: String,
    /// Its size (0x0 already turned into 80x24, clamped to 1000).
    pub size: WindowSize,
}

/// What a client sends on a channel once a program runs on it.
#[derive(Debug)]
pub enum Input {
    /// Bytes typed (or sent) by the client.
    Data(Bytes),
    /// `window-change`.
    Resize(WindowSize),
    /// The client will send nothing more.
    Eof,
}

/// Ends a channel the way OpenSSH expects: exit status (always; OpenSSH
/// ignores exit-signal), EOF, close.
pub async fn finish(out: &Output, code: i32) {
    let _ = out.exit_status(u32::try_from(code).unwrap_or(1)).await;
    let _ = out.eof().await;
    let _ = out.close().await;
}

/// Writes text to the channel's stdout, or its stderr with `stderr`.
pub async fn say(out: &Output, text: &str, stderr: bool) {
    let bytes = Bytes::copy_from_slice(text.as_bytes());
    let _ =
        if stderr { out.extended_data_bytes(1, bytes).await } else { out.data_bytes(bytes).await };
}

/// The hello string of this daemon.
pub fn software() -> String {
    crate::SOFTWARE.to_owned()
}

/// Clamps a client-supplied size; 0 means "unknown" (80x24).
pub fn window_size(cols: u32, rows: u32) -> WindowSize {
    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    WindowSize { cols: clamp(cols), rows: clamp(rows) }.sanitized()
}

/// Records `entry` in the audit log.
pub fn audit(shared: &Arc<Shared>, entry: &Entry) {
    shared.audit.record(entry);
}

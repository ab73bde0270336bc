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
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
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
    /// The last authorized_keys that was not broken, kept in effect while
    /// the file on disk is.
    pub last_keys: std::sync::Mutex<Option<auth::KeyFile>>,
    /// Connections per source address, and their audit lines.
    pub throttle: throttle::Throttle,
}

impl Shared {
    /// The authorized keys in effect: the file as it is now (read at every
    /// login, so edits apply to the next connection), or, when the file is
    /// broken as a whole, the last good one, with an error in the log.
    pub fn authorized_keys(&self) -> (PathBuf, auth::KeyFile) {
        let (path, source) = auth::key_file_path(&self.paths.config_dir, Some(&self.home));
        let file = auth::load(&path, source);
        for problem in &file.problems {
            tracing::warn!("{}: {problem}", path.display());
        }
        let Ok(mut last) = self.last_keys.lock() else { return (path, file) };
        if file.is_broken()
            && let Some(good) = last.as_ref()
        {
            tracing::error!("{} is broken; keeping the last good keys", path.display());
            return (path, good.clone());
        }
        *last = Some(file.clone());
        (path, file)
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

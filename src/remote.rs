//! `tether --host [USER@]HOST[:PORT]`: the same commands, against a remote
//! daemon, over SSH (russh client) and the `tether` subsystem.
//!
//! Each operation opens a channel on one SSH connection. A channel is
//! bridged to one end of a local socket pair, so the rest of the CLI speaks
//! the framed protocol over a plain `UnixStream`, exactly as it does with a
//! local keeper; the attached-terminal code does not know the difference.
//!
//! Host keys are checked against `~/.ssh/known_hosts`: an unknown host is
//! refused with its fingerprint and how to trust it (or trusted and
//! remembered with `--trust-new-host`); a changed key is always refused,
//! showing both fingerprints.

use crate::Failure;
use crate::backend::Backend;
use crate::client::KeeperClient;
use crate::client::access::Op;
use crate::keys::fingerprint;
use anyhow::{Context, Result};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate, load_secret_key};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tether_proto::store::FinalScreen;
use tether_proto::{CreateRequest, ErrorCode, Reply, Request, SessionInfo, SessionName};

/// The daemon's default port.
pub const DEFAULT_PORT: u16 = tether_proto::DEFAULT_SSH_PORT;

/// Options of `--host`.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// `--identity FILE`: only this key.
    pub identity: Option<PathBuf>,
    /// `--trust-new-host`.
    pub trust_new_host: bool,
}

/// `[USER@]HOST[:PORT]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Login name.
    pub user: String,
    /// Host name or address (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Target {
    /// Parses `[USER@]HOST[:PORT]`; IPv6 addresses go in brackets.
    ///
    /// # Errors
    ///
    /// An empty host or a bad port (exit 2).
    pub fn parse(spec: &str) -> Result<Target, Failure> {
        let (user, rest) = match spec.rsplit_once('@') {
            Some((u, r)) => (u.to_owned(), r),
            None => (std::env::var("USER").unwrap_or_else(|_| "tether".into()), spec),
        };
        let bad = || Failure::invalid(format!("--host {spec:?}: expected [USER@]HOST[:PORT]"));
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => DEFAULT_PORT,
                None => return Err(bad()),
            };
            (h.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
                None => (rest.to_owned(), DEFAULT_PORT),
            }
        };
        if host.is_empty() || user.is_empty() {
            return Err(bad());
        }
        Ok(Target { user, host, port })
    }
}

/// Why the host key was not accepted.
#[derive(Debug, Clone)]
enum HostKeyProblem {
    Unknown { offered: String },
    Changed { offered: String, recorded: String, line: usize },
    Unreadable(String),
}

struct ClientHandler {
    target: Target,
    known_hosts: PathBuf,
    trust_new: bool,
    problem: Arc<Mutex<Option<HostKeyProblem>>>,
}

impl ClientHandler {
    fn verdict(&self, key: &PublicKey) -> Result<bool, HostKeyProblem> {
        let (host, port, path) = (&self.target.host, self.target.port, &self.known_hosts);
        let offered = fingerprint(key);
        let known = if path.exists() {
            russh::keys::check_known_hosts_path(host, port, key, path)
        } else {
            Ok(false)
        };
        match known {
            Ok(true) => Ok(true),
            Ok(false) if self.trust_new => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                russh::keys::known_hosts::learn_known_hosts_path(host, port, key, path)
                    .map_err(|e| HostKeyProblem::Unreadable(e.to_string()))?;
                Ok(true)
            }
            Ok(false) => Err(HostKeyProblem::Unknown { offered }),
            Err(russh::keys::Error::KeyChanged { line }) => {
                let recorded = russh::keys::known_hosts::known_host_keys_path(host, port, path)
                    .ok()
                    .and_then(|keys| keys.into_iter().find(|(l, _)| *l == line))
                    .map_or_else(|| "?".into(), |(_, k)| fingerprint(&k));
                Err(HostKeyProblem::Changed { offered, recorded, line })
            }
            Err(e) => Err(HostKeyProblem::Unreadable(e.to_string())),
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = anyhow::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *self.problem.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(HostKeyProblem::Unreadable("host certificates are not supported".into()));
            return Ok(false);
        };
        match self.verdict(key) {
            Ok(ok) => Ok(ok),
            Err(problem) => {
                *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem);
                Ok(false)
            }
        }
    }
}

/// A connection to a remote daemon.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    handle: Handle<ClientHandler>,
}

impl Remote {
    /// Connects, checks the host key, authenticates.
    ///
    /// # Errors
    ///
    /// The host cannot be reached or its key is unknown or changed (exit
    /// 6), or no key is accepted (exit 5).
    pub fn connect(spec: &str, opts: &RemoteOptions) -> Result<Remote> {
        let target = Target::parse(spec)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let handle = runtime.block_on(open_connection(&target, opts))?;
        Ok(Remote { runtime, handle })
    }

    /// A new channel to the daemon's `tether` subsystem, after the hello.
    fn open(&self) -> Result<KeeperClient> {
        let (ours, theirs) = UnixStream::pair().context("creating a socket pair")?;
        theirs.set_nonblocking(true)?;
        let channel = self.runtime.block_on(async {
            let channel = self.handle.channel_open_session().await?;
            channel.request_subsystem(true, tether_proto::SSH_SUBSYSTEM).await?;
            anyhow::Ok(channel)
        });
        let channel =
            channel.map_err(|e| Failure::unavailable(format!("opening a channel: {e:#}")))?;
        self.runtime.spawn(async move {
            let Ok(mut local) = tokio::net::UnixStream::from_std(theirs) else { return };
            let mut remote = channel.into_stream();
            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
        });
        KeeperClient::hello(ours, "the daemon")
    }

    fn request(&self, req: Request) -> Result<Reply> {
        self.open()?.request(req)
    }

    /// Runs `command` on the daemon as `ssh host COMMAND` would: its exit
    /// status, stdout and stderr.
    fn exec(&self, command: &str) -> Result<(u32, Vec<u8>, Vec<u8>)> {
        self.runtime.block_on(async {
            let mut channel = self.handle.channel_open_session().await?;
            channel.exec(true, command).await?;
            let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            let status = status.context("the daemon sent no exit status")?;
            anyhow::Ok((status, out, err))
        })
    }
}

/// `check --json`'s report.
#[derive(serde::Deserialize)]
struct CheckReport {
    checks: Vec<crate::check::Outcome>,
}

async fn open_connection(target: &Target, opts: &RemoteOptions) -> Result<Handle<ClientHandler>> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let problem = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        target: target.clone(),
        known_hosts: home.join(".ssh/known_hosts"),
        trust_new: opts.trust_new_host,
        problem: problem.clone(),
    };
    let config = Arc::new(client::Config {
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    });
    let addr = (target.host.as_str(), target.port);
    let connected = client::connect(config, addr, handler).await;
    let mut handle = match connected {
        Ok(h) => h,
        Err(e) => {
            let problem = problem.lock().unwrap_or_else(PoisonError::into_inner).take();
            return Err(host_error(target, problem, &e).into());
        }
    };
    if authenticate(&mut handle, target, opts, &home).await? {
        Ok(handle)
    } else {
        Err(Failure::new(
            ErrorCode::Refused,
            format!("{}@{}:{} refused every key offered", target.user, target.host, target.port),
        )
        .into())
    }
}

fn host_error(target: &Target, problem: Option<HostKeyProblem>, err: &anyhow::Error) -> Failure {
    let hostport = format!("[{}]:{}", target.host, target.port);
    let message = match problem {
        Some(HostKeyProblem::Unknown { offered }) => format!(
            "the host key of {hostport} is not known (fingerprint {offered}); if that is right, \
             add it with `ssh-keyscan -p {} {} >> ~/.ssh/known_hosts` or rerun with --trust-new-host",
            target.port, target.host
        ),
        Some(HostKeyProblem::Changed { offered, recorded, line }) => format!(
            "THE HOST KEY OF {hostport} HAS CHANGED: ~/.ssh/known_hosts line {line} has {recorded}, \
             the host offered {offered}; refusing to connect (someone may be intercepting)"
        ),
        Some(HostKeyProblem::Unreadable(why)) => {
            format!("cannot check the host key of {hostport}: {why}")
        }
        None => format!("cannot reach {hostport}: {err:#}"),
    };
    Failure::unavailable(message)
}

/// Tries `--identity`, else the agent and the default key files.
async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Target,
    opts: &RemoteOptions,
    home: &Path,
) -> Result<bool> {
    let user = target.user.as_str();
    if let Some(path) = &opts.identity {
        let key = load_secret_key(path, None)
            .map_err(|e| Failure::invalid(format!("cannot load {}: {e}", path.display())))?;
        return try_key(handle, user, key).await;
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some()
        && let Ok(mut agent) = AgentClient::connect_env().await
    {
        let identities = agent.request_identities().await.unwrap_or_default();
        for id in identities {
            let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
            let key = id.public_key().into_owned();
            let result = handle.authenticate_publickey_with(user, key, hash, &mut agent).await;
            if result.is_ok_and(|r| r.success()) {
                return Ok(true);
            }
        }
    }
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let path = home.join(".ssh").join(name);
        if !path.exists() {
            continue;
        }
        match load_secret_key(&path, None) {
            Ok(key) => {
                if try_key(handle, user, key).await? {
                    return Ok(true);
                }
            }
            Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
        }
    }
    Ok(false)
}

async fn try_key(
    handle: &mut Handle<ClientHandler>,
    user: &str,
    key: russh::keys::PrivateKey,
) -> Result<bool> {
    let hash = handle.best_supported_rsa_hash().await.ok().flatten().flatten();
    let result = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await?;
    Ok(result.success())
}

fn unexpected(reply: &Reply) -> anyhow::Error {
    Failure::unavailable(format!("unexpected reply from the daemon: {reply:?}")).into()
}

impl Backend for Remote {
    fn list(&self) -> Result<Vec<SessionInfo>> {
        match self.request(Request::List)? {
            Reply::List { sessions } => Ok(sessions),
            other => Err(unexpected(&other)),
        }
    }

    fn lookup(&self, name: &SessionName) -> Result<Option<SessionInfo>> {
        match self.request(Request::Lookup { name: name.clone() }) {
            Ok(Reply::Info { session }) => Ok(Some(session)),
            Ok(other) => Err(unexpected(&other)),
            Err(e) if crate::error::exit_code(&e) == ErrorCode::NoSuchSession.exit_code() => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        match self.request(Request::Create(req.clone()))? {
            Reply::Info { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn remove(&self, name: &SessionName) -> Result<()> {
        match self.request(Request::Remove { name: name.clone() })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn final_screen(&self, name: &SessionName) -> Result<Option<FinalScreen>> {
        match self.request(Request::FinalScreen { name: name.clone() })? {
            Reply::FinalScreen { screen } => Ok(screen),
            other => Err(unexpected(&other)),
        }
    }

    fn health(&self, probe: Option<&SessionName>) -> Result<tether_proto::Health> {
        match self.request(Request::Health { probe: probe.cloned() })? {
            Reply::Health { health } => Ok(health),
            other => Err(unexpected(&other)),
        }
    }

    fn require(&self, op: Op, session: Option<&SessionName>) -> Result<()> {
        let req = Request::Authorize { right: op.key().to_owned(), session: session.cloned() };
        match self.request(req) {
            Ok(Reply::Done) => Ok(()),
            Ok(other) => Err(unexpected(&other)),
            // A daemon older than this question cannot read it; it still
            // checks every operation itself, so go on and let it.
            Err(e)
                if [ErrorCode::Invalid, ErrorCode::Internal]
                    .iter()
                    .any(|c| c.exit_code() == crate::error::exit_code(&e))
                    && !crate::error::message(&e).contains("no such right") =>
            {
                tracing::debug!("the daemon does not answer authorize: {e:#}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The daemon runs the check itself (`ssh host check --json`): its
    /// probe is made there, by the local user, so that no SSH caller ever
    /// creates a probe session (docs/SSH.md).
    fn check(&self) -> Result<Vec<crate::check::Outcome>> {
        let (status, out, err) = self
            .exec("check --json")
            .map_err(|e| Failure::unavailable(format!("running check on the daemon: {e:#}")))?;
        if status > 1 {
            let text = String::from_utf8_lossy(&err);
            let message = text.trim().trim_start_matches("tether: ").to_owned();
            let code = [
                ErrorCode::Invalid,
                ErrorCode::NoSuchSession,
                ErrorCode::Conflict,
                ErrorCode::Refused,
                ErrorCode::Unavailable,
            ]
            .into_iter()
            .find(|c| u32::try_from(c.exit_code()).ok() == Some(status))
            .unwrap_or(ErrorCode::Internal);
            return Err(Failure::new(code, message).into());
        }
        let report: CheckReport = serde_json::from_slice(&out).map_err(|e| {
            Failure::unavailable(format!("the daemon's check report is not readable: {e}"))
        })?;
        Ok(report.checks)
    }

    fn connect(&self, name: &SessionName, _op: Op) -> Result<KeeperClient> {
        let mut client = self.open()?;
        client.route(name)?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("alice@example.org:2022").unwrap();
        assert_eq!((t.user.as_str(), t.host.as_str(), t.port), ("alice", "example.org", 2022));
        let t = Target::parse("bob@127.0.0.1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", DEFAULT_PORT));
        let t = Target::parse("c@[::1]:99").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 99));
        assert!(Target::parse("x@host:port").is_err());
        assert!(Target::parse("@host").is_err());
        assert!(Target::parse("").is_err());
    }
}

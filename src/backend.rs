//! Where sessions are: on this host ([`Local`]: records, keeper sockets,
//! launching keepers) or behind a daemon (the `--host` client, see
//! `remote`). Commands are written once against [`Backend`].

use crate::Failure;
use crate::client::KeeperClient;
use crate::client::access::{Access, Op, permits};
use crate::client::cancel::Cancel;
use crate::config::{Config, RecordingPolicy};
use crate::keeper::launch::{KeeperSpec, launch};
use crate::paths::Paths;
use crate::session::Registry;
use anyhow::Result;
use std::path::PathBuf;
use tether_proto::store::FinalScreen;
use tether_proto::{CreateRequest, SessionInfo, SessionName, WindowSize};

/// The operations commands need from wherever sessions live.
pub trait Backend: Send {
    /// Every visible session.
    ///
    /// # Errors
    ///
    /// The sessions cannot be read or reached.
    fn list(&self) -> Result<Vec<SessionInfo>>;
    /// One session, if it exists and is visible.
    ///
    /// # Errors
    ///
    /// As [`Backend::list`].
    fn lookup(&self, name: &SessionName) -> Result<Option<SessionInfo>>;
    /// Starts a session; returns once its job runs.
    ///
    /// # Errors
    ///
    /// Name in use (exit 4), command cannot start (exit 2), and so on.
    fn create(&self, req: &CreateRequest) -> Result<()>;
    /// Forgets an ended or lost session.
    ///
    /// # Errors
    ///
    /// No such session (3), still running (4).
    fn remove(&self, name: &SessionName) -> Result<()>;
    /// An ended session's final screen.
    ///
    /// # Errors
    ///
    /// As [`Backend::list`].
    fn final_screen(&self, name: &SessionName) -> Result<Option<FinalScreen>>;
    /// A connection to a running session's keeper, after the hello, for
    /// `op` (the right it needs is checked first).
    ///
    /// # Errors
    ///
    /// The caller may not (5), or the keeper cannot be reached (6).
    fn connect(&self, name: &SessionName, op: Op) -> Result<KeeperClient>;
    /// `Ok` if the caller may do `op` (on `session`). Where sessions are
    /// remote, their daemon decides, so this passes.
    ///
    /// # Errors
    ///
    /// The refusal (5).
    fn require(&self, op: Op, session: Option<&SessionName>) -> Result<()> {
        let _ = (op, session);
        Ok(())
    }
    /// Whether the caller reaches only some sessions (a key limited by
    /// `tether-sessions`): then files are named by session only.
    fn limited(&self) -> bool {
        false
    }
    /// This host's paths, when sessions are local (recordings are read
    /// directly then).
    fn local_paths(&self) -> Option<&Paths> {
        None
    }
    /// Whether a session of this name may be seen (recordings included).
    fn visible(&self, _name: &str) -> bool {
        true
    }
    /// Whether files on this host may be named only inside tether's own
    /// directories (recordings and evidence): a caller through the daemon,
    /// whose paths would be the host's, not theirs, and for whom a
    /// refusal must not tell what exists elsewhere.
    fn confined_paths(&self) -> bool {
        false
    }
    /// Records in the audit log that `event` (a kill) was done to `name`,
    /// where no daemon does it for the caller (the local user).
    fn audit_done(&self, event: crate::audit::Event, name: &SessionName) {
        let _ = (event, name);
    }
    /// The host's side of `tether check`.
    ///
    /// # Errors
    ///
    /// The host cannot be asked.
    fn health(&self, probe: Option<&SessionName>) -> Result<tether_proto::Health>;
    /// `tether check` where the sessions are: on this host, or run by the
    /// remote daemon itself (`--host`), which makes its own probe.
    ///
    /// # Errors
    ///
    /// The host cannot be asked, or refuses (the caller may not run it).
    fn check(&self) -> Result<Vec<crate::check::Outcome>>;
    /// Who is asking, for evidence manifests.
    fn requester(&self) -> String {
        format!(
            "{} (local user, uid {})",
            crate::client::local_user_name(),
            rustix::process::getuid().as_raw()
        )
    }
}

/// Sessions on this host.
#[derive(Clone)]
pub struct Local {
    paths: Paths,
    config: Config,
    registry: Registry,
    /// Where a new session's job starts when the request does not say.
    default_cwd: PathBuf,
    access: Access,
    /// Who creates sessions through this backend (the owner shown to watchers).
    creator: String,
    /// Who asks, in full, for evidence manifests; `None` for the local user.
    requester: Option<String>,
    /// Cuts the keeper connections made here when the caller goes away
    /// (an SSH channel closed mid-`wait`); `None` for the local user.
    cancel: Option<Cancel>,
}

impl Local {
    /// This host's sessions, all visible, new jobs starting in `default_cwd`.
    pub fn new(paths: Paths, config: Config, default_cwd: PathBuf) -> Self {
        let registry = Registry::new(paths.clone());
        let creator = crate::client::local_user_name();
        Local {
            paths,
            config,
            registry,
            default_cwd,
            access: Access::owner(),
            creator,
            requester: None,
            cancel: None,
        }
    }

    /// Keeper connections made from now on are watched by `cancel`.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Who asks (an SSH key, described in full).
    pub fn with_requester(mut self, requester: String) -> Self {
        self.requester = Some(requester);
        self
    }

    /// Who creates sessions through this backend.
    pub fn with_creator(mut self, creator: &str) -> Self {
        creator.clone_into(&mut self.creator);
        self
    }

    /// Restricts what this backend shows and does to what `access` allows.
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// The paths in use.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Writes, syncs and removes a small file in the recordings directory:
    /// the probe records elsewhere, so this is what proves that new
    /// sessions can record. `None` when it works.
    fn recordings_unwritable(&self) -> Option<String> {
        use std::io::Write;
        let dir = self.paths.recordings_dir();
        let path = dir.join(format!(".check-{:016x}", rand::random::<u64>()));
        let result = crate::fsutil::ensure_private_dir(&dir).and_then(|()| {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
            f.write_all(&[b'x'; 4096])?;
            f.sync_all()?;
            Ok(())
        });
        let _ = std::fs::remove_file(&path);
        result.err().map(|e| format!("{}: {e}", dir.display()))
    }

    /// Where `check` probes record: a scratch place, never the recordings.
    fn probe_dir(&self) -> PathBuf {
        self.paths.runtime_dir.join("check-recordings")
    }

    /// Where `check` makes its probe: this host's sessions as the local
    /// user. For an SSH caller (`ssh host check`, and `tether --host
    /// check`, which runs that) it is the daemon that creates, watches,
    /// ends and forgets the probe, with a name and a command of its own:
    /// no caller chooses anything about a session recorded to the scratch
    /// place.
    fn prober(&self) -> Local {
        Local { access: Access::owner(), requester: None, ..self.clone() }
    }

    /// Refuses a create request marked as a probe unless it comes from the
    /// local user and names a probe (`check-` and 8 hex digits): probes
    /// record to a scratch place `rm` deletes, so no one else may make one.
    fn may_probe(&self, name: &SessionName) -> Result<(), Failure> {
        if !self.access.is_local() {
            return Err(self.access.refuse(
                Some(name),
                "only `tether check` run by the local user creates probe sessions; over SSH, `check` makes its own".into(),
            ));
        }
        if !name.is_probe() {
            return Err(self.access.refuse(
                Some(name),
                format!("{name} is not a probe name (check- and 8 hex digits); refusing to create it as a probe"),
            ));
        }
        Ok(())
    }

    /// Refuses interactive attachments to a probe: it exists for `check`
    /// alone, and what is typed into it would go to the scratch recording.
    fn refuse_probe_attach(&self, name: &SessionName, op: Op) -> Result<(), Failure> {
        if op != Op::Attach || !self.is_probe(name) {
            return Ok(());
        }
        Err(self.access.refuse(
            Some(name),
            format!("session {name} is a probe of `tether check`: it may be watched, not attached"),
        ))
    }

    /// Whether `name` is a `check` probe (its record says so).
    fn is_probe(&self, name: &SessionName) -> bool {
        self.registry.get(name).ok().flatten().is_some_and(|s| s.probe)
    }

    /// An audit entry for what the local user did to `name`, marked when
    /// it was asked from inside a session (`session::origin`). Callers
    /// through the daemon are audited by the daemon, with their key.
    fn audit_local(&self, event: crate::audit::Event, name: &SessionName) {
        if !self.access.is_local() {
            return;
        }
        let origin = crate::session::origin::of_this_process(&self.paths);
        let entry = crate::audit::Entry {
            session: Some(name.to_string()),
            comment: Some(self.creator.clone()),
            role: Some(tether_proto::Role::Owner),
            from_session: origin.as_ref().map(|o| o.session.clone()),
            started_by: origin.and_then(|o| o.started_by),
            ..crate::audit::Entry::new(event)
        };
        crate::audit::AuditLog::new(self.paths.state_dir.join("audit.jsonl")).record(&entry);
    }

    /// The keeper spec for `req`, with this host's defaults filled in.
    fn spec(&self, req: &CreateRequest) -> Result<KeeperSpec> {
        let command =
            if req.command.is_empty() { vec![default_shell()] } else { req.command.clone() };
        // The default shell, and only it, gets the shell integration.
        let shell_integration = self.config.shell_integration && req.command.is_empty();
        let cwd = match &req.cwd {
            Some(dir) => std::path::absolute(dir)?,
            None => self.default_cwd.clone(),
        };
        if !cwd.is_dir() {
            return Err(Failure::invalid(format!("{} is not a directory", cwd.display())).into());
        }
        let term = req
            .term
            .clone()
            .filter(|t| !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c.is_control()))
            .unwrap_or_else(|| self.config.default_term.clone());
        let record = match (self.config.recording, req.no_record) {
            (RecordingPolicy::Required, true) => {
                return Err(Failure::new(
                    tether_proto::ErrorCode::Refused,
                    "this host requires recording (recording = \"required\" in config.toml); --no-record is refused",
                )
                .into());
            }
            (RecordingPolicy::Off, _) | (_, true) => false,
            _ => true,
        };
        Ok(KeeperSpec {
            name: req.name.clone(),
            command,
            cwd,
            env: req.env.clone(),
            size: req.size.sanitized(),
            term,
            protected: req.protect,
            scrollback_cells: self.config.scrollback_cells,
            record,
            record_input: req.record_input || self.config.record_input,
            shell_integration,
            segment_bytes: self.config.segment_bytes,
            consent: req.consent,
            watchers_unsafe_ok: self.config.watcher_passthrough,
            passthrough: self.config.passthrough_for_clients(),
            owner: self.creator.clone(),
            // Under `recording = "required"` a probe records like any
            // session, and its recording stays when it is removed.
            recording_dir: (req.probe && self.config.recording != RecordingPolicy::Required)
                .then(|| self.probe_dir()),
            probe: req.probe,
        })
    }
}

impl Backend for Local {
    fn list(&self) -> Result<Vec<SessionInfo>> {
        self.access.require(Op::List, None)?;
        // Reading records may clear a dead keeper's socket: only in our
        // own socket directory.
        self.paths.check_runtime_dir()?;
        let mut all = self.registry.list()?;
        all.retain(|s| self.access.sees(&s.name));
        crate::archive::fill_archived(&self.paths, self.config.archive.as_ref(), &mut all);
        Ok(all)
    }

    fn lookup(&self, name: &SessionName) -> Result<Option<SessionInfo>> {
        self.access.require(Op::List, Some(name))?;
        self.paths.check_runtime_dir()?;
        self.registry.get(name)
    }

    fn create(&self, req: &CreateRequest) -> Result<()> {
        self.access.require(Op::New, Some(&req.name))?;
        if req.probe {
            self.may_probe(&req.name)?;
        }
        self.paths.prepare()?;
        launch(&self.spec(req)?).map(|_| ())
    }

    fn remove(&self, name: &SessionName) -> Result<()> {
        self.access.require(Op::Rm, Some(name))?;
        self.paths.check_runtime_dir()?;
        let probe = self.is_probe(name);
        let recording = self
            .registry
            .get(name)?
            .filter(|s| s.probe)
            .and_then(|s| s.recording_path)
            .map(PathBuf::from)
            .filter(|p| p.starts_with(self.probe_dir()));
        self.registry.remove(name)?;
        // A probe's end is `check`'s business, not the log's.
        if !probe {
            self.audit_local(crate::audit::Event::Rm, name);
        }
        // A probe's scratch recording goes with it; no other recording
        // ever does (a probe made under `recording = "required"` records
        // among the others, and stays).
        if let Some(path) = recording {
            for sibling in std::fs::read_dir(self.probe_dir()).into_iter().flatten().flatten() {
                let stem =
                    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                if sibling.file_name().to_string_lossy().starts_with(&stem) {
                    let _ = std::fs::remove_file(sibling.path());
                }
            }
        }
        let _ = crate::fsutil::remove_if_exists(&self.paths.log_file(name));
        Ok(())
    }

    fn final_screen(&self, name: &SessionName) -> Result<Option<FinalScreen>> {
        self.access.require(Op::Watch, Some(name))?;
        let watcher = !permits(self.access.role, Op::Tail);
        // A --consent session is watched only with a yes from someone
        // attached; once it has ended nobody can say yes, so its last
        // screen is not shown to a watcher at all.
        if watcher && self.registry.get(name)?.is_some_and(|s| s.consent) {
            return Err(self
                .access
                .refuse(
                    Some(name),
                    format!(
                        "session {name} was started with --consent: a watcher does not see its final screen"
                    ),
                )
                .into());
        }
        let mut screen = self.registry.final_screen(name)?;
        // Watchers may see the last screen, not read the history (tail).
        if let Some(s) = &mut screen
            && watcher
        {
            s.text.clear();
        }
        Ok(screen)
    }

    fn connect(&self, name: &SessionName, op: Op) -> Result<KeeperClient> {
        self.access.require(op, Some(name))?;
        self.refuse_probe_attach(name, op)?;
        let client = KeeperClient::connect(&self.paths, name)?;
        if let Some(cancel) = &self.cancel {
            cancel.watch(client.reader.stream());
        }
        Ok(client)
    }

    fn require(&self, op: Op, session: Option<&SessionName>) -> Result<()> {
        Ok(self.access.require(op, session)?)
    }

    fn limited(&self) -> bool {
        self.access.visibility.describe().is_some()
    }

    fn local_paths(&self) -> Option<&Paths> {
        Some(&self.paths)
    }

    fn health(&self, probe: Option<&SessionName>) -> Result<tether_proto::Health> {
        // The host's side of `check`, for whoever may run it (it creates a
        // probe): free space and whether recordings can be written are
        // not a watcher's business. Verifying the probe's recording reads
        // a recording.
        self.access.require(Op::New, None)?;
        if probe.is_some() {
            self.access.require(Op::Review, probe)?;
        }
        crate::fsutil::ensure_private_dir(&self.paths.data_dir)?;
        let st = rustix::fs::statvfs(&self.paths.data_dir)?;
        let probe_recording = match probe {
            Some(name) => {
                let rec = crate::recording::resolve(&self.paths, name.as_str())?;
                let key = self.paths.signing_key_file().with_extension("pub");
                let trusted = std::fs::read_to_string(&key)
                    .ok()
                    .and_then(|t| russh::keys::PublicKey::from_openssh(t.trim()).ok())
                    .map(|k| (k, "this host's signing key".to_owned()));
                Some(crate::recording::verify::verify(&rec, trusted)?.status)
            }
            None => None,
        };
        Ok(tether_proto::Health {
            free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
            min_free_bytes: self.config.check_min_free_bytes,
            probe_recording,
            recordings_unwritable: self.recordings_unwritable(),
        })
    }

    fn check(&self) -> Result<Vec<crate::check::Outcome>> {
        let mut outcomes = crate::check::run(self, &self.prober());
        if let Some(archive) = &self.config.archive {
            outcomes.push(crate::check::archive(&self.paths, archive));
        }
        Ok(outcomes)
    }

    fn visible(&self, name: &str) -> bool {
        SessionName::new(name).is_ok_and(|n| self.access.sees(&n))
    }

    fn confined_paths(&self) -> bool {
        !self.access.is_local()
    }

    fn audit_done(&self, event: crate::audit::Event, name: &SessionName) {
        if !self.is_probe(name) {
            self.audit_local(event, name);
        }
    }

    fn requester(&self) -> String {
        self.requester.clone().unwrap_or_else(|| {
            format!("{} (local user, uid {})", self.creator, rustix::process::getuid().as_raw())
        })
    }
}

/// `$SHELL`, else `/bin/sh`.
pub fn default_shell() -> String {
    std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into())
}

/// A create request with everything defaulted but the name and command.
pub fn create_request(name: &SessionName, command: Vec<String>, size: WindowSize) -> CreateRequest {
    CreateRequest {
        name: name.clone(),
        command,
        cwd: None,
        env: Vec::new(),
        size,
        term: std::env::var("TERM").ok().filter(|t| !t.is_empty()),
        protect: false,
        no_record: false,
        record_input: false,
        consent: false,
        probe: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, Entry, Event};
    use crate::client::access::Visibility;
    use tether_proto::Role;

    fn local(dir: &std::path::Path) -> Local {
        let paths = Paths {
            config_dir: dir.join("config"),
            data_dir: dir.join("data"),
            state_dir: dir.join("state"),
            runtime_dir: dir.join("run"),
        };
        Local::new(paths, Config::default(), dir.to_path_buf())
    }

    #[test]
    fn only_the_local_user_creates_probes_and_only_with_probe_names() {
        let dir = tempfile::tempdir().unwrap();
        let owner = local(dir.path());
        let probe = SessionName::probe(0xdead_beef_0000_0000);
        assert!(owner.may_probe(&probe).is_ok());
        let err = owner.may_probe(&SessionName::new("work").unwrap()).unwrap_err();
        assert_eq!(err.code.exit_code(), 5);
        let audit = dir.path().join("audit.jsonl");
        for role in [Role::Owner, Role::Operator] {
            let remote = local(dir.path()).with_access(Access::remote(
                role,
                Visibility::all(),
                AuditLog::new(audit.clone()),
                Entry::new(Event::Refused),
            ));
            let err = remote.may_probe(&probe).unwrap_err();
            assert_eq!(err.code.exit_code(), 5, "{role:?}");
            // The daemon's own probe for `check` is the local user's.
            assert!(remote.prober().may_probe(&probe).is_ok());
        }
        let audited = std::fs::read_to_string(&audit).unwrap();
        assert_eq!(audited.lines().count(), 2, "{audited}");
    }
}

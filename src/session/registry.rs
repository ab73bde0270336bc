//! Reading and forgetting session records.

use super::lock::{SessionLock, is_held};
use crate::paths::Paths;
use crate::{Failure, fsutil};
use anyhow::{Context, Result};
use std::path::Path;
use tether_proto::store::{self, FinalScreen};
use tether_proto::{SessionInfo, SessionName, SessionState};

/// How long `rm` waits for the keeper of an ended session to exit: it
/// gives attached clients 2 s to receive the end (keeper::launch).
const ENDING_KEEPER_GRACE: std::time::Duration = std::time::Duration::from_secs(4);

/// The sessions of one user, as recorded under the state directory.
#[derive(Debug, Clone)]
pub struct Registry {
    paths: Paths,
}

impl Registry {
    /// The registry under `paths`.
    pub fn new(paths: Paths) -> Self {
        Registry { paths }
    }

    /// Every session, sorted by name, with `lost` derived.
    ///
    /// # Errors
    ///
    /// The sessions directory cannot be read. Unreadable records are
    /// skipped with a warning, so one bad file does not hide the others.
    pub fn list(&self) -> Result<Vec<SessionInfo>> {
        let dir = self.paths.sessions_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut sessions = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(store::record_of_file_name) else {
                continue;
            };
            match self.get(&name) {
                Ok(Some(info)) => sessions.push(info),
                Ok(None) => {}
                Err(e) => tracing::warn!("skipping session {name}: {e:#}"),
            }
        }
        sessions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sessions)
    }

    /// One session, or `None` if there is no record.
    ///
    /// # Errors
    ///
    /// The record exists but cannot be read or parsed.
    pub fn get(&self, name: &SessionName) -> Result<Option<SessionInfo>> {
        let Some(info) = read_record(&self.paths.record_file(name))? else { return Ok(None) };
        if info.state != SessionState::Running || is_held(&self.paths.lock_file(name)) {
            return Ok(Some(info));
        }
        // The keeper may have just recorded the end and exited: read again
        // before calling the session lost.
        let Some(mut info) = read_record(&self.paths.record_file(name))? else { return Ok(None) };
        if info.state == SessionState::Running {
            info.state = SessionState::Lost;
            info.clients = 0;
            info.watchers = 0;
            // A dead keeper's socket would make clients wait for nothing.
            let _ = fsutil::remove_if_exists(&self.paths.socket_file(name));
        }
        Ok(Some(info))
    }

    /// Like [`Registry::get`], with "no such session" as an error (exit 3).
    ///
    /// # Errors
    ///
    /// No record, or as [`Registry::get`].
    pub fn require(&self, name: &SessionName) -> Result<SessionInfo> {
        self.get(name)?.ok_or_else(|| Failure::no_such_session(name).into())
    }

    /// The final screen of an ended session.
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read or parsed.
    pub fn final_screen(&self, name: &SessionName) -> Result<Option<FinalScreen>> {
        let path = self.paths.final_screen_file(name);
        match std::fs::read(&path) {
            Ok(bytes) => FinalScreen::decode(&bytes)
                .map(Some)
                .with_context(|| format!("parsing {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Forgets an ended or lost session: its record, final screen, lock and
    /// any stale socket. Recordings are kept.
    ///
    /// # Errors
    ///
    /// No such session (exit 3), the session is running (exit 4), or a file
    /// cannot be removed.
    pub fn remove(&self, name: &SessionName) -> Result<()> {
        let info = self.require(name)?;
        let lock_file = self.paths.lock_file(name);
        let mut lock = SessionLock::try_acquire(&lock_file)?;
        // An ended session's keeper still holds the lock while its clients
        // receive the end (at most a couple of seconds): `wait` then `rm`
        // must not fail in that moment.
        let deadline = std::time::Instant::now() + ENDING_KEEPER_GRACE;
        while lock.is_none()
            && info.state == SessionState::Ended
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            lock = SessionLock::try_acquire(&lock_file)?;
        }
        let lock = lock.ok_or_else(|| {
            Failure::conflict(format!(
                "session {name} is running; end it with `tether kill {name}` first"
            ))
        })?;
        for path in [
            self.paths.record_file(name),
            self.paths.final_screen_file(name),
            self.paths.socket_file(name),
        ] {
            fsutil::remove_if_exists(&path)
                .with_context(|| format!("removing {}", path.display()))?;
        }
        lock.unlink();
        Ok(())
    }
}

fn read_record(path: &Path) -> Result<Option<SessionInfo>> {
    match std::fs::read(path) {
        Ok(bytes) => store::decode_record(&bytes)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

//! `NAME.lock`: held (exclusive `flock`) by a session's keeper for its whole
//! life, and briefly by `rm` to prove no keeper runs.

use anyhow::{Context, Result};
use rustix::fs::FlockOperation;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An exclusive lock on a session; released when dropped (or when the
/// process dies, which is the point).
#[derive(Debug)]
pub struct SessionLock {
    _file: File,
    path: PathBuf,
}

impl SessionLock {
    /// Takes the lock without waiting. `Ok(None)` if another process holds it.
    ///
    /// # Errors
    ///
    /// The lock file cannot be created or locked for another reason.
    pub fn try_acquire(path: &Path) -> Result<Option<SessionLock>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
            }
            // `rm` unlinks the file while holding the lock; if we locked a
            // file that is no longer at `path`, try again with the new one.
            let ours = file.metadata()?.ino();
            match std::fs::metadata(path) {
                Ok(m) if m.ino() == ours => {
                    return Ok(Some(SessionLock { _file: file, path: path.to_owned() }));
                }
                _ => continue,
            }
        }
    }

    /// Removes the lock file while still holding the lock (used by `rm`).
    pub fn unlink(&self) {
        let _ = crate::fsutil::remove_if_exists(&self.path);
    }
}

/// Whether some process holds the lock at `path`.
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else { return false };
    matches!(
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_and_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        assert!(!is_held(&path));
        let lock = SessionLock::try_acquire(&path).unwrap().unwrap();
        assert!(is_held(&path));
        assert!(SessionLock::try_acquire(&path).unwrap().is_none());
        drop(lock);
        assert!(!is_held(&path));
        assert!(SessionLock::try_acquire(&path).unwrap().is_some());
    }
}

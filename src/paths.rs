//! Where tether keeps things, derived from `HOME` and the `XDG_*` variables
//! through the `directories` crate, so a test that points them at a temp dir
//! is fully isolated.
//!
//! | what | where |
//! |---|---|
//! | config | `$XDG_CONFIG_HOME/tether/config.toml` |
//! | sockets | `$XDG_RUNTIME_DIR/tether/` (else `/tmp/tether-$UID/`), 0700 |
//! | session records | `$XDG_STATE_HOME/tether/sessions/` |
//! | keeper logs | `$XDG_STATE_HOME/tether/logs/` |
//! | daemon pid file | `$XDG_RUNTIME_DIR/tether/daemon.pid` |
//! | data (keys, recordings, evidence) | `$XDG_DATA_HOME/tether/` |

use anyhow::{Result, anyhow};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tether_proto::SessionName;
use tether_proto::store;

/// `sun_path` is 108 bytes on Linux, including the terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// The directories of one user's tether installation.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `$XDG_CONFIG_HOME/tether`.
    pub config_dir: PathBuf,
    /// `$XDG_DATA_HOME/tether`.
    pub data_dir: PathBuf,
    /// `$XDG_STATE_HOME/tether`.
    pub state_dir: PathBuf,
    /// `$XDG_RUNTIME_DIR/tether` or `/tmp/tether-$UID`.
    pub runtime_dir: PathBuf,
}

impl Paths {
    /// Resolves the directories from the environment. Creates nothing.
    ///
    /// # Errors
    ///
    /// No home directory can be determined.
    pub fn from_env() -> Result<Self> {
        let dirs = directories::ProjectDirs::from("", "", "tether")
            .ok_or_else(|| anyhow!("cannot determine the home directory; set HOME"))?;
        let state_dir = dirs
            .state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.data_local_dir().join("state"));
        // `runtime_dir()` is None when XDG_RUNTIME_DIR is unset (root over
        // ssh, cron, containers); fall back to a per-uid directory in /tmp,
        // whose ownership is checked before every use (`check_runtime_dir`).
        let runtime_dir = dirs.runtime_dir().map(Path::to_path_buf).unwrap_or_else(|| {
            fallback_parent().join(format!("tether-{}", rustix::process::getuid().as_raw()))
        });
        Ok(Paths {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
            state_dir,
            runtime_dir,
        })
    }

    /// `config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The directory of session records.
    pub fn sessions_dir(&self) -> PathBuf {
        self.state_dir.join("sessions")
    }

    /// The directory of keeper logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// A session's record.
    pub fn record_file(&self, name: &SessionName) -> PathBuf {
        self.sessions_dir().join(store::record_file_name(name))
    }

    /// A session's final screen, written when its job ends.
    pub fn final_screen_file(&self, name: &SessionName) -> PathBuf {
        self.sessions_dir().join(store::final_screen_file_name(name))
    }

    /// The lock a session's keeper holds for its whole life.
    pub fn lock_file(&self, name: &SessionName) -> PathBuf {
        self.sessions_dir().join(store::lock_file_name(name))
    }

    /// Where keepers spill output their screen model has not caught up with.
    pub fn spill_dir(&self) -> PathBuf {
        self.state_dir.join("spill")
    }

    /// Recordings.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// Evidence bundles.
    pub fn evidence_dir(&self) -> PathBuf {
        self.data_dir.join("evidence")
    }

    /// The key that signs recordings and evidence.
    pub fn signing_key_file(&self) -> PathBuf {
        self.data_dir.join("signing_ed25519_key")
    }

    /// A keeper's log file.
    pub fn log_file(&self, name: &SessionName) -> PathBuf {
        self.logs_dir().join(format!("{name}.log"))
    }

    /// A session's socket: a hash of the name, so that the path fits
    /// `sun_path` whatever the name.
    pub fn socket_file(&self, name: &SessionName) -> PathBuf {
        let digest = Sha256::digest(name.as_str().as_bytes());
        let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
        self.runtime_dir.join(format!("s-{hex}.sock"))
    }

    /// The daemon's pid file.
    pub fn daemon_pid_file(&self) -> PathBuf {
        self.runtime_dir.join("daemon.pid")
    }

    /// Makes sure the socket directory is ours before anything in it is
    /// used: created 0700 if missing; refused (exit 6, naming it and its
    /// owner) when it is a symbolic link, not a directory, or belongs to
    /// another user (the `/tmp` fallback can be created by anyone first);
    /// tightened to 0700 when it is ours but open to others.
    ///
    /// # Errors
    ///
    /// The directory is not ours, or cannot be created.
    pub fn check_runtime_dir(&self) -> Result<()> {
        crate::fsutil::ensure_owned_private_dir(&self.runtime_dir)
    }

    /// Creates the state and runtime directories with private modes and
    /// checks that socket paths fit.
    ///
    /// # Errors
    ///
    /// A directory cannot be created or is not ours, or the runtime
    /// directory's path is too long for a unix socket.
    pub fn prepare(&self) -> Result<()> {
        crate::fsutil::ensure_private_dir(&self.sessions_dir())?;
        crate::fsutil::ensure_private_dir(&self.logs_dir())?;
        self.check_runtime_dir()?;
        let probe = self.runtime_dir.join("s-00000000000000000000.sock");
        if probe.as_os_str().len() > SUN_PATH_MAX {
            return Err(crate::Failure::invalid(format!(
                "the socket directory {} is too long for a unix socket; point XDG_RUNTIME_DIR at a shorter path",
                self.runtime_dir.display()
            ))
            .into());
        }
        Ok(())
    }
}

/// Where the socket directory goes without `XDG_RUNTIME_DIR`: `/tmp`.
/// Test builds take `TETHER_TEST_TMPDIR` instead, so that a test can play
/// another user squatting the fallback without touching the real
/// `/tmp/tether-$UID`.
fn fallback_parent() -> PathBuf {
    #[cfg(feature = "test-hooks")]
    if let Some(dir) = std::env::var_os("TETHER_TEST_TMPDIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from("/tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_short_and_distinct() {
        let p = Paths {
            config_dir: "/c".into(),
            data_dir: "/d".into(),
            state_dir: "/s".into(),
            runtime_dir: "/r".into(),
        };
        let a = p.socket_file(&SessionName::new(&"a".repeat(64)).unwrap());
        let b = p.socket_file(&SessionName::new("b").unwrap());
        assert_ne!(a, b);
        assert_eq!(a.as_os_str().len(), "/r/s-00000000000000000000.sock".len());
    }
}

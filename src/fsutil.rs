//! Small file-system helpers with the permissions tether promises: files
//! private to their owner (0600), directories 0700.

use anyhow::{Context, Result};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) with mode 0700 if missing.
///
/// # Errors
///
/// The directory cannot be created.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Like [`ensure_private_dir`], and also insists that `dir` is a real
/// directory (not a symbolic link) that belongs to us and that nobody else
/// can write to: for the directory holding the keeper sockets, where a
/// directory prepared by another user (e.g. `/tmp/tether-$UID`, created
/// before us) would let that user pose as our keepers. Our own directory
/// with a loose mode is tightened to 0700; someone else's is never
/// touched.
///
/// # Errors
///
/// The directory cannot be created or tightened, or it is not ours (a
/// [`crate::Failure`] of exit 6 naming the directory and its owner).
pub fn ensure_owned_private_dir(dir: &Path) -> Result<()> {
    ensure_private_dir(dir)?;
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    let uid = rustix::process::getuid().as_raw();
    let problem = if meta.file_type().is_symlink() {
        Some("it is a symbolic link".to_owned())
    } else if !meta.is_dir() {
        Some("it is not a directory".to_owned())
    } else if meta.uid() != uid {
        Some(format!(
            "it belongs to {}, not to you ({})",
            describe_user(meta.uid()),
            describe_user(uid)
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(crate::Failure::unavailable(format!(
            "refusing to use the socket directory {}: {problem}, so the sockets in it may not be your sessions' \
             (someone may be trying to intercept them); remove it, or set XDG_RUNTIME_DIR to a directory of yours",
            dir.display()
        ))
        .into());
    }
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(
            "{} was open to others (mode {:o}); making it 0700",
            dir.display(),
            meta.mode() & 0o777
        );
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// "uid 65534 (nobody)", or "uid N" when the user has no name.
pub fn describe_user(uid: u32) -> String {
    let name = fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?;
            (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
    });
    match name {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// Replaces `path` with `bytes` atomically (write to a temporary file in the
/// same directory, then rename), mode 0600. Readers see the old or the new
/// content, never a mix.
///
/// # Errors
///
/// Writing or renaming fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // The whole file name in the temporary one: `NAME.json` and
    // `NAME.screen` may be written at once by two threads of one process.
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// Removes `path`, treating "already gone" as success.
///
/// # Errors
///
/// Any error other than `NotFound`.
pub fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

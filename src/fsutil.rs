//! Small file-system helpers with the permissions tether promises: files
//! private to their owner (0600), directories 0700.

use anyhow::{Context, Result, bail};
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

/// Like [`ensure_private_dir`], and also insists that `dir` belongs to us
/// and nobody else can enter it: for directories holding sockets, where a
/// directory prepared by another user (e.g. in `/tmp`) would be an attack.
///
/// # Errors
///
/// The directory cannot be created, belongs to another user, or its mode
/// cannot be tightened.
pub fn ensure_owned_private_dir(dir: &Path) -> Result<()> {
    ensure_private_dir(dir)?;
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    let uid = rustix::process::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid {
        bail!("{} is not a directory owned by uid {uid}; refusing to use it", dir.display());
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
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

//! Forensic capture on hosts that must not be killed: evidence bundles,
//! freezing, and their verification.
//!
//! A bundle is a directory (0700, files 0600) with `manifest.json` (who,
//! what, when, every file's size and SHA-256) and `manifest.sig` (an
//! SSHSIG over the manifest by the host's signing key, verifiable with
//! `ssh-keygen -Y check-novalidate -n tether-evidence`). Collectors only
//! read (`procfs`, `net`, `system`); only `freeze` signals, and only when
//! asked.

pub mod net;
pub mod procfs;
pub mod system;

use anyhow::{Context, Result};
use russh::keys::PublicKey;
use russh::keys::ssh_key::SshSig;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The SSHSIG namespace of manifest signatures.
pub const SIG_NAMESPACE: &str = "tether-evidence";

/// One file of a bundle, as the manifest lists it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// Path relative to the bundle.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A collection step and when it ran.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What.
    pub step: String,
    /// RFC 3339 UTC, with milliseconds.
    pub started: String,
    /// RFC 3339 UTC, with milliseconds.
    pub finished: String,
}

/// A bundle being written.
pub struct Bundle {
    dir: PathBuf,
    files: Vec<FileEntry>,
    steps: Vec<Step>,
    started: String,
}

fn now_precise() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Bundle {
    /// Creates `parent/NAME-<UTC timestamp>/` (0700; it must not exist).
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    pub fn create(parent: &Path, name: &str) -> Result<Bundle> {
        crate::fsutil::ensure_private_dir(parent)?;
        let stamp =
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ").to_string().replace('.', "");
        let dir = parent.join(format!("{name}-{stamp}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(Bundle { dir, files: Vec::new(), steps: Vec::new(), started: now_precise() })
    }

    /// The bundle's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a file (0600) and records its size and hash.
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
        self.files.push(FileEntry {
            path: rel.to_owned(),
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
        });
        Ok(())
    }

    /// Writes pretty JSON.
    ///
    /// # Errors
    ///
    /// As [`Bundle::write`].
    pub fn write_json<T: Serialize>(&mut self, rel: &str, value: &T) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(value)?;
        json.push(b'\n');
        self.write(rel, &json)
    }

    /// Runs one collection step, recording when.
    pub fn step<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let started = now_precise();
        let out = f(self);
        self.steps.push(Step { step: name.to_owned(), started, finished: now_precise() });
        out
    }

    /// Writes the manifest (with `extra` fields) and its signature.
    ///
    /// # Errors
    ///
    /// Writing or signing fails.
    pub fn finish(
        self,
        kind: &str,
        requested_by: &str,
        extra: serde_json::Value,
        key: &crate::signing::SigningKey,
    ) -> Result<PathBuf> {
        let mut manifest = serde_json::json!({
            "format": 1,
            "tether": crate::SOFTWARE,
            "kind": kind,
            "requested_by": requested_by,
            "host": system::host_facts(),
            "started": self.started,
            "finished": now_precise(),
            "steps": self.steps,
            "signing_key": key.fingerprint(),
            "files": self.files,
        });
        if let (Some(m), serde_json::Value::Object(e)) = (manifest.as_object_mut(), extra) {
            m.extend(e);
        }
        let mut json = serde_json::to_vec_pretty(&manifest)?;
        json.push(b'\n');
        let write = |name: &str, bytes: &[u8]| -> Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(self.dir.join(name))?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
            Ok(())
        };
        write("manifest.json", &json)?;
        let sig = key.sshsig_pem(SIG_NAMESPACE, crate::signing::SigHash::Sha512, &json);
        write("manifest.sig", sig.as_bytes())?;
        Ok(self.dir)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What verifying a bundle found.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// The bundle.
    pub path: String,
    /// The key named in the manifest.
    pub key: Option<String>,
    /// Whether the signature verifies with the trusted key.
    pub signature_ok: bool,
    /// Where trust came from.
    pub trusted_key: Option<String>,
    /// Files whose content changed (or that are no longer regular files).
    pub modified: Vec<String>,
    /// Files listed but absent.
    pub missing: Vec<String>,
    /// Files present but not listed.
    pub added: Vec<String>,
    /// Symbolic links found in the bundle, never followed (each is also
    /// in `modified` or `added`): tether writes none.
    pub symlinks: Vec<String>,
    /// `intact` or `damaged`.
    pub status: String,
}

impl BundleReport {
    /// Whether everything checks.
    pub fn ok(&self) -> bool {
        self.status == "intact"
    }
}

/// Whether `path` looks like an evidence bundle (a directory with a
/// `manifest.json`, whatever that is: a link there is reported, not
/// followed).
pub fn is_bundle(path: &Path) -> bool {
    path.is_dir() && std::fs::symlink_metadata(path.join("manifest.json")).is_ok()
}

/// Why a file of a bundle could not be read as one.
enum NotFile {
    /// Nothing there.
    Missing,
    /// A symbolic link (in its path or itself): never followed.
    Symlink,
    /// Something else that is not a regular file (a directory, a FIFO,
    /// a device…), or a name that leaves the bundle.
    Other,
}

/// Opens `rel` inside `root` as a regular file without following a
/// symbolic link anywhere below `root`, and without blocking on a FIFO.
fn open_in_bundle(root: &Path, rel: &str) -> std::result::Result<std::fs::File, NotFile> {
    use rustix::fs::{Mode, OFlags};
    use std::path::Component;
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(NotFile::Other);
    }
    let mut path = root.to_owned();
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        path.push(part);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(NotFile::Missing),
            Err(_) => return Err(NotFile::Other),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(NotFile::Symlink);
        }
        let last = parts.peek().is_none();
        if (last && !kind.is_file()) || (!last && !kind.is_dir()) {
            return Err(NotFile::Other);
        }
    }
    // Checked, then opened without following and without waiting: what
    // was swapped in between is refused, not read.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(&path, flags, Mode::empty()).map_err(|e| {
        if e == rustix::io::Errno::LOOP { NotFile::Symlink } else { NotFile::Other }
    })?;
    let file = std::fs::File::from(fd);
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        _ => Err(NotFile::Other),
    }
}

/// A file of a bundle, read whole (the manifest and its signature).
fn read_in_bundle(root: &Path, rel: &str) -> std::result::Result<Vec<u8>, NotFile> {
    let mut file = open_in_bundle(root, rel)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|_| NotFile::Other)?;
    Ok(bytes)
}

/// Size and SHA-256 of an open file, streamed.
fn size_and_sha256(mut file: std::fs::File) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex(&h.finalize())))
}

/// Checks every file's hash and the manifest's signature, never following
/// a symbolic link inside the bundle.
///
/// # Errors
///
/// The manifest cannot be read at all.
pub fn verify_bundle(dir: &Path, trusted: Option<(PublicKey, String)>) -> Result<BundleReport> {
    let mut report = BundleReport {
        path: dir.display().to_string(),
        key: None,
        signature_ok: false,
        trusted_key: trusted.as_ref().map(|(_, from)| from.clone()),
        modified: Vec::new(),
        missing: Vec::new(),
        added: Vec::new(),
        symlinks: Vec::new(),
        status: String::new(),
    };
    let note = |report: &mut BundleReport, rel: &str, why: NotFile| match why {
        NotFile::Missing => report.missing.push(rel.to_owned()),
        NotFile::Symlink => {
            report.symlinks.push(rel.to_owned());
            report.modified.push(rel.to_owned());
        }
        NotFile::Other => report.modified.push(rel.to_owned()),
    };
    let manifest_bytes = match read_in_bundle(dir, "manifest.json") {
        Ok(bytes) => bytes,
        Err(NotFile::Missing) => anyhow::bail!("reading manifest.json: no such file"),
        Err(why) => {
            note(&mut report, "manifest.json", why);
            Vec::new()
        }
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).unwrap_or(serde_json::Value::Null);
    let files: Vec<FileEntry> =
        serde_json::from_value(manifest["files"].clone()).unwrap_or_default();
    report.key = manifest["signing_key"].as_str().map(str::to_owned);
    match read_in_bundle(dir, "manifest.sig") {
        Ok(pem) => {
            report.signature_ok = match (&trusted, !manifest_bytes.is_empty()) {
                (Some((key, _)), true) => SshSig::from_pem(&pem)
                    .map(|sig| key.verify(SIG_NAMESPACE, &manifest_bytes, &sig).is_ok())
                    .unwrap_or(false),
                _ => false,
            };
        }
        Err(why) => note(&mut report, "manifest.sig", why),
    }
    let mut listed = BTreeSet::new();
    for f in &files {
        listed.insert(f.path.clone());
        match open_in_bundle(dir, &f.path) {
            Ok(file) => match size_and_sha256(file) {
                Ok((size, sha)) if sha == f.sha256 && size == f.size => {}
                _ => report.modified.push(f.path.clone()),
            },
            Err(why) => note(&mut report, &f.path, why),
        }
    }
    let mut found = Vec::new();
    walk(dir, Path::new(""), 0, &mut found);
    for (path, symlink) in found {
        if symlink && !report.symlinks.contains(&path) {
            report.symlinks.push(path.clone());
        }
        if path != "manifest.json" && path != "manifest.sig" && !listed.contains(&path) {
            report.added.push(path);
        }
    }
    for list in [&mut report.modified, &mut report.missing, &mut report.added, &mut report.symlinks]
    {
        list.sort();
        list.dedup();
    }
    let clean = report.signature_ok
        && report.modified.is_empty()
        && report.missing.is_empty()
        && report.added.is_empty()
        && report.symlinks.is_empty();
    report.status = if clean { "intact".into() } else { "damaged".into() };
    Ok(report)
}

/// How deep directories in a bundle go before the rest is listed as one
/// added entry (tether writes `memory/PID/…`).
const WALK_DEPTH: usize = 32;

/// Every entry under `root/rel` that is not a directory, relative to
/// `root`, with whether it is a symbolic link: links are listed, never
/// followed, so a link loop cannot make this run forever.
fn walk(root: &Path, rel: &Path, depth: usize, out: &mut Vec<(String, bool)>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else { return };
    for e in entries.flatten() {
        let path = rel.join(e.file_name());
        let shown = path.to_string_lossy().into_owned();
        match e.file_type() {
            Ok(t) if t.is_dir() && depth < WALK_DEPTH => walk(root, &path, depth + 1, out),
            Ok(t) => out.push((shown, t.is_symlink())),
            Err(_) => out.push((shown, false)),
        }
    }
    out.sort();
}

/// The processes of a session: every process whose session id is the
/// job's, and every descendant of the keeper (the keeper is a child
/// subreaper, so orphans that started their own session come back to it),
/// except the keeper itself.
pub fn session_pids(keeper: i32, job: i32) -> Vec<i32> {
    let pids = procfs::all_pids();
    let parents: std::collections::HashMap<i32, procfs::Stat> =
        pids.iter().filter_map(|p| procfs::stat(*p).ok().map(|s| (*p, s))).collect();
    let descends = |mut p: i32| {
        for _ in 0..4096 {
            let Some(s) = parents.get(&p) else { return false };
            if s.ppid == keeper {
                return true;
            }
            if s.ppid <= 1 {
                return false;
            }
            p = s.ppid;
        }
        false
    };
    pids.into_iter()
        .filter(|p| *p != keeper)
        .filter(|p| {
            parents.get(p).is_some_and(|s| s.sid == job && s.state != 'Z')
                || (descends(*p) && parents.get(p).is_some_and(|s| s.state != 'Z'))
        })
        .collect()
}

/// Sends `signal` to every process of the session (twice, so that a
/// process forked during the first pass is caught by the second).
pub fn signal_session(keeper: i32, job: i32, signal: rustix::process::Signal) -> usize {
    let mut done = BTreeSet::new();
    for _ in 0..2 {
        for pid in session_pids(keeper, job) {
            if let Some(p) = rustix::process::Pid::from_raw(pid)
                && rustix::process::kill_process(p, signal).is_ok()
            {
                done.insert(pid);
            }
        }
    }
    done.len()
}

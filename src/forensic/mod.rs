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
    /// Files whose content changed.
    pub modified: Vec<String>,
    /// Files listed but absent.
    pub missing: Vec<String>,
    /// Files present but not listed.
    pub added: Vec<String>,
    /// `intact` or `damaged`.
    pub status: String,
}

impl BundleReport {
    /// Whether everything checks.
    pub fn ok(&self) -> bool {
        self.status == "intact"
    }
}

/// Whether `path` looks like an evidence bundle.
pub fn is_bundle(path: &Path) -> bool {
    path.is_dir() && path.join("manifest.json").is_file()
}

/// Checks every file's hash and the manifest's signature.
///
/// # Errors
///
/// The manifest cannot be read at all.
pub fn verify_bundle(dir: &Path, trusted: Option<(PublicKey, String)>) -> Result<BundleReport> {
    let manifest_bytes =
        std::fs::read(dir.join("manifest.json")).context("reading manifest.json")?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).unwrap_or(serde_json::Value::Null);
    let files: Vec<FileEntry> =
        serde_json::from_value(manifest["files"].clone()).unwrap_or_default();
    let signature_ok = match (&trusted, std::fs::read_to_string(dir.join("manifest.sig"))) {
        (Some((key, _)), Ok(pem)) => SshSig::from_pem(pem.as_bytes())
            .map(|sig| key.verify(SIG_NAMESPACE, &manifest_bytes, &sig).is_ok())
            .unwrap_or(false),
        _ => false,
    };
    let mut report = BundleReport {
        path: dir.display().to_string(),
        key: manifest["signing_key"].as_str().map(str::to_owned),
        signature_ok,
        trusted_key: trusted.map(|(_, from)| from),
        modified: Vec::new(),
        missing: Vec::new(),
        added: Vec::new(),
        status: String::new(),
    };
    let mut listed = BTreeSet::new();
    for f in &files {
        listed.insert(f.path.clone());
        let path = dir.join(&f.path);
        match procfs::sha256_file(&path) {
            Ok(sha)
                if sha == f.sha256
                    && std::fs::metadata(&path).map(|m| m.len()).ok() == Some(f.size) => {}
            Ok(_) => report.modified.push(f.path.clone()),
            Err(_) => report.missing.push(f.path.clone()),
        }
    }
    for path in walk(dir, dir) {
        if path != "manifest.json" && path != "manifest.sig" && !listed.contains(&path) {
            report.added.push(path);
        }
    }
    if !dir.join("manifest.sig").exists() {
        report.missing.push("manifest.sig".into());
    }
    let clean = report.signature_ok
        && report.modified.is_empty()
        && report.missing.is_empty()
        && report.added.is_empty();
    report.status = if clean { "intact".into() } else { "damaged".into() };
    Ok(report)
}

fn walk(root: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(root, &path));
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
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

//! The archive's journal: every object shipped and verified, one JSON line
//! each, appended and synced before the next object is shipped. A
//! restarted uploader (after `kill -9`, a reboot) reads it and skips what
//! it lists; an object shipped but not yet journalled is found in the
//! bucket, compared and journalled, never written twice.
//!
//! The witness of a checkpoint is needed in it only until its segment is
//! shipped (a shipped segment is never read again): [`Journal::compact`]
//! rewrites the journal without such entries, so that it grows with the
//! segments, not with the seconds.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The shipped objects, by key.
pub struct Journal {
    path: PathBuf,
    /// Key → SHA-256 of what it stands for.
    done: HashMap<String, String>,
    /// Entries dropped by compactions (still shipped).
    compacted: usize,
    /// Entries held when compaction was last considered.
    considered_at: usize,
    file: Option<File>,
}

/// The first line of a compacted journal: how many entries it dropped.
#[derive(serde::Serialize, serde::Deserialize)]
struct Compacted {
    compacted: usize,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    key: String,
    sha256: String,
    local: String,
    at: String,
}

impl Journal {
    /// Reads the journal in `dir` (none yet: empty). A torn last line (the
    /// uploader was killed while appending it) is ignored: its object is
    /// checked in the bucket again.
    ///
    /// # Errors
    ///
    /// The journal exists but cannot be read.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("journal");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let compacted = text
            .lines()
            .next()
            .and_then(|l| serde_json::from_str::<Compacted>(l).ok())
            .map_or(0, |c| c.compacted);
        let done = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
            .map(|e| (e.key, e.sha256))
            .collect();
        Ok(Journal { path, done, compacted, considered_at: 0, file: None })
    }

    /// Whether `key` was shipped and verified.
    pub fn has(&self, key: &str) -> bool {
        self.done.contains_key(key)
    }

    /// The SHA-256 noted for `key` when it was shipped.
    pub fn sha256(&self, key: &str) -> Option<&str> {
        self.done.get(key).map(String::as_str)
    }

    /// The keys shipped and verified.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.done.keys().map(String::as_str)
    }

    /// Objects shipped and verified (those compacted away included).
    pub fn len(&self) -> usize {
        self.done.len() + self.compacted
    }

    /// Whether nothing was shipped yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries held (those [`Journal::compact`] has not dropped).
    pub fn held(&self) -> usize {
        self.done.len()
    }

    /// Whether compaction is worth considering: the journal has doubled
    /// since it was last considered (so that considering it costs little
    /// over time, however large the journal).
    pub fn worth_considering(&mut self) -> bool {
        let due = self.held() >= 2 * self.considered_at;
        if due {
            self.considered_at = self.held().max(1);
        }
        due
    }

    /// Rewrites the journal without the entries `keep` refuses: a new
    /// file, synced, renamed over the old one (a crash leaves one or the
    /// other whole). Returns how many it dropped.
    ///
    /// # Errors
    ///
    /// The new journal cannot be written; the old one is left as it was.
    pub fn compact(&mut self, keep: impl Fn(&str) -> bool) -> Result<usize> {
        let dropped = self.done.keys().filter(|k| !keep(k)).count();
        if dropped == 0 {
            return Ok(0);
        }
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let compacted = self.compacted + dropped;
        let mut out = serde_json::to_vec(&Compacted { compacted })?;
        out.push(b'\n');
        for line in text.lines() {
            if serde_json::from_str::<Entry>(line).is_ok_and(|e| keep(&e.key)) {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
        let tmp = self.path.with_file_name("journal.compacting");
        let written = (|| -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", tmp.display()));
        }
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        // The new file is the journal now, whatever follows.
        self.file = None;
        self.done.retain(|k, _| keep(k));
        self.compacted = compacted;
        self.considered_at = self.held().max(1);
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(dropped)
    }

    /// Notes that `key` (from `local`, whose content has SHA-256 `sha`) is
    /// shipped and verified ([`Journal::sync`] puts it on disk).
    ///
    /// # Errors
    ///
    /// The journal cannot be written.
    pub fn record(&mut self, key: &str, sha: &str, local: &Path) -> Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                crate::fsutil::ensure_private_dir(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?;
            // A torn line from a killed run must not swallow this one.
            if f.metadata().map(|m| m.len()).unwrap_or(0) > 0 {
                let last = std::fs::read(&self.path).unwrap_or_default();
                if last.last() != Some(&b'\n') {
                    (&f).write_all(b"\n")?;
                }
            }
            self.file = Some(f);
        }
        let entry = Entry {
            key: key.to_owned(),
            sha256: sha.to_owned(),
            local: local.display().to_string(),
            at: jiff::Timestamp::now().to_string(),
        };
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        let f = self.file.as_mut().context("journal not open")?;
        if let Err(e) = f.write_all(&line) {
            // Part of the line may be written (a full disk): the next
            // entry starts on a line of its own, after a reopen.
            self.file = None;
            return Err(e).with_context(|| format!("writing {}", self.path.display()));
        }
        self.done.insert(key.to_owned(), sha.to_owned());
        Ok(())
    }

    /// Syncs what [`Journal::record`] wrote to disk. An entry lost with an
    /// unsynced write costs nothing but a check: its object is found in
    /// the bucket, compared, and journalled again.
    ///
    /// # Errors
    ///
    /// The sync fails.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(f) = &self.file {
            f.sync_data().with_context(|| format!("syncing {}", self.path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_line_is_ignored_and_the_next_entry_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.record("a", "00", Path::new("/x")).unwrap();
        drop(j);
        let path = dir.path().join("journal");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\":\"b\",\"sha").unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        assert!(j.has("a") && !j.has("b"));
        j.record("c", "11", Path::new("/y")).unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.has("a") && j.has("c") && !j.has("b"));
        assert_eq!(j.len(), 2);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn compaction_drops_what_is_not_kept_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        for key in ["w/1", "w/2", "s/1", "w/3"] {
            j.record(key, "ab", Path::new("/x")).unwrap();
        }
        assert_eq!(j.compact(|k| !k.starts_with("w/") || k == "w/3").unwrap(), 2);
        assert_eq!(j.compact(|k| !k.starts_with("w/") || k == "w/3").unwrap(), 0);
        // Appends go on after it, into the new file.
        j.record("s/2", "cd", Path::new("/y")).unwrap();
        j.sync().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.has("s/1") && j.has("s/2") && j.has("w/3"));
        assert!(!j.has("w/1") && !j.has("w/2"));
        assert_eq!((j.len(), j.held()), (5, 3));
        let text = std::fs::read_to_string(dir.path().join("journal")).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("journal")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

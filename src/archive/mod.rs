//! `tether archive`: ships recordings, and a witness of every signed
//! checkpoint, to S3-compatible object storage (docs/ARCHIVE.md).
//!
//! A process of its own, so that keepers stay small (no HTTP client in a
//! keeper) and the SSH daemon stays replaceable. Each *pass* looks at the
//! recordings directory and ships what is not shipped yet:
//!
//! * every signed checkpoint and end line, as an object of its own (the
//!   *witness*), as soon as it is written;
//! * every segment once it is closed (a later segment exists, or the
//!   recording has ended), zstd-compressed, with the SHA-256 of the local
//!   file in the object's metadata.
//!
//! An object counts as shipped only once it has been read back and found
//! equal; then it goes into the journal (`$XDG_STATE_HOME/tether/archive/`),
//! so that a restarted uploader skips it. Objects are written once and
//! never overwritten or deleted: an object already in the bucket with
//! other content is reported (`conflict`), never replaced. Nothing local
//! is deleted or changed because of an upload, failed or not.

mod journal;
pub mod run;
mod store;
pub mod witness;

pub use journal::Journal;
pub use store::{Store, describe};

use crate::config::ArchiveConfig;
use crate::paths::Paths;
use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tether_proto::record::segment;
use tether_proto::record::{CHECKPOINT_PREFIX, END_PREFIX};

/// zstd level for segments: fast, and asciicast text compresses well.
const ZSTD_LEVEL: i32 = 3;

/// Names this host in object keys, stably: its host name and the start of
/// its machine id (two hosts may share a name).
pub fn host_id() -> String {
    let name = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let id: String = id.trim().chars().filter(char::is_ascii_hexdigit).take(12).collect();
    match (name.is_empty(), id.is_empty()) {
        (false, false) => format!("{name}-{id}"),
        (false, true) => name,
        (true, false) => id,
        (true, true) => "unknown-host".into(),
    }
}

/// Where this host's objects go: `PREFIX/HOST`.
#[derive(Debug, Clone)]
pub struct Layout {
    root: String,
}

impl Layout {
    /// The layout under `prefix` for host `host`.
    pub fn new(prefix: &str, host: &str) -> Self {
        let root = if prefix.is_empty() { host.to_owned() } else { format!("{prefix}/{host}") };
        Layout { root }
    }

    /// `PREFIX/HOST/recordings/BASE/FILE.zst`: a closed segment.
    pub fn segment(&self, base: &str, file: &str) -> String {
        format!("{}/recordings/{base}/{file}.zst", self.root)
    }

    /// `PREFIX/HOST/witness/BASE/SSSSSS-CCCCCCCCCC`: checkpoint `seq` of
    /// segment `seg` (`SSSSSS-end` for the end line), holding the line as
    /// written.
    pub fn witness(&self, base: &str, seg: u32, seq: Option<u64>) -> String {
        match seq {
            Some(seq) => format!("{}/witness/{base}/{seg:06}-{seq:010}", self.root),
            None => format!("{}/witness/{base}/{seg:06}-end", self.root),
        }
    }
}

/// One object a pass ships: what it is, where it goes, what it holds.
struct Item {
    key: String,
    /// The local file it comes from.
    local: PathBuf,
    /// When the line it witnesses was written (checkpoints), for the lag.
    wall: Option<String>,
    kind: Kind,
}

enum Kind {
    /// A checkpoint or end line: the object holds it as written.
    Witness(Vec<u8>),
    /// A closed segment: the object holds it zstd-compressed.
    Segment,
}

/// What is not shipped yet, found without the network.
fn pending(paths: &Paths, layout: &Layout, journal: &Journal) -> (Vec<Item>, Vec<String>) {
    let mut items = Vec::new();
    let mut unreadable = Vec::new();
    for (base, segments) in recordings(&paths.recordings_dir()) {
        for (i, (n, path)) in segments.iter().enumerate() {
            let data = match std::fs::read(path) {
                Ok(d) => d,
                Err(e) => {
                    unreadable.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let mut ended = false;
            for line in data.split(|b| *b == b'\n') {
                let Ok(text) = std::str::from_utf8(line) else { continue };
                let (json, is_end) = if let Some(j) = text.strip_prefix(CHECKPOINT_PREFIX) {
                    (j, false)
                } else if let Some(j) = text.strip_prefix(END_PREFIX) {
                    (j, true)
                } else {
                    continue;
                };
                // A torn line (still being written) is not one yet.
                let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { continue };
                ended |= is_end;
                let seq = if is_end { None } else { v["seq"].as_u64() };
                if !is_end && seq.is_none() {
                    continue;
                }
                let key = layout.witness(&base, *n, seq);
                if !journal.has(&key) {
                    items.push(Item {
                        key,
                        local: path.clone(),
                        wall: v["wall"].as_str().map(str::to_owned),
                        kind: Kind::Witness(line.to_vec()),
                    });
                }
            }
            let closed = i + 1 < segments.len() || ended;
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            let key = layout.segment(&base, file);
            if closed && !journal.has(&key) {
                items.push(Item { key, local: path.clone(), wall: None, kind: Kind::Segment });
            }
        }
    }
    (items, unreadable)
}

/// The recordings in `dir`: base file name → its segments present, in
/// order, up to the first missing one.
fn recordings(dir: &Path) -> BTreeMap<String, Vec<(u32, PathBuf)>> {
    let mut found: BTreeMap<String, BTreeMap<u32, PathBuf>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(parsed) = segment::parse_name(name) else { continue };
        let base = segment::base_name(
            parsed.session,
            &segment::stamp_time(parsed.stamp).unwrap_or_default(),
        );
        found.entry(base).or_default().insert(parsed.segment, entry.path());
    }
    found
        .into_iter()
        .filter_map(|(base, segs)| {
            let present: Vec<(u32, PathBuf)> = segs
                .into_iter()
                .enumerate()
                .take_while(|(i, (n, _))| *i as u32 == *n)
                .map(|(_, s)| s)
                .collect();
            (!present.is_empty()).then_some((base, present))
        })
        .collect()
}

/// The SHA-256 of `data`, in hex.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// What one pass did.
#[derive(Debug, Default, Serialize)]
pub struct PassReport {
    /// Objects shipped and verified in this pass.
    pub shipped: usize,
    /// Keys not shipped, with why (an error, a conflict, an unreadable file).
    pub failed: Vec<String>,
}

/// Ships everything pending once.
///
/// # Errors
///
/// The store cannot be used at all (unreachable, no such bucket, refused
/// credentials): one line naming the cause. Failures of single objects are
/// in the report instead, and never stop the others.
pub async fn pass(
    store: &Store,
    paths: &Paths,
    layout: &Layout,
    journal: &mut Journal,
) -> Result<PassReport> {
    store.preflight().await?;
    let (items, unreadable) = pending(paths, layout, journal);
    let mut report = PassReport { failed: unreadable, ..PassReport::default() };
    // Witness lines first: they are what makes a rewrite visible.
    let (witness, segments): (Vec<Item>, Vec<Item>) =
        items.into_iter().partition(|i| matches!(i.kind, Kind::Witness(_)));
    for item in witness.into_iter().chain(segments) {
        match ship(store, &item).await {
            Ok(sha) => {
                journal.record(&item.key, &sha, &item.local)?;
                report.shipped += 1;
            }
            Err(e) => report.failed.push(format!("{}: {e:#}", item.key)),
        }
    }
    Ok(report)
}

/// Ships one item and reads it back; returns the SHA-256 of what it
/// stands for (the line, or the uncompressed segment).
async fn ship(store: &Store, item: &Item) -> Result<String> {
    let (body, sha) = match &item.kind {
        Kind::Witness(line) => (line.clone(), sha256_hex(line)),
        Kind::Segment => {
            let data = std::fs::read(&item.local)
                .with_context(|| format!("reading {}", item.local.display()))?;
            let sha = sha256_hex(&data);
            let packed = zstd::bulk::compress(&data, ZSTD_LEVEL).context("compressing")?;
            (packed, sha)
        }
    };
    let unpack = |bytes: &[u8]| -> Result<String> {
        Ok(match item.kind {
            Kind::Witness(_) => sha256_hex(bytes),
            Kind::Segment => {
                let mut out = Vec::new();
                zstd::stream::copy_decode(bytes, &mut out)
                    .context("the archived copy does not decompress")?;
                sha256_hex(&out)
            }
        })
    };
    if let Some(existing) = store.read(&item.key).await? {
        // Written before (by an uploader killed before its journal entry):
        // the same content counts; other content is never overwritten.
        return match unpack(&existing)? {
            got if got == sha => Ok(sha),
            got => anyhow::bail!(
                "conflict: the bucket holds other content (SHA-256 {got}, local {sha})"
            ),
        };
    }
    store.write_once(&item.key, body, &sha).await?;
    let back =
        store.read(&item.key).await?.context("the object is missing right after it was written")?;
    let got = unpack(&back)?;
    anyhow::ensure!(got == sha, "read back with SHA-256 {got}, local {sha}");
    Ok(sha)
}

/// The archive's state as `--status` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The endpoint, if not AWS.
    pub endpoint: Option<String>,
    /// This host's part of the bucket (`PREFIX/HOST`).
    pub host: String,
    /// Objects shipped and verified so far.
    pub shipped: usize,
    /// Checkpoint and end lines not yet witnessed.
    pub pending_witness: usize,
    /// Closed segments not yet uploaded.
    pub pending_segments: usize,
    /// Seconds since the oldest checkpoint not yet witnessed was written
    /// (0 when none is pending).
    pub lag_secs: u64,
    /// The last pass: when it ended, and its error, if any.
    pub last_pass: Option<LastPass>,
    /// Files that cannot be read (set aside, reported).
    pub unreadable: Vec<String>,
}

/// What the last pass left in the state directory.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LastPass {
    /// RFC 3339 UTC.
    pub at: String,
    /// Objects shipped in it.
    pub shipped: usize,
    /// Why it stopped, or what did not ship.
    pub errors: Vec<String>,
}

/// The archive's directory in the state directory.
pub fn state_dir(paths: &Paths) -> PathBuf {
    paths.state_dir.join("archive")
}

/// Notes the outcome of a pass for `--status` and `check`.
pub fn save_last_pass(paths: &Paths, last: &LastPass) -> Result<()> {
    let dir = state_dir(paths);
    crate::fsutil::ensure_private_dir(&dir)?;
    crate::fsutil::write_atomic(&dir.join("last-pass.json"), &serde_json::to_vec(last)?)
}

/// The archive's state, from the journal and the recordings (no network).
pub fn status(paths: &Paths, config: &ArchiveConfig, journal: &Journal) -> Result<Status> {
    let (bucket, prefix) = config.bucket_and_prefix().map_err(crate::Failure::invalid)?;
    let layout = Layout::new(&prefix, &host_id());
    let (items, unreadable) = pending(paths, &layout, journal);
    let now = jiff::Timestamp::now();
    let lag_secs = items
        .iter()
        .filter_map(|i| i.wall.as_deref()?.parse::<jiff::Timestamp>().ok())
        .map(|t| now.duration_since(t).as_secs().max(0) as u64)
        .max()
        .unwrap_or(0);
    let last_pass = std::fs::read(state_dir(paths).join("last-pass.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    Ok(Status {
        url: format!("s3://{bucket}/{prefix}"),
        endpoint: config.endpoint.clone(),
        host: layout.root.clone(),
        shipped: journal.len(),
        pending_witness: items.iter().filter(|i| matches!(i.kind, Kind::Witness(_))).count(),
        pending_segments: items.iter().filter(|i| matches!(i.kind, Kind::Segment)).count(),
        lag_secs,
        last_pass,
        unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_under_the_prefix_and_the_host() {
        let l = Layout::new("fleet", "web1-0123456789ab");
        assert_eq!(
            l.segment("build-20261128T043301Z.cast", "build-20261128T043301Z.1.cast"),
            "fleet/web1-0123456789ab/recordings/build-20261128T043301Z.cast/build-20261128T043301Z.1.cast.zst"
        );
        assert_eq!(
            l.witness("b.cast", 2, Some(7)),
            "fleet/web1-0123456789ab/witness/b.cast/000002-0000000007"
        );
        assert_eq!(
            l.witness("b.cast", 2, None),
            "fleet/web1-0123456789ab/witness/b.cast/000002-end"
        );
        assert_eq!(Layout::new("", "h").witness("b", 0, Some(0)), "h/witness/b/000000-0000000000");
        let host = host_id();
        assert!(!host.is_empty() && !host.contains('/'), "{host}");
    }

    #[test]
    fn segments_count_up_to_the_first_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "a-20261128T043301Z.cast",
            "a-20261128T043301Z.1.cast",
            "a-20261128T043301Z.3.cast",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let found = recordings(dir.path());
        let segs: Vec<u32> = found["a-20261128T043301Z.cast"].iter().map(|s| s.0).collect();
        assert_eq!(segs, [0, 1]);
        assert_eq!(found.len(), 1);
    }
}

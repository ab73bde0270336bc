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
//! An object counts as shipped only once the server has stored exactly it
//! (a segment is read back and compared; a signed line is sent signed
//! with its body's SHA-256, which S3 checks); then it goes into the journal (`$XDG_STATE_HOME/tether/archive/`),
//! so that a restarted uploader skips it. Objects are written once and
//! never overwritten or deleted: an object already in the bucket with
//! other content is reported (`conflict`), never replaced. Nothing local
//! is deleted or changed because of an upload, failed or not.

pub mod fleet;
mod journal;
pub mod remote;
pub mod run;
mod scan;
mod seekable;
mod store;
pub mod witness;

pub use journal::Journal;
pub use scan::Scanner;
pub use store::{Store, WriteOutcome, describe};

use crate::config::ArchiveConfig;
use crate::paths::Paths;
use anyhow::{Context, Result};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tether_proto::record::segment;

/// Beside a witness key, what marks a conflict: the uploader found another
/// object under the key, and put its own line here.
pub const CONFLICT_SUFFIX: &str = ".conflict";

/// Signed lines shipped at once.
const WITNESS_IN_FLIGHT: usize = 16;

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

    /// The layout whose root (`PREFIX/HOST`) is `root`.
    pub fn at(root: &str) -> Self {
        Layout { root: root.trim_end_matches('/').to_owned() }
    }

    /// `PREFIX/HOST/recordings/BASE/FILE.zst`: a closed segment.
    pub fn segment(&self, base: &str, file: &str) -> String {
        format!("{}/recordings/{base}/{file}.zst", self.root)
    }

    /// `PREFIX/HOST/evidence/BUNDLE/FILE.zst`: a file of an evidence
    /// bundle (`FILE` relative to the bundle's directory).
    pub fn evidence(&self, bundle: &str, file: &str) -> String {
        format!("{}/evidence/{bundle}/{file}.zst", self.root)
    }

    /// `PREFIX/HOST/evidence/BUNDLE/` if `key` is a file of a bundle.
    pub fn bundle_of(&self, key: &str) -> Option<String> {
        let folder = format!("{}/evidence/", self.root);
        let rest = key.strip_prefix(&folder)?;
        let bundle = rest.split('/').next()?;
        Some(format!("{folder}{bundle}/"))
    }

    /// `PREFIX/HOST/audit/`.
    pub fn audit_folder(&self) -> String {
        format!("{}/audit/", self.root)
    }

    /// `PREFIX/HOST/audit/SSSSSSSSSSSSSSSS-EEEEEEEEEEEEEEEE.jsonl`: the
    /// audit log's bytes from `start` to `end`, as written.
    pub fn audit(&self, start: u64, end: u64) -> String {
        format!("{}{start:016}-{end:016}.jsonl", self.audit_folder())
    }

    /// The key of the segment whose checkpoint `key` witnesses (`None` for
    /// an end line, or a key that is no witness of this layout).
    pub fn segment_of_checkpoint(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix("/witness/")?;
        let (base, name) = rest.split_once('/')?;
        let (seg, seq) = name.split_once('-')?;
        if seq == "end" || seq.contains('/') {
            return None;
        }
        let file = segment::segment_path(std::path::Path::new(base), seg.parse().ok()?);
        Some(self.segment(base, file.file_name()?.to_str()?))
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
    /// (Shared with the scanner, which keeps it until it is journalled.)
    Witness(bytes::Bytes),
    /// A closed segment: the object holds it zstd-compressed.
    Segment,
}

/// Whether object `name`, in the folder of recording `base`, is one of
/// its segments (not a sidecar, not a stray).
pub fn is_segment_object(base: &str, name: &str) -> bool {
    matches!(
        name.strip_suffix(".zst").and_then(|f| segment::sibling(base, f)),
        Some(segment::Sibling::Segment(_))
    )
}

/// Whether `key` is a segment's object (`…/recordings/BASE/FILE.zst`).
fn names_a_segment(key: &str) -> bool {
    let mut parts = key.rsplitn(4, '/');
    let (name, base, kind) = (parts.next(), parts.next(), parts.next());
    kind == Some("recordings")
        && is_segment_object(base.unwrap_or_default(), name.unwrap_or_default())
}

/// The SHA-256 of `data`, in hex.
pub fn sha256_hex(data: &[u8]) -> String {
    tether_proto::record::chain::hex(&Sha256::digest(data))
}

/// What one pass did.
#[derive(Debug, Default, Serialize)]
pub struct PassReport {
    /// Objects shipped and verified in this pass.
    pub shipped: usize,
    /// Keys not shipped, with why (an error, a conflict, an unreadable file).
    pub failed: Vec<String>,
    /// Local recordings removed (shipped whole, kept long enough).
    pub pruned: Vec<String>,
}

/// Ships everything pending once: first every signed line, then closed
/// segments (each only once its signed lines are shipped), the segments
/// for at most `budget` when one is given (so that a backlog of segments
/// never holds up the witness of new checkpoints for long).
///
/// # Errors
///
/// The store cannot be used at all (unreachable, no such bucket, refused
/// credentials): one line naming the cause; or the journal cannot be
/// written. Failures of single objects are in the report instead, and
/// never stop the others.
pub async fn pass(
    store: &Store,
    scanner: &mut Scanner,
    paths: &Paths,
    layout: &Layout,
    journal: &mut Journal,
    budget: Option<std::time::Duration>,
    keep_local_days: u32,
) -> Result<PassReport> {
    store.preflight().await?;
    let found = scanner.scan(paths, layout, journal);
    let mut report = PassReport { failed: found.set_aside, ..PassReport::default() };
    let (witness, segments): (Vec<Item>, Vec<Item>) =
        found.items.into_iter().partition(|i| matches!(i.kind, Kind::Witness(_)));
    let mut held_back = std::collections::HashSet::new();
    // Signed lines go several at a time: a fleet's sessions write one a
    // second each, and one request at a time would fall behind.
    let mut shipping = futures_util::stream::iter(witness)
        .map(|item| async move {
            let outcome = ship(store, &item).await;
            (item, outcome)
        })
        .buffer_unordered(WITNESS_IN_FLIGHT);
    while let Some((item, outcome)) = shipping.next().await {
        match outcome {
            Ok(sha) => {
                journal.record(&item.key, &sha, &item.local)?;
                report.shipped += 1;
            }
            Err(e) => {
                report.failed.push(format!("{}: {e:#}", item.key));
                held_back.insert(item.local.clone());
            }
        }
    }
    drop(shipping);
    journal.sync()?;
    let start = std::time::Instant::now();
    // An evidence bundle whose file failed waits whole: its signature goes
    // last, only after every file of it.
    let mut failed_bundles: Vec<String> = Vec::new();
    for item in segments {
        if held_back.contains(&item.local)
            || failed_bundles.iter().any(|b| item.key.starts_with(b))
            || budget.is_some_and(|b| start.elapsed() > b)
        {
            continue;
        }
        match ship(store, &item).await {
            Ok(sha) => {
                journal.record(&item.key, &sha, &item.local)?;
                journal.sync()?;
                report.shipped += 1;
            }
            Err(e) => {
                report.failed.push(format!("{}: {e:#}", item.key));
                if let Some(bundle) = layout.bundle_of(&item.key) {
                    failed_bundles.push(bundle);
                }
            }
        }
    }
    if keep_local_days > 0 {
        prune(paths, layout, journal, keep_local_days, &mut report);
    }
    if journal.worth_considering() {
        scanner.forget_shipped(journal);
        // Best effort: a full disk stops nothing.
        if let Err(e) = compact(layout, journal) {
            eprintln!("tether: archive: the journal was not compacted: {e:#}");
        }
    }
    Ok(report)
}

/// Drops from the journal the checkpoints of segments that are shipped
/// (a shipped segment is never read again, so they are never asked
/// about). The end lines stay: they say a recording is archived whole.
/// Called when the journal has doubled since the last time, so that the
/// cost stays in proportion to what is appended.
fn compact(layout: &Layout, journal: &mut Journal) -> Result<()> {
    let spent: std::collections::HashSet<String> = journal
        .keys()
        .filter(|k| layout.segment_of_checkpoint(k).is_some_and(|s| journal.has(&s)))
        .map(str::to_owned)
        .collect();
    if !spent.is_empty() {
        journal.compact(|k| !spent.contains(k))?;
    }
    Ok(())
}

/// Removes the local copies of recordings that are shipped whole (every
/// segment in the journal, so each was closed, read back and compared)
/// and unchanged for `days` days: their segments and derived sidecars.
/// Anything else is never touched.
fn prune(paths: &Paths, layout: &Layout, journal: &Journal, days: u32, report: &mut PassReport) {
    let keep = std::time::Duration::from_secs(u64::from(days) * 86_400);
    for (base, files) in scan::recordings(&paths.recordings_dir()) {
        let key_of = |path: &std::path::Path| {
            layout.segment(&base, path.file_name().and_then(|f| f.to_str()).unwrap_or_default())
        };
        let Some((_, first)) = files.first() else { continue };
        let sidecars = scan::sidecars(first);
        // Sidecars too, where there are any: a reader of the archive seeks
        // with them.
        let shipped = files.iter().all(|(_, path)| journal.has(&key_of(path)))
            && sidecars
                .iter()
                .all(|p| std::fs::symlink_metadata(p).is_err() || journal.has(&key_of(p)));
        let old = files.iter().all(|(_, path)| {
            std::fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > keep))
        });
        if !shipped || !old {
            continue;
        }
        // Each file is still exactly what was shipped (one that grew after
        // it was shipped keeps lines the archive has only as a witness).
        let same = |path: &std::path::Path| {
            scan::read_whole(path)
                .is_ok_and(|data| journal.sha256(&key_of(path)) == Some(sha256_hex(&data).as_str()))
        };
        let unchanged = files.iter().all(|(_, path)| same(path))
            && sidecars.iter().all(|p| std::fs::symlink_metadata(p).is_err() || same(p));
        if !unchanged {
            report.failed.push(format!("{base}: changed after it was archived: local copy kept"));
            continue;
        }
        for path in files.iter().map(|(_, p)| p.clone()).chain(sidecars) {
            if let Err(e) = crate::fsutil::remove_if_exists(&path) {
                report.failed.push(format!("{}: not removed: {e}", path.display()));
            }
        }
        report.pruned.push(base);
    }
}

/// Ships one item (write-once) and reads it back; returns the SHA-256 of
/// what it stands for (the line, or the uncompressed segment).
async fn ship(store: &Store, item: &Item) -> Result<String> {
    let (body, sha, plain_len) = match &item.kind {
        Kind::Witness(line) => (line.to_vec(), sha256_hex(line), line.len() as u64),
        Kind::Segment => {
            let data = scan::read_whole(&item.local)
                .map_err(|why| anyhow::anyhow!("{}: {why}", item.local.display()))?;
            let sha = sha256_hex(&data);
            let packed = seekable::compress(&data, ZSTD_LEVEL)?;
            (packed, sha, data.len() as u64)
        }
    };
    // What the bucket holds, in the terms of `sha`: never more than the
    // local copy's size is decompressed (a planted object cannot exhaust
    // memory).
    let unpack = |bytes: &[u8]| -> Result<String> {
        Ok(match item.kind {
            Kind::Witness(_) => sha256_hex(bytes),
            Kind::Segment => {
                let decoder = zstd::stream::read::Decoder::new(bytes)
                    .context("the archived copy is not zstd")?;
                let mut out = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(decoder, plain_len + 1),
                    &mut out,
                )
                .context("the archived copy does not decompress")?;
                sha256_hex(&out)
            }
        })
    };
    let limit = body.len() as u64 + (1 << 20);
    // The line, for a conflict mark (below).
    let line = matches!(item.kind, Kind::Witness(_)).then(|| body.clone());
    let existing = match store.write_once(&item.key, body, &sha).await? {
        // A signed line needs no read-back: the request is signed with the
        // SHA-256 of its body, which S3 checks before it stores anything.
        // A segment is read back and decompressed: that also proves the
        // compression.
        WriteOutcome::Written if matches!(item.kind, Kind::Witness(_)) => return Ok(sha),
        WriteOutcome::Written => None,
        // Written before (by an uploader killed before its journal entry,
        // or by someone else): the same content counts; other content is
        // never overwritten.
        WriteOutcome::Exists => Some(()),
    };
    let back = store
        .read(&item.key, limit)
        .await?
        .context("the object is missing right after it was written")?;
    let got = unpack(&back)?;
    match existing {
        Some(()) if got != sha => {
            // Someone wrote this checkpoint's witness before the uploader
            // did (a claim ahead of the line). A mark beside it, written
            // once, makes `verify` report it; credentials that may only
            // put cannot take it away.
            if let (Some(line), true) = (line, item.key.contains("/witness/")) {
                let mark = format!("{}{CONFLICT_SUFFIX}", item.key);
                if let Err(e) = store.write_once(&mark, line, &sha).await {
                    anyhow::bail!(
                        "conflict: the bucket holds other content (SHA-256 {got}, local {sha}), and the conflict mark was not written: {e:#}"
                    );
                }
            }
            anyhow::bail!("conflict: the bucket holds other content (SHA-256 {got}, local {sha})")
        }
        None if got != sha => anyhow::bail!("read back with SHA-256 {got}, local {sha}"),
        _ => Ok(sha),
    }
}

/// The archive's state as `--status` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The endpoint, if not AWS.
    pub endpoint: Option<String>,
    /// This host's part of the bucket (`PREFIX/HOST`).
    pub location: String,
    /// Objects shipped and verified so far.
    pub shipped: usize,
    /// Checkpoint and end lines not yet witnessed.
    pub pending_witness: usize,
    /// Closed segments not yet uploaded.
    pub pending_segments: usize,
    /// Evidence files, audit log chunks, and the seek indexes and
    /// keyframes of ended recordings, not yet uploaded.
    pub pending_other: usize,
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

/// Fills in `archived` for `ls` (see [`tether_proto::SessionInfo`]), from
/// the journal alone (no network).
pub fn fill_archived(
    paths: &Paths,
    config: Option<&ArchiveConfig>,
    sessions: &mut [tether_proto::SessionInfo],
) {
    let index = config.and_then(|c| {
        let (_, prefix) = c.bucket_and_prefix().ok()?;
        let root = Layout::new(&prefix, &host_id()).root;
        let journal = Journal::open(&state_dir(paths)).ok()?;
        // Recording → (segments shipped, end witnessed).
        let mut index: std::collections::HashMap<String, (usize, bool)> = Default::default();
        for key in journal.keys() {
            let Some(rest) = key.strip_prefix(&root) else { continue };
            let mut parts = rest.trim_start_matches('/').splitn(3, '/');
            let (kind, base, name) = (parts.next(), parts.next(), parts.next());
            let (Some(kind), Some(base), Some(name)) = (kind, base, name) else { continue };
            let entry = index.entry(base.to_owned()).or_default();
            match kind {
                "recordings" if is_segment_object(base, name) => entry.0 += 1,
                "witness" if name.ends_with("-end") => entry.1 = true,
                _ => {}
            }
        }
        Some(index)
    });
    for s in sessions {
        let path = s.recording_path.as_deref().map(std::path::Path::new);
        s.archived = Some(
            match (&index, path) {
                (Some(index), Some(path)) => {
                    let base = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
                    let files =
                        (0..).take_while(|n| segment::segment_path(path, *n).exists()).count();
                    let ended = s.state != tether_proto::SessionState::Running;
                    match index.get(base) {
                        None => "pending",
                        Some((shipped, end))
                            if ended
                                && *shipped >= files
                                && (*end || s.state == tether_proto::SessionState::Lost) =>
                        {
                            "done"
                        }
                        Some(_) => "partial",
                    }
                }
                _ => "off",
            }
            .to_owned(),
        );
    }
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
    let found = Scanner::default().scan(paths, &layout, journal);
    let (items, unreadable) = (found.items, found.set_aside);
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
        location: layout.root.clone(),
        shipped: journal.len(),
        pending_witness: items.iter().filter(|i| i.key.contains("/witness/")).count(),
        pending_segments: items.iter().filter(|i| names_a_segment(&i.key)).count(),
        pending_other: items
            .iter()
            .filter(|i| !i.key.contains("/witness/") && !names_a_segment(&i.key))
            .count(),
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
        let base = "build-20261128T043301Z.cast";
        assert_eq!(
            l.segment_of_checkpoint(&l.witness(base, 2, Some(7))),
            Some(l.segment(base, "build-20261128T043301Z.2.cast"))
        );
        assert_eq!(
            l.segment_of_checkpoint(&l.witness(base, 0, Some(1))),
            Some(l.segment(base, base))
        );
        assert_eq!(l.segment_of_checkpoint(&l.witness(base, 0, None)), None);
        assert_eq!(l.segment_of_checkpoint(&l.segment(base, base)), None);
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
        let found = scan::recordings(dir.path());
        let segs: Vec<u32> = found["a-20261128T043301Z.cast"].iter().map(|s| s.0).collect();
        assert_eq!(segs, [0, 1]);
        assert_eq!(found.len(), 1);
    }
}

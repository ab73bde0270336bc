//! A fleet's recordings from one place: `ls --archive` lists what every
//! host shipped, and `verify s3://…` checks a recording from the bucket
//! alone (its segments and its witness), on any machine.

use super::{Store, sha256_hex};
use crate::config::ArchiveConfig;
use anyhow::{Context, Result, anyhow};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tether_proto::record::segment;

/// One archived recording, as `ls --archive` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Archived {
    /// The host that shipped it (`HOST` in the layout).
    pub host: String,
    /// The session's name.
    pub session: String,
    /// When the recording began (RFC 3339 UTC).
    pub started: String,
    /// When it ended (its signed end's time), if its end is witnessed.
    pub ended: Option<String>,
    /// Segments in the bucket.
    pub segments: u32,
    /// Their compressed size, in bytes.
    pub bytes: u64,
    /// Checkpoints witnessed.
    pub checkpoints: u64,
    /// `ended` (the signed end is witnessed) or `open` (running, cut, or
    /// not shipped whole yet).
    pub status: String,
    /// The recording's folder, for `verify`: `s3://BUCKET/PREFIX/HOST/recordings/BASE/`.
    pub url: String,
}

/// Every archived recording under the configured prefix (of `host` only,
/// if given), oldest first.
///
/// # Errors
///
/// The bucket cannot be listed (one line).
pub fn list(config: &ArchiveConfig, host: Option<&str>) -> Result<Vec<Archived>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(config, std::time::Duration::from_secs(20))?;
        store.preflight().await?;
        let (bucket, prefix) = config.bucket_and_prefix().map_err(crate::Failure::invalid)?;
        let root = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let scope = match host {
            Some(h) => format!("{root}{h}/"),
            None => root.clone(),
        };
        let mut found: BTreeMap<(String, String), Archived> = BTreeMap::new();
        let mut ends: Vec<((String, String), String)> = Vec::new();
        let mut listing = store.list_all(&scope);
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| {
                anyhow!(super::describe(
                    &e,
                    &bucket,
                    config.endpoint.as_deref().unwrap_or("AWS S3")
                ))
            })?;
            let key = meta.location.to_string();
            let Some(rest) = key.strip_prefix(&root) else { continue };
            let parts: Vec<&str> = rest.splitn(4, '/').collect();
            let [h, kind, base, name] = parts[..] else { continue };
            let Some(parsed) = segment::parse_name(base).filter(|p| p.segment == 0) else {
                continue;
            };
            let id = (h.to_owned(), base.to_owned());
            let entry = found.entry(id.clone()).or_insert_with(|| Archived {
                host: h.to_owned(),
                session: parsed.session.to_owned(),
                started: segment::stamp_time(parsed.stamp).unwrap_or_default(),
                ended: None,
                segments: 0,
                bytes: 0,
                checkpoints: 0,
                status: "open".into(),
                url: format!("s3://{bucket}/{root}{h}/recordings/{base}/"),
            });
            match kind {
                "recordings" if super::is_segment_object(base, name) => {
                    entry.segments += 1;
                    entry.bytes += meta.size;
                }
                "witness" if name.ends_with("-end") => ends.push((id, key.clone())),
                "witness" => entry.checkpoints += 1,
                _ => {}
            }
        }
        for (id, key) in ends {
            // An object that cannot be read as an end line leaves the
            // recording `open`; the listing goes on.
            let line = store.read(&key, 64 * 1024).await.ok().flatten().unwrap_or_default();
            let json =
                line.strip_prefix(tether_proto::record::END_PREFIX.as_bytes()).unwrap_or(&line);
            let wall = serde_json::from_slice::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v["wall"].as_str().map(str::to_owned));
            if let (Some(entry), Some(wall)) = (found.get_mut(&id), wall) {
                entry.ended = Some(wall);
                entry.status = "ended".into();
            }
        }
        let mut all: Vec<Archived> = found.into_values().collect();
        all.sort_by(|a, b| {
            (&a.started, &a.host, &a.session).cmp(&(&b.started, &b.host, &b.session))
        });
        Ok(all)
    })
}

/// A private directory removed when dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let dir =
            std::env::temp_dir().join(format!("tether-archive-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Scratch(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A recording fetched from the bucket: its segments, decompressed and
/// checked against their SHA-256, in a private scratch directory.
pub struct Fetched {
    /// Holds the files.
    pub scratch: Scratch,
    /// Segment 0, then the others as named in the bucket.
    pub base: PathBuf,
    /// `PREFIX/HOST`: where its witness is.
    pub root: String,
}

/// The largest segment fetched.
const FETCH_MAX: u64 = 512 << 20;

/// Fetches the recording at `url` (`s3://BUCKET/PREFIX/HOST/recordings/BASE/`,
/// as `ls --archive` prints it) from the configured bucket.
///
/// # Errors
///
/// Not such a URL, another bucket, nothing there, or the bucket fails.
pub fn fetch(config: &ArchiveConfig, url: &str) -> Result<Fetched> {
    let (folder, root, base) = super::remote::locate(config, url)?;
    let (folder, base) = (folder.as_str(), base.as_str());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(config, std::time::Duration::from_secs(20))?;
        let scratch = Scratch::new()?;
        let keys = store.keys_under(&format!("{folder}/")).await?;
        if keys.is_empty() {
            return Err(crate::Failure::new(
                tether_proto::ErrorCode::NoSuchSession,
                format!("{url}: nothing archived there"),
            )
            .into());
        }
        for key in keys {
            let name = key.filename().unwrap_or_default().to_owned();
            // Segments only: not strays named like one (`.0.cast`).
            let Some(file) =
                name.strip_suffix(".zst").filter(|_| super::is_segment_object(base, &name))
            else {
                continue;
            };
            let packed = store.read_path(&key, FETCH_MAX).await?.unwrap_or_default();
            let decoder = zstd::stream::read::Decoder::new(&packed[..]).context("not zstd")?;
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(decoder, FETCH_MAX), &mut data)
                .with_context(|| format!("{key}: does not decompress"))?;
            // The uploader writes the SHA-256 of every segment: one without
            // it is not the uploader's.
            let sha = store
                .sha256_of(&key)
                .await?
                .with_context(|| format!("{key}: no SHA-256 metadata"))?;
            anyhow::ensure!(
                sha == sha256_hex(&data),
                "{key}: its content does not match its SHA-256 metadata"
            );
            let path = scratch.path().join(file);
            std::fs::write(&path, &data)?;
        }
        let base_path = scratch.path().join(base);
        anyhow::ensure!(base_path.exists(), "{url}: segment 0 is not in the bucket (yet)");
        Ok(Fetched { scratch, base: base_path, root })
    })
}

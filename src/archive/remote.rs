//! An archived recording read in place, with range requests: `replay`,
//! `export` and `grep` of an `s3://…` recording fetch the frames they read
//! (a seek reads the seek index and keyframes first), never the whole
//! recording for a moment near its end.
//!
//! Each segment object is in zstd's seekable format (`src/archive/seekable.rs`):
//! its seek table says which bytes of the object hold which bytes of the
//! segment. An object without a table (shipped by an earlier tether) is
//! read whole once. Every frame is checked against its zstd content
//! checksum; the SHA-256 of whole segments and the signed chain are what
//! `verify s3://…` checks, reading everything.

use super::Store;
use super::seekable::{self, Frame};
use crate::config::ArchiveConfig;
use anyhow::{Context, Result};
use object_store::path::Path as Key;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tether_proto::record::segment;

/// The most object bytes one range request asks for: a reader that reads
/// on where it stopped gets more frames at a time, up to this, so that
/// reading a recording through costs few requests; a seek starts again
/// from one frame.
const READ_AHEAD: u64 = 4 << 20;

/// The largest object read whole (one without a seek table), compressed
/// and not.
const WHOLE_MAX: u64 = 512 << 20;

/// The most decompressed bytes one request's frames may hold.
const PLAIN_AHEAD: u64 = 8 << 20;

/// A recording's folder in the bucket.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    store: Store,
    /// `PREFIX/HOST/recordings/BASE`.
    folder: String,
    /// The objects in it: file name (without `.zst`) → object size.
    objects: HashMap<String, u64>,
    /// Objects without a seek table, once read whole.
    whole: std::sync::Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("folder", &self.folder).finish_non_exhaustive()
    }
}

/// Where the recording at `url` (`s3://BUCKET/PREFIX/HOST/recordings/BASE/`,
/// as `ls --archive` prints it) is: its folder, `PREFIX/HOST` and `BASE`.
///
/// # Errors
///
/// Not such a URL, or another bucket than the configured one.
pub fn locate(config: &ArchiveConfig, url: &str) -> Result<(String, String, String)> {
    let (bucket, _) = config.bucket_and_prefix().map_err(crate::Failure::invalid)?;
    let rest = url.strip_prefix(&format!("s3://{bucket}/")).ok_or_else(|| {
        crate::Failure::invalid(format!("{url}: not in the configured bucket s3://{bucket}/"))
    })?;
    let folder = rest.trim_end_matches('/');
    let (root, base) = folder
        .rsplit_once("/recordings/")
        .filter(|(_, b)| segment::parse_name(b).is_some_and(|p| p.segment == 0) && !b.contains('/'))
        .ok_or_else(|| {
            crate::Failure::invalid(format!(
                "{url}: not a recording's folder (…/HOST/recordings/NAME-STAMP.cast/)"
            ))
        })?;
    Ok((folder.to_owned(), root.to_owned(), base.to_owned()))
}

impl Remote {
    /// The recording at `url`: its folder listed once. Returns it, the
    /// path its segment 0 goes by (`s3://…/BASE/BASE`), and the file names
    /// in the folder.
    ///
    /// # Errors
    ///
    /// As [`locate`]; nothing archived there; the bucket fails.
    pub fn open(config: &ArchiveConfig, url: &str) -> Result<(Arc<Remote>, PathBuf, Vec<String>)> {
        let (folder, _, base) = locate(config, url)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let store = Store::open(config, std::time::Duration::from_secs(20))?;
        let listed = runtime.block_on(store.objects_under(&format!("{folder}/")))?;
        let objects: HashMap<String, u64> = listed
            .into_iter()
            .filter_map(|o| {
                let name = o.location.filename()?.strip_suffix(".zst")?.to_owned();
                Some((name, o.size))
            })
            .collect();
        if !objects.contains_key(&base) {
            return Err(crate::Failure::new(
                tether_proto::ErrorCode::NoSuchSession,
                format!("{url}: segment 0 is not in the bucket (yet)"),
            )
            .into());
        }
        let (bucket, _) = config.bucket_and_prefix().map_err(crate::Failure::invalid)?;
        let path = PathBuf::from(format!("s3://{bucket}/{folder}/{base}"));
        let names = objects.keys().cloned().collect();
        let whole = std::sync::Mutex::new(HashMap::new());
        Ok((Arc::new(Remote { runtime, store, folder, objects, whole }), path, names))
    }

    /// The file `path` names (by its file name) as a seekable reader.
    ///
    /// # Errors
    ///
    /// `NotFound` when no such object is in the folder; the bucket fails.
    pub fn open_file(self: &Arc<Self>, path: &Path) -> io::Result<RemoteFile> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(&size) = self.objects.get(name) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{name}: not archived")));
        };
        let key = Key::from(format!("{}/{name}.zst", self.folder));
        RemoteFile::open(self.clone(), name, key, size).map_err(io::Error::other)
    }
}

/// One archived file, decompressed as it is read.
pub struct RemoteFile {
    remote: Arc<Remote>,
    key: Key,
    frames: Vec<Frame>,
    /// The file's length.
    len: u64,
    pos: u64,
    /// Decompressed bytes held: where they start in the file, and them.
    held: (u64, Arc<Vec<u8>>),
    /// Object bytes the next request may span beyond its first frame.
    ahead: u64,
}

impl RemoteFile {
    fn open(remote: Arc<Remote>, name: &str, key: Key, size: u64) -> Result<RemoteFile> {
        let store = &remote.store;
        let frames = if size >= seekable::FOOTER {
            let footer =
                remote.runtime.block_on(store.read_range(&key, size - seekable::FOOTER..size))?;
            match seekable::frames_in(&footer) {
                Some(n) => {
                    let table_len = seekable::table_len(n);
                    anyhow::ensure!(table_len <= size, "{key}: a damaged seek table");
                    let table =
                        remote.runtime.block_on(store.read_range(&key, size - table_len..size))?;
                    Some(
                        seekable::parse_table(&table, size)
                            .with_context(|| format!("{key}: a damaged seek table"))?,
                    )
                }
                None => None,
            }
        } else {
            None
        };
        let Some(frames) = frames else {
            // Shipped without a seek table: read whole, once per recording.
            let plain = remote.whole_object(name, &key)?;
            let len = plain.len() as u64;
            return Ok(RemoteFile {
                remote,
                key,
                frames: Vec::new(),
                len,
                pos: 0,
                held: (0, plain),
                ahead: 0,
            });
        };
        let len = frames.last().map_or(0, |f| f.plain_start + u64::from(f.plain_len));
        let held = (0, Arc::new(Vec::new()));
        Ok(RemoteFile { remote, key, frames, len, pos: 0, held, ahead: 0 })
    }

    /// Holds the frame that has byte `pos`, and (when reading on) those
    /// after it, fetched in one request.
    fn fetch(&mut self, pos: u64) -> Result<()> {
        let first = self.frames.partition_point(|f| f.plain_start + u64::from(f.plain_len) <= pos);
        let Some(start) = self.frames.get(first) else { return Ok(()) };
        let reading_on = pos == self.held.0 + self.held.1.len() as u64 && pos > 0;
        self.ahead = if reading_on { (self.ahead * 2).clamp(256 << 10, READ_AHEAD) } else { 0 };
        let mut last = first;
        while let Some(next) = self.frames.get(last + 1)
            && next.packed_start + u64::from(next.packed_len) - start.packed_start
                <= u64::from(start.packed_len) + self.ahead
            && next.plain_start + u64::from(next.plain_len) - start.plain_start <= PLAIN_AHEAD
        {
            last += 1;
        }
        let end = self.frames[last].packed_start + u64::from(self.frames[last].packed_len);
        let packed = self
            .remote
            .runtime
            .block_on(self.remote.store.read_range(&self.key, start.packed_start..end))?;
        let mut plain = Vec::new();
        for frame in &self.frames[first..=last] {
            let at = (frame.packed_start - start.packed_start) as usize;
            let bytes = &packed[at..at + frame.packed_len as usize];
            plain.extend(
                seekable::decompress_frame(bytes, frame)
                    .with_context(|| format!("{}: at byte {}", self.key, frame.plain_start))?,
            );
        }
        self.held = (start.plain_start, Arc::new(plain));
        Ok(())
    }
}

impl Remote {
    /// Object `name` (without a seek table) decompressed, read once.
    fn whole_object(&self, name: &str, key: &Key) -> Result<Arc<Vec<u8>>> {
        let mut whole = self.whole.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(plain) = whole.get(name) {
            return Ok(plain.clone());
        }
        let packed = self
            .runtime
            .block_on(self.store.read_path(key, WHOLE_MAX))?
            .with_context(|| format!("{key}: gone from the bucket"))?;
        let mut plain = Vec::new();
        zstd::stream::read::Decoder::new(&packed[..])
            .context("not zstd")?
            .take(WHOLE_MAX + 1)
            .read_to_end(&mut plain)
            .with_context(|| format!("{key}: does not decompress"))?;
        anyhow::ensure!(
            plain.len() as u64 <= WHOLE_MAX,
            "{key}: more than {WHOLE_MAX} bytes decompressed"
        );
        let plain = Arc::new(plain);
        whole.insert(name.to_owned(), plain.clone());
        Ok(plain)
    }
}

impl Read for RemoteFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let (start, held) = &self.held;
        if self.pos < *start || self.pos >= start + held.len() as u64 {
            self.fetch(self.pos).map_err(io::Error::other)?;
        }
        let (start, held) = &self.held;
        let at = usize::try_from(self.pos - start).map_err(io::Error::other)?;
        let Some(rest) = held.get(at..).filter(|r| !r.is_empty()) else {
            return Err(io::Error::other(format!(
                "{}: no frame holds byte {}",
                self.key, self.pos
            )));
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RemoteFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::other("a seek before the start"))?;
        Ok(self.pos)
    }
}

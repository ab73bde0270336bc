//! Reading recordings: finding them, walking their lines across segments,
//! and the commands built on that ([`verify`], [`export`], [`grep`],
//! [`replay`]).

pub mod cmdlog;
pub mod export;
pub mod grep;
pub mod replay;
pub mod seek;
pub mod timespec;
pub mod verify;

use crate::Failure;
use crate::paths::Paths;
use crate::session::Registry;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tether_proto::record::index::{self, IndexEntry};
use tether_proto::record::keyframe::{self, Keyframe};
use tether_proto::record::segment::{self, Sibling, segment_path};
use tether_proto::record::v3::{Decoder, Header, Line, parse_header};
use tether_proto::record::{Event, EventData};
use tether_proto::{SessionInfo, SessionName};

/// One recording: its segments, in order.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The first segment.
    pub base: PathBuf,
    /// The segments that are read, in order from the first: every one up
    /// to the first missing number.
    pub segments: Vec<PathBuf>,
    /// The first segment's header.
    pub header: Header,
    /// The session it belongs to, if known.
    pub session: Option<SessionInfo>,
    /// Segment numbers missing below the last segment present.
    pub missing: Vec<u32>,
    /// Segments present after the first missing one (never read: the
    /// readers stop at the gap with an error).
    pub after_gap: Vec<PathBuf>,
    /// Files named like segments of this recording with a number tether
    /// never writes (`.0.cast`, `.01.cast`): not part of it.
    pub strays: Vec<PathBuf>,
    /// What must outlive the files (the scratch directory of a copy
    /// fetched from the archive, removed with its last holder).
    pub held: Option<std::sync::Arc<crate::archive::fleet::Scratch>>,
    /// Where the files are read.
    pub source: Source,
}

/// Where a recording's files are read: this host's files, or objects in
/// the archive read with range requests.
#[derive(Debug, Clone, Default)]
pub enum Source {
    /// Files on this host.
    #[default]
    Local,
    /// A recording's folder in the archive.
    Archive(std::sync::Arc<crate::archive::remote::Remote>),
}

/// A file as a reader can read and seek it.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

impl Source {
    /// Opens the file `path` names.
    ///
    /// # Errors
    ///
    /// It cannot be opened (or fetched).
    pub fn open(&self, path: &Path) -> std::io::Result<Box<dyn ReadSeek>> {
        Ok(match self {
            Source::Local => Box::new(File::open(path)?),
            Source::Archive(remote) => Box::new(remote.open_file(path)?),
        })
    }
}

/// The longest header line read.
const HEADER_MAX: u64 = 1 << 20;

/// A line as read, with where it is.
#[derive(Debug, Clone)]
pub struct RawLine {
    /// Segment number.
    pub seg: u32,
    /// 1-based line number within the segment's file.
    pub number: u64,
    /// Byte offset of the line's start within the segment's file.
    pub offset: u64,
    /// The text, without its newline.
    pub text: String,
    /// Whether the line ended with a newline. [`LineIter`] yields a line
    /// without one only at the very end of the last segment (what a crash
    /// mid-write leaves); anywhere else it is [`Damage`].
    pub complete: bool,
}

/// Damage in the layout of a recording's files, found by the one reader
/// every command uses ([`LineIter`]): `grep`, `export` and `replay` stop
/// with an error at it, and `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// A line without its newline before the end of the last segment.
    Torn {
        /// The segment.
        seg: u32,
        /// Its file.
        path: PathBuf,
        /// The line number in that file.
        line: u64,
        /// Where the torn line begins.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A segment without even a header, though another follows.
    Empty {
        /// The segment.
        seg: u32,
        /// Its file.
        path: PathBuf,
    },
    /// Segments missing below the last one present.
    Missing {
        /// Their numbers.
        missing: Vec<u32>,
        /// The segments present after the first missing one.
        after: Vec<PathBuf>,
    },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Torn { seg, path, line, offset, len } => write!(
                f,
                "segment {seg} ({}) has a torn line at byte {offset} (line {line}: {len} byte(s) without a newline), though segment {} follows",
                path.display(),
                seg + 1
            ),
            Damage::Empty { seg, path } => write!(
                f,
                "segment {seg} ({}) is empty, though segment {} follows",
                path.display(),
                seg + 1
            ),
            Damage::Missing { missing, after } => write!(
                f,
                "{} missing; {} after the gap: {}",
                plural_segments(missing),
                if after.len() == 1 { "this segment remains" } else { "these segments remain" },
                file_names(after)
            ),
        }
    }
}

impl std::error::Error for Damage {}

impl Damage {
    /// The error a reader stops with: a [`Failure`] (exit 2) for the
    /// human, with the damage itself as context for `verify`.
    fn into_error(self, base: &Path) -> anyhow::Error {
        let failure = Failure::invalid(format!(
            "{}: the recording is damaged: {self} (tether verify tells more)",
            base.display()
        ));
        anyhow::Error::new(failure).context(self)
    }
}

/// "segment 2", "segments 2, 4".
pub fn plural_segments(numbers: &[u32]) -> String {
    let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
    match list.len() {
        1 => format!("segment {}", list[0]),
        _ => format!("segments {}", list.join(", ")),
    }
}

/// The file names of `paths`, comma-separated.
pub fn file_names(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    names.join(", ")
}

/// The files beside a base: which segments are there, and strays.
#[derive(Debug, Default)]
struct Layout {
    segments: Vec<PathBuf>,
    missing: Vec<u32>,
    after_gap: Vec<PathBuf>,
    strays: Vec<PathBuf>,
}

/// The directory a path's file is in.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The file names in `dir` (`None` if it cannot be listed).
fn list_dir(dir: &Path) -> Option<Vec<String>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect())
}

impl Layout {
    /// The segments of `base` among `names` (its directory's listing), or
    /// found one by one when the directory cannot be listed.
    fn of(base: &Path, names: Option<&[String]>) -> Layout {
        let mut layout = Layout { segments: vec![base.to_owned()], ..Layout::default() };
        let (Some(names), Some(base_name)) = (names, base.file_name().and_then(|n| n.to_str()))
        else {
            for n in 1.. {
                let next = segment_path(base, n);
                if !next.exists() {
                    break;
                }
                layout.segments.push(next);
            }
            return layout;
        };
        let mut present = BTreeSet::new();
        for name in names {
            match segment::sibling(base_name, name) {
                Some(Sibling::Segment(n)) if n > 0 => {
                    present.insert(n);
                }
                Some(Sibling::Stray) => layout.strays.push(base.with_file_name(name)),
                _ => {}
            }
        }
        layout.strays.sort();
        let mut next = 1;
        while present.contains(&next) {
            layout.segments.push(segment_path(base, next));
            next += 1;
        }
        if let Some(&last) = present.last() {
            layout.missing = (next..last).filter(|n| !present.contains(n)).collect();
            layout.after_gap = present.range(next..).map(|n| segment_path(base, *n)).collect();
        }
        layout
    }
}

impl Recording {
    /// Opens the recording whose first segment is `base`, finding its
    /// other segments (and any gap in their numbers) in its directory.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not start with an asciicast v3 header.
    pub fn open(base: &Path) -> Result<Recording> {
        let names = list_dir(dir_of(base));
        Self::open_among(base, names.as_deref(), Source::Local)
    }

    /// The archived recording at `url` (`s3://…`, as `ls --archive` prints
    /// it), read in place with range requests.
    ///
    /// # Errors
    ///
    /// Not such a URL; nothing archived there; the bucket fails.
    pub fn open_archived(config: &crate::config::ArchiveConfig, url: &str) -> Result<Recording> {
        let (remote, base, names) = crate::archive::remote::Remote::open(config, url)?;
        Self::open_among(&base, Some(&names), Source::Archive(remote))
    }

    /// [`Recording::open`] with the directory already listed.
    fn open_among(base: &Path, names: Option<&[String]>, source: Source) -> Result<Recording> {
        let file = source.open(base).with_context(|| format!("opening {}", base.display()))?;
        let mut first = String::new();
        // A header is a few hundred bytes: a file without a newline is not
        // read to its end (one planted in the archive could be huge).
        BufReader::new(file.take(HEADER_MAX)).read_line(&mut first)?;
        let header = parse_header(first.trim_end())
            .map_err(|e| Failure::invalid(format!("{}: {e}", base.display())))?;
        let layout = Layout::of(base, names);
        Ok(Recording {
            base: base.to_owned(),
            segments: layout.segments,
            header,
            session: None,
            missing: layout.missing,
            after_gap: layout.after_gap,
            strays: layout.strays,
            held: None,
            source,
        })
    }

    /// The session's name, from the header.
    pub fn session_name(&self) -> String {
        self.header
            .tether
            .as_ref()
            .map(|t| t.session.clone())
            .or_else(|| self.header.title.clone())
            .unwrap_or_else(|| self.base.display().to_string())
    }

    /// When the recording started.
    pub fn started(&self) -> Option<jiff::Timestamp> {
        if let Some(t) = &self.header.tether
            && let Ok(ts) = t.started.parse()
        {
            return Some(ts);
        }
        self.header.timestamp.and_then(|s| jiff::Timestamp::from_second(s).ok())
    }

    /// Every line of every segment, headers included, in order; ends with
    /// an error at [`Damage`].
    pub fn lines(&self) -> LineIter {
        LineIter {
            base: self.base.clone(),
            segments: self.segments.clone(),
            source: self.source.clone(),
            seg: 0,
            reader: None,
            number: 0,
            offset: 0,
            gap: self.gap(),
            done: false,
        }
    }

    /// The damage at the end of the segments that are read, if any.
    fn gap(&self) -> Option<Damage> {
        (!self.after_gap.is_empty()).then(|| Damage::Missing {
            missing: self.missing.clone(),
            after: self.after_gap.clone(),
        })
    }

    /// Lines from `pos` in segment `seg` on (a seek).
    ///
    /// # Errors
    ///
    /// The segment cannot be opened.
    pub fn lines_from(&self, seg: u32, pos: u64) -> Result<LineIter> {
        let path = self.segments.get(seg as usize).context("no such segment")?;
        let mut file = self.source.open(path)?;
        file.seek(SeekFrom::Start(pos))?;
        Ok(LineIter {
            base: self.base.clone(),
            segments: self.segments.clone(),
            source: self.source.clone(),
            seg: seg as usize,
            reader: Some(BufReader::new(file)),
            // Line numbers after a seek are not known; they only matter to
            // verify, which never seeks.
            number: 1,
            offset: pos,
            gap: self.gap(),
            done: false,
        })
    }

    /// Events with absolute times, across segments (headers and comments
    /// skipped, undecodable lines and [`Damage`] reported).
    pub fn events(&self) -> EventIter {
        EventIter { lines: self.lines(), decoder: Decoder::new() }
    }

    /// The seek index (`.idx` sidecar), if any.
    pub fn index(&self) -> Vec<IndexEntry> {
        read_sidecar(&self.source, &index::path(&self.base), |l| IndexEntry::decode(l).ok())
    }

    /// The keyframes (`.keys` sidecar), if any.
    pub fn keyframes(&self) -> Vec<Keyframe> {
        read_sidecar(&self.source, &keyframe::path(&self.base), |l| Keyframe::decode(l).ok())
    }
}

/// The lines of a sidecar that `decode` accepts (none if it is missing).
fn read_sidecar<T>(source: &Source, path: &Path, decode: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let Ok(file) = source.open(path) else { return Vec::new() };
    BufReader::new(file).lines().map_while(Result::ok).filter_map(|l| decode(&l)).collect()
}

/// Iterates the lines of a recording's segments: the one reader behind
/// every command, so that `verify` and the others cannot disagree about
/// what a recording holds. A line without its newline is yielded only at
/// the very end of the last segment; anywhere else, and at a gap in the
/// segments, it ends with an error carrying the [`Damage`].
pub struct LineIter {
    base: PathBuf,
    segments: Vec<PathBuf>,
    source: Source,
    seg: usize,
    reader: Option<BufReader<Box<dyn ReadSeek>>>,
    number: u64,
    offset: u64,
    gap: Option<Damage>,
    done: bool,
}

impl LineIter {
    fn fail(&mut self, damage: Damage) -> Option<Result<RawLine>> {
        self.done = true;
        Some(Err(damage.into_error(&self.base)))
    }
}

impl Iterator for LineIter {
    type Item = Result<RawLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self.reader.is_none() {
                let Some(path) = self.segments.get(self.seg) else {
                    self.done = true;
                    return self.gap.take().and_then(|d| self.fail(d));
                };
                match self.source.open(path) {
                    Ok(f) => self.reader = Some(BufReader::new(f)),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e.into()));
                    }
                }
                self.number = 0;
                self.offset = 0;
            }
            let reader = self.reader.as_mut()?;
            let mut buf = Vec::new();
            let last = self.seg + 1 >= self.segments.len();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    if self.number == 0 && !last {
                        let path = self.segments[self.seg].clone();
                        return self.fail(Damage::Empty { seg: self.seg as u32, path });
                    }
                    self.reader = None;
                    self.seg += 1;
                }
                Ok(n) => {
                    self.number += 1;
                    let offset = self.offset;
                    self.offset += n as u64;
                    let complete = buf.last() == Some(&b'\n');
                    if complete {
                        buf.pop();
                    } else if !last {
                        // Only a crash mid-write leaves a torn line, and
                        // only at the very end of the recording (at a gap,
                        // the gap is the news).
                        let path = self.segments[self.seg].clone();
                        let (seg, line, len) = (self.seg as u32, self.number, n as u64);
                        return self.fail(Damage::Torn { seg, path, line, offset, len });
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    return Some(Ok(RawLine {
                        seg: self.seg as u32,
                        number: self.number,
                        offset,
                        text,
                        complete,
                    }));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

/// Iterates events with absolute times.
pub struct EventIter {
    lines: LineIter,
    decoder: Decoder,
}

impl EventIter {
    /// Continues from a seek: `lines` from an index position, the decoder
    /// at that position's time.
    pub fn resume(lines: LineIter, time: f64) -> Self {
        EventIter { lines, decoder: Decoder::at(time) }
    }
}

impl Iterator for EventIter {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(e) => return Some(Err(e)),
            };
            // The torn end of an interrupted recording is not a line (and
            // verify does not count it either).
            if !line.complete {
                continue;
            }
            // A segment's header (its first line) is not an event.
            if line.number == 1 && line.text.starts_with('{') {
                continue;
            }
            match self.decoder.line(&line.text) {
                Ok(Line::Event(e)) => return Some(Ok(e)),
                Ok(_) => continue,
                Err(e) => {
                    return Some(Err(Failure::invalid(format!(
                        "segment {} line {}: {e}",
                        line.seg, line.number
                    ))
                    .into()));
                }
            }
        }
    }
}

/// The output bytes of an event, if it is output.
pub fn output_bytes(data: &EventData) -> Option<&[u8]> {
    match data {
        EventData::Output(s) => Some(s.as_bytes()),
        EventData::Bytes(b) => Some(b),
        _ => None,
    }
}

/// Resolves a TARGET: a file (a path that exists, or anything with a `/`
/// or ending in `.cast`) or a session name (its recording).
///
/// # Errors
///
/// No such file or session (exit 3), or a session without a recording.
pub fn resolve(paths: &Paths, target: &str) -> Result<Recording> {
    let path = Path::new(target);
    if path.is_file() || target.contains('/') || target.ends_with(".cast") {
        if !path.is_file() {
            return Err(Failure::new(
                tether_proto::ErrorCode::NoSuchSession,
                format!("no such recording: {target}"),
            )
            .into());
        }
        let mut rec = Recording::open(path)?;
        rec.session = session_of(paths, &rec);
        return Ok(rec);
    }
    resolve_session(paths, target)
}

/// The recording of the session named `target`; nothing else is looked
/// up (no file of that name is looked for).
///
/// # Errors
///
/// Not a session name (2), no such session (3), not recorded (2).
pub fn resolve_session(paths: &Paths, target: &str) -> Result<Recording> {
    let name =
        SessionName::new(target).map_err(|e| Failure::invalid(format!("{target:?}: {e}")))?;
    let info = Registry::new(paths.clone()).require(&name)?;
    let Some(recording) = info.recording_path.clone() else {
        return Err(Failure::invalid(format!("session {name} is not recorded")).into());
    };
    let mut rec = Recording::open(Path::new(&recording))?;
    rec.session = Some(info);
    Ok(rec)
}

/// The session record that owns `rec`, if it still exists: the record of
/// the session its header names or its file name names, whichever gives
/// this very file as its `recording_path` (a recording copied over
/// another's file is found through the latter, and verify tells).
fn session_of(paths: &Paths, rec: &Recording) -> Option<SessionInfo> {
    let ours = std::fs::canonicalize(&rec.base).ok()?;
    let by_header = rec.header.tether.as_ref().map(|t| t.session.clone());
    let file = rec.base.file_name().and_then(|n| n.to_str());
    let by_name = file.and_then(segment::parse_name).map(|n| n.session.to_owned());
    let registry = Registry::new(paths.clone());
    [by_header, by_name].into_iter().flatten().find_map(|name| {
        let name = SessionName::new(&name).ok()?;
        let info = registry.get(&name).ok()??;
        let theirs = std::fs::canonicalize(info.recording_path.as_ref()?).ok()?;
        (ours == theirs).then_some(info)
    })
}

/// Every recording under the recordings directory (first segments only).
///
/// # Errors
///
/// The directory cannot be read.
pub fn all(paths: &Paths) -> Result<Vec<Recording>> {
    let dir = paths.recordings_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let names: Vec<String> =
        entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect();
    let mut out = Vec::new();
    for name in &names {
        if segment::parse_name(name).is_none_or(|s| s.segment != 0) {
            continue;
        }
        match Recording::open_among(&dir.join(name), Some(&names), Source::Local) {
            Ok(mut rec) => {
                rec.session = session_of(paths, &rec);
                out.push(rec);
            }
            Err(e) => tracing::warn!("skipping {name}: {e:#}"),
        }
    }
    out.sort_by(|a, b| a.base.cmp(&b.base));
    Ok(out)
}

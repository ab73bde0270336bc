//! Reading recordings: finding them, walking their lines across segments,
//! and the commands built on that ([`verify`], [`export`], [`grep`],
//! [`replay`]).

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
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tether_proto::record::index::{self, IndexEntry};
use tether_proto::record::keyframe::{self, Keyframe};
use tether_proto::record::segment::{self, segment_path};
use tether_proto::record::v3::{Decoder, Header, Line, parse_header};
use tether_proto::record::{Event, EventData};
use tether_proto::{SessionInfo, SessionName};

/// One recording: its segments, in order.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The first segment.
    pub base: PathBuf,
    /// Every segment, the first included.
    pub segments: Vec<PathBuf>,
    /// The first segment's header.
    pub header: Header,
    /// The session it belongs to, if known.
    pub session: Option<SessionInfo>,
}

/// A line as read, with where it is.
#[derive(Debug, Clone)]
pub struct RawLine {
    /// Segment number.
    pub seg: u32,
    /// 1-based line number within the segment's file.
    pub number: u64,
    /// The text, without its newline.
    pub text: String,
    /// Whether the line ended with a newline (a torn last line does not).
    pub complete: bool,
}

impl Recording {
    /// Opens the recording whose first segment is `base`.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not start with an asciicast v3 header.
    pub fn open(base: &Path) -> Result<Recording> {
        let file = File::open(base).with_context(|| format!("opening {}", base.display()))?;
        let mut first = String::new();
        BufReader::new(file).read_line(&mut first)?;
        let header = parse_header(first.trim_end())
            .map_err(|e| Failure::invalid(format!("{}: {e}", base.display())))?;
        let mut segments = vec![base.to_owned()];
        for n in 1.. {
            let next = segment_path(base, n);
            if !next.exists() {
                break;
            }
            segments.push(next);
        }
        Ok(Recording { base: base.to_owned(), segments, header, session: None })
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

    /// Every line of every segment, headers included, in order.
    pub fn lines(&self) -> LineIter {
        LineIter { segments: self.segments.clone(), seg: 0, reader: None, number: 0 }
    }

    /// Lines from `pos` in segment `seg` on (a seek).
    ///
    /// # Errors
    ///
    /// The segment cannot be opened.
    pub fn lines_from(&self, seg: u32, pos: u64) -> Result<LineIter> {
        let path = self.segments.get(seg as usize).context("no such segment")?;
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(pos))?;
        Ok(LineIter {
            segments: self.segments.clone(),
            seg: seg as usize,
            reader: Some(BufReader::new(file)),
            // Line numbers after a seek are not known; they only matter to
            // verify, which never seeks.
            number: 1,
        })
    }

    /// Events with absolute times, across segments (headers and comments
    /// skipped, undecodable lines reported).
    pub fn events(&self) -> EventIter {
        EventIter { lines: self.lines(), decoder: Decoder::new() }
    }

    /// The seek index (`.idx` sidecar), if any.
    pub fn index(&self) -> Vec<IndexEntry> {
        read_sidecar(&index::path(&self.base), |l| IndexEntry::decode(l).ok())
    }

    /// The keyframes (`.keys` sidecar), if any.
    pub fn keyframes(&self) -> Vec<Keyframe> {
        read_sidecar(&keyframe::path(&self.base), |l| Keyframe::decode(l).ok())
    }
}

/// The lines of a sidecar that `decode` accepts (none if it is missing).
fn read_sidecar<T>(path: &Path, decode: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let Ok(file) = File::open(path) else { return Vec::new() };
    BufReader::new(file).lines().map_while(Result::ok).filter_map(|l| decode(&l)).collect()
}

/// Iterates the lines of a recording's segments.
pub struct LineIter {
    segments: Vec<PathBuf>,
    seg: usize,
    reader: Option<BufReader<File>>,
    number: u64,
}

impl Iterator for LineIter {
    type Item = Result<RawLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.reader.is_none() {
                let path = self.segments.get(self.seg)?;
                match File::open(path) {
                    Ok(f) => self.reader = Some(BufReader::new(f)),
                    Err(e) => return Some(Err(e.into())),
                }
                self.number = 0;
            }
            let reader = self.reader.as_mut()?;
            let mut buf = Vec::new();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    self.reader = None;
                    self.seg += 1;
                }
                Ok(_) => {
                    self.number += 1;
                    let complete = buf.last() == Some(&b'\n');
                    if complete {
                        buf.pop();
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    return Some(Ok(RawLine {
                        seg: self.seg as u32,
                        number: self.number,
                        text,
                        complete,
                    }));
                }
                Err(e) => return Some(Err(e.into())),
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
            // A segment's header (its first line) is not an event.
            if line.number == 1 && line.text.starts_with('{') {
                continue;
            }
            match self.decoder.line(&line.text) {
                Ok(Line::Event(e)) => return Some(Ok(e)),
                Ok(_) => continue,
                // A torn last line (a crash mid-write) is simply the end.
                Err(_) if !line.complete => return None,
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

/// The session record that owns `rec`, if it still exists.
fn session_of(paths: &Paths, rec: &Recording) -> Option<SessionInfo> {
    let name = SessionName::new(&rec.header.tether.as_ref()?.session).ok()?;
    let info = Registry::new(paths.clone()).get(&name).ok()??;
    let ours = std::fs::canonicalize(&rec.base).ok()?;
    let theirs = std::fs::canonicalize(info.recording_path.as_ref()?).ok()?;
    (ours == theirs).then_some(info)
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
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if segment::parse_name(&name).is_none_or(|s| s.segment != 0) {
            continue;
        }
        match Recording::open(&entry.path()) {
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

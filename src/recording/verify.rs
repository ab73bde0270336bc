//! `tether verify` for recordings: replays the hash chain, checks every
//! checkpoint's signature and what it vouches for, and says what kind of
//! damage it found first.
//!
//! Verdicts: `intact` (the signed end is there and everything before it
//! checks), `live` (the keeper is still writing; intact up to the last
//! checkpoint), `interrupted` (the keeper died, or its recorder thread
//! did and the session record says so; intact up to the last
//! checkpoint), `truncated` (the session record says it ended later than
//! the file does), and the damage kinds `modified`, `deleted`, `inserted`,
//! `reordered`, `bad_signature`, `malformed`, plus `untrusted` when the
//! signing key is not the trusted one, `replaced` and `renamed` when the
//! file is not the recording its session record or its name say it is.
//! Only `intact` exits 0.
//!
//! It reads with the same reader as every other command
//! ([`super::LineIter`]): what stops `grep` or `export` with an error (a
//! torn line before the last segment, a gap in the segments) is damage
//! here, so a recording that verifies is all that the others read.

use super::{Damage, RawLine, Recording, file_names, plural_segments};
use crate::session::lock::is_held;
use anyhow::Result;
use russh::keys::PublicKey;
use russh::keys::ssh_encoding::Decode;
use russh::keys::ssh_key::SshSig;
use serde::Serialize;
use tether_proto::SessionState;
use tether_proto::record::chain::{Chain, unhex32};
use tether_proto::record::segment;
use tether_proto::record::v3::{Decoder, Line};
use tether_proto::record::{Checkpoint, SIG_NAMESPACE, TetherHeader, base64};

/// How much later than its file name's stamp a header's `started` may be:
/// builds before the header took the stamp wrote the recorder's own start,
/// a moment after the session's.
const STARTED_SLACK_SECONDS: i64 = 10;

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The first segment.
    pub path: String,
    /// Segments read.
    pub segments: u32,
    /// `SHA256:…` of the key the header names.
    pub key: Option<String>,
    /// Whether that is the trusted key.
    pub trusted: bool,
    /// Where trust came from (`--key FILE` or this host's key).
    pub trusted_key: Option<String>,
    /// The verdict (see the module docs).
    pub status: String,
    /// One sentence for the human.
    pub message: String,
    /// Event lines vouched for by a valid checkpoint.
    pub vouched_lines: u64,
    /// Seconds of recording vouched for.
    pub vouched_until: f64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Where the first problem is: segment, line, time.
    pub first_bad: Option<Place>,
    /// Segment numbers missing: below the last segment present, or (when
    /// the recording has no signed end) after it where the seek index
    /// names them.
    pub missing_segments: Vec<u32>,
    /// Segments present after the first missing one (no reader reads them).
    pub unread_segments: Vec<String>,
    /// Files that are not part of the recording: strays named like its
    /// segments, segments after its signed end.
    pub extra_files: Vec<String>,
    /// The recording has no signed end and what can be read ends exactly
    /// at this signed checkpoint (its `seq`): cut there.
    pub cut_at_checkpoint: Option<u64>,
    /// The comparison with the archive's witness, when an archive is
    /// configured (docs/ARCHIVE.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<crate::archive::witness::WitnessReport>,
}

/// A place in a recording.
#[derive(Debug, Clone, Serialize)]
pub struct Place {
    /// Segment.
    pub segment: u32,
    /// Line in that segment's file (1-based).
    pub line: u64,
    /// Seconds since the start (of the last good event before it).
    pub time: f64,
    /// Byte offset of the line's start in that segment's file.
    pub offset: u64,
}

impl Report {
    /// Whether the recording is fully intact.
    pub fn ok(&self) -> bool {
        self.status == "intact"
    }
}

/// Where what was read ends ([`Walk::cut`]): a sentence, and the
/// checkpoint it ends at exactly, if it does.
type Cut = (String, Option<u64>);

struct Walk<'a> {
    rec: &'a Recording,
    session: String,
    key: Option<&'a PublicKey>,
    chain: Option<Chain>,
    decoder: Decoder,
    span_start: Place,
    report: Report,
    next_seq: u64,
    ended: Option<Checkpoint>,
    unvouched: u64,
    /// Segment 0's part of the header: every segment's must agree.
    first: Option<TetherHeader>,
    /// No event line yet since this segment's header: the next checkpoint
    /// (the one tether writes right after each header) vouches for the
    /// header alone.
    fresh_header: Option<u32>,
    /// The current span began at this segment's header.
    header_span: Option<u32>,
    /// This segment's header does not continue the chain where the
    /// segment before it ended: its header's place, that end, and
    /// [`Walk::cut`] there.
    discontinuity: Option<(Place, Option<Place>, Cut)>,
    /// The last valid checkpoint: its `seq` and place.
    last_checkpoint: Option<(u64, Place)>,
    /// The last complete line.
    last_line: Option<Place>,
    /// A torn last line (ignored): where, and its length.
    torn: Option<(Place, usize)>,
}

/// Verifies `rec` against `trusted` (the key to trust, and where it came from).
///
/// # Errors
///
/// A segment cannot be read.
pub fn verify(rec: &Recording, trusted: Option<(PublicKey, String)>) -> Result<Report> {
    let key_fp = rec.header.tether.as_ref().map(|t| t.key.clone());
    let is_trusted = match (&trusted, &key_fp) {
        (Some((k, _)), Some(fp)) => crate::keys::fingerprint(k) == *fp,
        _ => false,
    };
    let shown = |paths: &[std::path::PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.display().to_string()).collect()
    };
    let report = Report {
        path: rec.base.display().to_string(),
        segments: rec.segments.len() as u32,
        key: key_fp.clone(),
        trusted: is_trusted,
        trusted_key: trusted.as_ref().map(|(_, from)| from.clone()),
        status: String::new(),
        message: String::new(),
        vouched_lines: 0,
        vouched_until: 0.0,
        checkpoints: 0,
        first_bad: None,
        missing_segments: rec.missing.clone(),
        unread_segments: shown(&rec.after_gap),
        extra_files: shown(&rec.strays),
        cut_at_checkpoint: None,
        witness: None,
    };
    let start = Place { segment: 0, line: 1, time: 0.0, offset: 0 };
    let mut walk = Walk {
        rec,
        session: rec.session_name(),
        key: trusted.as_ref().filter(|_| is_trusted).map(|(k, _)| k),
        chain: None,
        decoder: Decoder::new(),
        span_start: start,
        report,
        next_seq: 1,
        ended: None,
        unvouched: 0,
        first: None,
        fresh_header: None,
        header_span: None,
        discontinuity: None,
        last_checkpoint: None,
        last_line: None,
        torn: None,
    };
    if rec.header.tether.is_none() {
        return Ok(walk.fail("malformed", "not a tether recording: it has no hash chain", None));
    }
    if key_fp.is_some() && !is_trusted {
        let why = match &trusted {
            Some((k, from)) => format!(
                "signed by {}, which is not the trusted key {} ({from})",
                key_fp.as_deref().unwrap_or("?"),
                crate::keys::fingerprint(k)
            ),
            None => "no trusted key to check against (give --key PUBFILE)".to_owned(),
        };
        return Ok(walk.fail("untrusted", &why, None));
    }
    // The very reader grep, export and replay use: what it stops at with
    // an error, verify reports.
    for line in rec.lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => match e.downcast_ref::<Damage>() {
                Some(damage) => return Ok(walk.damage(damage)),
                None => return Err(e),
            },
        };
        if let Some(report) = walk.step(&line) {
            return Ok(report);
        }
    }
    Ok(walk.conclude())
}

/// Whether the header's `started` fits the file name's stamp.
fn started_fits(named: &str, header: &str) -> bool {
    match (named.parse::<jiff::Timestamp>(), header.parse::<jiff::Timestamp>()) {
        (Ok(n), Ok(h)) => (0..=STARTED_SLACK_SECONDS).contains(&(h.as_second() - n.as_second())),
        _ => named == header,
    }
}

/// Whether the recording is the one its file name and its session record
/// say it is: `replaced` (a session record names this file, but it holds
/// another recording) or `renamed` (named `NAME-STAMP.cast` after another
/// session or start than its header's).
fn identity(rec: &Recording) -> Option<(&'static str, String)> {
    let t = rec.header.tether.as_ref()?;
    let file = rec.base.file_name().and_then(|n| n.to_str());
    let named = file.and_then(segment::parse_name).and_then(|n| {
        let started = segment::stamp_time(n.stamp)?;
        Some((n.session.to_owned(), started))
    });
    let name_fits = named.as_ref().is_none_or(|(session, started)| {
        *session == t.session && started_fits(started, &t.started)
    });
    let holds = format!("session {}'s recording started {}", t.session, t.started);
    if let Some(s) = &rec.session
        && (s.name.as_str() != t.session || !name_fits)
    {
        return Some((
            "replaced",
            format!(
                "session {}'s record names {} as its recording, but the file holds {holds}",
                s.name,
                rec.base.display()
            ),
        ));
    }
    match named {
        Some((session, started)) if !name_fits => Some((
            "renamed",
            format!(
                "the file is named as session {session}'s recording started {started}, but holds {holds}"
            ),
        )),
        _ => None,
    }
}

impl Walk<'_> {
    fn fail(mut self, status: &str, message: &str, at: Option<Place>) -> Report {
        self.report.status = status.to_owned();
        self.report.message = message.to_owned();
        self.report.first_bad = at;
        self.report
    }

    fn place(&self, line: &RawLine) -> Place {
        Place {
            segment: line.seg,
            line: line.number,
            time: self.decoder.time(),
            offset: line.offset,
        }
    }

    /// One line; `Some` ends the walk with a verdict.
    fn step(&mut self, line: &RawLine) -> Option<Report> {
        let at = self.place(line);
        if !line.complete {
            // Only ever the very end of the last segment (the reader
            // makes sure): what a crash mid-write leaves.
            if self.ended.is_some() {
                let msg = format!(
                    "{} byte(s) after the signed end, at segment {} byte {}",
                    line.text.len(),
                    line.seg,
                    line.offset
                );
                return Some(self.clone_fail("inserted", &msg, at));
            }
            self.torn = Some((at, line.text.len()));
            return None;
        }
        if line.number == 1 {
            let verdict = self.segment_header(line);
            self.last_line = Some(at);
            return verdict;
        }
        if self.ended.is_some() {
            return Some(self.clone_fail("inserted", "lines after the signed end", at));
        }
        self.last_line = Some(at.clone());
        match self.decoder.line(&line.text) {
            Ok(Line::Event(_)) => {
                if let Some(chain) = self.chain.as_mut() {
                    chain.push(line.text.as_bytes());
                }
                self.unvouched += 1;
                self.fresh_header = None;
                None
            }
            Ok(Line::Checkpoint(cp)) => self.checkpoint(cp, line, false),
            Ok(Line::End(cp)) => self.checkpoint(cp, line, true),
            // tether writes no other comment: one was inserted.
            Ok(Line::Comment) => {
                let shown: String = line.text.chars().take(60).collect();
                let msg = format!(
                    "segment {} line {} is a comment line, which tether never writes: {shown:?}",
                    line.seg, line.number
                );
                Some(self.clone_fail("inserted", &msg, at))
            }
            Err(e) => Some(self.clone_fail(
                "modified",
                &format!("line {} is not a valid event ({e})", line.number),
                at,
            )),
        }
    }

    fn clone_fail(&mut self, status: &str, message: &str, at: Place) -> Report {
        let mut r = self.report.clone();
        r.status = status.to_owned();
        r.message = message.to_owned();
        r.first_bad = Some(at);
        r
    }

    fn segment_path(&self, seg: u32) -> String {
        self.rec
            .segments
            .get(seg as usize)
            .map_or_else(|| format!("segment {seg}"), |p| p.display().to_string())
    }

    fn segment_header(&mut self, line: &RawLine) -> Option<Report> {
        let at = self.place(line);
        let seg = line.seg;
        if self.ended.is_some() {
            let path = self.segment_path(seg);
            self.report.extra_files.push(path.clone());
            let msg = format!("segment {seg} ({path}) follows the signed end");
            return Some(self.clone_fail("inserted", &msg, at));
        }
        let header = match tether_proto::record::v3::parse_header(&line.text) {
            Ok(h) => h,
            Err(e) => {
                let msg = format!("the header of segment {seg} is not a header: {e}");
                return Some(self.clone_fail("modified", &msg, at));
            }
        };
        let Some(tether) = header.tether else {
            let msg = format!("the header of segment {seg} has no tether part: it was changed");
            return Some(self.clone_fail("modified", &msg, at));
        };
        if seg == 0 {
            if tether.segment != 0 || tether.prev.is_some() {
                let msg = format!(
                    "{} holds segment {} of its recording, not segment 0",
                    self.segment_path(0),
                    tether.segment
                );
                return Some(self.clone_fail("reordered", &msg, at));
            }
            self.chain = Some(Chain::start(line.text.as_bytes()));
            self.first = Some(tether);
        } else {
            let first = self.first.as_ref()?;
            if tether.session != first.session
                || tether.started != first.started
                || tether.key != first.key
            {
                let msg = format!(
                    "segment {seg} ({}) belongs to another recording: session {}'s started {} (this one is session {}'s started {})",
                    self.segment_path(seg),
                    tether.session,
                    tether.started,
                    first.session,
                    first.started
                );
                return Some(self.clone_fail("replaced", &msg, at));
            }
            if tether.segment != seg {
                let msg = format!(
                    "{} holds segment {}, not segment {seg}",
                    self.segment_path(seg),
                    tether.segment
                );
                return Some(self.clone_fail("reordered", &msg, at));
            }
            let chain = self.chain.as_ref()?;
            let Some(prev) = tether.prev.as_deref().and_then(unhex32) else {
                let msg = format!("the header of segment {seg} was changed: it has no valid prev");
                return Some(self.clone_fail("modified", &msg, at));
            };
            if prev != chain.head() {
                // The segment before was cut (or rolled back), or this
                // header was changed: the next checkpoint tells which.
                self.discontinuity = Some((at.clone(), self.last_line.clone(), self.cut()));
            }
            self.chain = Some(Chain::resume(&prev, chain.lines(), line.text.as_bytes()));
        }
        self.fresh_header = Some(seg);
        self.header_span = Some(seg);
        self.span_start = at;
        None
    }

    /// Where what was read ends, for a recording without its end: "cut at
    /// checkpoint N (…)" when exactly at a signed checkpoint (and that
    /// checkpoint's `seq`), else how much after the last one is unvouched.
    fn cut(&self) -> Cut {
        let torn = match &self.torn {
            Some((at, len)) => format!(
                "; a torn last line ({len} bytes at segment {} byte {}) is ignored",
                at.segment, at.offset
            ),
            None => String::new(),
        };
        match &self.last_checkpoint {
            Some((seq, at)) if self.unvouched == 0 && self.torn.is_none() => (
                format!(
                    "cut at checkpoint {seq} (segment {} line {}, {:.3} s)",
                    at.segment, at.line, at.time
                ),
                Some(*seq),
            ),
            Some((seq, at)) => (
                format!(
                    "{} event line(s) after checkpoint {seq} (segment {} line {}) are unvouched{torn}",
                    self.unvouched, at.segment, at.line
                ),
                None,
            ),
            None => (format!("{} event line(s) before any checkpoint{torn}", self.unvouched), None),
        }
    }

    /// [`Walk::cut`], recorded in the report.
    fn record_cut(&mut self) -> String {
        let (text, seq) = self.cut();
        self.report.cut_at_checkpoint = seq;
        text
    }

    fn checkpoint(&mut self, cp: Checkpoint, line: &RawLine, end: bool) -> Option<Report> {
        let at = self.span_start.clone();
        let mine = self.chain.as_ref()?.peek();
        if let Some((header, before, (cut, cut_seq))) = self.discontinuity.take() {
            let seg = header.segment;
            let missing_lines = cp.lines.saturating_sub(mine.lines);
            let missing_checkpoints = cp.seq.saturating_sub(self.next_seq);
            let (status, msg, place) = if missing_checkpoints > 0 || missing_lines > 0 {
                self.report.cut_at_checkpoint = cut_seq;
                (
                    "deleted",
                    format!(
                        "segment {} ends early, {cut}: segment {seg} continues after {missing_lines} more event line(s) and {missing_checkpoints} checkpoint(s), which are missing",
                        seg - 1
                    ),
                    before.unwrap_or(header),
                )
            } else if cp.seq < self.next_seq || cp.lines < mine.lines {
                (
                    "inserted",
                    format!(
                        "segment {} has lines that segment {seg} does not continue from",
                        seg - 1
                    ),
                    before.unwrap_or(header),
                )
            } else {
                (
                    "modified",
                    format!(
                        "the header of segment {seg} was changed: its prev does not continue segment {}",
                        seg - 1
                    ),
                    header,
                )
            };
            return Some(self.clone_fail(status, &msg, place));
        }
        let kind = if cp.seq != self.next_seq {
            Some((
                "deleted",
                format!("checkpoint {} is missing before line {}", self.next_seq, line.number),
            ))
        } else if mine.lines < cp.lines {
            Some(("deleted", format!("{} event line(s) missing", cp.lines - mine.lines)))
        } else if mine.lines > cp.lines {
            Some(("inserted", format!("{} event line(s) added", mine.lines - cp.lines)))
        } else if mine.hash != cp.hash {
            if let Some(seg) = self.fresh_header {
                // The checkpoint right after a header vouches for it alone.
                let msg = format!(
                    "the header of segment {seg} (line 1) was changed: checkpoint {} on line {} vouches for another",
                    cp.seq, line.number
                );
                return Some(self.clone_fail("modified", &msg, at));
            }
            match self.header_span {
                // Recordings from builds that wrote no checkpoint after
                // the header: the chain cannot tell which.
                Some(seg) if mine.set == cp.set => Some((
                    "modified",
                    format!(
                        "the header of segment {seg}, or the order of the events after it, was changed"
                    ),
                )),
                _ if mine.set == cp.set => {
                    Some(("reordered", "events are out of order".to_owned()))
                }
                _ => Some(("modified", "events were changed".to_owned())),
            }
        } else {
            None
        };
        if let Some((status, why)) = kind {
            let msg = format!(
                "{why} between segment {} line {} and line {} (from {:.3} s)",
                at.segment, at.line, line.number, at.time
            );
            return Some(self.clone_fail(status, &msg, at));
        }
        if !self.signature_ok(&cp, end) {
            let here = self.place(line);
            return Some(self.clone_fail(
                "bad_signature",
                &format!(
                    "the checkpoint on segment {} line {} is not validly signed (modified)",
                    line.seg, line.number
                ),
                here,
            ));
        }
        if let Some(chain) = self.chain.as_mut() {
            chain.checkpoint();
        }
        self.next_seq += 1;
        self.unvouched = 0;
        self.fresh_header = None;
        self.header_span = None;
        self.report.checkpoints += 1;
        self.report.vouched_lines = cp.lines;
        self.report.vouched_until = self.decoder.time();
        let here = self.place(line);
        self.last_checkpoint = Some((cp.seq, here.clone()));
        self.span_start = Place { line: line.number + 1, ..here };
        if end {
            self.ended = Some(cp);
        }
        None
    }

    fn signature_ok(&self, cp: &Checkpoint, end: bool) -> bool {
        let Some(key) = self.key else { return false };
        let Some(bytes) = base64::decode(&cp.sig) else { return false };
        let Ok(sig) = SshSig::decode(&mut bytes.as_slice()) else { return false };
        key.verify(SIG_NAMESPACE, &cp.message(&self.session, end), &sig).is_ok()
    }

    /// The reader stopped at damage in the files' layout.
    fn damage(mut self, damage: &Damage) -> Report {
        let end = self.last_line.clone();
        match damage {
            Damage::Torn { seg, line, offset, .. } => {
                let at = Place {
                    segment: *seg,
                    line: *line,
                    time: self.decoder.time(),
                    offset: *offset,
                };
                let msg = format!(
                    "{damage}: bytes were added to it or it was cut, and every reader stops there"
                );
                self.fail("modified", &msg, Some(at))
            }
            Damage::Empty { seg, path } => {
                let at = Place { segment: *seg, line: 1, time: self.decoder.time(), offset: 0 };
                if self.ended.is_some() {
                    self.report.extra_files.push(path.display().to_string());
                    let msg = format!("segment {seg} ({}) follows the signed end", path.display());
                    return self.fail("inserted", &msg, Some(at));
                }
                let cut = self.record_cut();
                self.fail("deleted", &format!("{damage}; before it: {cut}"), Some(at))
            }
            Damage::Missing { missing, after } => {
                if self.ended.is_some() {
                    self.report.extra_files.extend(after.iter().map(|p| p.display().to_string()));
                    let msg = format!("{} follow the signed end", file_names(after));
                    return self.fail("inserted", &msg, end);
                }
                let cut = self.record_cut();
                let msg = format!(
                    "{} missing; before the gap: {cut}; {} after it: {}",
                    plural_segments(missing),
                    if after.len() == 1 { "this segment remains" } else { "these segments remain" },
                    file_names(after)
                );
                self.fail("deleted", &msg, end)
            }
        }
    }

    /// Segments the seek index names after the last one present (a
    /// recording whose keeper no longer writes it).
    fn tail_missing(&self) -> Vec<u32> {
        if !self.rec.after_gap.is_empty() {
            return Vec::new();
        }
        let present = self.rec.segments.len() as u32;
        let named = self.rec.index().iter().map(|e| e.seg).max().unwrap_or(0);
        (present..=named).collect()
    }

    /// The file is read: intact, or why not.
    fn conclude(mut self) -> Report {
        let vouched = format!(
            "intact up to {:.3} s ({} events, {} checkpoints)",
            self.report.vouched_until, self.report.vouched_lines, self.report.checkpoints
        );
        let rec = self.rec;
        let record = rec.session.as_ref();
        if let Some((status, msg)) = identity(rec) {
            let at = (self.ended.is_none()).then(|| self.span_start.clone());
            return self.fail(status, &msg, at);
        }
        if let Some(end) = &self.ended {
            if let Some(recorded) = record.and_then(|s| s.recording_end.as_ref())
                && (recorded.hash != end.hash || recorded.lines != end.lines)
            {
                let msg = format!(
                    "the file's end (checkpoint {}, {} events, head {:.12}…) does not match the session record's (checkpoint {}, {} events, head {:.12}…)",
                    end.seq, end.lines, end.hash, recorded.seq, recorded.lines, recorded.hash
                );
                return self.fail("truncated", &msg, None);
            }
            if !rec.strays.is_empty() {
                let msg = format!(
                    "the recording is whole, but files named like its segments are not part of it: {}",
                    file_names(&rec.strays)
                );
                return self.fail("inserted", &msg, None);
            }
            self.report.status = "intact".into();
            self.report.message = format!(
                "OK: {} events over {:.3} s, {} signed checkpoints, ended{}",
                end.lines,
                self.report.vouched_until,
                self.report.checkpoints,
                end.exit.map_or_else(String::new, |e| format!(" with exit status {e}"))
            );
            return self.report;
        }
        let at = Some(self.span_start.clone());
        let cut = self.record_cut();
        // A keeper that ended its session because its recorder thread died
        // recorded why: the file stopped short, like a keeper's death.
        let stopped_short =
            record.and_then(|s| s.end_reason.as_deref().filter(|_| s.recording_end.is_none()));
        let live = record.is_some_and(|s| s.state == SessionState::Running && keeper_alive(s));
        // While the keeper writes, the index may be ahead of the listing.
        let gone = if live { Vec::new() } else { self.tail_missing() };
        self.report.missing_segments.extend(&gone);
        let tail = match gone.as_slice() {
            [] => String::new(),
            _ => format!("; {} missing (the seek index names them)", plural_segments(&gone)),
        };
        match record {
            Some(s) if s.state == SessionState::Ended && stopped_short.is_none() => {
                let msg = match &s.recording_end {
                    Some(e) => format!(
                        "truncated: {cut}, after {} vouched events; the session record says the recording ended after {}{tail} ({vouched})",
                        self.report.vouched_lines, e.lines
                    ),
                    None => format!(
                        "truncated: the signed end is missing though the session ended: {cut}{tail} ({vouched})"
                    ),
                };
                self.fail("truncated", &msg, at)
            }
            _ if live => {
                let msg = format!(
                    "live (still being written): {vouched}; {} newer events not yet checkpointed",
                    self.unvouched
                );
                self.fail("live", &msg, at)
            }
            _ if !gone.is_empty() => {
                let msg = format!(
                    "{} missing (the seek index names them); what remains: {cut} ({vouched})",
                    plural_segments(&gone)
                );
                self.fail("deleted", &msg, at)
            }
            _ => {
                let msg = format!(
                    "interrupted ({}): {vouched}; {cut}",
                    stopped_short.unwrap_or("the keeper died"),
                );
                self.fail("interrupted", &msg, at)
            }
        }
    }
}

fn keeper_alive(s: &tether_proto::SessionInfo) -> bool {
    match crate::paths::Paths::from_env() {
        Ok(paths) => is_held(&paths.lock_file(&s.name)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &[u8] = include_bytes!("../../fuzz/seeds/recording.cast");
    const SEED_KEY: &str = include_str!("../../fuzz/seeds/signing_ed25519_key.pub");

    fn verify_as(name: &str, bytes: &[u8]) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let rec = Recording::open(&path).unwrap();
        let key = PublicKey::from_openssh(SEED_KEY.trim()).unwrap();
        verify(&rec, Some((key, "seed".into()))).unwrap()
    }

    /// A recording written by an earlier build (no checkpoint after its
    /// header, a `started` a moment after its name's stamp would be fine
    /// too) still verifies, under its own name or a name of no form.
    #[test]
    fn an_older_recording_still_verifies_under_its_name_or_another_form() {
        for name in ["seed-20261128T112200Z.cast", "seed-20261128T112159Z.cast", "copy.cast"] {
            let report = verify_as(name, SEED);
            assert_eq!(report.status, "intact", "{name}: {report:?}");
        }
        let report = verify_as("other-20261128T112200Z.cast", SEED);
        assert_eq!(report.status, "renamed", "{report:?}");
        assert!(report.message.contains("other") && report.message.contains("seed"));
        let report = verify_as("seed-20261128T122200Z.cast", SEED);
        assert_eq!(report.status, "renamed", "{report:?}");
    }

    /// In an older recording the first span's chain covers the header
    /// too: a changed header is a modified one, never "reordered".
    #[test]
    fn an_older_recordings_changed_header_is_modified() {
        let text = std::str::from_utf8(SEED).unwrap().replacen("\"cols\":80", "\"cols\":81", 1);
        let report = verify_as("copy.cast", text.as_bytes());
        assert_eq!(report.status, "modified", "{report:?}");
        assert!(report.message.contains("header of segment 0"), "{report:?}");
    }

    /// Torn lines: at the very end of an interrupted recording the torn
    /// line is ignored by verify and by the readers alike; after the end
    /// it is an insertion.
    #[test]
    fn a_torn_last_line_is_ignored_by_all_or_inserted_after_the_end() {
        let text = std::str::from_utf8(SEED).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Cut within the last event line before the end.
        let mut cut = lines[..lines.len() - 2].join("\n");
        cut.push('\n');
        cut.push_str(&lines[lines.len() - 2][..5]);
        let report = verify_as("copy.cast", cut.as_bytes());
        assert_eq!(report.status, "interrupted", "{report:?}");
        assert!(report.message.contains("torn last line"), "{report:?}");
        let report = verify_as("copy.cast", format!("{text}[0.1, \"o\", \"x\"]").as_bytes());
        assert_eq!(report.status, "inserted", "{report:?}");
        // The end line without its newline is no end.
        let report = verify_as("copy.cast", text.trim_end().as_bytes());
        assert_eq!(report.status, "interrupted", "{report:?}");
    }
}

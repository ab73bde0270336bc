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
//! signing key is not the trusted one. Only `intact` exits 0.

use super::{RawLine, Recording};
use crate::session::lock::is_held;
use anyhow::Result;
use russh::keys::PublicKey;
use russh::keys::ssh_encoding::Decode;
use russh::keys::ssh_key::SshSig;
use serde::Serialize;
use tether_proto::SessionState;
use tether_proto::record::chain::{Chain, unhex32};
use tether_proto::record::v3::{Decoder, Line};
use tether_proto::record::{Checkpoint, SIG_NAMESPACE, base64};

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
}

impl Report {
    /// Whether the recording is fully intact.
    pub fn ok(&self) -> bool {
        self.status == "intact"
    }
}

struct Walk<'a> {
    session: String,
    key: Option<&'a PublicKey>,
    chain: Option<Chain>,
    decoder: Decoder,
    last_good: Place,
    span_start: Place,
    report: Report,
    next_seq: u64,
    ended: Option<Checkpoint>,
    unvouched: u64,
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
    };
    let start = Place { segment: 0, line: 1, time: 0.0 };
    let mut walk = Walk {
        session: rec.session_name(),
        key: trusted.as_ref().filter(|_| is_trusted).map(|(k, _)| k),
        chain: None,
        decoder: Decoder::new(),
        last_good: start.clone(),
        span_start: start,
        report,
        next_seq: 1,
        ended: None,
        unvouched: 0,
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
    for line in rec.lines() {
        let line = line?;
        if let Some(report) = walk.step(&line) {
            return Ok(report);
        }
    }
    Ok(walk.conclude(rec))
}

impl Walk<'_> {
    fn fail(mut self, status: &str, message: &str, at: Option<Place>) -> Report {
        self.report.status = status.to_owned();
        self.report.message = message.to_owned();
        self.report.first_bad = at;
        self.report
    }

    fn place(&self, line: &RawLine) -> Place {
        Place { segment: line.seg, line: line.number, time: self.decoder.time() }
    }

    /// One line; `Some` ends the walk with a verdict.
    fn step(&mut self, line: &RawLine) -> Option<Report> {
        if line.number == 1 {
            return self.segment_header(line);
        }
        if self.ended.is_some() {
            let at = self.place(line);
            return Some(self.clone_fail("inserted", "lines after the signed end", at));
        }
        match self.decoder.line(&line.text) {
            Ok(Line::Event(_)) => {
                if let Some(chain) = self.chain.as_mut() {
                    chain.push(line.text.as_bytes());
                }
                self.unvouched += 1;
                None
            }
            Ok(Line::Checkpoint(cp)) => self.checkpoint(cp, line, false),
            Ok(Line::End(cp)) => self.checkpoint(cp, line, true),
            Ok(Line::Comment) => None,
            // A torn last line is what a crash leaves; the end decides.
            Err(_) if !line.complete => None,
            Err(e) => {
                let at = self.place(line);
                Some(self.clone_fail(
                    "modified",
                    &format!("line {} is not a valid event ({e})", line.number),
                    at,
                ))
            }
        }
    }

    fn clone_fail(&mut self, status: &str, message: &str, at: Place) -> Report {
        let mut r = self.report.clone();
        r.status = status.to_owned();
        r.message = message.to_owned();
        r.first_bad = Some(at);
        r
    }

    fn segment_header(&mut self, line: &RawLine) -> Option<Report> {
        let header = match tether_proto::record::v3::parse_header(&line.text) {
            Ok(h) => h,
            Err(e) => {
                let at = self.place(line);
                return Some(self.clone_fail(
                    "modified",
                    &format!("segment {} header: {e}", line.seg),
                    at,
                ));
            }
        };
        let tether = header.tether.clone()?;
        match (&self.chain, &tether.prev) {
            (None, None) if line.seg == 0 => self.chain = Some(Chain::start(line.text.as_bytes())),
            (Some(chain), Some(prev))
                if unhex32(prev) == Some(chain.head()) && tether.segment == line.seg =>
            {
                self.chain =
                    Some(Chain::resume(&chain.head(), chain.lines(), line.text.as_bytes()));
            }
            _ => {
                let at = self.place(line);
                return Some(self.clone_fail(
                    "reordered",
                    &format!("segment {} does not continue the segment before it", line.seg),
                    at,
                ));
            }
        }
        None
    }

    fn checkpoint(&mut self, cp: Checkpoint, line: &RawLine, end: bool) -> Option<Report> {
        let at = self.span_start.clone();
        let mine = self.chain.as_ref()?.peek();
        let kind = if cp.seq != self.next_seq {
            Some((
                "deleted",
                format!("checkpoint {} is missing before line {}", self.next_seq, line.number),
            ))
        } else if mine.lines < cp.lines {
            Some(("deleted", format!("{} event line(s) missing", cp.lines - mine.lines)))
        } else if mine.lines > cp.lines {
            Some(("inserted", format!("{} event line(s) added", mine.lines - cp.lines)))
        } else if mine.hash != cp.hash && mine.set == cp.set {
            Some(("reordered", "events are out of order".to_owned()))
        } else if mine.hash != cp.hash {
            Some(("modified", "events were changed".to_owned()))
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
        self.report.checkpoints += 1;
        self.report.vouched_lines = cp.lines;
        self.report.vouched_until = self.decoder.time();
        self.last_good = self.place(line);
        self.span_start = Place { line: line.number + 1, ..self.last_good.clone() };
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

    /// The file is read: intact, or why not.
    fn conclude(mut self, rec: &Recording) -> Report {
        let vouched = format!(
            "intact up to {:.3} s ({} events, {} checkpoints)",
            self.report.vouched_until, self.report.vouched_lines, self.report.checkpoints
        );
        let record = rec.session.as_ref();
        if let Some(end) = &self.ended {
            if let Some(recorded) = record.and_then(|s| s.recording_end.as_ref())
                && (recorded.hash != end.hash || recorded.lines != end.lines)
            {
                let msg = format!(
                    "the file's end does not match the session record's ({} vs {} events)",
                    end.lines, recorded.lines
                );
                return self.fail("truncated", &msg, None);
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
        // A keeper that ended its session because its recorder thread died
        // recorded why: the file stopped short, like a keeper's death.
        let stopped_short =
            record.and_then(|s| s.end_reason.as_deref().filter(|_| s.recording_end.is_none()));
        match record {
            Some(s) if s.state == SessionState::Ended && stopped_short.is_none() => {
                let msg = match &s.recording_end {
                    Some(e) => format!(
                        "truncated: the file ends after {} vouched events; the session record says the recording ended after {} ({vouched})",
                        self.report.vouched_lines, e.lines
                    ),
                    None => format!(
                        "truncated: the signed end is missing though the session ended ({vouched})"
                    ),
                };
                self.fail("truncated", &msg, at)
            }
            Some(s) if s.state == SessionState::Running && keeper_alive(s) => {
                let msg = format!(
                    "live (still being written): {vouched}; {} newer events not yet checkpointed",
                    self.unvouched
                );
                self.fail("live", &msg, at)
            }
            _ => {
                let msg = format!(
                    "interrupted ({}): {vouched}; {} events after the last checkpoint are unvouched",
                    stopped_short.unwrap_or("the keeper died"),
                    self.unvouched
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

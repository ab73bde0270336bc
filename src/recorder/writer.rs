//! The recording files: segments, the chain, checkpoints, the index and
//! keyframe sidecars, and recovery from refused writes.
//!
//! Lines are buffered and written in batches; the chain state that matches
//! the bytes on disk is kept apart (`committed`), so a failed write is
//! undone completely (the file is cut back to its last good length and the
//! chain rewound) and the loss is counted for the gap event.

use super::RecorderSpec;
use crate::clock::now_rfc3339;
use crate::signing::{SigHash, SigningKey};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tether_proto::record::chain::{Chain, hex};
use tether_proto::record::index::{self, IndexEntry};
use tether_proto::record::keyframe::{self, Keyframe};
use tether_proto::record::segment::{self, segment_path};
use tether_proto::record::split::{Piece, Splitter};
use tether_proto::record::v3::{Header, Term, encode_checkpoint, encode_event, encode_header};
use tether_proto::record::{
    Checkpoint, Event, EventData, Gap, SIG_NAMESPACE, TetherHeader, base64,
};

/// A checkpoint at least this often while events arrive (and the file is
/// fsynced with it), so a crash loses at most this much of the vouched span.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// …or after this many lines, whichever comes first: keeps the span a
/// failed verification points at small.
const CHECKPOINT_LINES: u64 = 500;

/// An index entry per this much output: seeking reads at most this much.
const INDEX_EVERY: u64 = 1 << 20;

/// Buffered bytes that trigger a write.
const FLUSH_AT: usize = 64 * 1024;

/// How often a failing disk is retried.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Output chunks whose read time is kept, to date a command event by the
/// output that held its mark.
const RECENT_CHUNKS: usize = 256;

/// The signed end of a finished recording.
#[derive(Debug, Clone)]
pub struct FinalHead {
    /// The end line's content.
    pub end: Checkpoint,
    /// Segments written.
    pub segments: u32,
}

/// Output lost while the disk refused writes.
#[derive(Debug, Clone, Copy)]
struct Loss {
    bytes: u64,
    events: u64,
    since: f64,
}

pub(super) struct Writer {
    session: String,
    base: PathBuf,
    key: SigningKey,
    key_fingerprint: String,
    segment_bytes: u64,
    command: String,
    term: String,
    cols: u16,
    rows: u16,
    start: Instant,
    started_wall: String,
    timestamp: i64,
    segment: u32,
    file: File,
    file_len: u64,
    buf: Vec<u8>,
    /// Output bytes and events in `buf`, for loss accounting.
    buf_out: u64,
    buf_events: u64,
    chain: Chain,
    committed: Chain,
    /// The number of the last checkpoint made, and of the last one the
    /// file holds: a checkpoint the disk refused is made again under the
    /// same number, so the numbering has no hole.
    seq: u64,
    committed_seq: u64,
    last_time: f64,
    committed_time: f64,
    last_checkpoint: Instant,
    splitter: Splitter,
    out_bytes: u64,
    committed_out: u64,
    /// Output received so far (chunks, as handed over), and when the
    /// latest chunks were read: where each ends, and its time.
    received: u64,
    recent: std::collections::VecDeque<(u64, Instant)>,
    next_index: u64,
    index: Option<File>,
    keys: Option<File>,
    loss: Option<Loss>,
    last_retry: Instant,
}

fn private_file(path: &Path, append: bool) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .mode(0o600)
        .open(path)
}

impl Writer {
    pub(super) fn create(spec: RecorderSpec, start: Instant) -> Result<Writer> {
        let dir = spec.path.parent().context("a recording has a directory")?;
        crate::fsutil::ensure_private_dir(dir)?;
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&spec.path)
            .with_context(|| format!("creating {}", spec.path.display()))?;
        // The start the file is named by (the session's), so that the
        // header and the name agree; a name of another form: now.
        let named = spec
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(segment::parse_name)
            .and_then(|n| segment::stamp_time(n.stamp))
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let now = named.unwrap_or_else(jiff::Timestamp::now);
        let key_fingerprint = spec.key.fingerprint();
        let mut w = Writer {
            session: spec.session,
            base: spec.path.clone(),
            key: spec.key,
            key_fingerprint,
            segment_bytes: spec.segment_bytes.max(64 * 1024),
            command: spec.command,
            term: spec.term,
            cols: spec.cols,
            rows: spec.rows,
            start,
            started_wall: crate::clock::format_rfc3339(now),
            timestamp: now.as_second(),
            segment: 0,
            file,
            file_len: 0,
            buf: Vec::new(),
            buf_out: 0,
            buf_events: 0,
            chain: Chain::start(b""),
            committed: Chain::start(b""),
            seq: 0,
            committed_seq: 0,
            last_time: 0.0,
            committed_time: 0.0,
            last_checkpoint: Instant::now(),
            splitter: Splitter::new(),
            out_bytes: 0,
            committed_out: 0,
            received: 0,
            recent: std::collections::VecDeque::new(),
            next_index: 0,
            index: private_file(&index::path(&spec.path), true).ok(),
            keys: private_file(&keyframe::path(&spec.path), true).ok(),
            loss: None,
            last_retry: Instant::now(),
        };
        w.begin_segment(None)?;
        Ok(w)
    }

    /// Writes the header of the current segment and starts its chain.
    fn begin_segment(&mut self, prev: Option<[u8; 32]>) -> Result<()> {
        let env = BTreeMap::from([
            ("TERM".to_owned(), self.term.clone()),
            ("SHELL".to_owned(), std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())),
        ]);
        let header = Header {
            version: 3,
            term: Term { cols: self.cols, rows: self.rows, kind: Some(self.term.clone()) },
            timestamp: Some(self.timestamp),
            command: Some(self.command.clone()),
            title: Some(self.session.clone()),
            env: Some(env),
            tether: Some(TetherHeader {
                format: 1,
                session: self.session.clone(),
                segment: self.segment,
                started: self.started_wall.clone(),
                key: self.key_fingerprint.clone(),
                prev: prev.map(|p| hex(&p)),
                offset: self.last_time,
            }),
        };
        let mut line = encode_header(&header);
        self.chain = match prev {
            None => Chain::start(line.as_bytes()),
            Some(p) => Chain::resume(&p, self.chain.lines(), line.as_bytes()),
        };
        line.push('\n');
        // A checkpoint of no events right after the header vouches for
        // the header alone: verify tells a changed header from reordered
        // events. One write, so a crash leaves both or neither.
        let (_, checkpoint) = self.signed_line(false, None);
        line.push_str(&checkpoint);
        self.file.write_all(line.as_bytes())?;
        self.file_len = line.len() as u64;
        self.committed = self.chain.clone();
        Ok(())
    }

    fn now(&self, at: Instant) -> f64 {
        // Never earlier than the last event: intervals stay non-negative.
        at.saturating_duration_since(self.start).as_secs_f64().max(self.last_time)
    }

    fn event(&mut self, time: f64, data: EventData, out: u64) {
        if self.loss.is_some() && !self.retry_due() {
            self.count_loss(out, 1, time);
            return;
        }
        if let Some(loss) = self.loss.take() {
            // Writes are being retried: the gap goes first.
            let gap = Gap { lost_bytes: loss.bytes, lost_events: loss.events, since: loss.since };
            self.push_line(Event { time, data: EventData::Gap(gap) }, 0);
            self.push_line(Event { time, data }, out);
            self.flush();
            return;
        }
        self.push_line(Event { time, data }, out);
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            || self.chain.peek().count >= CHECKPOINT_LINES
        {
            self.checkpoint();
        }
    }

    fn push_line(&mut self, event: Event, out: u64) {
        let line = encode_event(&event, self.last_time);
        self.last_time = event.time;
        self.chain.push(line.as_bytes());
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.push(b'\n');
        self.buf_out += out;
        self.buf_events += 1;
        self.out_bytes += out;
    }

    fn retry_due(&mut self) -> bool {
        if self.last_retry.elapsed() >= RETRY_EVERY {
            self.last_retry = Instant::now();
            return true;
        }
        false
    }

    fn count_loss(&mut self, bytes: u64, events: u64, since: f64) {
        let loss = self.loss.get_or_insert(Loss { bytes: 0, events: 0, since });
        loss.bytes += bytes;
        loss.events += events;
        self.out_bytes += bytes;
    }

    /// Output lost before it reached the recorder (a stalled queue).
    pub(super) fn lost(&mut self, bytes: u64, events: u64) {
        // Still output the keeper counted (commands' `out` counts it).
        self.received += bytes;
        let time = self.now(Instant::now());
        self.count_loss(bytes, events, time);
    }

    pub(super) fn degraded(&self) -> bool {
        self.loss.is_some()
    }

    pub(super) fn output(&mut self, chunk: &[u8], at: Instant) {
        self.received += chunk.len() as u64;
        self.recent.push_back((self.received, at));
        if self.recent.len() > RECENT_CHUNKS {
            self.recent.pop_front();
        }
        let time = self.now(at);
        for piece in self.splitter.split(chunk) {
            match piece {
                Piece::Text(t) => {
                    let n = t.len() as u64;
                    self.event(time, EventData::Output(t), n);
                }
                Piece::Bytes(b) => {
                    let n = b.len() as u64;
                    self.event(time, EventData::Bytes(b), n);
                }
            }
        }
    }

    pub(super) fn tty_mode(&mut self, onlcr: bool, at: Instant) {
        let time = self.now(at);
        self.event(time, EventData::TtyMode { onlcr }, 0);
    }

    pub(super) fn input(&mut self, text: String, at: Instant) {
        let time = self.now(at);
        self.event(time, EventData::Input(text), 0);
    }

    pub(super) fn resize(&mut self, cols: u16, rows: u16, at: Instant) {
        (self.cols, self.rows) = (cols, rows);
        let time = self.now(at);
        self.event(time, EventData::Resize { cols, rows }, 0);
    }

    pub(super) fn marker(&mut self, label: String, at: Instant) {
        let time = self.now(at);
        self.event(time, EventData::Marker(label), 0);
    }

    /// A command event: at the time of the output that held its mark (the
    /// parser finds marks a little after the reader read them), if that
    /// output is recent enough to be known.
    pub(super) fn command(&mut self, command: tether_proto::record::Command, at: Instant) {
        let read = command
            .out
            .and_then(|out| self.recent.iter().find(|(end, _)| *end >= out).map(|(_, t)| *t));
        let time = self.now(read.unwrap_or(at));
        self.event(time, EventData::Command(command), 0);
    }

    pub(super) fn keyframe(&mut self, frame: &Keyframe) {
        if let Some(keys) = self.keys.as_mut() {
            let _ = writeln!(keys, "{}", frame.encode());
        }
    }

    /// Nothing arrived for a while: checkpoint whatever is unvouched.
    pub(super) fn idle(&mut self) {
        if self.loss.is_some()
            && self.retry_due()
            && let Some(loss) = self.loss.take()
        {
            {
                let time = self.now(Instant::now());
                let gap =
                    Gap { lost_bytes: loss.bytes, lost_events: loss.events, since: loss.since };
                self.push_line(Event { time, data: EventData::Gap(gap) }, 0);
            }
        }
        if self.chain.peek().count > 0 {
            self.checkpoint();
        } else {
            self.flush();
        }
    }

    /// Writes the buffer. On failure the file and the chain go back to the
    /// last good state and the buffered events count as lost.
    pub(super) fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let result = self.write_buf();
        match result {
            Ok(()) => {
                self.file_len += self.buf.len() as u64;
                self.committed = self.chain.clone();
                self.committed_seq = self.seq;
                self.committed_time = self.last_time;
                self.committed_out = self.out_bytes;
                self.buf.clear();
                self.buf_out = 0;
                self.buf_events = 0;
                self.write_index();
                self.rotate_if_full();
                true
            }
            Err(e) => {
                tracing::warn!("recording {}: {e}; recording degraded", self.base.display());
                let _ = self.file.set_len(self.file_len);
                let (bytes, events, since) = (self.buf_out, self.buf_events, self.committed_time);
                self.chain = self.committed.clone();
                self.seq = self.committed_seq;
                self.last_time = self.committed_time;
                self.out_bytes = self.committed_out;
                self.buf.clear();
                self.buf_out = 0;
                self.buf_events = 0;
                self.count_loss(bytes, events, since);
                self.last_retry = Instant::now();
                false
            }
        }
    }

    fn write_buf(&mut self) -> std::io::Result<()> {
        #[cfg(feature = "test-hooks")]
        if let Some(flag) = std::env::var_os("TETHER_TEST_FAIL_RECORDING")
            && Path::new(&flag).exists()
        {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(self.file_len))?;
        self.file.write_all(&self.buf)
    }

    fn write_index(&mut self) {
        if self.out_bytes < self.next_index {
            return;
        }
        self.next_index = self.out_bytes + INDEX_EVERY;
        let entry = IndexEntry {
            seg: self.segment,
            pos: self.file_len,
            line: self.committed.lines(),
            time: self.committed_time,
            out: self.committed_out,
        };
        if let Some(index) = self.index.as_mut() {
            let _ = writeln!(index, "{}", entry.encode());
        }
    }

    /// A checkpoint now, returned (for captures); `None` if the disk refuses.
    pub(super) fn checkpoint_now(&mut self) -> Option<Checkpoint> {
        self.last_checkpoint = Instant::now();
        if !self.flush() {
            return None;
        }
        let (checkpoint, line) = self.signed_line(false, None);
        self.buf.extend_from_slice(line.as_bytes());
        if !self.flush() {
            return None;
        }
        let _ = self.file.sync_data();
        Some(checkpoint)
    }

    /// Signs the chain's state into a comment line and makes it durable.
    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if !self.flush() {
            return;
        }
        let (_, line) = self.signed_line(false, None);
        self.buf.extend_from_slice(line.as_bytes());
        if self.flush() {
            let _ = self.file.sync_data();
        }
    }

    /// The next checkpoint (or, with `end`, the end), signed, and its line
    /// with the newline.
    fn signed_line(&mut self, end: bool, exit: Option<i32>) -> (Checkpoint, String) {
        self.seq += 1;
        let link = self.chain.checkpoint();
        let mut cp = Checkpoint {
            seq: self.seq,
            lines: link.lines,
            count: link.count,
            set: link.set,
            hash: link.hash,
            time: self.last_time,
            wall: now_rfc3339(),
            exit,
            sig: String::new(),
        };
        let message = cp.message(&self.session, end);
        cp.sig = base64::encode(&self.key.sshsig(SIG_NAMESPACE, SigHash::Sha256, &message));
        let line = encode_checkpoint(&cp, end) + "\n";
        (cp, line)
    }

    fn rotate_if_full(&mut self) {
        if self.file_len < self.segment_bytes {
            return;
        }
        let (_, line) = self.signed_line(false, None);
        if self.file.write_all(line.as_bytes()).is_err() {
            // Not rotated: the segment stays as it was, and the
            // checkpoint is made again, under the same number, later.
            let _ = self.file.set_len(self.file_len);
            self.chain = self.committed.clone();
            self.seq = self.committed_seq;
            return;
        }
        let _ = self.file.sync_data();
        let prev = self.chain.head();
        let next = segment_path(&self.base, self.segment + 1);
        match private_file(&next, false) {
            Ok(file) => {
                self.segment += 1;
                self.file = file;
                if let Err(e) = self.begin_segment(Some(prev)) {
                    tracing::error!("starting segment {}: {e}", next.display());
                }
                self.next_index = 0;
                self.write_index();
            }
            Err(e) => tracing::warn!("cannot start {}: {e}; the segment grows on", next.display()),
        }
    }

    /// The end: remaining bytes, the exit, the signed end line, fsync.
    pub(super) fn finish(mut self, exit: Option<i32>) -> Option<FinalHead> {
        let time = self.now(Instant::now());
        // A last attempt at writing what a failing disk refused.
        if let Some(loss) = self.loss.take() {
            let gap = Gap { lost_bytes: loss.bytes, lost_events: loss.events, since: loss.since };
            self.push_line(Event { time, data: EventData::Gap(gap) }, 0);
        }
        if let Some(Piece::Bytes(b)) = self.splitter.finish() {
            let n = b.len() as u64;
            self.push_line(Event { time, data: EventData::Bytes(b) }, n);
        }
        if let Some(code) = exit {
            self.push_line(Event { time, data: EventData::Exit(code) }, 0);
        }
        if !self.flush() {
            return None;
        }
        let (end, line) = self.signed_line(true, exit);
        self.buf.extend_from_slice(line.as_bytes());
        if !self.flush() {
            return None;
        }
        let _ = self.file.sync_all();
        Some(FinalHead { end, segments: self.segment + 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::{Recording, verify};

    #[test]
    fn a_checkpoint_the_disk_refuses_leaves_no_hole_in_the_numbering() {
        // Found by the disk-full test under load: the events fit, the
        // checkpoint line after them did not, and the next checkpoint
        // skipped its number; verify then reported a deleted checkpoint.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.cast");
        let key = SigningKey::generate().unwrap();
        let public = russh::keys::PublicKey::from_openssh(&key.public_openssh()).unwrap();
        let start = Instant::now();
        let mut w = Writer::create(RecorderSpec::for_test(path.clone(), key), start).unwrap();
        w.output(b"one\r\n", start);
        assert!(w.flush(), "the events are written");
        // The disk refuses the checkpoint line (a read-only handle fails
        // every write as a full disk would).
        let writable = std::mem::replace(&mut w.file, File::open(&path).unwrap());
        w.checkpoint();
        assert!(w.degraded());
        w.file = writable;
        w.last_retry = Instant::now() - RETRY_EVERY;
        w.output(b"two\r\n", start);
        w.idle();
        assert!(!w.degraded(), "recovered");
        w.finish(Some(0)).expect("a signed end");
        let trusted = Some((public, "test".into()));
        let report = verify::verify(&Recording::open(&path).unwrap(), trusted).unwrap();
        assert_eq!(report.status, "intact", "{report:?}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("two"), "{text}");
    }
}

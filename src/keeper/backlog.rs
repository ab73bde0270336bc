//! The backlog between the PTY reader and the screen model.
//!
//! The terminal emulator is the slowest stage of the keeper (about a
//! million short lines a second), far slower than a PTY can deliver. If the
//! reader fed it directly, a job printing fast would be slowed to the
//! emulator's pace. Instead the reader only appends each read here and goes
//! back to the PTY; the parser thread catches up in its own time.
//!
//! Memory stays bounded: up to [`MEMORY_MAX`] bytes wait in memory; beyond
//! that, reads go to a spill file (unlinked as soon as it is created, so a
//! crash leaves nothing behind) until the parser has drained it. Order is
//! kept: once spilling starts, every read goes to the file until the file
//! is empty again. Only if the spill file cannot be written (disk full) does
//! the reader wait for the parser, so nothing is ever dropped.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Output kept in memory for the parser; more goes to the spill file.
///
/// 4 MiB is a few seconds of the emulator's slowest pace, so ordinary
/// bursts never touch the disk, and it costs nothing while idle.
pub const MEMORY_MAX: usize = 4 << 20;

/// The most the parser takes from the spill file at once.
const SPILL_READ: usize = 64 * 1024;

#[derive(Default)]
struct Inner {
    memory: VecDeque<Bytes>,
    memory_bytes: usize,
    spill: Option<Spill>,
    /// The reader saw the end of the PTY: nothing more will be pushed.
    closed: bool,
    /// Bytes lost with an unreadable spill file, not yet reported to the
    /// parser (it counts them, so that its position still matches the
    /// reader's).
    skipped: u64,
}

struct Spill {
    file: File,
    /// Bytes in the file.
    written: u64,
    /// Bytes of the file already taken by the parser.
    read: u64,
    /// Spilled bytes not yet written to the file (they follow the file's):
    /// one write per [`SPILL_WRITE`] instead of one per PTY read.
    buffer: Vec<u8>,
}

/// Spilled output is written to the file in pieces of this size.
const SPILL_WRITE: usize = 64 * 1024;

/// An ordered, bounded-memory queue of PTY reads.
pub struct Backlog {
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Where spill files are created.
    dir: PathBuf,
}

impl Backlog {
    /// A backlog spilling into `dir` when needed.
    pub fn new(dir: &Path) -> Self {
        Backlog { inner: Mutex::default(), changed: Condvar::new(), dir: dir.to_owned() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Updates are single steps; a panicking holder leaves nothing half-done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one read. Never blocks unless memory is full and the spill
    /// file cannot be written.
    pub fn push(&self, chunk: Bytes) {
        let mut inner = self.lock();
        loop {
            if inner.spill.is_none() && inner.memory_bytes + chunk.len() <= MEMORY_MAX {
                inner.memory_bytes += chunk.len();
                inner.memory.push_back(chunk);
                break;
            }
            if self.spill(&mut inner, &chunk) {
                break;
            }
            // The disk refused: wait for the parser to make room in memory.
            inner = self.changed.wait(inner).unwrap_or_else(PoisonError::into_inner);
        }
        drop(inner);
        self.changed.notify_all();
    }

    fn spill(&self, inner: &mut Inner, chunk: &[u8]) -> bool {
        if inner.spill.is_none() {
            match open_spill(&self.dir) {
                Ok(file) => {
                    inner.spill = Some(Spill { file, written: 0, read: 0, buffer: Vec::new() });
                }
                Err(e) => {
                    tracing::warn!("cannot create a spill file: {e}");
                    return false;
                }
            }
        }
        let Some(spill) = inner.spill.as_mut() else { return false };
        if spill.buffer.len() + chunk.len() <= SPILL_WRITE {
            spill.buffer.extend_from_slice(chunk);
            return true;
        }
        match spill.file.write_all_at(&spill.buffer, spill.written) {
            Ok(()) => {
                spill.written += spill.buffer.len() as u64;
                spill.buffer.clear();
                spill.buffer.extend_from_slice(chunk);
                true
            }
            Err(e) => {
                tracing::warn!("spilling output to disk: {e}");
                false
            }
        }
    }

    /// No more reads will come (the PTY is closed).
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The next read in order; `None` once closed and empty.
    pub fn pop(&self) -> Option<Bytes> {
        let mut inner = self.lock();
        loop {
            if let Some(chunk) = inner.memory.pop_front() {
                inner.memory_bytes -= chunk.len();
                drop(inner);
                self.changed.notify_all();
                return Some(chunk);
            }
            let spilling = inner.spill.is_some();
            let spilled = take_spilled(&mut inner);
            if spilling {
                // Room in the file's place: a reader whose spill write
                // failed waits for this (for memory, once the file is gone).
                self.changed.notify_all();
            }
            if spilled.is_some() {
                return spilled;
            }
            if inner.closed {
                return None;
            }
            inner = self.changed.wait(inner).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Bytes lost since the last call because the spill file could not be
    /// read back (0 unless the disk failed).
    pub fn take_skipped(&self) -> u64 {
        std::mem::take(&mut self.lock().skipped)
    }

    /// Bytes waiting for the parser (memory and spill file).
    pub fn pending(&self) -> u64 {
        let inner = self.lock();
        inner.memory_bytes as u64
            + inner.spill.as_ref().map_or(0, |s| s.written - s.read + s.buffer.len() as u64)
    }
}

/// Reads the next piece of the spill file (then of its unwritten buffer);
/// drops the file once drained.
fn take_spilled(inner: &mut Inner) -> Option<Bytes> {
    let spill = inner.spill.as_mut()?;
    if spill.read == spill.written {
        if !spill.buffer.is_empty() {
            let rest = std::mem::take(&mut spill.buffer);
            spill.written += rest.len() as u64;
            spill.read = spill.written;
            return Some(Bytes::from(rest));
        }
        inner.spill = None;
        return None;
    }
    let len = (spill.written - spill.read).min(SPILL_READ as u64) as usize;
    let mut buf = vec![0; len];
    match spill.file.read_exact_at(&mut buf, spill.read) {
        Ok(()) => {
            spill.read += len as u64;
            Some(Bytes::from(buf))
        }
        Err(e) => {
            // Unreadable spill: the screen misses that part; say so loudly.
            let lost = spill.written - spill.read + spill.buffer.len() as u64;
            tracing::error!("reading back spilled output: {e}; {lost} bytes skipped");
            inner.skipped += lost;
            inner.spill = None;
            None
        }
    }
}

/// A private file in `dir`, unlinked at once.
fn open_spill(dir: &Path) -> std::io::Result<File> {
    crate::fsutil::ensure_private_dir(dir).map_err(std::io::Error::other)?;
    let path = dir.join(format!("spill-{}-{}", std::process::id(), rand_suffix()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_memory_and_spill() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backlog::new(dir.path());
        let chunk = |i: u32| Bytes::from(vec![(i % 251) as u8; 100_000]);
        for i in 0..100 {
            b.push(chunk(i));
        }
        assert!(b.pending() >= 10_000_000);
        // Memory stayed bounded; the rest went to disk.
        assert!(b.lock().memory_bytes <= MEMORY_MAX);
        assert!(b.lock().spill.is_some());
        b.close();
        let mut all = Vec::new();
        while let Some(c) = b.pop() {
            all.extend_from_slice(&c);
        }
        let want: Vec<u8> = (0..100).flat_map(|i| chunk(i).to_vec()).collect();
        assert_eq!(all.len(), want.len());
        assert!(all == want, "order kept");
        assert_eq!(b.pending(), 0);
        // The spill file was unlinked from the start.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_reader_waiting_for_a_full_disk_wakes_when_the_spill_drains() {
        // Regression: a reader whose spill write failed waited for a wake-up
        // that only came from taking output out of memory; after the parser
        // had drained the spill file, both waited forever.
        let dir = tempfile::tempdir().unwrap();
        let b = std::sync::Arc::new(Backlog::new(dir.path()));
        for _ in 0..(MEMORY_MAX / 100_000 + 2) {
            b.push(Bytes::from(vec![b'x'; 100_000]));
        }
        // Spilling has begun; make the next spill write fail.
        {
            let mut inner = b.lock();
            let spill = inner.spill.as_mut().unwrap();
            spill.buffer = vec![b'y'; SPILL_WRITE];
            let read_only = std::fs::File::open(dir.path()).unwrap();
            spill.file = read_only;
        }
        // The parser has taken everything from memory; what is left is in
        // the (now broken) spill.
        while !b.lock().memory.is_empty() {
            b.pop().unwrap();
        }
        let reader = {
            let b = b.clone();
            std::thread::spawn(move || b.push(Bytes::from_static(b"last")))
        };
        // Let the reader fail its spill write and wait (a wait that cannot
        // be observed from outside; without it the test could pass by luck).
        std::thread::sleep(std::time::Duration::from_millis(200));
        // The parser finds the spill unreadable and drops it; the reader's
        // push then gets through.
        let (done, finished) = std::sync::mpsc::channel();
        let parser = b.clone();
        std::thread::spawn(move || {
            while !parser.pop().unwrap().ends_with(b"last") {}
            let _ = done.send(());
        });
        let waited = finished.recv_timeout(std::time::Duration::from_secs(20));
        assert!(waited.is_ok(), "the reader and the parser wait for each other");
        reader.join().unwrap();
        assert!(b.take_skipped() > 0, "the unreadable spill is counted");
    }

    #[test]
    fn a_waiting_parser_wakes_up() {
        let dir = tempfile::tempdir().unwrap();
        let b = std::sync::Arc::new(Backlog::new(dir.path()));
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.pop());
        b.push(Bytes::from_static(b"x"));
        assert_eq!(t.join().unwrap().as_deref(), Some(&b"x"[..]));
    }
}

//! Throughput and memory measurements.

use crate::alloc::live_bytes;
use crate::emu::Emulator;
use crate::utf8::Utf8Carry;
use crate::workload::{COLS, ROWS, SCROLLBACK, Stream};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs per measurement; the best one counts.
pub const RUNS: usize = 3;

/// MB/s with MB = 10^6 bytes.
pub fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn best_of(mut run: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| run()).min().unwrap_or_default()
}

/// Best time to feed `stream` into a fresh COLS x ROWS emulator with
/// SCROLLBACK lines of history (creation and drop are not timed).
pub fn feed_time<E: Emulator>(stream: &Stream) -> Duration {
    best_of(|| {
        let mut emu = E::new(COLS, ROWS, SCROLLBACK);
        let start = Instant::now();
        for read in stream.reads() {
            emu.feed(read);
        }
        let took = start.elapsed();
        black_box(emu.cursor());
        took
    })
}

/// Best time for a plain scan of the same reads: `memchr` for newlines.
pub fn memchr_time(stream: &Stream) -> Duration {
    best_of(|| {
        let start = Instant::now();
        let lines: usize =
            stream.reads().map(|read| memchr::memchr_iter(b'\n', black_box(read)).count()).sum();
        black_box(lines);
        start.elapsed()
    })
}

/// Best time to decode the same reads as UTF-8 (what avt needs first).
pub fn utf8_time(stream: &Stream) -> Duration {
    best_of(|| {
        let mut carry = Utf8Carry::default();
        let mut chars = 0usize;
        let start = Instant::now();
        for read in stream.reads() {
            carry.decode(black_box(read), |s| chars += s.len());
        }
        black_box(chars);
        start.elapsed()
    })
}

/// Live heap held by scrollback.
pub struct Memory {
    /// Bytes after feeding, minus bytes of an empty emulator.
    pub bytes: usize,
    /// Scrollback lines the emulator says it holds afterwards.
    pub held: Option<usize>,
}

/// Feeds `stream` into a COLS x ROWS emulator with SCROLLBACK lines and
/// measures what it holds beyond an empty one. Single-threaded, so the
/// allocator's counter sees only the emulator.
pub fn memory<E: Emulator>(stream: &Stream) -> Memory {
    let before = live_bytes();
    let mut emu = E::new(COLS, ROWS, SCROLLBACK);
    let empty = live_bytes().saturating_sub(before);
    for read in stream.reads() {
        emu.feed(read);
    }
    let full = live_bytes().saturating_sub(before);
    let held = emu.scrollback().ok().map(|(n, _)| n);
    Memory { bytes: full.saturating_sub(empty), held }
}

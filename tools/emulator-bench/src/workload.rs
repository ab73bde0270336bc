//! Deterministic PTY-like output, generated in-process.
//!
//! Everything comes from a fixed-seed SplitMix64, so every run and every
//! emulator sees the same bytes cut at the same places.

use std::fmt::Write as _;

/// Screen size of every throughput and memory run.
pub const COLS: usize = 120;
pub const ROWS: usize = 40;
/// Scrollback lines of every throughput and memory run.
pub const SCROLLBACK: usize = 10_000;

/// Reads are cut at 4 KiB..=64 KiB, like a PTY reader's.
const MIN_READ: usize = 4 * 1024;
const MAX_READ: usize = 64 * 1024;

/// A fixed-seed SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len())]
    }
}

/// Bytes plus where the reads end.
pub struct Stream {
    pub bytes: Vec<u8>,
    pub ends: Vec<usize>,
}

impl Stream {
    fn cut(bytes: Vec<u8>, seed: u64) -> Stream {
        let mut rng = Rng::new(seed);
        let mut ends = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            at = (at + MIN_READ + rng.below(MAX_READ - MIN_READ + 1)).min(bytes.len());
            ends.push(at);
        }
        Stream { bytes, ends }
    }

    /// The reads, in order.
    pub fn reads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

const WORDS: &[&str] = &[
    "error",
    "warning",
    "info",
    "debug",
    "connection",
    "established",
    "request",
    "GET",
    "/api/v1/items",
    "200",
    "OK",
    "latency",
    "ms",
    "user",
    "session",
    "token",
    "expired",
    "retrying",
    "backup",
    "completed",
    "rows",
    "migrated",
    "table",
    "index",
    "build",
    "compiling",
    "finished",
    "release",
    "target",
    "deploy",
    "node-17",
    "kernel",
    "eth0",
];

/// Some output is not ASCII: accents, arrows, CJK (wide), check marks.
const UTF8_LINES: &[&str] = &[
    "naïve café résumé → done",
    "ビルド完了: 12 件の警告",
    "✓ 42 passed  ✗ 1 failed  … 3 skipped",
    "│ ├── src │ └── tests │",
];

const FILES: &[&str] = &[
    "Cargo.toml",
    "README.md",
    "src",
    "target",
    "build.rs",
    "main.rs",
    "lib.rs",
    "run.sh",
    "data.tar.gz",
    "notes.txt",
    "config.yaml",
    "Makefile",
    "image.png",
    "docs",
    ".git",
];

/// `seq`/`yes`/log-like plain lines of varying width (some wrap).
pub fn plain_flood(len: usize) -> Stream {
    let mut rng = Rng::new(1);
    let mut out = String::with_capacity(len + 256);
    let mut n: u64 = 1;
    while out.len() < len {
        match rng.below(8) {
            0 | 1 => writeln_crlf(&mut out, &n.to_string()),
            2 => writeln_crlf(&mut out, "y"),
            3 => writeln_crlf(&mut out, rng.pick(UTF8_LINES)),
            _ => {
                let width = rng.below(200);
                let mut line = String::new();
                while line.len() < width {
                    line.push_str(rng.pick(WORDS));
                    line.push(' ');
                }
                writeln_crlf(&mut out, &line);
            }
        }
        n += 1;
    }
    truncate(&mut out, len);
    Stream::cut(out.into_bytes(), 11)
}

/// `ls --color`/log-like lines with an SGR change every few words.
pub fn colour_flood(len: usize) -> Stream {
    let mut rng = Rng::new(2);
    let mut out = String::with_capacity(len + 256);
    while out.len() < len {
        let words = 1 + rng.below(24);
        for _ in 0..words {
            if rng.below(3) == 0 {
                push_sgr(&mut out, &mut rng);
            }
            out.push_str(rng.pick(FILES));
            out.push_str("\x1b[0m  ");
        }
        out.push_str("\r\n");
    }
    truncate(&mut out, len);
    Stream::cut(out.into_bytes(), 12)
}

/// Cuts `out` to at most `len` bytes, on a character boundary.
fn truncate(out: &mut String, len: usize) {
    let mut at = len.min(out.len());
    while !out.is_char_boundary(at) {
        at -= 1;
    }
    out.truncate(at);
}

fn writeln_crlf(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

/// One of the SGR forms ls, compilers and loggers print.
fn push_sgr(out: &mut String, rng: &mut Rng) {
    // Writing into a String cannot fail.
    let _ = match rng.below(5) {
        0 => write!(out, "\x1b[01;{}m", 31 + rng.below(7)),
        1 => write!(out, "\x1b[{}m", 30 + rng.below(8)),
        2 => write!(out, "\x1b[38;5;{}m", rng.below(256)),
        3 => write!(out, "\x1b[38;2;{};{};{}m", rng.below(256), rng.below(256), rng.below(256)),
        _ => write!(out, "\x1b[30;{}m", 41 + rng.below(7)),
    };
}

/// htop/vim-like repaints of a COLS x ROWS alternate screen.
pub fn redraw(len: usize) -> Stream {
    let mut rng = Rng::new(3);
    let mut out = String::from("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
    while out.len() < len {
        if rng.below(5) < 3 {
            for row in 0..ROWS {
                paint_row(&mut out, &mut rng, row, 0);
            }
        } else {
            for _ in 0..5 {
                let (row, col) = (rng.below(ROWS), rng.below(COLS / 2));
                paint_row(&mut out, &mut rng, row, col);
            }
        }
        // The status line, then the cursor back where the app keeps it.
        let _ = write!(out, "\x1b[{ROWS};1H\x1b[7m{:<1$}\x1b[0m\x1b[5;10H", " NORMAL", COLS);
    }
    truncate(&mut out, len);
    Stream::cut(out.into_bytes(), 13)
}

/// Repaints `row` from `col` to the right margin in coloured segments.
fn paint_row(out: &mut String, rng: &mut Rng, row: usize, col: usize) {
    let _ = write!(out, "\x1b[{};{}H", row + 1, col + 1);
    let mut used = col;
    while used < COLS {
        push_sgr(out, rng);
        if rng.below(4) == 0 {
            let _ = write!(out, "\x1b[4{}m", rng.below(8));
        }
        let word = rng.pick(WORDS);
        let take = word.len().min(COLS - used);
        out.push_str(&word[..take]);
        used += take;
        if used < COLS {
            // Box drawing, as htop/vim/tmux borders use.
            out.push(if rng.below(5) == 0 { '│' } else { ' ' });
            used += 1;
        }
    }
    out.push_str("\x1b[0m\x1b[K");
}

/// `lines` lines of exactly COLS visible characters, alternately plain and
/// coloured, for the memory column.
pub fn scrollback_lines(lines: usize) -> Stream {
    let mut rng = Rng::new(4);
    let mut out = String::new();
    for n in 0..lines {
        let mut visible = 0;
        while visible < COLS {
            if n % 2 == 1 && rng.below(3) == 0 {
                push_sgr(&mut out, &mut rng);
            }
            let word = rng.pick(WORDS);
            let take = word.len().min(COLS - visible);
            out.push_str(&word[..take]);
            visible += take;
            if visible < COLS {
                out.push(' ');
                visible += 1;
            }
        }
        out.push_str("\x1b[0m\r\n");
    }
    Stream::cut(out.into_bytes(), 14)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cover_the_stream_in_pty_sized_pieces() {
        let stream = colour_flood(1_000_000);
        let reads: Vec<&[u8]> = stream.reads().collect();
        assert_eq!(reads.iter().map(|r| r.len()).sum::<usize>(), 1_000_000);
        let last = reads.len() - 1;
        assert!(reads[..last].iter().all(|r| (MIN_READ..=MAX_READ).contains(&r.len())));
    }

    #[test]
    fn streams_are_deterministic() {
        assert_eq!(redraw(100_000).bytes, redraw(100_000).bytes);
        assert_eq!(plain_flood(100_000).ends, plain_flood(100_000).ends);
    }
}

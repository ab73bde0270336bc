//! The hash chain over a recording's lines.
//!
//! ```text
//! h0 = SHA-256("tether-recording-v1\n" || header line)        first segment
//! h0 = SHA-256(previous segment's last head || header line)     later segments
//! hi = SHA-256(h(i-1) || event line i)                          (comments excluded)
//! ```
//!
//! Lines are hashed without their trailing newline. A checkpoint also
//! carries how many lines it covers since the previous one and the sum
//! (mod 2^256) of their individual SHA-256: with the chain this tells a
//! modified line from reordered, deleted or inserted ones.

use sha2::{Digest, Sha256};

/// The domain separator of a recording's first link.
const DOMAIN: &[u8] = b"tether-recording-v1\n";

/// A running chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    head: [u8; 32],
    lines: u64,
    span_count: u64,
    span_set: [u8; 32],
}

/// What a checkpoint states about the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Event lines so far.
    pub lines: u64,
    /// Event lines since the previous checkpoint.
    pub count: u64,
    /// Order-independent digest of those, hex.
    pub set: String,
    /// The head, hex.
    pub hash: String,
}

impl Chain {
    /// The chain of a first segment whose header line is `header`.
    pub fn start(header: &[u8]) -> Chain {
        Self::with_seed(DOMAIN, header, 0)
    }

    /// The chain of a later segment: continues from `prev` (the previous
    /// segment's head) after `lines` event lines.
    pub fn resume(prev: &[u8; 32], lines: u64, header: &[u8]) -> Chain {
        Self::with_seed(prev, header, lines)
    }

    fn with_seed(seed: &[u8], header: &[u8], lines: u64) -> Chain {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(header);
        Chain { head: h.finalize().into(), lines, span_count: 0, span_set: [0; 32] }
    }

    /// Adds one event line (without its newline).
    pub fn push(&mut self, line: &[u8]) {
        let mut h = Sha256::new();
        h.update(self.head);
        h.update(line);
        self.head = h.finalize().into();
        self.lines += 1;
        self.span_count += 1;
        add_256(&mut self.span_set, &Sha256::digest(line).into());
    }

    /// The current head.
    pub fn head(&self) -> [u8; 32] {
        self.head
    }

    /// Event lines so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The state for a checkpoint; starts a new span.
    pub fn checkpoint(&mut self) -> Link {
        let link = self.peek();
        self.span_count = 0;
        self.span_set = [0; 32];
        link
    }

    /// The state for a checkpoint, without starting a new span.
    pub fn peek(&self) -> Link {
        Link {
            lines: self.lines,
            count: self.span_count,
            set: hex(&self.span_set),
            hash: hex(&self.head),
        }
    }
}

/// `acc += x` as 256-bit big-endian integers, wrapping.
fn add_256(acc: &mut [u8; 32], x: &[u8; 32]) {
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let sum = u16::from(acc[i]) + u16::from(x[i]) + carry;
        acc[i] = sum as u8;
        carry = sum >> 8;
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_detects_changes_and_set_ignores_order() {
        let lines: [&[u8]; 3] =
            [b"[0.1, \"o\", \"a\"]", b"[0.2, \"o\", \"b\"]", b"[0.3, \"o\", \"c\"]"];
        let run = |order: &[usize]| {
            let mut c = Chain::start(b"{}");
            for &i in order {
                c.push(lines[i]);
            }
            c.checkpoint()
        };
        let a = run(&[0, 1, 2]);
        let b = run(&[0, 2, 1]);
        assert_ne!(a.hash, b.hash, "order changes the chain");
        assert_eq!(a.set, b.set, "but not the set");
        assert_eq!((a.lines, a.count), (3, 3));
        let mut c = Chain::start(b"{}");
        c.push(b"x");
        let first = c.checkpoint();
        c.push(b"y");
        let second = c.checkpoint();
        assert_eq!((second.lines, second.count), (2, 1));
        assert_ne!(first.hash, second.hash);
        assert_eq!(unhex32(&second.hash), Some(c.head()));
        let resumed = Chain::resume(&c.head(), 2, b"{}");
        assert_eq!(resumed.lines(), 2);
        assert_ne!(resumed.head(), Chain::start(b"{}").head());
    }
}

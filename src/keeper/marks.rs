//! Which shell marks (OSC 133) tether's shell integration wrote, and which
//! anything else in the session did (docs/COMMANDS.md).
//!
//! The integration ends every mark with `;tether=SECRET`, a random value
//! the keeper made for this session and handed to the shell alone (in its
//! start-up file, which deletes itself). The PTY reader removes the
//! parameter from the output before anyone sees it (attachments, the
//! recording, the screen model) and notes where it was; the parser then
//! vouches for a mark that ends right there. A job never sees the secret
//! (it is in no recording, no terminal, no environment), so it cannot
//! write a mark that passes.
//!
//! A read may cut the secret in two. The reader holds back an ending that
//! could begin one, whatever the secret is (a prefix of `;tether=`, or
//! `;tether=` and up to 31 hex digits: so whether output is held says
//! nothing about the secret), until the next read or [`HOLD`]; bytes that
//! expire are passed on, except a `;tether=` with hex digits after it,
//! which may be a piece of the secret and is dropped.

use std::collections::VecDeque;
use std::sync::Mutex;

/// The longest a mark may end after the secret: its terminator, BEL (1
/// byte) or ST (`ESC \` or U+009C, 2 bytes).
const TERMINATOR_MAX: u64 = 2;

/// Notes kept at most (marks the parser has not reached yet).
const NOTES_MAX: usize = 4096;

/// The parameter's name, which the secret follows.
const KEY: &[u8] = b";tether=";

/// The secret's length in hex digits.
const SECRET_HEX: usize = 32;

/// How long held-back bytes wait for the read that completes them (the
/// pieces of one write arrive together).
pub const HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// The session's mark secret, and where the reader found it.
pub struct MarkSecret {
    /// `;tether=` and the secret.
    needle: Vec<u8>,
    /// The secret alone, for the shell.
    secret: String,
    /// Stream offsets (after removal) where the needle was removed, oldest
    /// first.
    found: Mutex<VecDeque<u64>>,
}

impl MarkSecret {
    /// A new random secret.
    pub fn new() -> Self {
        let bytes: [u8; 16] = rand::random();
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        MarkSecret {
            needle: format!(";tether={secret}").into_bytes(),
            secret,
            found: Mutex::new(VecDeque::new()),
        }
    }

    /// The secret, for the shell's start-up file.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Removes every whole occurrence of the secret from `buf`, whose
    /// first byte is at stream offset `base` (after earlier removals), and
    /// notes where each was. Returns how many bytes of `buf` may be passed
    /// on now: the rest (at most the needle's length less one) is the
    /// start of a needle, kept for the next read.
    pub fn strip(&self, buf: &mut Vec<u8>, base: u64) -> usize {
        let mut at = 0;
        let mut found = Vec::new();
        while let Some(i) = find(&buf[at..], &self.needle) {
            let i = at + i;
            buf.drain(i..i + self.needle.len());
            found.push(base + i as u64);
            at = i;
        }
        if !found.is_empty() {
            let mut notes = self.found.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            notes.extend(found);
            while notes.len() > NOTES_MAX {
                notes.pop_front();
            }
        }
        // A needle the read may have cut: its start waits.
        buf.len() - could_begin_needle(buf)
    }

    /// Whether `buf` may be passed on as it is: it holds no secret and
    /// does not end with what could begin one.
    pub fn untouched(&self, buf: &[u8]) -> bool {
        find(buf, &self.needle).is_none() && could_begin_needle(buf) == 0
    }

    /// What to pass on of held-back bytes that no read completed: all but
    /// a `;tether=` followed by hex digits (perhaps a piece of the secret),
    /// which is dropped.
    pub fn expire(held: &mut Vec<u8>) {
        if held.len() > KEY.len() && held.starts_with(KEY) {
            held.clear();
        }
    }

    /// Whether the mark that ends at stream offset `end` carried the
    /// secret. Notes before it are used up.
    pub fn vouches(&self, end: u64) -> bool {
        let mut notes = self.found.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(&at) = notes.front() {
            if at + TERMINATOR_MAX < end {
                notes.pop_front();
                continue;
            }
            if at < end {
                notes.pop_front();
                return true;
            }
            break;
        }
        false
    }
}

impl Default for MarkSecret {
    fn default() -> Self {
        Self::new()
    }
}

/// How many bytes at the end of `buf` could begin a needle, judged by its
/// shape alone (never by the secret): a proper prefix of `;tether=`, or
/// `;tether=` and fewer than [`SECRET_HEX`] lowercase hex digits.
fn could_begin_needle(buf: &[u8]) -> usize {
    let longest = (KEY.len() + SECRET_HEX - 1).min(buf.len());
    (1..=longest)
        .rev()
        .find(|&k| {
            let tail = &buf[buf.len() - k..];
            if k <= KEY.len() {
                KEY.starts_with(tail)
            } else {
                tail.starts_with(KEY)
                    && tail[KEY.len()..].iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }
        })
        .unwrap_or(0)
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_removed_and_vouches_for_the_mark_it_ended() {
        let s = MarkSecret::new();
        let tag = format!(";tether={}", s.secret());
        let mut buf = format!("ab\x1b]133;B{tag}\x07cd\x1b]133;D;0\x07").into_bytes();
        let keep = s.strip(&mut buf, 100);
        assert_eq!(keep, buf.len());
        assert_eq!(buf, b"ab\x1b]133;B\x07cd\x1b]133;D;0\x07");
        // The B mark ends after its BEL, at offset 100 + 10.
        assert!(s.vouches(110));
        // The forged D (no secret) is not vouched for.
        assert!(!s.vouches(100 + buf.len() as u64));
    }

    #[test]
    fn a_needle_cut_anywhere_by_a_read_is_held_back_and_removed_whole() {
        let s = MarkSecret::new();
        let tag = format!(";tether={}", s.secret());
        for cut in 1..tag.len() {
            let (head, tail) = tag.split_at(cut);
            let mut first = format!("x\x1b]133;A{head}").into_bytes();
            let keep = s.strip(&mut first, 0);
            assert_eq!(&first[..keep], b"x\x1b]133;A", "cut at {cut}");
            let mut second = first[keep..].to_vec();
            second.extend_from_slice(format!("{tail}\x07").as_bytes());
            let keep2 = s.strip(&mut second, keep as u64);
            assert_eq!(&second[..keep2], b"\x07", "cut at {cut}");
            assert!(s.vouches(keep as u64 + 1), "cut at {cut}");
        }
    }

    #[test]
    fn what_is_held_depends_on_the_shape_never_on_the_secret() {
        let s = MarkSecret::new();
        let right = &s.secret()[..5];
        let wrong: String = right.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
        for guess in [right, wrong.as_str()] {
            let mut buf = format!("out;tether={guess}").into_bytes();
            assert_eq!(s.strip(&mut buf, 0), 3, "{guess}");
            // Not completed in time: dropped either way.
            let mut held = buf[3..].to_vec();
            MarkSecret::expire(&mut held);
            assert!(held.is_empty());
        }
        // A `;` (or `;teth`) at the end waits, then goes out as it was.
        let mut buf = b"a;b;teth".to_vec();
        assert_eq!(s.strip(&mut buf, 0), 3);
        let mut held = buf[3..].to_vec();
        MarkSecret::expire(&mut held);
        assert_eq!(held, b";teth");
        // Anything else is never held.
        let mut plain = b"a;b;x".to_vec();
        assert_eq!(s.strip(&mut plain, 0), 5);
        let mut upper = b";tether=ABC".to_vec();
        assert_eq!(s.strip(&mut upper, 0), 11);
    }

    #[test]
    fn a_wrong_secret_is_output_like_any_other() {
        let s = MarkSecret::new();
        let mut buf = b"\x1b]133;C;tether=00000000000000000000000000000000\x07".to_vec();
        let len = buf.len();
        assert_eq!(s.strip(&mut buf, 0), len);
        assert!(!s.vouches(len as u64));
    }
}

//! Incremental UTF-8 decoding for emulators that take `&str` (avt).
//!
//! A PTY read can end in the middle of a multibyte character; the
//! incomplete tail is carried to the next read. Invalid bytes become
//! U+FFFD, as a terminal would show them.

/// Carries an incomplete character between reads.
#[derive(Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// Decodes `bytes`, passing each valid run to `out`.
    pub fn decode(&mut self, mut bytes: &[u8], mut out: impl FnMut(&str)) {
        bytes = self.finish_pending(bytes, &mut out);
        let mut chunks = bytes.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            if !chunk.valid().is_empty() {
                out(chunk.valid());
            }
            let bad = chunk.invalid();
            if bad.is_empty() {
                continue;
            }
            let incomplete = std::str::from_utf8(bad).is_err_and(|e| e.error_len().is_none());
            if chunks.peek().is_none() && incomplete {
                self.pending.extend_from_slice(bad);
            } else {
                out("\u{FFFD}");
            }
        }
    }

    /// Completes a character left over from the last read; returns the rest.
    fn finish_pending<'a>(&mut self, mut bytes: &'a [u8], out: &mut impl FnMut(&str)) -> &'a [u8] {
        while !self.pending.is_empty() {
            let Some((&b, rest)) = bytes.split_first() else {
                return bytes;
            };
            if b & 0xC0 != 0x80 {
                out("\u{FFFD}");
                self.pending.clear();
                return bytes;
            }
            self.pending.push(b);
            bytes = rest;
            match std::str::from_utf8(&self.pending) {
                Ok(s) => out(s),
                Err(e) if e.error_len().is_none() => continue,
                Err(_) => out("\u{FFFD}"),
            }
            self.pending.clear();
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Carry;

    fn decode_in_pieces(input: &[u8], at: usize) -> String {
        let mut carry = Utf8Carry::default();
        let mut text = String::new();
        carry.decode(&input[..at], |s| text.push_str(s));
        carry.decode(&input[at..], |s| text.push_str(s));
        text
    }

    #[test]
    fn a_character_split_across_reads_is_kept_whole() {
        let input = "a€b😀c".as_bytes();
        for at in 0..=input.len() {
            assert_eq!(decode_in_pieces(input, at), "a€b😀c", "split at {at}");
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        assert_eq!(decode_in_pieces(b"a\xffb", 1), "a\u{FFFD}b");
        assert_eq!(decode_in_pieces(b"a\xe2\x82x", 2), "a\u{FFFD}x");
    }
}

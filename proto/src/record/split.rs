//! Cutting job output into events without losing or altering a byte.
//!
//! asciicast strings must be valid UTF-8. A character split across two PTY
//! reads is carried to the next read, never split across events; bytes
//! that are not UTF-8 at all become `b` events, in order.

/// One piece of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Valid UTF-8 text (an `o` event).
    Text(String),
    /// Bytes that are not UTF-8 (a `b` event).
    Bytes(Vec<u8>),
}

/// Carries incomplete characters between reads.
#[derive(Debug, Default)]
pub struct Splitter {
    carry: Vec<u8>,
}

impl Splitter {
    /// A splitter with nothing carried.
    pub fn new() -> Self {
        Self::default()
    }

    /// Splits one read (plus what was carried) into pieces, keeping an
    /// incomplete trailing character for next time.
    pub fn split(&mut self, data: &[u8]) -> Vec<Piece> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        let mut pieces = Vec::new();
        let mut rest = &buf[..];
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    push_text(&mut pieces, text);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    if let Ok(text) = std::str::from_utf8(good) {
                        push_text(&mut pieces, text);
                    }
                    match e.error_len() {
                        Some(n) => {
                            push_bytes(&mut pieces, &bad[..n]);
                            rest = &bad[n..];
                        }
                        // An incomplete character at the end: wait for more.
                        None => {
                            self.carry = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        pieces
    }

    /// Whatever is still carried, as bytes (at the end of the stream).
    pub fn finish(&mut self) -> Option<Piece> {
        (!self.carry.is_empty()).then(|| Piece::Bytes(std::mem::take(&mut self.carry)))
    }
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    match pieces.last_mut() {
        Some(Piece::Text(t)) => t.push_str(text),
        _ => pieces.push(Piece::Text(text.to_owned())),
    }
}

fn push_bytes(pieces: &mut Vec<Piece>, bytes: &[u8]) {
    match pieces.last_mut() {
        Some(Piece::Bytes(b)) => b.extend_from_slice(bytes),
        _ => pieces.push(Piece::Bytes(bytes.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn join(pieces: &[Piece]) -> Vec<u8> {
        pieces
            .iter()
            .flat_map(|p| match p {
                Piece::Text(t) => t.as_bytes().to_vec(),
                Piece::Bytes(b) => b.clone(),
            })
            .collect()
    }

    #[test]
    fn carries_split_characters() {
        let mut s = Splitter::new();
        assert_eq!(s.split(b"a\xe2\x82"), [Piece::Text("a".into())]);
        assert_eq!(s.split(b"\xacb"), [Piece::Text("€b".into())]);
        assert_eq!(
            s.split(b"\xff\xfex"),
            [Piece::Bytes(vec![0xff, 0xfe]), Piece::Text("x".into())]
        );
        assert_eq!(s.split(b"\xf0\x9f"), []);
        assert_eq!(s.finish(), Some(Piece::Bytes(vec![0xf0, 0x9f])));
    }

    proptest! {
        /// Whatever the bytes and however they are cut, the pieces put
        /// together are exactly the input, and no text piece is invalid.
        #[test]
        fn lossless(data in proptest::collection::vec(any::<u8>(), 0..400), cut in any::<prop::sample::Index>()) {
            let at = cut.index(data.len() + 1);
            let mut s = Splitter::new();
            let mut pieces = s.split(&data[..at]);
            pieces.extend(s.split(&data[at..]));
            pieces.extend(s.finish());
            prop_assert_eq!(join(&pieces), data);
        }

        #[test]
        fn utf8_text_is_never_split(text in "\\PC{0,60}", cut in any::<prop::sample::Index>()) {
            let bytes = text.as_bytes();
            let at = cut.index(bytes.len() + 1);
            let mut s = Splitter::new();
            let mut pieces = s.split(&bytes[..at]);
            pieces.extend(s.split(&bytes[at..]));
            prop_assert!(s.finish().is_none());
            prop_assert!(pieces.iter().all(|p| matches!(p, Piece::Text(_))));
        }
    }
}

//! The frame decoder, fed a hostile byte stream in arbitrary pieces.
//!
//! Invariants: it never panics; a stream decodes to the same messages
//! however it is cut; every decoded message re-encodes and decodes to
//! itself; a buffered partial frame never exceeds the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::frame::{self, FrameDecoder, MAX_FRAME_LEN};

fn decode_all(pieces: &[&[u8]]) -> (Vec<tether_proto::Message>, bool) {
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    for piece in pieces {
        decoder.extend(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        assert!(decoder.pending() <= MAX_FRAME_LEN as usize + 4 + piece.len());
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let whole = decode_all(&[stream]);
    // Cut the stream every `cut` bytes (at least 1).
    let step = usize::from(cut).max(1);
    let pieces: Vec<&[u8]> = stream.chunks(step).collect();
    let split = decode_all(&pieces);
    assert_eq!(whole, split, "decoding depends on how the stream is cut");
    for msg in &whole.0 {
        let bytes = frame::encode(msg).expect("a decoded message fits a frame");
        let (again, used) = frame::decode(&bytes).expect("re-encoded").expect("complete");
        assert_eq!(used, bytes.len());
        assert_eq!(&again, msg, "round trip changed the message");
    }
});

//! Cutting job output into `o` and `b` events, and the base64 of `b`.
//!
//! Invariants: whatever the bytes and however the reads are cut, the
//! pieces put back together are exactly the bytes the job wrote; text
//! pieces are valid UTF-8 (they are Strings) and base64 round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::record::base64;
use tether_proto::record::split::{Piece, Splitter};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, output)) = data.split_first() else { return };
    let step = usize::from(cut % 17) + 1;
    let mut splitter = Splitter::new();
    let mut pieces = Vec::new();
    for read in output.chunks(step) {
        pieces.extend(splitter.split(read));
    }
    pieces.extend(splitter.finish());
    let mut back = Vec::new();
    for piece in &pieces {
        match piece {
            Piece::Text(s) => back.extend_from_slice(s.as_bytes()),
            Piece::Bytes(b) => {
                let encoded = base64::encode(b);
                assert_eq!(base64::decode(&encoded).as_deref(), Some(&b[..]));
                back.extend_from_slice(b);
            }
        }
    }
    assert_eq!(back, output, "the recording would not keep the job's bytes");
    // The decoder never panics on arbitrary text either.
    let _ = base64::decode(&String::from_utf8_lossy(output));
});

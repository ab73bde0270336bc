//! Every control message kind with an arbitrary payload.
//!
//! Invariants: a payload is either refused with an error or decodes to a
//! message that re-encodes to a frame of the same kind that decodes to an
//! equal message; window sizes are always sanitized to the accepted range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::frame;
use tether_proto::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else { return };
    // Kinds are small numbers; fold the byte so every kind gets attention.
    let kind = kind % 20;
    let len = u32::try_from(payload.len() + 1).expect("small");
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.push(kind);
    bytes.extend_from_slice(payload);
    let Ok(Some((msg, used))) = frame::decode(&bytes) else { return };
    assert_eq!(used, bytes.len());
    assert_eq!(msg.kind(), kind);
    if let Message::Resize(size) = &msg {
        let s = size.sanitized();
        assert!(s.cols >= 1 && s.rows >= 1, "{s:?}");
        assert!(s.cols <= tether_proto::WindowSize::MAX_DIM && s.rows <= tether_proto::WindowSize::MAX_DIM, "{s:?}");
    }
    let again = frame::encode(&msg).expect("fits");
    let (back, _) = frame::decode(&again).expect("decodes").expect("complete");
    assert_eq!(back, msg);
});

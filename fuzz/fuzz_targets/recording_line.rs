//! The asciicast v3 reader: header, events (tether's `b`, `g`, `t` too),
//! checkpoints, one line at a time.
//!
//! Invariants: no panic; time never goes backwards or becomes non-finite;
//! an event that was read re-encodes to a line that reads back to the same
//! data at (nearly) the same time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::record::v3::{self, Decoder, Line};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    if let Some(first) = lines.next() {
        let _ = v3::parse_header(first);
    }
    let mut decoder = Decoder::new();
    let mut last = 0.0;
    for line in lines {
        let Ok(Line::Event(event)) = decoder.line(line) else { continue };
        assert!(event.time.is_finite() && event.time >= last, "time went from {last} to {}", event.time);
        let encoded = v3::encode_event(&event, last);
        let mut again = Decoder::at(last);
        match again.line(&encoded) {
            Ok(Line::Event(back)) => {
                assert_eq!(back.data, event.data, "{encoded}");
                assert!((back.time - event.time).abs() <= 1e-6 * event.time.max(1.0), "{encoded}");
            }
            other => panic!("{encoded:?} read back as {other:?}"),
        }
        last = event.time;
    }
});

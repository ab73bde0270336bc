//! The seek index: `BASE.cast.idx` beside segment 0 (see [`super::segment`]).
//!
//! One JSON object a line, appended by the recorder after a write to the
//! segment once a mebibyte of output has passed since the previous entry
//! (and after the first write of every segment), so a reader can start
//! decoding in the middle of a recording:
//!
//! ```text
//! {"seg":0,"pos":1049102,"line":8210,"time":12.503,"out":1048576}
//!   seg   segment number
//!   pos   byte offset in that segment where the next event line begins
//!   line  event lines before that point, across segments
//!   time  absolute time (seconds) of the last event before it: a decoder
//!         resuming at pos starts from this time
//!   out   output bytes (o and b events) before it
//! ```
//!
//! The index is derived, not signed: verification never reads it, and a
//! recording without it (a segment copied alone) still plays from the
//! start. Readers skip lines that do not parse (a torn last line after a
//! crash).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the index's name puts in place of segment 0's extension.
pub const EXTENSION: &str = "cast.idx";

/// The index of the recording whose segment 0 is `base`.
pub fn path(base: &Path) -> PathBuf {
    base.with_extension(EXTENSION)
}

/// A line of the index: a place to resume reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Segment number.
    pub seg: u32,
    /// Byte offset in that segment of the next event line.
    pub pos: u64,
    /// Event lines before it (across segments).
    pub line: u64,
    /// Absolute time of the last event before it.
    pub time: f64,
    /// Output bytes before it.
    pub out: u64,
}

impl IndexEntry {
    /// The line (without its newline).
    pub fn encode(&self) -> String {
        // Numbers only: serializing cannot fail (a non-finite time would
        // become `null`, which decoding refuses).
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a line (with or without its newline).
    ///
    /// # Errors
    ///
    /// Not an index line.
    pub fn decode(line: &str) -> serde_json::Result<IndexEntry> {
        serde_json::from_str(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = r#"{"seg":0,"pos":1049102,"line":8210,"time":12.503,"out":1048576}"#;

    #[test]
    fn a_line_as_on_disk() {
        let entry = IndexEntry { seg: 0, pos: 1_049_102, line: 8210, time: 12.503, out: 1 << 20 };
        assert_eq!(entry.encode(), SAMPLE);
        assert_eq!(IndexEntry::decode(SAMPLE).unwrap(), entry);
        assert_eq!(IndexEntry::decode(&format!("{SAMPLE}\n")).unwrap(), entry);
        let later = IndexEntry { seg: 3, pos: 412, line: 1_500_000, time: 0.0, out: 0 };
        assert_eq!(later.encode(), r#"{"seg":3,"pos":412,"line":1500000,"time":0.0,"out":0}"#);
        assert!(IndexEntry::decode(r#"{"seg":0,"pos":1"#).is_err(), "a torn line");
        assert!(IndexEntry::decode("").is_err());
    }

    #[test]
    fn names_the_sidecar() {
        assert_eq!(
            path(Path::new("/r/s-20261128T043301Z.cast")),
            Path::new("/r/s-20261128T043301Z.cast.idx")
        );
    }

    proptest! {
        #[test]
        fn round_trips(
            seg in any::<u32>(), pos in any::<u64>(), line in any::<u64>(),
            time in 0.0f64..1e12, out in any::<u64>(),
        ) {
            let entry = IndexEntry { seg, pos, line, time, out };
            let text = entry.encode();
            prop_assert!(!text.contains('\n'));
            let back = IndexEntry::decode(&text).unwrap();
            // serde_json (without its `float_roundtrip` feature) may read
            // a float back one unit in the last place off.
            prop_assert!((back.time - time).abs() <= time * 4.0 * f64::EPSILON);
            prop_assert_eq!(IndexEntry { time, ..back }, entry);
        }
    }
}

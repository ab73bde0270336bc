//! The keyframes: `BASE.cast.keys` beside segment 0 (see [`super::segment`]).
//!
//! One JSON object a line: a screen the keeper's terminal emulator drew
//! after exactly `out` bytes of output (about every 4 MiB), as a redraw,
//! so a seek need not replay from the start:
//!
//! ```text
//! {"out":4194304,"cols":80,"rows":24,"dump":"\u001b[H\u001b[2J$ make\r\n…"}
//!   out   output bytes (o and b events) before this screen
//!   cols  the screen's size
//!   rows
//!   dump  bytes that repaint a cleared terminal of that size with the screen
//! ```
//!
//! To show moment T: the latest [index](super::index) entry whose `time`
//! is at or before T says how much output surely came before T; take the
//! latest keyframe whose `out` is at most that, paint it, then decode
//! events from the latest index entry whose `out` is at most the
//! keyframe's (from its `seg`, `pos` and `time`), skipping as many output
//! bytes as the two `out`s differ (they are on the keyframe's screen
//! already), up to T.
//!
//! Like the index, keyframes are derived and not signed. Readers skip
//! lines that do not parse.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the keyframes' name puts in place of segment 0's extension.
pub const EXTENSION: &str = "cast.keys";

/// The keyframes of the recording whose segment 0 is `base`.
pub fn path(base: &Path) -> PathBuf {
    base.with_extension(EXTENSION)
}

/// A screen snapshot the parser took after exactly `out` bytes of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyframe {
    /// Output bytes before this screen.
    pub out: u64,
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// A redraw of the screen.
    pub dump: String,
}

impl Keyframe {
    /// The line (without its newline; newlines in the dump are escaped).
    pub fn encode(&self) -> String {
        // Numbers and a string: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a line (with or without its newline).
    ///
    /// # Errors
    ///
    /// Not a keyframe line.
    pub fn decode(line: &str) -> serde_json::Result<Keyframe> {
        serde_json::from_str(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_line_as_on_disk() {
        let sample =
            r#"{"out":4194304,"cols":80,"rows":24,"dump":"\u001b[H\u001b[2J$ make\r\nok\t\"é\""}"#;
        let frame = Keyframe {
            out: 4 << 20,
            cols: 80,
            rows: 24,
            dump: "\u{1b}[H\u{1b}[2J$ make\r\nok\t\"é\"".into(),
        };
        assert_eq!(frame.encode(), sample);
        assert_eq!(Keyframe::decode(sample).unwrap(), frame);
        assert!(Keyframe::decode(r#"{"out":1,"cols":80,"rows":24}"#).is_err());
    }

    #[test]
    fn names_the_sidecar() {
        assert_eq!(
            path(Path::new("/r/s-20261128T043301Z.cast")),
            Path::new("/r/s-20261128T043301Z.cast.keys")
        );
    }

    proptest! {
        #[test]
        fn round_trips(out in any::<u64>(), cols in any::<u16>(), rows in any::<u16>(), dump in any::<String>()) {
            let frame = Keyframe { out, cols, rows, dump };
            let text = frame.encode();
            prop_assert!(!text.contains('\n'));
            prop_assert_eq!(Keyframe::decode(&text).unwrap(), frame);
        }
    }
}

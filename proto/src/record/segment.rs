//! The names of a recording's files.
//!
//! A recording is one or more segments, each a complete asciicast v3 file,
//! plus two derived sidecars beside the first segment (the *base*):
//!
//! ```text
//! recordings/
//!   build-20261128T043301Z.cast        segment 0, the base: NAME-STAMP.cast
//!   build-20261128T043301Z.1.cast      segment 1: the base without ".cast", then ".1.cast"
//!   build-20261128T043301Z.2.cast      segment 2, …
//!   build-20261128T043301Z.cast.idx    the seek index (super::index)
//!   build-20261128T043301Z.cast.keys   the keyframes  (super::keyframe)
//! ```
//!
//! `NAME` is the session's name; `STAMP` is when the recording began, UTC,
//! `YYYYMMDDTHHMMSSZ` (the RFC 3339 time with `-` and `:` taken out).
//!
//! Only the base's name is chosen by tether. Every other name is derived
//! from the base, whatever it is called, so a renamed or copied recording
//! still finds its segments: segment `N` (`N` ≥ 1, decimal, no leading
//! zero) of base `B` is `B` with a trailing `.cast` removed, then
//! `.N.cast`. Segment numbers have no gaps: [`sibling`] tells the files
//! of a directory that belong to a recording, so that a reader can name a
//! missing segment and the ones after it, and a stray named like one.
//!
//! Pure name manipulation: nothing here touches the file system.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The extension of every segment.
pub const EXTENSION: &str = "cast";

/// The file name of a new recording's base: `NAME-STAMP.cast`, where
/// `started` is the recording's start as tether writes times, RFC 3339
/// UTC with whole seconds (`2026-11-28T04:33:01Z` gives
/// `20261128T043301Z`).
pub fn base_name(session: &str, started: &str) -> String {
    let stamp = started.replace(['-', ':'], "");
    format!("{session}-{stamp}.{EXTENSION}")
}

/// The path of segment `n` of the recording whose segment 0 is `base`.
pub fn segment_path(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_owned();
    }
    let stem = match base.extension() {
        Some(ext) if ext == EXTENSION => base.file_stem(),
        _ => base.file_name(),
    };
    let mut name = stem.map(OsString::from).unwrap_or_default();
    name.push(format!(".{n}.{EXTENSION}"));
    base.with_file_name(name)
}

/// A file name of tether's own naming, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentName<'a> {
    /// The session's name.
    pub session: &'a str,
    /// When the recording began, `YYYYMMDDTHHMMSSZ`.
    pub stamp: &'a str,
    /// 0 for the base, then 1, 2, …
    pub segment: u32,
}

/// Takes apart `NAME-STAMP.cast` (segment 0) or `NAME-STAMP.N.cast`
/// (segment `N`); `None` for any other name (a sidecar, another file).
pub fn parse_name(file: &str) -> Option<SegmentName<'_>> {
    let stem = file.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    let (session, rest) = stem.rsplit_once('-')?;
    let (stamp, segment) = match rest.split_once('.') {
        None => (rest, 0),
        Some((stamp, n)) => (stamp, parse_segment_number(n)?),
    };
    is_stamp(stamp).then_some(SegmentName { session, stamp, segment })
}

/// `N` as [`segment_path`] writes it: decimal, at least 1, no leading zero.
fn parse_segment_number(text: &str) -> Option<u32> {
    if text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The start a stamp stands for, as tether writes times (RFC 3339 UTC,
/// whole seconds): `20261128T043301Z` gives `2026-11-28T04:33:01Z`, the
/// inverse of the stamp in [`base_name`]. `None` if `stamp` is not one.
pub fn stamp_time(stamp: &str) -> Option<String> {
    if !is_stamp(stamp) {
        return None;
    }
    let d = |r: std::ops::Range<usize>| stamp.get(r);
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        d(0..4)?,
        d(4..6)?,
        d(6..8)?,
        d(9..11)?,
        d(11..13)?,
        d(13..15)?
    ))
}

/// How a file beside a recording relates to it, by name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sibling {
    /// Segment `N` of it (0: the base itself), named as [`segment_path`]
    /// names it.
    Segment(u32),
    /// Named like one of its segments, but with a number tether never
    /// writes (`0`, a leading zero, too large): not part of the recording.
    Stray,
}

/// What the file named `file` is to the recording whose base is named
/// `base` (both file names, in the same directory): one of its segments,
/// a stray named like one, or (`None`) nothing to do with it (a sidecar,
/// another recording).
pub fn sibling(base: &str, file: &str) -> Option<Sibling> {
    if file == base {
        return Some(Sibling::Segment(0));
    }
    // Whatever segment_path puts before the number.
    let first = segment_path(Path::new(base), 1);
    let prefix = first.file_name()?.to_str()?.strip_suffix(&format!("1.{EXTENSION}"))?;
    let number = file.strip_prefix(prefix)?.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match parse_segment_number(number) {
        Some(n) => Sibling::Segment(n),
        None => Sibling::Stray,
    })
}

/// `YYYYMMDDTHHMMSSZ`.
fn is_stamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_as_on_disk() {
        assert_eq!(base_name("build", "2026-11-28T04:33:01Z"), "build-20261128T043301Z.cast");
        let base = Path::new("/r/build-20261128T043301Z.cast");
        assert_eq!(segment_path(base, 0), base);
        assert_eq!(segment_path(base, 1), Path::new("/r/build-20261128T043301Z.1.cast"));
        assert_eq!(segment_path(base, 12), Path::new("/r/build-20261128T043301Z.12.cast"));
        // A base named otherwise (a copy) keeps its name as the stem.
        assert_eq!(segment_path(Path::new("copy"), 2), Path::new("copy.2.cast"));
        assert_eq!(segment_path(Path::new("d/x.rec"), 1), Path::new("d/x.rec.1.cast"));
    }

    #[test]
    fn parses_tether_names_only() {
        let first = parse_name("a-b.c-20261128T043301Z.cast").unwrap();
        assert_eq!(first, SegmentName { session: "a-b.c", stamp: "20261128T043301Z", segment: 0 });
        assert_eq!(parse_name("build-20261128T043301Z.7.cast").unwrap().segment, 7);
        for other in [
            "build-20261128T043301Z.cast.idx",
            "build-20261128T043301Z.cast.keys",
            "build-20261128T043301Z.0.cast",
            "build-20261128T043301Z.01.cast",
            "build-20261128T043301Z.+1.cast",
            "build-20261128T043301Z.99999999999.cast",
            "build-2026112XT043301Z.cast",
            "build-20261128T043301Zcast",
            "notes.cast",
            "20261128T043301Z.cast",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn stamps_are_times() {
        assert_eq!(stamp_time("20261128T043301Z").as_deref(), Some("2026-11-28T04:33:01Z"));
        assert_eq!(stamp_time("2026112XT043301Z"), None);
        assert_eq!(stamp_time(""), None);
    }

    #[test]
    fn tells_segments_strays_and_others_apart() {
        let base = "build-20261128T043301Z.cast";
        assert_eq!(sibling(base, base), Some(Sibling::Segment(0)));
        assert_eq!(sibling(base, "build-20261128T043301Z.3.cast"), Some(Sibling::Segment(3)));
        for stray in ["build-20261128T043301Z.0.cast", "build-20261128T043301Z.02.cast"] {
            assert_eq!(sibling(base, stray), Some(Sibling::Stray), "{stray}");
        }
        assert_eq!(sibling(base, "build-20261128T043301Z.99999999999.cast"), Some(Sibling::Stray));
        for other in [
            "build-20261128T043301Z.cast.idx",
            "build-20261128T043301Z.cast.keys",
            "build-20261128T043301Z.old.cast",
            "build-20261128T043301Z..cast",
            "build-20261128T043301Z.1.cast.bak",
            "build-20261128T043302Z.1.cast",
            "other-20261128T043301Z.1.cast",
        ] {
            assert_eq!(sibling(base, other), None, "{other}");
        }
        assert_eq!(sibling("copy", "copy.2.cast"), Some(Sibling::Segment(2)));
        assert_eq!(sibling("x.rec", "x.rec.1.cast"), Some(Sibling::Segment(1)));
    }

    #[test]
    #[cfg(unix)]
    fn keeps_a_non_utf8_directory() {
        use std::os::unix::ffi::OsStrExt;
        let dir = Path::new(std::ffi::OsStr::from_bytes(b"/r\xff"));
        let base = dir.join("s-20261128T043301Z.cast");
        assert_eq!(segment_path(&base, 3), dir.join("s-20261128T043301Z.3.cast"));
    }

    proptest! {
        #[test]
        fn names_round_trip(
            session in "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}",
            (y, mo, d, h, mi, s) in (1970u32..10000, 1u32..13, 1u32..29, 0u32..24, 0u32..60, 0u32..60),
            n in 0u32..100_000,
        ) {
            let started = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
            let base = base_name(&session, &started);
            let path = segment_path(Path::new("/r").join(&base).as_path(), n);
            let file = path.file_name().unwrap().to_str().unwrap();
            let parsed = parse_name(file).unwrap();
            prop_assert_eq!(parsed.session, session.as_str());
            prop_assert_eq!(parsed.segment, n);
            prop_assert_eq!(format!("{}-{}.cast", parsed.session, parsed.stamp), base.clone());
            prop_assert_eq!(stamp_time(parsed.stamp), Some(started));
            prop_assert_eq!(sibling(&base, file), Some(Sibling::Segment(n)));
        }
    }
}

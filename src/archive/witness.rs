//! `verify` against the witness: the checkpoint lines the uploader shipped
//! when they were written, compared with the recording as it is now. A
//! recording rewritten on the host and re-signed with the host's own key
//! verifies locally; it no longer matches its witness.

use super::{Layout, Store, host_id};
use crate::config::ArchiveConfig;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the witness says about a recording.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WitnessReport {
    /// Witnessed checkpoints (and end line) compared with the file.
    pub compared: u64,
    /// The first witnessed checkpoint the file no longer has as shipped:
    /// `segment S checkpoint N` (or `segment S end`), with why.
    pub first_differs: Option<String>,
    /// Checkpoints in the file not witnessed yet (written since the last
    /// pass, or never shipped), as `S:N` (`S:end` for the end line).
    pub unwitnessed: Vec<String>,
    /// The first of them written more than [`GRACE_SECS`] ago: the
    /// uploader should have shipped it, so the archive has not seen the
    /// recording as it is now (renamed, copied, written while the
    /// uploader was stopped, or its witness is elsewhere).
    pub stale: Option<String>,
    /// Why the witness could not be read, if it could not.
    pub unavailable: Option<String>,
}

/// How long a checkpoint may go unwitnessed before `verify` stops
/// trusting the file (the uploader ships within seconds; `check` fails
/// after the same time).
pub const GRACE_SECS: i64 = 60;

/// How far in the future a checkpoint's time may be (clock skew).
const SKEW_SECS: i64 = 300;

/// A checkpoint's place: segment, then `seq` ([`END`] for the end line,
/// which comes after every checkpoint of its segment).
type Place = (u32, u64);

/// The place of an end line within its segment.
const END: u64 = u64::MAX;

fn label((seg, seq): Place) -> String {
    match seq {
        END => format!("segment {seg} end"),
        n => format!("segment {seg} checkpoint {n}"),
    }
}

/// A signed line of the file: the line, and when it was written.
struct Local {
    line: Vec<u8>,
    wall: Option<String>,
}

/// The signed lines of the segments, by place. Only complete lines: the
/// bytes after the last newline may still be being written.
fn local_lines(segments: &[PathBuf]) -> BTreeMap<Place, Local> {
    let mut lines = BTreeMap::new();
    for (n, path) in segments.iter().enumerate() {
        // Every complete line, however large the file.
        let _ = super::scan::for_each_line(path, |line| {
            let Some((seq, wall)) = super::scan::parse_signed(line) else { return };
            // The end line's place is END; no checkpoint may take it.
            let place = match seq {
                None => END,
                Some(END) => return,
                Some(seq) => seq,
            };
            lines.insert((n as u32, place), Local { line: line.to_vec(), wall });
        });
    }
    lines
}

/// The name the uploader gave the recording: segment 0's file name as the
/// recorder made it from the header's session and start (a renamed or
/// copied file is still found under its own witness).
fn base_of(segments: &[PathBuf]) -> String {
    let file_name = || {
        segments
            .first()
            .and_then(|p| p.file_name())
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_owned()
    };
    let Some(first) = segments.first().and_then(|p| super::scan::read_whole(p).ok()) else {
        return file_name();
    };
    let header = first.split(|b| *b == b'\n').next().unwrap_or_default();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(header) else { return file_name() };
    match (v["tether"]["session"].as_str(), v["tether"]["started"].as_str()) {
        (Some(session), Some(started)) => {
            tether_proto::record::segment::base_name(session, started)
        }
        _ => file_name(),
    }
}

/// Where a witness object's key puts it: `…/SSSSSS-CCCCCCCCCC` or
/// `…/SSSSSS-end`.
/// Exactly as the uploader writes them ([`Layout::witness`]): any other
/// spelling of the same place (`00000000-1`) is not one.
fn place_of(name: &str) -> Option<Place> {
    let (seg, rest) = name.split_once('-')?;
    let seg: u32 = seg.parse().ok()?;
    let place =
        if rest == "end" { (seg, END) } else { (seg, rest.parse().ok().filter(|n| *n != END)?) };
    let canonical =
        if place.1 == END { format!("{seg:06}-end") } else { format!("{seg:06}-{:010}", place.1) };
    (canonical == name).then_some(place)
}

/// Compares the recording whose segments are `segments` (segment 0 first)
/// with its witness in the archive: this host's, or the one under `root`
/// (`PREFIX/HOST`, for a recording fetched from the bucket).
pub fn check(config: &ArchiveConfig, segments: &[PathBuf], root: Option<&str>) -> WitnessReport {
    let run = || -> Result<WitnessReport> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(compare(config, segments, root))
    };
    run().unwrap_or_else(|e| WitnessReport {
        unavailable: Some(format!("{e:#}")),
        ..WitnessReport::default()
    })
}

async fn compare(
    config: &ArchiveConfig,
    segments: &[PathBuf],
    root: Option<&str>,
) -> Result<WitnessReport> {
    let store = Store::open(config, std::time::Duration::from_secs(10))?;
    let (_, prefix) = config.bucket_and_prefix().map_err(crate::Failure::invalid)?;
    let layout = match root {
        Some(root) => Layout::at(root),
        None => Layout::new(&prefix, &host_id()),
    };
    let base = base_of(segments);
    let folder = layout.witness(&base, 0, Some(0));
    let folder = &folder[..folder.rfind('/').unwrap_or(0) + 1];
    let mut witnessed = BTreeMap::new();
    // When the server stored each object (its clock, not the host's).
    let mut stored = BTreeMap::new();
    for meta in store.objects_under(folder).await? {
        let key = meta.location;
        let name = key.filename().unwrap_or_default();
        if let Some(place) = name.strip_suffix(super::CONFLICT_SUFFIX).and_then(place_of) {
            return Ok(WitnessReport {
                first_differs: Some(format!(
                    "{} was claimed before the uploader shipped it ({key}: another object was already under its key)",
                    label(place)
                )),
                ..WitnessReport::default()
            });
        }
        match place_of(name) {
            Some(place) => {
                stored.insert(place, meta.last_modified.timestamp());
                if witnessed.insert(place, key.clone()).is_some() {
                    return Ok(WitnessReport {
                        first_differs: Some(format!("{key}: a second object for {}", label(place))),
                        ..WitnessReport::default()
                    });
                }
            }
            None => {
                // Not a name the uploader writes: reported, not trusted.
                return Ok(WitnessReport {
                    first_differs: Some(format!("{key}: an object the uploader never writes")),
                    ..WitnessReport::default()
                });
            }
        }
    }
    let local = local_lines(segments);
    let mut report = WitnessReport::default();
    // The latest time a witnessed line gives, so far in order.
    let mut latest: Option<(i64, Place)> = None;
    for (place, key) in &witnessed {
        // A signed line is about 500 bytes: a larger object is no witness
        // the uploader wrote.
        let shipped = store.read_path(key, 64 * 1024).await;
        report.compared += 1;
        let why = match (local.get(place), shipped) {
            (_, Err(_)) => Some("has a witness object that cannot be read as one".to_owned()),
            (None, _) => Some("is no longer in the file".to_owned()),
            (Some(l), Ok(shipped)) if Some(&l.line) != shipped.as_ref() => {
                Some("differs from what was shipped".to_owned())
            }
            (Some(l), Ok(_)) => {
                let written = l
                    .wall
                    .as_deref()
                    .and_then(|w| w.parse::<jiff::Timestamp>().ok())
                    .map(|t| t.as_second());
                let why = out_of_order(written, stored.get(place).copied(), latest);
                if let Some(t) = written
                    && latest.is_none_or(|(l, _)| t > l)
                {
                    latest = Some((t, *place));
                }
                why
            }
        };
        if let Some(why) = why {
            report.first_differs = Some(format!("{} {why}", label(*place)));
            break;
        }
    }
    let now = jiff::Timestamp::now();
    for (place, l) in local.iter().filter(|(p, _)| !witnessed.contains_key(p)) {
        let (seg, seq) = place;
        report.unwitnessed.push(if *seq == END {
            format!("{seg}:end")
        } else {
            format!("{seg}:{seq}")
        });
        let written = l.wall.as_deref().and_then(|w| w.parse::<jiff::Timestamp>().ok());
        // Written long ago, or "in the future" (a clock cannot be that far
        // off): either way the uploader should have seen it.
        let age = written.map(|t| now.duration_since(t).as_secs());
        let old = age.is_none_or(|a| !(-SKEW_SECS..=GRACE_SECS).contains(&a));
        if old && report.stale.is_none() {
            report.stale = Some(label(*place));
        }
    }
    Ok(report)
}

/// How far apart the host's and the server's clocks, or two checkpoints
/// out of order, may be before a witness is not trusted: S3 refuses
/// requests signed more than 15 minutes off its clock, so an honest host
/// is never further off.
const ORDER_SLACK_SECS: i64 = 900;

/// Why a witnessed line (written at `written`, by its own time; stored by
/// the server at `stored`) is not the uploader's, if it is not: the
/// uploader ships a line after it is written, and the lines of a
/// recording in order. An object stored before the time its line gives
/// was put there ahead of the line (someone holding the credentials
/// claimed a checkpoint to come); a line dated before an earlier one
/// (`latest`) was not written in order.
fn out_of_order(
    written: Option<i64>,
    stored: Option<i64>,
    latest: Option<(i64, Place)>,
) -> Option<String> {
    let written = written?;
    if let Some(stored) = stored
        && stored + ORDER_SLACK_SECS < written
    {
        return Some(format!(
            "was stored {} s before the time it gives: put there ahead of the line, not by the uploader",
            written - stored
        ));
    }
    match latest {
        Some((t, before)) if written + ORDER_SLACK_SECS < t => Some(format!(
            "is dated {} s before {}: not written in order",
            t - written,
            label(before)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_keys_name_their_place() {
        assert_eq!(place_of("000002-0000000007"), Some((2, 7)));
        assert_eq!(place_of("000000-end"), Some((0, END)));
        assert_eq!(place_of("evil"), None);
        assert_eq!(place_of("00000000-1"), None, "only the uploader's spelling");
        assert_eq!(place_of("000000-1"), None);
        assert_eq!(label((1, END)), "segment 1 end");
    }

    #[test]
    fn a_witness_stored_ahead_of_its_line_or_out_of_order_is_not_trusted() {
        let t = 1_800_000_000;
        // The uploader's: stored a moment after the line, in order.
        assert_eq!(out_of_order(Some(t), Some(t + 1), Some((t - 1, (0, 4)))), None);
        // Clocks ten minutes apart (S3 takes up to 15) are no reason to
        // distrust.
        assert_eq!(out_of_order(Some(t), Some(t - 600), None), None);
        // Stored an hour before the line gives as its time.
        let why = out_of_order(Some(t), Some(t - 3600), None).unwrap();
        assert!(why.contains("3600 s before"), "{why}");
        // Dated an hour before an earlier checkpoint.
        let why = out_of_order(Some(t - 3600), Some(t), Some((t, (0, 7)))).unwrap();
        assert!(why.contains("segment 0 checkpoint 7"), "{why}");
        // Without a time, nothing to say.
        assert_eq!(out_of_order(None, Some(0), None), None);
    }
}

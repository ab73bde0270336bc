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
use tether_proto::record::{CHECKPOINT_PREFIX, END_PREFIX};

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
    /// Why the witness could not be read, if it could not.
    pub unavailable: Option<String>,
}

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

/// The signed lines of the segments, by place.
fn local_lines(segments: &[PathBuf]) -> BTreeMap<Place, Vec<u8>> {
    let mut lines = BTreeMap::new();
    for (n, path) in segments.iter().enumerate() {
        let Ok(data) = std::fs::read(path) else { continue };
        for line in data.split(|b| *b == b'\n') {
            let Ok(text) = std::str::from_utf8(line) else { continue };
            let (json, end) =
                match (text.strip_prefix(CHECKPOINT_PREFIX), text.strip_prefix(END_PREFIX)) {
                    (Some(j), _) => (j, false),
                    (_, Some(j)) => (j, true),
                    _ => continue,
                };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else { continue };
            let seq = if end { Some(END) } else { v["seq"].as_u64().filter(|s| *s != END) };
            if let Some(seq) = seq {
                lines.insert((n as u32, seq), line.to_vec());
            }
        }
    }
    lines
}

/// Where a witness object's key puts it: `…/SSSSSS-CCCCCCCCCC` or
/// `…/SSSSSS-end`.
fn place_of(key: &str) -> Option<Place> {
    let name = key.rsplit('/').next()?;
    let (seg, rest) = name.split_once('-')?;
    let seg = seg.parse().ok()?;
    if rest == "end" {
        return Some((seg, END));
    }
    Some((seg, rest.parse().ok().filter(|n| *n != END)?))
}

/// Compares the recording whose segments are `segments` (segment 0 first)
/// with its witness in the archive.
pub fn check(config: &ArchiveConfig, segments: &[PathBuf]) -> WitnessReport {
    let run = || -> Result<WitnessReport> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(compare(config, segments))
    };
    run().unwrap_or_else(|e| WitnessReport {
        unavailable: Some(format!("{e:#}")),
        ..WitnessReport::default()
    })
}

async fn compare(config: &ArchiveConfig, segments: &[PathBuf]) -> Result<WitnessReport> {
    let store = Store::open(config, std::time::Duration::from_secs(10))?;
    let (_, prefix) = config.bucket_and_prefix().map_err(crate::Failure::invalid)?;
    let layout = Layout::new(&prefix, &host_id());
    let base = segments
        .first()
        .and_then(|p| p.file_name())
        .and_then(|f| f.to_str())
        .unwrap_or_default()
        .to_owned();
    let folder = layout.witness(&base, 0, Some(0));
    let folder = &folder[..folder.rfind('/').unwrap_or(0) + 1];
    let mut witnessed: BTreeMap<Place, String> = BTreeMap::new();
    for key in store.keys_under(folder).await? {
        match place_of(&key) {
            Some(place) => {
                witnessed.insert(place, key);
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
    for (place, key) in &witnessed {
        let shipped = store.read(key).await?.unwrap_or_default();
        report.compared += 1;
        let why = match local.get(place) {
            None => Some("is no longer in the file"),
            Some(line) if *line != shipped => Some("differs from what was shipped"),
            Some(_) => None,
        };
        if let Some(why) = why {
            report.first_differs = Some(format!("{} {why}", label(*place)));
            break;
        }
    }
    report.unwitnessed = local
        .keys()
        .filter(|p| !witnessed.contains_key(p))
        .map(|(seg, seq)| if *seq == END { format!("{seg}:end") } else { format!("{seg}:{seq}") })
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_keys_name_their_place() {
        assert_eq!(place_of("p/h/witness/b.cast/000002-0000000007"), Some((2, 7)));
        assert_eq!(place_of("p/h/witness/b.cast/000000-end"), Some((0, END)));
        assert_eq!(place_of("p/h/witness/b.cast/evil"), None);
        assert_eq!(label((1, END)), "segment 1 end");
    }
}

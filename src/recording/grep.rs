//! `tether grep`: search the text of recordings as it appeared on screen.
//!
//! Output goes through the terminal emulator, so text drawn with cursor
//! movement, colours or carriage returns is found as it was shown. A line
//! counts when it is complete (the cursor moved below it); each has the
//! time of the event that completed it. Full-screen programs (the
//! alternate screen) are searched as snapshots of their screen, taken when
//! they leave and every few seconds while they run.

use super::seek::{apply, new_screen};
use super::{Recording, output_bytes};
use anyhow::Result;
use regex::Regex;
use serde::Serialize;
use std::collections::HashSet;
use tether_proto::WindowSize;

/// Seconds between snapshots of a full-screen program's screen.
const ALT_SNAPSHOT_EVERY: f64 = 5.0;

/// One matching line.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    /// The session.
    pub session: String,
    /// Wall-clock time, RFC 3339 UTC.
    pub time: String,
    /// Seconds since the recording started.
    pub offset: f64,
    /// The line's text.
    pub line: String,
}

/// Searches `rec`, calling `found` for each match between `since` and
/// `until` (offsets in seconds).
///
/// # Errors
///
/// The recording cannot be read.
pub fn search(
    rec: &Recording,
    pattern: &Regex,
    since: f64,
    until: f64,
    found: &mut dyn FnMut(Match) -> Result<()>,
) -> Result<()> {
    let session = rec.session_name();
    let started = rec.started();
    let mut emit = |offset: f64, line: String| -> Result<()> {
        if offset < since || offset > until || !pattern.is_match(&line) {
            return Ok(());
        }
        let time = started
            .and_then(|s| s.checked_add(jiff::SignedDuration::from_secs_f64(offset)).ok())
            .map_or_else(String::new, crate::clock::format_rfc3339);
        found(Match { session: session.clone(), time, offset, line })
    };
    let size = WindowSize { cols: rec.header.term.cols, rows: rec.header.term.rows };
    let mut screen = new_screen(size);
    let mut next = 0;
    let mut alt = AltSnapshots::default();
    let mut last_time = 0.0;
    for event in rec.events() {
        let event = event?;
        last_time = event.time;
        let is_output = output_bytes(&event.data).is_some();
        apply(&mut screen, &event.data);
        if !is_output {
            continue;
        }
        let (lines, after) = screen.completed_lines(next, false);
        next = after;
        for line in lines {
            emit(event.time, line)?;
        }
        for line in alt.observe(&screen, event.time) {
            emit(event.time, line)?;
        }
    }
    for line in alt.finish(&screen) {
        emit(last_time, line)?;
    }
    let (lines, _) = screen.completed_lines(next, true);
    for line in lines {
        emit(last_time, line)?;
    }
    Ok(())
}

/// Snapshots of the alternate screen, each line reported once per visit.
#[derive(Default)]
struct AltSnapshots {
    active: bool,
    last: Vec<String>,
    taken: f64,
    seen: HashSet<String>,
}

impl AltSnapshots {
    fn observe(&mut self, screen: &crate::term::screen::Screen, time: f64) -> Vec<String> {
        let now_alt = screen.modes().alt_screen();
        if now_alt {
            let lines = screen.visible_text();
            if !self.active {
                self.active = true;
                self.taken = time;
                self.seen.clear();
            }
            self.last = lines;
            if time - self.taken >= ALT_SNAPSHOT_EVERY {
                self.taken = time;
                return self.fresh(self.last.clone());
            }
            return Vec::new();
        }
        if self.active {
            self.active = false;
            let last = std::mem::take(&mut self.last);
            return self.fresh(last);
        }
        Vec::new()
    }

    fn finish(&mut self, _screen: &crate::term::screen::Screen) -> Vec<String> {
        if self.active {
            let last = std::mem::take(&mut self.last);
            return self.fresh(last);
        }
        Vec::new()
    }

    fn fresh(&mut self, lines: Vec<String>) -> Vec<String> {
        lines.into_iter().filter(|l| !l.trim().is_empty() && self.seen.insert(l.clone())).collect()
    }
}

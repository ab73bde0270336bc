//! The screen of a recording at any moment, without replaying from the
//! start: the latest keyframe (a redraw the keeper took every 4 MiB of
//! output) before the moment, reached through the index (an entry every
//! MiB of output), then the events up to the moment.

use super::{EventIter, Recording, output_bytes};
use crate::term::screen::Screen;
use anyhow::Result;
use tether_proto::WindowSize;
use tether_proto::record::{Event, EventData};

/// History kept by replay screens, in lines of the recording's width.
const REPLAY_HISTORY_LINES: usize = 1000;

/// A screen at a moment, and the events after it.
pub struct Seeked {
    /// The screen at the moment.
    pub screen: Screen,
    /// The events after the moment.
    pub events: EventIter,
    /// The first event after the moment, already read.
    pub next: Option<Event>,
}

/// A fresh screen of `size`.
pub fn new_screen(size: WindowSize) -> Screen {
    Screen::new(size, REPLAY_HISTORY_LINES * usize::from(size.sanitized().cols))
}

/// Applies an event to a screen.
pub fn apply(screen: &mut Screen, data: &EventData) {
    match data {
        EventData::Resize { cols, rows } => screen.resize(WindowSize { cols: *cols, rows: *rows }),
        other => {
            if let Some(bytes) = output_bytes(other) {
                screen.feed(bytes);
            }
        }
    }
}

/// The screen after every event at or before `t` seconds.
///
/// # Errors
///
/// The recording cannot be read.
pub fn seek(rec: &Recording, t: f64) -> Result<Seeked> {
    let (mut screen, mut events, mut skip) = start_near(rec, t)?;
    loop {
        let Some(event) = events.next().transpose()? else {
            return Ok(Seeked { screen, events, next: None });
        };
        if skip > 0 {
            if let Some(bytes) = output_bytes(&event.data) {
                let n = bytes.len() as u64;
                if n <= skip {
                    skip -= n;
                    continue;
                }
                screen.feed(&bytes[skip as usize..]);
                skip = 0;
            }
            continue;
        }
        if event.time > t {
            return Ok(Seeked { screen, events, next: Some(event) });
        }
        apply(&mut screen, &event.data);
    }
}

/// The screen after exactly `out` bytes of output (where a command began:
/// docs/COMMANDS.md), the events at that point applied too.
///
/// # Errors
///
/// The recording cannot be read.
pub fn at_output(rec: &Recording, out: u64) -> Result<Screen> {
    let (mut screen, mut events, mut skip, mut shown) = start_from(rec, out)?;
    while shown < out {
        let Some(event) = events.next().transpose()? else { break };
        let Some(bytes) = output_bytes(&event.data) else {
            // Output the recording lost still counts in `out`.
            if let EventData::Gap(gap) = &event.data {
                shown += gap.lost_bytes;
            }
            apply(&mut screen, &event.data);
            continue;
        };
        let bytes = if skip > 0 {
            let n = skip.min(bytes.len() as u64);
            skip -= n;
            &bytes[n as usize..]
        } else {
            bytes
        };
        let take = bytes.len().min(usize::try_from(out - shown).unwrap_or(usize::MAX));
        screen.feed(&bytes[..take]);
        shown += take as u64;
    }
    Ok(screen)
}

/// Where to start for `t`: a keyframe's screen, the events from the index
/// entry before it, and how many output bytes of those the keyframe
/// already contains. Without sidecars: the start.
fn start_near(rec: &Recording, t: f64) -> Result<(Screen, EventIter, u64)> {
    let index = rec.index();
    let reachable = index.iter().filter(|e| e.time <= t).map(|e| e.out).max().unwrap_or(0);
    let (screen, events, skip, _) = start_from(rec, reachable)?;
    Ok((screen, events, skip))
}

/// Where to start to show at most `out` bytes of output: a keyframe's
/// screen, the events from the index entry before it, how many output
/// bytes of those the keyframe already contains, and how many the screen
/// shows. Without sidecars: the start.
fn start_from(rec: &Recording, out: u64) -> Result<(Screen, EventIter, u64, u64)> {
    let initial = WindowSize { cols: rec.header.term.cols, rows: rec.header.term.rows };
    let index = rec.index();
    let keys = rec.keyframes();
    let Some(key) = keys.iter().filter(|k| k.out <= out).max_by_key(|k| k.out) else {
        return Ok((new_screen(initial), rec.events(), 0, 0));
    };
    let Some(entry) = index.iter().filter(|e| e.out <= key.out).max_by_key(|e| e.out) else {
        return Ok((new_screen(initial), rec.events(), 0, 0));
    };
    let mut screen = new_screen(WindowSize { cols: key.cols, rows: key.rows });
    screen.feed(key.dump.as_bytes());
    let lines = rec.lines_from(entry.seg, entry.pos)?;
    Ok((screen, EventIter::resume(lines, entry.time), key.out - entry.out, key.out))
}

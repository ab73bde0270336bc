//! `tether grep`: search the text of recordings as it was shown on screen.
//!
//! Output goes through the terminal emulator, so text drawn with cursor
//! movement, colours or carriage returns is found as it was shown. The rule
//! (docs/RECORDING.md, "What grep finds"): every non-blank line that was on
//! the screen is found once per time it was shown, in each form it had,
//! with the time it first appeared in that form, however it left the
//! screen (scrolled off, erased, overwritten, the full-screen program
//! ended) or if it was still there at the end.
//!
//! How (`Shown`): after each event that changes the screen, the logical
//! lines (soft wraps joined) of the active screen are compared with the
//! occurrences tracked after the previous one (`update`):
//!
//! 1. same row and same text: the same occurrence. Rows of the main screen
//!    are absolute (lines evicted + history + screen row), so scrolling is
//!    not a change;
//! 2. the same text elsewhere among the occurrences not matched yet: the
//!    same occurrence, moved (scroll regions, inserted or deleted lines);
//! 3. same row, and the old text is a prefix of the new one: the same line
//!    grown (typed, printed in pieces); it is now in its new form, with the
//!    time of that form;
//! 4. otherwise a new occurrence, with the event's time.
//!
//! Occurrences left unmatched have left the screen: they are reported.
//! Lines that scrolled into the main screen's history are reported as they
//! get there, also those that appeared and scrolled away within one event
//! (the screen keeps what it evicts for us, so a flood loses nothing), and
//! the main screen's lines wait under a full-screen program (the emulator
//! keeps them) rather than being reported or seen twice. A resize shows
//! nothing new: it may reflow the main screen, bring history back into
//! view, or clip lines, so after one, lines are found again by text and
//! any line that differs counts as already reported. Per event only the
//! screen and the lines that scrolled are read.
//!
//! Lines are reported in the order they appeared (an occurrence's
//! sequence number), not the order they left the screen: a match waits
//! until no earlier occurrence can still be reported.

use super::seek::{apply, new_screen};
use super::{Recording, output_bytes};
use crate::term::screen::Screen;
use anyhow::Result;
use avt::Line;
use regex::Regex;
use serde::Serialize;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use tether_proto::WindowSize;
use tether_proto::record::EventData;

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
/// `until` (offsets in seconds), in the order the lines appeared.
///
/// # Errors
///
/// The recording cannot be read.
pub fn search(
    rec: &Recording,
    pattern: &Regex,
    since: f64,
    until: f64,
    within: Option<&[(f64, f64)]>,
    found: &mut dyn FnMut(Match) -> Result<()>,
) -> Result<()> {
    let session = rec.session_name();
    let started = rec.started();
    let mut emit = |seen: Seen| -> Result<()> {
        let time = started
            .and_then(|s| s.checked_add(jiff::SignedDuration::from_secs_f64(seen.time)).ok())
            .map_or_else(String::new, crate::clock::format_rfc3339);
        found(Match { session: session.clone(), time, offset: seen.time, line: seen.text })
    };
    let wanted = |seen: &Seen| {
        seen.time >= since
            && seen.time <= until
            && within.is_none_or(|w| w.iter().any(|(a, b)| seen.time >= *a && seen.time <= *b))
            && pattern.is_match(&seen.text)
    };
    let size = WindowSize { cols: rec.header.term.cols, rows: rec.header.term.rows };
    let mut screen = new_screen(size);
    let mut shown = Shown::new(&mut screen);
    let mut waiting = BinaryHeap::new();
    for event in rec.events() {
        let event = event?;
        shown.step(&mut screen, &event.data, event.time);
        waiting.extend(shown.take().into_iter().filter(wanted).map(Reverse));
        // Matches wait for every earlier line still on screen, but at most
        // WAITING_MAX of them: beyond that (a line that never leaves, in a
        // huge recording) the oldest go out ahead of it.
        let before = shown.pending_from();
        while waiting.peek().is_some_and(|Reverse(s): &Reverse<Seen>| s.seq < before)
            || waiting.len() > WAITING_MAX
        {
            if let Some(Reverse(seen)) = waiting.pop() {
                emit(seen)?;
            }
        }
    }
    shown.finish();
    waiting.extend(shown.take().into_iter().filter(wanted).map(Reverse));
    while let Some(Reverse(seen)) = waiting.pop() {
        emit(seen)?;
    }
    Ok(())
}

/// Matches held back to keep the output in the order lines appeared.
const WAITING_MAX: usize = 10_000;

/// A line that was shown, reported once it has left the screen.
#[derive(Debug, Clone)]
struct Seen {
    /// Its place in the order lines appeared.
    seq: u64,
    /// When it first appeared in this form (seconds into the recording).
    time: f64,
    text: String,
}

impl PartialEq for Seen {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Seen {}

impl PartialOrd for Seen {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Seen {
    fn cmp(&self, other: &Self) -> Ordering {
        self.seq.cmp(&other.seq)
    }
}

/// One occurrence of a logical line on a screen.
#[derive(Debug)]
struct Occurrence {
    text: String,
    /// When it first appeared in this form.
    time: f64,
    /// The row of its first cell: absolute on the main screen, the screen
    /// row on the alternate screen.
    row: u64,
    seq: u64,
    /// Reported already, or not a showing: a line that differs after a
    /// resize (history brought back into view, a reflow artefact).
    reported: bool,
}

/// A non-blank logical line of a screen after an event.
#[derive(Debug)]
struct Row {
    row: u64,
    text: String,
    /// Now in the main screen's history: it has left the screen.
    gone: bool,
}

/// Appearance numbers and the lines that left the screen.
#[derive(Default)]
struct Log {
    next_seq: u64,
    left: Vec<Seen>,
}

impl Log {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    fn retire(&mut self, occ: Occurrence) {
        if !occ.reported {
            self.left.push(Seen { seq: occ.seq, time: occ.time, text: occ.text });
        }
    }
}

/// The lines shown so far, followed event by event.
struct Shown {
    /// The main screen's occurrences (kept while the alternate screen is
    /// shown: the emulator keeps the main screen meanwhile).
    primary: Vec<Occurrence>,
    alternate: Vec<Occurrence>,
    /// Absolute row where the main screen's first logical line not yet
    /// (entirely) in the history starts: rows above it are reported.
    live: u64,
    /// Absolute row of the main screen's first screen row at the last
    /// look: lower later (without a resize) means the terminal was reset.
    history_end: u64,
    was_alternate: bool,
    log: Log,
}

impl Shown {
    /// Follows `screen` (a fresh one), which from now on keeps the lines
    /// it evicts for us.
    fn new(screen: &mut Screen) -> Self {
        screen.keep_evicted();
        Shown {
            primary: Vec::new(),
            alternate: Vec::new(),
            live: screen.evicted(),
            history_end: screen.evicted(),
            was_alternate: false,
            log: Log::default(),
        }
    }

    /// Applies an event at `time` (seconds) to `screen` and follows what
    /// it changed.
    fn step(&mut self, screen: &mut Screen, data: &EventData, time: f64) {
        let resized = matches!(data, EventData::Resize { .. });
        if !resized && output_bytes(data).is_none() {
            return;
        }
        apply(screen, data);
        let evicted = screen.take_evicted();
        let alternate = screen.alternate_active();
        if !alternate || !self.was_alternate || resized {
            self.observe_primary(screen, &evicted, time, resized);
        }
        if alternate {
            let rows = alternate_rows(screen);
            update(&mut self.alternate, rows, time, resized, &mut self.log);
        } else {
            for occ in self.alternate.drain(..) {
                self.log.retire(occ);
            }
        }
        self.was_alternate = alternate;
    }

    /// The main screen after an event: `evicted`, the lines it dropped
    /// during the event.
    ///
    /// After a resize the rows may have moved (a reflow), so `live` may
    /// point at the wrong line: too early, and history already reported
    /// is read again, which a resize cannot make new (see [`update`]); too
    /// late, and tracked lines now in the history are not read, which
    /// reports them as gone. Either way each line is reported once.
    fn observe_primary(&mut self, screen: &Screen, evicted: &[Line], time: f64, resized: bool) {
        let first = screen.evicted();
        let kept_from = first.saturating_sub(evicted.len() as u64);
        let history_end = first + screen.history_len() as u64;
        if history_end < self.history_end && !resized {
            // A reset (RIS) forgot everything, history included.
            for occ in self.primary.drain(..) {
                self.log.retire(occ);
            }
            self.live = first;
        }
        self.history_end = history_end;
        let line_at = |abs: u64| -> Option<&Line> {
            if abs < first {
                evicted.get(usize::try_from(abs - kept_from).ok()?)
            } else {
                screen.primary_lines().nth(usize::try_from(abs - first).ok()?)
            }
        };
        // From the start of the logical line holding the reported history's
        // end, or the screen's first row if a resize brought history back.
        let mut start = self.live.min(history_end).max(kept_from);
        while start > kept_from && line_at(start - 1).is_some_and(Line::is_wrapped) {
            start -= 1;
        }
        let skip_kept = usize::try_from(start - kept_from).unwrap_or(usize::MAX);
        let skip_screen = usize::try_from(start.saturating_sub(first)).unwrap_or(usize::MAX);
        let mut lines = evicted
            .iter()
            .skip(skip_kept)
            .chain(screen.primary_lines().skip(skip_screen))
            .peekable();
        let mut rows = Vec::new();
        let mut text = String::new();
        let mut abs = start;
        let mut line_start = start;
        let mut live = None;
        let table = screen.table();
        while let Some(line) = lines.next() {
            for c in line.chars() {
                table.push_text(c, &mut text);
            }
            if !line.is_wrapped() || lines.peek().is_none() {
                let gone = abs < history_end;
                if !gone && live.is_none() {
                    live = Some(line_start);
                }
                let trimmed = text.trim_end();
                if !trimmed.trim_start().is_empty() {
                    rows.push(Row { row: line_start, text: trimmed.to_owned(), gone });
                }
                text.clear();
                line_start = abs + 1;
            }
            abs += 1;
        }
        self.live = live.unwrap_or(line_start);
        update(&mut self.primary, rows, time, resized, &mut self.log);
    }

    /// The end of the recording: whatever is still shown has been shown.
    fn finish(&mut self) {
        for occ in self.alternate.drain(..).chain(self.primary.drain(..)) {
            self.log.retire(occ);
        }
    }

    /// The lines that left the screen since the last call.
    fn take(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.log.left)
    }

    /// The first appearance number that may still be reported: lines
    /// before it are all out.
    fn pending_from(&self) -> u64 {
        self.primary
            .iter()
            .chain(&self.alternate)
            .filter(|o| !o.reported)
            .map(|o| o.seq)
            .min()
            .unwrap_or(self.log.next_seq)
    }
}

/// The non-blank logical lines of the alternate screen.
fn alternate_rows(screen: &Screen) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut text = String::new();
    let mut line_start = 0;
    let mut lines = screen.visible_lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        for c in line.chars() {
            screen.table().push_text(c, &mut text);
        }
        if !line.is_wrapped() || lines.peek().is_none() {
            let trimmed = text.trim_end();
            if !trimmed.trim_start().is_empty() {
                rows.push(Row { row: line_start, text: trimmed.to_owned(), gone: false });
            }
            text.clear();
            line_start = i as u64 + 1;
        }
    }
    rows
}

/// Matches a screen's lines after an event at `time` with its tracked
/// occurrences (the rules in the module doc), reports those that left and
/// the lines that are `gone`, and keeps the rest.
///
/// After a resize (`resized`), nothing is new: the job has drawn nothing
/// yet, so a line that differs (reflowed history brought back into view,
/// a line clipped, a line the emulator split at the history's edge when it
/// rebuilt its scrollback) is kept as already reported, and no line grows.
fn update(occs: &mut Vec<Occurrence>, rows: Vec<Row>, time: f64, resized: bool, log: &mut Log) {
    let before = std::mem::take(occs);
    let mut taken = vec![false; before.len()];
    // For each row: the occurrence it continues, and whether it grew.
    let mut matched: Vec<Option<(usize, bool)>> = vec![None; rows.len()];
    {
        let by_row: HashMap<u64, usize> =
            before.iter().enumerate().map(|(i, o)| (o.row, i)).collect();
        // 1. Same row, same text.
        for (j, r) in rows.iter().enumerate() {
            if let Some(&i) = by_row.get(&r.row)
                && !taken[i]
                && before[i].text == r.text
            {
                taken[i] = true;
                matched[j] = Some((i, false));
            }
        }
        // 2. The same text elsewhere, in order (a scroll keeps the order).
        let mut by_text: HashMap<&str, VecDeque<usize>> = HashMap::new();
        for (i, o) in before.iter().enumerate() {
            if !taken[i] {
                by_text.entry(o.text.as_str()).or_default().push_back(i);
            }
        }
        for (j, r) in rows.iter().enumerate() {
            if matched[j].is_some() {
                continue;
            }
            if let Some(i) = by_text.get_mut(r.text.as_str()).and_then(VecDeque::pop_front) {
                taken[i] = true;
                matched[j] = Some((i, false));
            }
        }
        // 3. Same row, grown.
        for (j, r) in rows.iter().enumerate() {
            if let Some(&i) = by_row.get(&r.row)
                && !resized
                && matched[j].is_none()
                && !taken[i]
                && r.text.starts_with(&before[i].text)
            {
                taken[i] = true;
                matched[j] = Some((i, true));
            }
        }
    }
    let mut before: Vec<Option<Occurrence>> = before.into_iter().map(Some).collect();
    for (r, m) in rows.into_iter().zip(matched) {
        let continued = m.and_then(|(i, grown)| Some((before[i].take()?, grown)));
        let occ = match continued {
            Some((mut occ, grown)) => {
                occ.row = r.row;
                if grown {
                    occ.text = r.text;
                    occ.time = time;
                    occ.seq = log.seq();
                    occ.reported = false;
                }
                occ
            }
            None => {
                Occurrence { text: r.text, time, row: r.row, seq: log.seq(), reported: resized }
            }
        };
        if r.gone {
            log.retire(occ);
        } else {
            occs.push(occ);
        }
    }
    for occ in before.into_iter().flatten() {
        log.retire(occ);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs events through a `cols` x `rows` screen: each `(time, data)`
    /// is output, or a resize written `"\0COLSxROWS"`. Returns what grep
    /// would report, in order, as `(time, text)`.
    fn shown(cols: u16, rows: u16, events: &[(f64, &str)]) -> Vec<(f64, String)> {
        let mut screen = new_screen(WindowSize { cols, rows });
        let mut shown = Shown::new(&mut screen);
        let mut all = Vec::new();
        let mut out = Vec::new();
        for (time, data) in events {
            let data = match data.strip_prefix('\0') {
                Some(size) => {
                    let (c, r) = size.split_once('x').unwrap();
                    EventData::Resize { cols: c.parse().unwrap(), rows: r.parse().unwrap() }
                }
                None => EventData::Output((*data).to_owned()),
            };
            shown.step(&mut screen, &data, *time);
            all.extend(shown.take());
            // Reported in order: nothing waiting may come before a later line.
            all.sort();
            let from = shown.pending_from();
            let ready = all.iter().take_while(|s| s.seq < from).count();
            out.extend(all.drain(..ready));
        }
        shown.finish();
        all.extend(shown.take());
        all.sort();
        out.extend(all);
        out.into_iter().map(|s| (s.time, s.text)).collect()
    }

    fn texts(found: &[(f64, String)], needle: &str) -> Vec<(f64, String)> {
        found.iter().filter(|(_, t)| t.contains(needle)).cloned().collect()
    }

    fn at(t: f64, text: &str) -> (f64, String) {
        (t, text.to_owned())
    }

    #[test]
    fn each_cleared_screen_is_found_with_its_own_time() {
        let mut events = Vec::new();
        let screens: Vec<String> = ["A", "B", "C", "D"]
            .iter()
            .map(|p| format!("\x1b[2J\x1b[H== status ==\x1b[5;10HPHASE-{p} running\x1b[H"))
            .collect();
        for (i, s) in screens.iter().enumerate() {
            events.push((i as f64, s.as_str()));
        }
        let found = shown(40, 10, &events);
        assert_eq!(
            texts(&found, "PHASE"),
            [
                at(0.0, "         PHASE-A running"),
                at(1.0, "         PHASE-B running"),
                at(2.0, "         PHASE-C running"),
                at(3.0, "         PHASE-D running"),
            ]
        );
    }

    #[test]
    fn alternate_screens_redrawn_in_place_are_each_found() {
        let found = shown(
            40,
            10,
            &[
                (0.0, "before\r\n\x1b[?1049h\x1b[2J\x1b[H== top ==\x1b[3;1HPHASE-A"),
                (1.0, "\x1b[2J\x1b[H== top ==\x1b[3;1HPHASE-B"),
                (2.0, "\x1b[3;1HPHASE-C"),
                (3.0, "\x1b[?1049l"),
                (4.0, "after\r\n"),
            ],
        );
        assert_eq!(
            found,
            [
                at(0.0, "before"),
                at(0.0, "== top =="),
                at(0.0, "PHASE-A"),
                at(1.0, "PHASE-B"),
                at(2.0, "PHASE-C"),
                at(4.0, "after"),
            ]
        );
    }

    #[test]
    fn overwritten_forms_are_each_found_and_a_growing_line_once() {
        let found = shown(
            40,
            10,
            &[
                (0.0, "progress 1/3"),
                (1.0, "\rprogress 2/3"),
                (2.0, "\rprogress 3/3 ok\r\n"),
                (3.0, "piece-one "),
                (4.0, "piece-two "),
                (5.0, "piece-three\r\n"),
            ],
        );
        assert_eq!(
            found,
            [
                at(0.0, "progress 1/3"),
                at(1.0, "progress 2/3"),
                at(2.0, "progress 3/3 ok"),
                at(5.0, "piece-one piece-two piece-three"),
            ]
        );
    }

    #[test]
    fn a_flood_in_one_event_loses_nothing() {
        let flood: String = (0..5000).map(|i| format!("line {i}\r\n")).collect();
        let found = shown(20, 5, &[(0.0, "first\r\n"), (1.0, &flood), (2.0, "last\r\n")]);
        assert_eq!(found.len(), 5002);
        assert_eq!(found[0], at(0.0, "first"));
        for (i, (t, text)) in found[1..5001].iter().enumerate() {
            assert_eq!((*t, text.as_str()), (1.0, format!("line {i}").as_str()));
        }
        assert_eq!(found[5001], at(2.0, "last"));
    }

    #[test]
    fn lines_moved_by_a_scroll_region_keep_their_time() {
        // A status line at the bottom, log lines scrolling above it in a
        // region that does not start at the top.
        let found = shown(
            30,
            6,
            &[
                (0.0, "title\x1b[2;5r\x1b[6;1Hstatus\x1b[2;1Hone"),
                (1.0, "\x1b[5;1H\r\ntwo\r\nthree\r\nfour\r\nfive"),
                (2.0, "\x1b[5;1H\r\nsix"),
            ],
        );
        // "one" scrolled out of the region (it is not in the history).
        assert!(found.contains(&at(0.0, "one")), "{found:?}");
        assert_eq!(found.iter().filter(|(_, t)| t == "two").count(), 1, "{found:?}");
        assert!(found.contains(&at(1.0, "two")), "{found:?}");
        assert!(found.contains(&at(0.0, "status")) && found.contains(&at(0.0, "title")));
        let times: Vec<f64> = found.iter().map(|(t, _)| *t).collect();
        assert!(times.is_sorted(), "{found:?}");
    }

    #[test]
    fn resizes_neither_duplicate_nor_lose_lines() {
        let text: String = (0..30).map(|i| format!("{i:02} {}\r\n", "x".repeat(15))).collect();
        let found = shown(
            20,
            5,
            &[
                (0.0, &text),
                (1.0, "\x0010x5"),  // narrower: every line wraps
                (2.0, "\x0040x12"), // wider and taller: history comes back into view
                (3.0, "\x1b[1;1H\x1b[2Koverwritten"),
                (4.0, "\x0020x5"),
                (5.0, "\x1b[99;1H\r\nend\r\n"),
            ],
        );
        for i in 0..30 {
            let line = format!("{i:02} {}", "x".repeat(15));
            assert_eq!(found.iter().filter(|(_, t)| *t == line).count(), 1, "{line}: {found:?}");
        }
        assert_eq!(texts(&found, "overwritten"), [at(3.0, "overwritten")], "{found:?}");
        assert_eq!(texts(&found, "end"), [at(5.0, "end")]);
    }

    #[test]
    fn resizes_that_drop_history_neither_duplicate_nor_lose_lines() {
        // A full scrollback (1000 rows of 20 columns) that a narrower
        // screen pushes out (each line takes two rows), then a wider one
        // rebuilds with fewer rows.
        let text: String = (0..1200).map(|i| format!("{i:04} {}\r\n", "y".repeat(12))).collect();
        let found = shown(
            20,
            5,
            &[
                (0.0, &text),
                (1.0, "\x0010x5"),
                (2.0, "tail one\r\n"),
                (3.0, "\x0040x5"),
                (4.0, "tail two\r\n"),
            ],
        );
        let lines: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
        let mut expected: Vec<String> =
            (0..1200).map(|i| format!("{i:04} {}", "y".repeat(12))).collect();
        expected.extend(["tail one".to_owned(), "tail two".to_owned()]);
        let diff: Vec<_> = lines
            .iter()
            .enumerate()
            .filter(|(i, l)| expected.get(*i).map(String::as_str) != Some(**l))
            .take(5)
            .collect();
        assert_eq!(
            lines.len(),
            expected.len(),
            "{diff:?} {:?}",
            &lines[lines.len().saturating_sub(8)..]
        );
        assert_eq!(lines, expected);
    }

    #[test]
    fn lines_under_a_full_screen_program_are_found_once() {
        let found = shown(
            30,
            5,
            &[
                (0.0, "one\r\ntwo\r\n"),
                (1.0, "\x1b[?1049h\x1b[Hfull"),
                (2.0, "\x1b[?1049l"),
                (3.0, "three\r\n"),
            ],
        );
        assert_eq!(found, [at(0.0, "one"), at(0.0, "two"), at(1.0, "full"), at(3.0, "three")]);
    }

    #[test]
    fn a_resize_under_a_full_screen_program_repeats_nothing() {
        let text: String = (0..8).map(|i| format!("{i} {}\r\n", "z".repeat(25))).collect();
        let found = shown(
            40,
            5,
            &[
                (0.0, &text),
                (1.0, "\x1b[?1049h\x1b[Hfull"),
                (2.0, "\x0020x5"),
                (3.0, "\x1b[H\x1b[2Jsecond"),
                (4.0, "\x1b[?1049l"),
                (5.0, "\x0040x6"),
                (6.0, "end\r\n"),
            ],
        );
        let mut expected: Vec<(f64, String)> =
            (0..8).map(|i| at(0.0, &format!("{i} {}", "z".repeat(25)))).collect();
        expected.extend([at(1.0, "full"), at(3.0, "second"), at(6.0, "end")]);
        assert_eq!(found, expected);
    }

    #[test]
    fn a_reset_forgets_nothing_that_was_shown() {
        let lines: String = (0..20).map(|i| format!("old {i}\r\n")).collect();
        let found =
            shown(20, 5, &[(0.0, &lines), (1.0, "\x1bcnew\r\n"), (2.0, "\x1bc"), (3.0, "newer")]);
        assert_eq!(found.len(), 22, "{found:?}");
        assert_eq!(found[20..], [at(1.0, "new"), at(3.0, "newer")]);
    }
}

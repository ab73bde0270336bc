//! The session's screen: everything the job printed, interpreted.
//!
//! In a keeper, bytes come from the parser thread; the recording tools feed
//! recorded output, a watcher's view the stream it is sent. They go through
//! the [`VtScanner`] (boundaries, queries, modes) into the avt terminal
//! emulator, which keeps both screens, the cursor and the scrollback. Out
//! come the bytes for clients (queries removed), the answers to the job's
//! queries, redraws for attaching or lagging clients, and text for `tail`.
//!
//! Scrollback is bounded in cells, not lines: the emulator's line limit is
//! `scrollback_cells / cols`, recomputed (and the history rebuilt) when the
//! screen grows wider.

use crate::term::cells::Table;
use crate::term::feed::Feeder;
use crate::term::redraw::{Caps, Style, portable, sets_tabs, write_default_tabs};
use crate::term::scan::{Action, Modes, Query, ShellMark, Span, VtScanner};
use avt::{Line, Observation, Observer, Pen, ScreenKind, Terminal};
use bytes::Bytes;
use tether_proto::{AttachMode, WindowSize};
use unicode_width::UnicodeWidthChar;

/// What one PTY read turned into.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// For every attachment: the output with all queries removed.
    pub output: Bytes,
    /// For the most recently active interactive client, when the output
    /// held queries only one terminal should answer: `output` plus those.
    pub one_client: Option<Bytes>,
    /// For read-only watchers, when the output held sequences that would
    /// act on their machine: `output` without those.
    pub watchers: Option<Bytes>,
    /// The keeper's own answers to the job's queries, for the PTY.
    pub replies: Vec<u8>,
    /// Commands that began or ended (from the shell's marks), each with
    /// where its mark ends among the bytes this call interpreted.
    pub commands: Vec<(usize, ShellEvent)>,
}

/// A command the shell's marks (OSC 133) say began or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// It began: its command line as the screen showed it between the
    /// `B` and `C` marks (so after editing and history recall), and the
    /// working directory the shell last reported (OSC 7).
    Start {
        /// The command line.
        command: String,
        /// The working directory.
        cwd: Option<String>,
        /// Both marks were the shell integration's own.
        authentic: bool,
    },
    /// It ended (`D`), with the status the shell gave.
    End {
        /// The exit status.
        exit: Option<i32>,
        /// The mark was the shell integration's own.
        authentic: bool,
    },
}

/// What the shell's marks have said so far.
#[derive(Debug, Default)]
struct Shell {
    /// The working directory (OSC 7).
    cwd: Option<String>,
    /// Where the command line began (`B`): absolute line, column, and
    /// whether the mark was the integration's own.
    input: Option<(u64, usize, bool)>,
    /// A command runs (`C` seen, `D` not yet).
    running: bool,
    /// A mark of the shell integration's own was seen: from then on,
    /// marks without its secret change nothing (an end is still reported,
    /// as the job's).
    integrated: bool,
}

/// The longest command line kept (bytes).
const COMMAND_MAX: usize = 16 * 1024;

/// `text` (a row of a command line, from column `from`, its end trimmed)
/// without a right prompt (zsh's `RPROMPT`, fish's `fish_right_prompt`):
/// text that ends at the right edge (or one column short of it) after a
/// gap of three blanks or more is the shell's, not the command's.
fn without_right_prompt(text: &str, from: usize, cols: u16) -> &str {
    let width = from + text.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
    if width + 1 < usize::from(cols) {
        return text;
    }
    match text.rfind("   ") {
        Some(gap) if !text[..gap].trim_end().is_empty() => text[..gap].trim_end(),
        _ => text,
    }
}

/// Scanned output as each kind of attachment receives it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routed {
    /// For every attachment: the output with all queries removed.
    pub output: Bytes,
    /// For the most recently active interactive client, when the output
    /// held queries only one terminal should answer: `output` plus those.
    pub one_client: Option<Bytes>,
    /// For read-only watchers, when the output held sequences that would
    /// act on their machine: `output` without those.
    pub watchers: Option<Bytes>,
}

impl Routed {
    /// Whether nobody would receive anything.
    pub fn is_empty(&self) -> bool {
        self.output.is_empty() && self.one_client.is_none()
    }

    /// Output replayed to a client that may have seen it already: without
    /// queries and without sequences that act beyond the screen.
    pub fn replayed(&self) -> Bytes {
        self.watchers.clone().unwrap_or_else(|| self.output.clone())
    }

    /// What one attachment receives: `mode`, whether it is the most
    /// recently active interactive client, and whether watchers may get
    /// the unsafe sequences too (config `watcher_passthrough`).
    pub fn for_attachment(
        &self,
        mode: AttachMode,
        active: bool,
        watchers_unsafe_ok: bool,
    ) -> Bytes {
        match (mode, &self.one_client, &self.watchers) {
            (AttachMode::ReadOnly, _, Some(safe)) if !watchers_unsafe_ok => safe.clone(),
            (AttachMode::Interactive, Some(b), _) if active => b.clone(),
            _ => self.output.clone(),
        }
    }
}

/// Splits the complete, scanned bytes `buf` (with the scanner's `spans`)
/// into what each kind of attachment receives. Pure: the PTY reader (for
/// attachments served ahead of the screen model) and the screen model (for
/// those catching up behind it) route the same bytes the same way.
pub fn route(buf: &[u8], spans: &[Span]) -> Routed {
    if spans.is_empty() {
        return Routed { output: Bytes::copy_from_slice(buf), ..Routed::default() };
    }
    let mut output = Vec::with_capacity(buf.len());
    let mut one_client = Vec::with_capacity(buf.len());
    let mut watchers = Vec::with_capacity(buf.len());
    let mut copied = 0;
    for span in spans {
        let before = &buf[copied..span.range.start];
        for v in [&mut output, &mut one_client, &mut watchers] {
            v.extend_from_slice(before);
        }
        copied = span.range.end;
        let bytes = &buf[span.range.clone()];
        match span.action {
            Action::Answer(_) | Action::Drop => {}
            Action::OneClient => one_client.extend_from_slice(bytes),
            Action::Unsafe => {
                output.extend_from_slice(bytes);
                one_client.extend_from_slice(bytes);
            }
        }
    }
    for v in [&mut output, &mut one_client, &mut watchers] {
        v.extend_from_slice(&buf[copied..]);
    }
    let one_client = (one_client != output).then(|| Bytes::from(one_client));
    let watchers = (watchers != output).then(|| Bytes::from(watchers));
    Routed { output: Bytes::from(output), one_client, watchers }
}

/// Clears a terminal of whatever an earlier stream left (alternate screen,
/// modes, margins, colours) before a redraw paints the session.
const REDRAW_PREFIX: &str = concat!(
    "\x1b[?1049l\x1b[?1047l",
    "\x1b[!p\x1b[r",
    "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1016l",
    "\x1b[?1004l\x1b[?2004l\x1b[?1l\x1b>\x1b[=0;1u",
    "\x1b[0m\x1b[H\x1b[2J"
);

/// Primary device attributes: a VT220 with ANSI colour, as tmux and
/// screen answer.
const DA1_REPLY: &str = "\x1b[?62;22c";
/// Secondary device attributes: VT220, firmware 10.
const DA2_REPLY: &str = "\x1b[>1;10;0c";

/// The screen model of one session.
pub struct Screen {
    term: Terminal,
    scanner: VtScanner,
    /// The incomplete tail of the last read (an escape sequence or UTF-8
    /// character), fed with the next read.
    pending: Vec<u8>,
    /// Scratch space for the scanner's spans.
    spans: Vec<Span>,
    /// Primary-screen lines dropped off the top of the scrollback so far:
    /// with it, every line has an absolute number for `tail -f`.
    evicted: u64,
    scrollback_cells: usize,
    /// Primary-screen lines dropped off the top of the scrollback since
    /// the last [`Screen::take_evicted`], when someone asked to keep them
    /// ([`Screen::keep_evicted`]: `grep`, so that no line is lost however
    /// much one read scrolls).
    kept: Option<Vec<Line>>,
    /// What avt cannot hold: graphemes and attributes, by placeholder.
    feeder: Feeder,
    /// The column where the feeder's carried cell landed (on the cursor's
    /// row), for zero-width characters in the next read.
    landed: Option<usize>,
    /// The shell's marks so far.
    shell: Shell,
}

impl Screen {
    /// An empty screen of `size` keeping about `scrollback_cells` cells of history.
    pub fn new(size: WindowSize, scrollback_cells: usize) -> Self {
        let size = size.sanitized();
        let mut feeder = Feeder::default();
        feeder.interrupt(usize::from(size.cols));
        Screen {
            term: new_terminal(size, scrollback_cells),
            scanner: VtScanner::new().marking(),
            pending: Vec::new(),
            spans: Vec::new(),
            evicted: 0,
            scrollback_cells,
            kept: None,
            feeder,
            landed: None,
            shell: Shell::default(),
        }
    }

    /// The same screen, whose routing lets interactive clients have what
    /// `passthrough` allows of what acts beyond the screen (the keeper's
    /// reader routes with the same setting: `keeper::stream::Router`).
    pub fn with_passthrough(mut self, passthrough: crate::term::scan::Passthrough) -> Self {
        self.scanner = VtScanner::with_passthrough(passthrough).marking();
        self
    }

    /// From now on, keeps the primary-screen lines dropped off the top of
    /// the scrollback until [`Screen::take_evicted`] takes them.
    pub fn keep_evicted(&mut self) {
        self.kept.get_or_insert_with(Vec::new);
    }

    /// The lines dropped off the top of the scrollback since the last call
    /// (oldest first: absolute lines `evicted() - len .. evicted()`), if
    /// [`Screen::keep_evicted`] was called.
    pub fn take_evicted(&mut self) -> Vec<Line> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Primary-screen lines dropped off the top of the scrollback so far:
    /// the absolute number of the first line of [`Screen::primary_lines`].
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// What the placeholders in this model's lines stand for: a line's
    /// text is `table().text(line.chars())`.
    pub fn table(&self) -> &Table {
        self.feeder.table()
    }

    /// The primary screen's lines, history first, then the screen.
    pub fn primary_lines(&self) -> impl Iterator<Item = &Line> {
        self.term.primary_screen().all_lines()
    }

    /// Whether the alternate screen (full-screen programs) is active.
    pub fn alternate_active(&self) -> bool {
        self.term.active_screen_kind() == ScreenKind::Alternate
    }

    /// The current size.
    pub fn size(&self) -> WindowSize {
        let (cols, rows) = self.term.size();
        // Sizes are sanitized to at most WindowSize::MAX_DIM on the way in.
        WindowSize { cols: cols as u16, rows: rows as u16 }
    }

    /// The visible lines of the active screen as text, trailing blanks kept
    /// per line but blank lines at the end removed.
    pub fn visible_text(&self) -> Vec<String> {
        let table = self.feeder.table();
        let mut lines: Vec<String> = self
            .term
            .screen()
            .visible_lines()
            .map(|l| table.text(l.chars()).trim_end().to_owned())
            .collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }

    /// The visible lines of the active screen, for rendering.
    pub fn visible_lines(&self) -> impl Iterator<Item = &Line> {
        self.term.screen().visible_lines()
    }

    /// The cursor: column, row, visible.
    pub fn cursor(&self) -> (usize, usize, bool) {
        let c = self.term.cursor();
        (c.col, c.row, c.visible)
    }

    /// Bytes held back (an incomplete sequence or character): fed later.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The modes the emulator does not keep.
    pub fn modes(&self) -> &Modes {
        &self.scanner.modes
    }

    /// Interprets one read of job output.
    pub fn feed(&mut self, data: &[u8]) -> Fed {
        self.feed_marked(data, &mut |_| false)
    }

    /// [`Screen::feed`], with `authentic` saying whether the shell mark
    /// that ends at a byte offset (counted from the first byte this call
    /// interprets: the held-back bytes of the last read, then `data`) was
    /// the shell integration's own.
    pub fn feed_marked(&mut self, data: &[u8], authentic: &mut dyn FnMut(usize) -> bool) -> Fed {
        self.pending.extend_from_slice(data);
        let buf = std::mem::take(&mut self.pending);
        self.spans.clear();
        let complete = self.scanner.scan(&buf, &mut self.spans);
        let spans = std::mem::take(&mut self.spans);
        let marks = std::mem::take(&mut self.scanner.marks);
        let fed = self.interpret(&buf[..complete], &spans, &marks, authentic);
        self.spans = spans;
        self.scanner.marks = marks;
        self.scanner.marks.clear();
        self.pending = buf;
        self.pending.drain(..complete);
        fed
    }

    fn interpret(
        &mut self,
        buf: &[u8],
        spans: &[Span],
        marks: &[(usize, ShellMark)],
        authentic: &mut dyn FnMut(usize) -> bool,
    ) -> Fed {
        let Routed { output, one_client, watchers } = route(buf, spans);
        let mut replies = Vec::new();
        let mut commands = Vec::new();
        let mut fed = 0;
        // Answers and marks, in the order of the output (both come in
        // order): each sees the screen as it was at that point.
        let mut answers = spans
            .iter()
            .filter_map(|span| match span.action {
                Action::Answer(query) => Some((span.range.end, query)),
                _ => None,
            })
            .peekable();
        let mut marks = marks.iter().peekable();
        loop {
            let answer_first = match (answers.peek(), marks.peek()) {
                (None, None) => break,
                (Some(a), Some(m)) => a.0 <= m.0,
                (a, _) => a.is_some(),
            };
            let end =
                if answer_first { answers.peek().map(|a| a.0) } else { marks.peek().map(|m| m.0) };
            let end = end.unwrap_or(fed).min(buf.len()).max(fed);
            self.feed_terminal(&buf[fed..end]);
            fed = end;
            if answer_first {
                if let Some((_, query)) = answers.next() {
                    replies.extend_from_slice(self.answer(query).as_bytes());
                }
            } else if let Some((_, mark)) = marks.next() {
                commands.extend(self.on_mark(mark, authentic(end)).map(|e| (end, e)));
            }
        }
        self.feed_terminal(&buf[fed..]);
        Fed { output, one_client, watchers, replies, commands }
    }

    /// Follows a shell mark; returns the command it begins or ends.
    fn on_mark(&mut self, mark: &ShellMark, authentic: bool) -> Option<ShellEvent> {
        self.shell.integrated |= authentic;
        if self.shell.integrated && !authentic {
            // A job imitating the integration: its end is reported as the
            // job's and ends nothing; anything else it says is ignored.
            return match mark {
                ShellMark::Done(exit) if self.shell.running => {
                    Some(ShellEvent::End { exit: *exit, authentic: false })
                }
                _ => None,
            };
        }
        match mark {
            ShellMark::Cwd(dir) => {
                self.shell.cwd = Some(dir.clone());
                None
            }
            ShellMark::Prompt => {
                self.shell.input = None;
                None
            }
            ShellMark::Input => {
                let (col, row, _) = self.cursor();
                self.shell.input = (!self.scanner.modes.alt_screen())
                    .then(|| (self.absolute_line(row), col, authentic));
                None
            }
            ShellMark::Run => {
                let (line, col, input_authentic) = self.shell.input.take()?;
                // The line's place is known on the main screen only.
                if self.shell.running || self.scanner.modes.alt_screen() {
                    return None;
                }
                let command = self.text_since(line, col);
                if command.is_empty() {
                    return None;
                }
                self.shell.running = true;
                Some(ShellEvent::Start {
                    command,
                    cwd: self.shell.cwd.clone(),
                    authentic: authentic && input_authentic,
                })
            }
            ShellMark::Done(exit) => {
                let running = std::mem::take(&mut self.shell.running);
                running.then_some(ShellEvent::End { exit: *exit, authentic })
            }
        }
    }

    /// The absolute number of a row of the primary screen (lines evicted
    /// and in history above it, plus the row).
    fn absolute_line(&self, row: usize) -> u64 {
        self.evicted + (self.history_len() + row) as u64
    }

    /// The text from absolute line `line`, column `col`, up to the cursor
    /// (a command line as typed, wrapped lines joined): what the shell
    /// showed between its `B` and `C` marks.
    fn text_since(&self, line: u64, col: usize) -> String {
        let (cur_col, cur_row, _) = self.cursor();
        let end_line = self.absolute_line(cur_row);
        let Some(first) = line.checked_sub(self.evicted) else { return String::new() };
        if line > end_line {
            return String::new();
        }
        let table = self.feeder.table();
        let mut out = String::new();
        let lines = self.term.primary_screen().all_lines().skip(first as usize);
        for (i, l) in lines.take((end_line - line) as usize + 1).enumerate() {
            let is_first = i == 0;
            let is_last = line + i as u64 == end_line;
            let from = if is_first { col } else { 0 };
            let to = if is_last { cur_col } else { usize::MAX };
            // By column: the second half of a wide character is a cell
            // of its own (width 0) that holds no character.
            let cells: Vec<char> = l
                .cells()
                .iter()
                .enumerate()
                .filter(|(c, cell)| *c >= from && *c < to && cell.width() > 0)
                .map(|(_, cell)| cell.char())
                .collect();
            let text = table.text(cells);
            let wraps = !is_last && l.is_wrapped();
            if wraps {
                // A row the line continues on: a space in its last column
                // is part of the command.
                out.push_str(&text);
            } else {
                out.push_str(without_right_prompt(text.trim_end(), from, self.size().cols));
            }
            if !is_last && !wraps {
                out.push('\n');
            }
            if out.len() > COMMAND_MAX {
                break;
            }
        }
        let mut out = out.trim_end().to_owned();
        if out.len() > COMMAND_MAX {
            let mut cut = COMMAND_MAX;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        out
    }

    fn feed_terminal(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // The scanner only passes whole UTF-8 characters; invalid bytes
        // become U+FFFD on screen (the recording keeps them).
        let text = String::from_utf8_lossy(bytes);
        let mut text = text.as_ref();
        if let Some((_, now, rest)) = self.feeder.carried(text) {
            // Zero-width characters that belong to the last cell printed:
            // print that cell again, joined, where it landed (on the
            // cursor's row; the pen and the wrap state are as they were).
            if let Some(col) = self.landed {
                let insert = self.scanner.modes.insert_mode();
                let fix = format!(
                    "{}\x1b[{}G{now}{}",
                    if insert { "\x1b[4l" } else { "" },
                    col + 1,
                    if insert { "\x1b[4h" } else { "" }
                );
                self.feed_model(&fix);
            }
            text = rest;
        }
        let text = self.feeder.for_model(text);
        if text.is_empty() {
            return;
        }
        self.landed = None;
        if self.feeder.carry().is_none() {
            self.feed_model(&text);
            return;
        }
        // The text ends with a cell the next text may join: where it lands
        // is known from the cursor before and after it.
        let last = text.chars().next_back().map_or(0, char::len_utf8);
        let (head, tail) = text.split_at(text.len() - last);
        self.feed_model(head);
        let before = self.term.cursor().col;
        self.feed_model(tail);
        let after = self.term.cursor().col;
        let (cols, width) =
            (self.term.size().0, tail.chars().map(|c| c.width().unwrap_or(1)).sum());
        self.landed = Some(if before + width <= cols {
            // Where the cursor was (inserting or not).
            before
        } else if after == width {
            // Wrapped to the next line.
            0
        } else {
            // No autowrap: overwritten at the end of the line.
            cols.saturating_sub(width)
        });
    }

    /// Feeds text meant for the model to avt, counting evicted lines.
    fn feed_model(&mut self, text: &str) {
        let mut counter = EvictionCounter { count: 0, kept: self.kept.as_mut() };
        self.term.feed_with(text, &mut counter);
        self.evicted += counter.count;
    }

    fn answer(&self, query: Query) -> String {
        let cursor = self.term.cursor();
        let (cols, rows) = self.term.size();
        let (row, col) = (cursor.row + 1, (cursor.col + 1).min(cols));
        match query {
            Query::Status => "\x1b[0n".to_owned(),
            Query::CursorPosition { dec: false } => format!("\x1b[{row};{col}R"),
            Query::CursorPosition { dec: true } => format!("\x1b[?{row};{col}R"),
            Query::PrimaryAttributes => DA1_REPLY.to_owned(),
            Query::SecondaryAttributes => DA2_REPLY.to_owned(),
            Query::TextAreaSize => format!("\x1b[8;{rows};{cols}t"),
        }
    }

    /// Changes the size. Widening the screen may shrink the number of
    /// history lines kept, so that the scrollback stays within its cells.
    pub fn resize(&mut self, size: WindowSize) {
        let size = size.sanitized();
        self.feeder.interrupt(usize::from(size.cols));
        self.landed = None;
        // A reflow moves the command line: the shell redraws its prompt
        // (a new B) after a resize anyway.
        self.shell.input = None;
        let limit = self.scrollback_cells / usize::from(size.cols);
        let history = self.history_len();
        if history > limit + limit / 4 {
            self.rebuild(limit);
        }
        // Reflowing a narrower screen can push lines off the top too.
        let mut counter = EvictionCounter { count: 0, kept: self.kept.as_mut() };
        self.term.resize_with(usize::from(size.cols), usize::from(size.rows), &mut counter);
        self.evicted += counter.count;
    }

    /// Lines in the primary screen's history (above the screen).
    pub fn history_len(&self) -> usize {
        let rows = self.term.size().1;
        self.term.primary_screen().all_lines().count().saturating_sub(rows)
    }

    /// Replaces the emulator by one with a history limit of `limit` lines,
    /// carrying over the newest history lines (with their colours), both
    /// screens, the cursor and the modes.
    fn rebuild(&mut self, limit: usize) {
        let (cols, rows) = self.term.size();
        let Ok(mut fresh) = Terminal::with_scrollback(cols, rows, Some(limit)) else { return };
        let history = self.history_len();
        let keep = history.min(limit);
        let mut replay = String::new();
        for line in self.term.primary_screen().all_lines().skip(history - keep).take(keep) {
            line_to_ansi(line, &mut replay);
            if !line.is_wrapped() {
                replay.push_str("\x1b[0m\r\n");
            }
        }
        // Primary ED2 moves the occupied screen into history, so the
        // replayed lines end up there before the dump repaints the screen.
        replay.push_str("\x1b[0m\x1b[H\x1b[2J");
        replay.push_str(&self.term.dump());
        fresh.feed(replay.as_str());
        if let Some(kept) = &mut self.kept {
            kept.extend(self.term.primary_screen().all_lines().take(history - keep).cloned());
        }
        self.evicted += (history - keep) as u64;
        self.term = fresh;
    }

    /// Bytes that repaint a terminal of the session's size from any state:
    /// both screens, colours and attributes, cursor position and
    /// visibility, scrolling region, tab stops, input modes and title;
    /// written for every common terminal ([`crate::term::redraw`]).
    pub fn redraw(&self) -> Vec<u8> {
        self.redraw_for(Caps::default())
    }

    /// [`Screen::redraw`] for a terminal with the optional capabilities
    /// `caps`.
    pub fn redraw_for(&self, caps: Caps) -> Vec<u8> {
        let mut dump = self.term.dump();
        dump.truncate(without_parser_state(&dump));
        if self.term.active_screen_kind() == ScreenKind::Alternate {
            // avt switches screens with 1047, which some emulators lack;
            // 1049 also saves the primary cursor, as the application's own
            // 1049 did, so its eventual 1049l puts the cursor back.
            dump = dump.replacen("\x1b[?1047h", "\x1b[?1049h", 1);
        }
        let mut out = String::with_capacity(REDRAW_PREFIX.len() + dump.len() + 256);
        out.push_str(REDRAW_PREFIX);
        out.push_str(&self.scanner.modes.restore_keyboard());
        if !sets_tabs(&dump) {
            // The terminal may hold another session's stops.
            write_default_tabs(self.term.size().0, &mut out);
        }
        portable(&dump, self.term.size().0, self.feeder.table(), caps, &mut out);
        out.push_str(&self.scanner.modes.restore_sequence());
        out.into_bytes()
    }

    /// The session's text: history and the screen a reattach would show,
    /// as logical lines (soft wraps joined), trailing blank lines removed;
    /// the last `lines` of them if given.
    pub fn text(&self, lines: Option<usize>) -> Vec<String> {
        let table = self.feeder.table();
        let primary = || {
            let lines = self.term.primary_screen().text();
            if table.is_empty() {
                lines
            } else {
                lines.into_iter().map(|l| table.text(l.chars())).collect()
            }
        };
        let mut text = if self.term.active_screen_kind() == ScreenKind::Alternate {
            let mut t = primary();
            t.truncate(self.history_len_logical());
            t.extend(
                self.term
                    .screen()
                    .visible_lines()
                    .map(|l| table.text(l.chars()).trim_end().to_owned()),
            );
            t
        } else {
            primary()
        };
        while text.last().is_some_and(String::is_empty) {
            text.pop();
        }
        if let Some(n) = lines {
            let skip = text.len().saturating_sub(n);
            text.drain(..skip);
        }
        text
    }

    fn history_len_logical(&self) -> usize {
        let history = self.history_len();
        self.term.primary_screen().all_lines().take(history).filter(|l| !l.is_wrapped()).count()
    }

    /// Lines of the primary screen completed since absolute line `from`
    /// (the cursor has moved below them), joined across soft wraps, and the
    /// absolute number to continue from. With `to_end`, the rest of the
    /// screen counts as complete too (the job has ended). Nothing
    /// completes while the alternate screen is active.
    pub fn completed_lines(&self, from: u64, to_end: bool) -> (Vec<String>, u64) {
        if self.term.active_screen_kind() == ScreenKind::Alternate && !to_end {
            return (Vec::new(), from);
        }
        let history = self.history_len() as u64;
        let rows = self.term.size().1 as u64;
        let end = if to_end { rows } else { self.term.cursor().row as u64 };
        let end_abs = self.evicted + history + end;
        let start = from.max(self.evicted);
        let mut out = Vec::new();
        let mut next = start;
        let mut current = String::new();
        let skip = (start - self.evicted) as usize;
        let take = end_abs.saturating_sub(start) as usize;
        let table = self.feeder.table();
        for (i, line) in self.term.primary_screen().all_lines().skip(skip).take(take).enumerate() {
            for c in line.chars() {
                table.push_text(c, &mut current);
            }
            if !line.is_wrapped() {
                out.push(std::mem::take(&mut current).trim_end().to_owned());
                next = start + i as u64 + 1;
            }
        }
        if to_end {
            if !current.is_empty() {
                out.push(current.trim_end().to_owned());
            }
            while out.last().is_some_and(String::is_empty) {
                out.pop();
            }
        }
        (out, next)
    }
}

/// Appends one screen row as text with SGR attributes (trailing default
/// blanks trimmed unless the row wraps into the next).
fn line_to_ansi(line: &Line, out: &mut String) {
    let cells = line.cells();
    let end = if line.is_wrapped() {
        cells.len()
    } else {
        cells.iter().rposition(|c| c.char() != ' ' || !c.pen().is_default()).map_or(0, |i| i + 1)
    };
    let mut pen = Pen::default();
    for cell in &cells[..end] {
        if cell.width() == 0 {
            continue;
        }
        if *cell.pen() != pen {
            pen = *cell.pen();
            Style::of(&pen).write_sgr(out);
        }
        out.push(cell.char());
    }
}

struct EvictionCounter<'a> {
    count: u64,
    kept: Option<&'a mut Vec<Line>>,
}

impl Observer for &mut EvictionCounter<'_> {
    type Output = ();
    fn evicted(&mut self, _: &mut Observation<'_>, line: &Line) {
        self.count += 1;
        if let Some(kept) = &mut self.kept {
            kept.push(line.clone());
        }
    }
    fn end(&mut self, _: &mut Observation<'_>) {}
}

fn new_terminal(size: WindowSize, scrollback_cells: usize) -> Terminal {
    let (cols, rows) = (usize::from(size.cols.max(1)), usize::from(size.rows.max(1)));
    let limit = scrollback_cells / cols;
    #[allow(clippy::expect_used)]
    // avt only rejects zero dimensions, and both are at least 1 here.
    Terminal::with_scrollback(cols, rows, Some(limit)).expect("terminal size is at least 1x1")
}

/// The length of avt's `dump` without its parser's state: avt ends a dump
/// with the sequence its parser is in the middle of, written with C1
/// controls (U+0090 for a DCS, U+009B for a CSI, ...) or as an ESC with
/// its intermediates. A terminal in UTF-8 reads C1 controls its own way
/// or not at all, and the scanner holds back every sequence it knows is
/// unfinished; what is left is a sequence avt alone would still be in,
/// which the job's next output cannot complete on a client either way.
fn without_parser_state(dump: &str) -> usize {
    // Cells never hold C1 controls: the first one starts the state.
    if let Some(at) = dump.find(|c: char| ('\u{80}'..='\u{9f}').contains(&c)) {
        return at;
    }
    let tail = dump.trim_end_matches(|c: char| (' '..='/').contains(&c));
    match tail.strip_suffix('\x1b') {
        Some(kept) => kept.len(),
        None => dump.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avt::Color;

    fn size(cols: u16, rows: u16) -> WindowSize {
        WindowSize { cols, rows }
    }

    /// The commands a stream's shell marks begin and end, with marks
    /// ending at the offsets in `vouched` taken as the integration's own.
    fn shell_events(s: &mut Screen, data: &[u8], vouched: &[usize]) -> Vec<ShellEvent> {
        s.feed_marked(data, &mut |end| vouched.contains(&end))
            .commands
            .into_iter()
            .map(|c| c.1)
            .collect()
    }

    #[test]
    fn a_command_line_is_read_from_the_screen_between_its_marks() {
        let mut s = Screen::new(size(20, 5), 100_000);
        // A prompt, a line typed past the right edge (wrapped), edited
        // with a backspace, then Enter at the bottom (the screen scrolls).
        let stream = "\x1b]7;file://h/tmp/a%20b\x07\x1b]133;A\x07\r\n\r\n\r\n\r\n$ \x1b]133;B\x07\
                      echo 0123456789abcdefx\x08 \x08\r\n\x1b]133;C\x07out\r\n\x1b]133;D;3\x07";
        let events = shell_events(&mut s, stream.as_bytes(), &[]);
        assert_eq!(
            events,
            [
                ShellEvent::Start {
                    command: "echo 0123456789abcdef".into(),
                    cwd: Some("/tmp/a b".into()),
                    authentic: false,
                },
                ShellEvent::End { exit: Some(3), authentic: false },
            ]
        );
        // An empty line (no C) and an end without a command: nothing.
        assert!(
            shell_events(&mut s, b"\x1b]133;A\x07$ \x1b]133;B\x07\r\n\x1b]133;D;0\x07", &[])
                .is_empty()
        );
    }

    #[test]
    fn a_space_at_a_wrap_stays_and_a_right_prompt_goes() {
        let mut s = Screen::new(size(20, 5), 100_000);
        // `$ ` then 18 columns: the space before `/` is in the last column.
        let stream = "$ \x1b]133;B\x07echo rm -rf /tmp/x /\r\n\x1b]133;C\x07\x1b]133;D;0\x07";
        let events = shell_events(&mut s, stream.as_bytes(), &[]);
        assert!(
            matches!(&events[0], ShellEvent::Start { command, .. } if command == "echo rm -rf /tmp/x /"),
            "{events:?}"
        );
        // zsh's RPROMPT, drawn at the right edge after the typed text.
        let stream = "$ \x1b]133;B\x07false\x1b[17G[0]\x1b[8G\r\n\x1b]133;C\x07";
        let events = shell_events(&mut s, stream.as_bytes(), &[]);
        assert!(
            matches!(&events[0], ShellEvent::Start { command, .. } if command == "false"),
            "{events:?}"
        );
    }

    #[test]
    fn once_the_integration_marked_a_command_a_job_s_marks_end_nothing() {
        let mut s = Screen::new(size(40, 5), 100_000);
        let b = "$ \x1b]133;B\x07";
        let c = "ls\r\n\x1b]133;C\x07";
        let forged = "\x1b]133;D;9\x07";
        let real = "\x1b]133;D;0\x07";
        let stream = format!("{b}{c}{forged}{real}");
        let end = |part: &str| stream.find(part).unwrap() + part.len();
        let vouched = [end(b), end(c), end(real)];
        let events = shell_events(&mut s, stream.as_bytes(), &vouched);
        assert_eq!(
            events,
            [
                ShellEvent::Start { command: "ls".into(), cwd: None, authentic: true },
                ShellEvent::End { exit: Some(9), authentic: false },
                ShellEvent::End { exit: Some(0), authentic: true },
            ]
        );
        // A forged command start changes nothing either.
        assert!(shell_events(&mut s, format!("{b}{c}").as_bytes(), &[]).is_empty());
    }

    /// Feeds a redraw into a fresh emulator of the same size.
    fn replay(redraw: &[u8], s: WindowSize) -> Terminal {
        let mut t = Terminal::with_scrollback(s.cols.into(), s.rows.into(), Some(0)).unwrap();
        t.feed(String::from_utf8_lossy(redraw).as_ref());
        t
    }

    #[test]
    fn redraw_reproduces_screen_cursor_and_attributes() {
        let mut screen = Screen::new(size(40, 10), 10_000);
        screen.feed(b"plain\r\n\x1b[1;31mred bold\x1b[0m\r\n\x1b[?25l\x1b[5;7Hhere");
        let t = replay(&screen.redraw(), size(40, 10));
        assert_eq!(t.screen().text(), screen.term.screen().text());
        assert_eq!(t.cursor(), screen.term.cursor());
        let red = t.screen().line(1).unwrap().cells()[0];
        assert!(red.pen().is_bold());
        assert_eq!(red.pen().foreground(), Some(Color::Indexed(1)));
    }

    #[test]
    fn redraw_keeps_both_screens() {
        let mut screen = Screen::new(size(30, 6), 10_000);
        screen.feed(b"primary\r\n\x1b[?1049h\x1b[Halternate");
        let redraw = screen.redraw();
        let text = String::from_utf8_lossy(&redraw);
        assert!(text.contains("\x1b[?1049h"), "switches screens with 1049: {text:?}");
        let mut t = replay(&redraw, size(30, 6));
        assert_eq!(t.screen().text()[0], "alternate");
        t.feed("\x1b[?1049l");
        assert_eq!(t.screen().text()[0], "primary");
    }

    #[test]
    fn redraw_restores_modes_the_emulator_does_not_keep() {
        let mut screen = Screen::new(size(20, 5), 1000);
        screen.feed(b"\x1b[?2004h\x1b[?1000h\x1b[?1006h\x1b]2;my title\x07");
        let text = String::from_utf8(screen.redraw()).unwrap();
        let tail = &text[text.rfind("\x1b[H").unwrap()..];
        for seq in ["\x1b[?2004h", "\x1b[?1000h", "\x1b[?1006h", "\x1b]2;my title\x07"] {
            assert!(tail.contains(seq), "{seq:?} missing from {tail:?}");
        }
    }

    /// Replays `redraw` in vt100, an emulator other than the model's.
    fn vt100_of(redraw: &[u8], s: WindowSize) -> vt100::Parser {
        let mut p = vt100::Parser::new(s.rows.try_into().unwrap(), s.cols.try_into().unwrap(), 0);
        p.process(redraw);
        p
    }

    fn has_rep(text: &str) -> bool {
        text.split("\x1b[").skip(1).any(|seq| {
            let end = seq.find(|c: char| ('@'..='~').contains(&c)).unwrap_or(seq.len());
            seq[end..].starts_with('b') && seq[..end].bytes().all(|b| b.is_ascii_digit())
        })
    }

    #[test]
    fn redraw_writes_runs_out_for_terminals_without_rep() {
        let s = size(60, 6);
        let mut screen = Screen::new(s, 1000);
        let feed = "CPU[||||||||||||        45.0%]\r\n        indented\r\n\
                    ┌──────────────┐\r\n\x1b[44m          \x1b[0m|\r\n\
                    a          b          c";
        screen.feed(feed.as_bytes());
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        assert!(!has_rep(&redraw), "{redraw:?}");
        let p = vt100_of(redraw.as_bytes(), s);
        let mut direct = vt100::Parser::new(6.try_into().unwrap(), 60.try_into().unwrap(), 0);
        direct.process(feed.as_bytes());
        assert_eq!(p.screen().contents(), direct.screen().contents());
        assert_eq!(p.screen().cursor_position(), direct.screen().cursor_position());
        assert_eq!(p.screen().cell(3, 5).unwrap().bgcolor(), vt100::Color::Idx(4));
    }

    #[test]
    fn a_redraw_leaves_no_sequence_open() {
        // A string longer than the scanner holds back reaches avt
        // unfinished; its dump ends with the string still open.
        let s = size(10, 2);
        let mut screen = Screen::new(s, 1000);
        screen.feed(b"ab\x1bP1c");
        screen.feed(&vec![b'x'; crate::term::scan::HOLDBACK_MAX + 1]);
        assert!(screen.term.dump().contains('\u{90}'), "avt is left in a DCS");
        for redraw in [screen.redraw(), screen.redraw_for(Caps::ALL)] {
            let text = String::from_utf8(redraw).unwrap();
            assert!(!text.contains(|c: char| ('\u{80}'..='\u{9f}').contains(&c)), "{text:?}");
            let mut fresh = Screen::new(s, 1000);
            fresh.feed(text.as_bytes());
            fresh.feed(b"z");
            assert_eq!(fresh.visible_text(), ["abz"]);
        }
        assert_eq!(without_parser_state("x\x1b[0m\x1b("), "x\x1b[0m".len());
        assert_eq!(without_parser_state("x\x1b[0m\u{9b}1;2"), "x\x1b[0m".len());
        assert_eq!(without_parser_state("x\x1b[0m  "), "x\x1b[0m  ".len());
    }

    #[test]
    fn zero_width_characters_take_no_cell() {
        let s = size(30, 4);
        let mut screen = Screen::new(s, 1000);
        screen.feed("e\u{301}x|\u{2714}\u{fe0f}y|a\u{200d}b|c\u{200b}d".as_bytes());
        assert_eq!(screen.text(None), ["e\u{301}x|\u{2714}\u{fe0f}y|a\u{200d}b|c\u{200b}d"]);
        assert_eq!(screen.cursor().0, 11, "one cell per base character");
        let p = vt100_of(&screen.redraw(), s);
        assert_eq!(p.screen().cursor_position(), (0, 11));
        assert_eq!(p.screen().cell(0, 1).unwrap().contents(), "x");
    }

    #[test]
    fn colours_are_redrawn_in_the_semicolon_form() {
        let s = size(20, 3);
        let mut screen = Screen::new(s, 1000);
        screen.feed(b"\x1b[38:5:208mA\x1b[38:2::10:20:30mB\x1b[48:2:1:2:3mC\x1b[0m");
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        assert!(redraw.contains("38;5;208m"), "{redraw:?}");
        assert!(redraw.contains("38;2;10;20;30m"), "{redraw:?}");
        assert!(!redraw.split("\x1b[").any(|q| q.contains(':')), "{redraw:?}");
        let p = vt100_of(redraw.as_bytes(), s);
        assert_eq!(p.screen().cell(0, 0).unwrap().fgcolor(), vt100::Color::Idx(208));
        assert_eq!(p.screen().cell(0, 1).unwrap().fgcolor(), vt100::Color::Rgb(10, 20, 30));
        assert_eq!(p.screen().cell(0, 2).unwrap().bgcolor(), vt100::Color::Rgb(1, 2, 3));
    }

    #[test]
    fn underline_colours_and_styles_do_not_turn_into_other_attributes() {
        let mut screen = Screen::new(size(20, 3), 1000);
        screen.feed(b"\x1b[58;5;196mA\x1b[58;2;1;2;3mB\x1b[4:3mC\x1b[0;21mD");
        let line = screen.visible_lines().next().unwrap().clone();
        let cells = line.cells();
        assert!(!cells[0].pen().is_blink(), "58;5;196 is not blink");
        assert!(!cells[1].pen().is_faint(), "58;2;… is not faint");
        assert!(cells[2].pen().is_underline(), "curly underline is an underline");
        assert!(cells[3].pen().is_underline(), "21 is a double underline");
    }

    #[test]
    fn modes_the_model_lacks_are_redrawn_and_undone() {
        let mut screen = Screen::new(size(20, 3), 1000);
        screen.feed(b"\x1b[>4;2m\x1b[?12h\x1b[?5h\x1b]11;#102030\x07\x1b]12;red\x07");
        screen.feed(b"\x1b]8;id=1;http://example.com/\x1b\\link");
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        for seq in [
            "\x1b[>4;2m",
            "\x1b[?12h",
            "\x1b[?5h",
            "\x1b]11;#102030\x1b\\",
            "\x1b]12;red\x1b\\",
            "\x1b]8;id=1;http://example.com/\x1b\\",
        ] {
            assert!(redraw.contains(seq), "{seq:?} missing from {redraw:?}");
        }
        let reset = screen.modes().reset_sequence();
        for seq in ["\x1b[>4m", "\x1b[?12l", "\x1b[?5l", "\x1b]111\x1b\\", "\x1b]8;;\x1b\\"] {
            assert!(reset.contains(seq), "{seq:?} missing from {reset:?}");
        }
        screen.feed(b"\x1b]8;;\x1b\\\x1b[>4;0m\x1b]111\x07");
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        assert!(!redraw.contains(">4;") && !redraw.contains("]11;"));
        // Closed: only its cells carry it.
        let open = redraw.rfind("\x1b]8;id=1").expect("the cells keep their link");
        assert!(redraw[open..].starts_with("\x1b]8;id=1;http://example.com/\x1b\\link\x1b]8;;"));
    }

    /// Each cell of the visible screen that has a hyperlink: (row, column,
    /// `params;target`).
    fn links_of(screen: &Screen) -> Vec<(usize, usize, String)> {
        let table = screen.table();
        let mut out = Vec::new();
        for (row, line) in screen.visible_lines().enumerate() {
            for (col, cell) in line.cells().iter().enumerate() {
                let link = table.get(cell.char()).map_or(0, |s| s.extras.link);
                if let Some(l) = table.link(link) {
                    out.push((row, col, l.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn a_link_whose_target_is_only_controls_closes_the_link() {
        // Found by fuzzing: it was kept as a link that the redraw could
        // only write as a close, so a keyframe lost the cells after it.
        let mut screen = Screen::new(size(10, 2), 100);
        screen.feed(b"\x1b]8;;http://f/\x07F\x1b]8;;\x01\x7f\x07G");
        let links = links_of(&screen);
        assert_eq!(links, [(0, 0, ";http://f/".to_owned())]);
        let mut again = Screen::new(size(10, 2), 100);
        again.feed(&screen.redraw());
        assert_eq!(links_of(&again), links);
    }

    #[test]
    fn hyperlinks_are_kept_per_cell_and_redrawn_where_they_were() {
        // Found by an outside check: only the link open at the end was
        // restored; text printed under a link lost it on reattach.
        let s = size(30, 4);
        let mut screen = Screen::new(s, 1000);
        screen.feed(b"see \x1b]8;id=1;http://a/\x1b\\here\x1b]8;;\x1b\\ and\r\n");
        screen.feed("\u{9d}8;;http://b/\u{9c}th\x1b[1mere\x1b[m\x1b]8;;\x07 x\r\n".as_bytes());
        // A reset (SGR 0) leaves the link open.
        screen.feed(b"\x1b]8;;http://e/\x07e\x1b[0mf\x1b]8;;\x07\r\n");
        // Unterminated (aborted by CAN) and overlong links change nothing.
        screen.feed(b"\x1b]8;;http://c/\x18c ");
        let long = format!("\x1b]8;;http://d/{}\x07d\x1b]8;;\x07", "x".repeat(3000));
        screen.feed(long.as_bytes());
        let links = links_of(&screen);
        let at = |row, col| links.iter().find(|l| (l.0, l.1) == (row, col)).map(|l| l.2.as_str());
        assert_eq!(at(0, 3), None);
        assert_eq!(at(0, 4), Some("id=1;http://a/"));
        assert_eq!(at(0, 7), Some("id=1;http://a/"));
        assert_eq!(at(0, 8), None);
        assert_eq!(at(1, 0), Some(";http://b/"));
        assert_eq!(at(1, 4), Some(";http://b/"), "an SGR does not close a link");
        assert_eq!(at(1, 5), None);
        assert_eq!(at(3, 0), None, "CAN aborts the OSC");
        assert_eq!(at(2, 0), Some(";http://e/"));
        assert_eq!(at(2, 1), Some(";http://e/"), "{links:?}");
        assert_eq!(links.len(), 4 + 5 + 2, "{links:?}");
        // The redraw opens and closes each link where the job did, and a
        // model fed the redraw has the same links in the same cells.
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        assert!(redraw.contains("see \x1b]8;id=1;http://a/\x1b\\here\x1b]8;;\x1b\\"), "{redraw:?}");
        let mut again = Screen::new(s, 1000);
        again.feed(redraw.as_bytes());
        assert_eq!(links_of(&again), links, "{redraw:?}");
        assert_eq!(again.visible_text(), screen.visible_text());
    }

    /// The columns (1-based) where `redraw` sets tab stops after clearing
    /// them all.
    fn tab_stops_set(redraw: &str) -> Vec<usize> {
        let after = &redraw[redraw.rfind("\x1b[3g").expect("clears the stops") + 4..];
        after
            .split("\x1bH")
            .map_while(|s| s.strip_prefix("\x1b[")?.strip_suffix('G')?.parse().ok())
            .collect()
    }

    #[test]
    fn tab_stops_are_redrawn_with_hts() {
        let s = size(40, 3);
        let mut screen = Screen::new(s, 1000);
        // What `tabs 4` does.
        let mut tabs = String::from("\x1b[3g");
        for col in (4..40).step_by(4) {
            tabs.push_str(&format!("\x1b[{}G\x1bH", col + 1));
        }
        tabs.push('\r');
        screen.feed(tabs.as_bytes());
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        assert!(!redraw.contains('W'), "no CTC: {redraw:?}");
        assert_eq!(tab_stops_set(&redraw), (5..40).step_by(4).collect::<Vec<_>>());
        // Default stops are set too, undoing another session's.
        let plain = String::from_utf8(Screen::new(s, 1000).redraw()).unwrap();
        assert_eq!(tab_stops_set(&plain), [9, 17, 25, 33]);
    }

    #[test]
    fn graphemes_are_kept_whole_and_redrawn_as_written() {
        let s = size(30, 3);
        let mut screen = Screen::new(s, 1000);
        let text = "cafe\u{301} \u{2714}\u{fe0f} 👍\u{1f3fd} a\u{200b}b";
        screen.feed(text.as_bytes());
        assert_eq!(screen.text(None), [text]);
        assert_eq!(screen.cursor().0, 14, "one cell per base character, two for 👍");
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        assert!(redraw.contains(text), "{redraw:?}");
        let p = vt100_of(redraw.as_bytes(), s);
        assert_eq!(p.screen().cursor_position(), (0, 14));
    }

    #[test]
    fn concealed_text_stays_concealed() {
        let mut screen = Screen::new(size(30, 3), 1000);
        screen.feed(b"pw: \x1b[8msecret\x1b[0m shown");
        let redraw = String::from_utf8(screen.redraw()).unwrap();
        let at = redraw.find("secret").unwrap();
        let before = &redraw[..at];
        let last_sgr = &before[before.rfind("\x1b[0").unwrap()..];
        assert!(last_sgr.contains("\x1b[8m"), "{last_sgr:?}");
        assert!(redraw[at..].contains("\x1b[0m shown"), "{redraw:?}");
    }

    #[test]
    fn underline_styles_and_colours_are_drawn_only_where_the_terminal_has_them() {
        let mut screen = Screen::new(size(30, 3), 1000);
        screen.feed(b"\x1b[4:3;58;5;196mcurly\x1b[0m plain");
        let common = String::from_utf8(screen.redraw_for(Caps::default())).unwrap();
        assert!(common.contains("\x1b[0;4mcurly"), "{common:?}");
        assert!(!common.contains("4:3") && !common.contains("58;"), "{common:?}");
        assert!(!common.contains("\x1b[0;4;5"), "no blink: {common:?}");
        let all = String::from_utf8(screen.redraw_for(Caps::ALL)).unwrap();
        assert!(all.contains("\x1b[0;4m\x1b[4:3m\x1b[58;5;196mcurly"), "{all:?}");
        // What tether reads back (a keyframe) keeps everything.
        let mut again = Screen::new(size(30, 3), 1000);
        again.feed(&screen.redraw_for(Caps::ALL));
        assert_eq!(String::from_utf8(again.redraw_for(Caps::ALL)).unwrap(), all);
        assert_eq!(again.text(None), ["curly plain"]);
    }

    #[test]
    fn blanks_that_wrap_onto_a_line_are_written() {
        // Found by fuzzing: a one-column screen whose second line is a
        // blank reached by autowrap.
        let s = size(1, 6);
        let mut screen = Screen::new(s, 2000);
        screen.feed(b"` \x0b[@");
        let mut fresh = Screen::new(s, 2000);
        fresh.feed(&screen.redraw());
        assert_eq!(fresh.visible_text(), screen.visible_text());
        assert_eq!(fresh.cursor(), screen.cursor());
    }

    #[test]
    fn a_mark_in_the_next_read_joins_the_cell_where_it_landed() {
        // Insert mode set with a sub-parameter, as avt reads it, was found
        // by fuzzing.
        let cases: [&[u8]; 6] = [
            b"ab",
            b"abcde",
            b"\x1b[?7labcdex",
            b"\x1b[4hxyz\r ab",
            b"\x1b[4:3hxy\r a",
            "abcd日".as_bytes(),
        ];
        // And a wide character on a one-column screen (found by fuzzing),
        // which has no cell to join.
        for (head, cols) in cases.iter().map(|h| (*h, 5)).chain([("日".as_bytes(), 1)]) {
            let s = size(cols, 3);
            let mut whole = Screen::new(s, 100);
            whole.feed(&[head, "\u{301}\u{fe0f}!".as_bytes()].concat());
            let mut split = Screen::new(s, 100);
            split.feed(head);
            split.feed("\u{301}".as_bytes());
            split.feed("\u{fe0f}!".as_bytes());
            let what = String::from_utf8_lossy(head);
            assert_eq!(split.visible_text(), whole.visible_text(), "{what:?}");
            assert_eq!(split.cursor(), whole.cursor(), "{what:?}");
        }
    }

    #[test]
    fn c1_controls_are_read_alike_however_reads_are_cut() {
        // Found by fuzzing: a C1 control written in UTF-8 right after an
        // ESC (or inside a string) starts a sequence in avt; the scanner
        // and the feeder must see it start there too.
        let cases: [&[u8]; 6] = [
            b"\x1b\xc2\x90a\xe2\x80\x8b",
            b"x\x1b\xc2\xc2\x901a\xe2\x80\x8bbz",
            b"x\x1b[1\xc2\x9b2Cy\xcc\x81",
            b"\x1b]0;t\xc2\x90q\x1b\\w\xcc\x81",
            b"\x1bPq\xc2\x9cab\xcc\x81",
            b"\x1b(\xc2\x85ab\xcc\x81c",
        ];
        for input in cases {
            let s = size(20, 3);
            let mut whole = Screen::new(s, 100);
            whole.feed(input);
            for cut in 1..input.len() {
                let mut split = Screen::new(s, 100);
                for piece in input.chunks(cut) {
                    split.feed(piece);
                }
                let what = format!("{:?} in pieces of {cut}", String::from_utf8_lossy(input));
                assert_eq!(split.visible_text(), whole.visible_text(), "{what}");
                assert_eq!(split.cursor(), whole.cursor(), "{what}");
            }
        }
    }

    #[test]
    fn queries_are_answered_and_removed_from_client_output() {
        let mut screen = Screen::new(size(80, 24), 1000);
        let fed = screen.feed(b"ab\x1b[6ncd\x1b[c\x1b]11;?\x07");
        assert_eq!(fed.replies, b"\x1b[1;3R\x1b[?62;22c");
        assert_eq!(&fed.output[..], b"abcd");
        assert_eq!(fed.one_client.as_deref(), Some(&b"abcd\x1b]11;?\x07"[..]));
    }

    #[test]
    fn split_sequences_and_characters_are_held_back() {
        let mut screen = Screen::new(size(80, 24), 1000);
        let fed = screen.feed(b"x\x1b[3");
        assert_eq!(&fed.output[..], b"x");
        let fed = screen.feed(b"1mred \xe2\x82");
        assert_eq!(&fed.output[..], b"\x1b[31mred ");
        let fed = screen.feed(b"\xac");
        assert_eq!(&fed.output[..], "€".as_bytes());
        assert_eq!(screen.text(None), ["xred €"]);
    }

    #[test]
    fn scrollback_is_bounded_in_cells() {
        let mut screen = Screen::new(size(10, 5), 1000);
        for i in 0..500 {
            screen.feed(format!("{i}\r\n").as_bytes());
        }
        assert_eq!(screen.history_len(), 100, "1000 cells of 10 columns");
        // Wider: fewer lines, still about 1000 cells.
        screen.resize(size(40, 5));
        assert!(screen.history_len() * 40 <= 1000 + 1000 / 4, "{}", screen.history_len());
        assert_eq!(screen.text(Some(1)), ["499"]);
    }

    #[test]
    fn completed_lines_follow_the_cursor() {
        let mut screen = Screen::new(size(20, 4), 1000);
        screen.feed(b"one\r\ntwo\r\nthr");
        let (lines, next) = screen.completed_lines(0, false);
        assert_eq!(lines, ["one", "two"]);
        screen.feed(b"ee\r\nfour\r\nfive\r\nsix\r\n");
        let (lines, next) = screen.completed_lines(next, false);
        assert_eq!(lines, ["three", "four", "five", "six"]);
        screen.feed(b"tail");
        assert_eq!(screen.completed_lines(next, true).0, ["tail"]);
    }
}

//! What a watcher sees: the session's screen, drawn by tether into the
//! watcher's terminal, cropped around the cursor (or padded) to fit, with a
//! status line; never the session's raw bytes.
//!
//! Used by `tether watch` and by the daemon for `ssh -t host watch NAME`.
//! Because the watcher's terminal only ever receives tether's own drawing,
//! nothing the session prints can act on the watcher's machine, and a
//! smaller terminal never gets wrapped garbage.

use crate::term::cells::Table;
use crate::term::redraw::Style;
use crate::term::screen::Screen;
use crate::term::text::visible;
use avt::Pen;
use std::fmt::Write as _;
use tether_proto::WindowSize;

/// Enter the watcher's alternate screen, clear it.
pub const ENTER: &str = "\x1b[?1049h\x1b[H\x1b[2J";
/// Leave it, with a visible cursor and default colours.
pub const LEAVE: &str = "\x1b[0m\x1b[?25h\x1b[?1049l";

/// History a watcher's model keeps (it only draws the screen).
const HISTORY_CELLS: usize = 0;

/// A watcher's view of a session.
pub struct WatchView {
    screen: Screen,
    terminal: WindowSize,
    session: String,
    owner: String,
    watchers: u32,
    detach: String,
    note: Option<String>,
}

impl WatchView {
    /// A view of `session` (of `size`) in a terminal of `terminal`.
    pub fn new(
        session: &str,
        owner: &str,
        size: WindowSize,
        terminal: WindowSize,
        detach: &str,
    ) -> Self {
        WatchView {
            screen: Screen::new(size, HISTORY_CELLS),
            terminal: terminal.sanitized(),
            session: session.to_owned(),
            owner: owner.to_owned(),
            watchers: 1,
            detach: detach.to_owned(),
            note: None,
        }
    }

    /// Output or a redraw from the session.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.screen.feed(bytes);
    }

    /// The session was resized.
    pub fn session_resized(&mut self, size: WindowSize) {
        self.screen.resize(size);
    }

    /// The watcher's terminal was resized.
    pub fn terminal_resized(&mut self, size: WindowSize) {
        self.terminal = size.sanitized();
    }

    /// How many watch now.
    pub fn set_watchers(&mut self, n: u32) {
        self.watchers = n;
    }

    /// A short message for the status line (e.g. who joined).
    pub fn set_note(&mut self, note: Option<String>) {
        self.note = note;
    }

    /// The status line's text.
    pub fn status(&self) -> String {
        let size = self.screen.size();
        let mut s = format!(
            " watching {} (owner {}) · read-only · {} watching",
            visible(&self.session),
            visible(&self.owner),
            self.watchers
        );
        if size.cols > self.terminal.cols || size.rows + 1 > self.terminal.rows {
            let _ = write!(s, " · cropped {}x{}", size.cols, size.rows);
        }
        let _ = write!(s, " · {} leaves", self.detach);
        if let Some(note) = &self.note {
            let _ = write!(s, " · {}", visible(note));
        }
        s
    }

    /// Bytes that repaint the watcher's whole terminal.
    pub fn frame(&self) -> Vec<u8> {
        let size = self.screen.size();
        let (cols, rows) = (self.terminal.cols, self.terminal.rows.saturating_sub(1).max(1));
        let (ccol, crow, cvisible) = self.screen.cursor();
        let window = |len: u16, have: u16, at: usize| -> u16 {
            if len <= have {
                return 0;
            }
            (at as u16).saturating_sub(have / 2).min(len - have)
        };
        let (x0, y0) = (window(size.cols, cols, ccol), window(size.rows, rows, crow));
        let mut out = String::from("\x1b[?25l\x1b[0m");
        let lines: Vec<_> = self.screen.visible_lines().collect();
        for r in 0..rows {
            let _ = write!(out, "\x1b[{};1H", r + 1);
            if let Some(line) = lines.get(usize::from(y0 + r)) {
                draw_line(&mut out, line, self.screen.table(), x0, cols);
            }
            out.push_str("\x1b[0m\x1b[K");
        }
        let status: String = self.status().chars().take(usize::from(cols)).collect();
        let _ = write!(out, "\x1b[{};1H\x1b[7m{status}\x1b[K\x1b[0m", rows + 1);
        let (cx, cy) = (ccol as u16, crow as u16);
        if cvisible && cx >= x0 && cx < x0 + cols && cy >= y0 && cy < y0 + rows {
            let _ = write!(out, "\x1b[{};{}H\x1b[?25h", cy - y0 + 1, cx - x0 + 1);
        }
        out.into_bytes()
    }
}

/// Draws the cells of `line` from column `x0` on, at most `cols` wide,
/// with their colours and attributes: tether's own drawing, nothing of
/// the session's bytes.
fn draw_line(out: &mut String, line: &avt::Line, table: &Table, x0: u16, cols: u16) {
    let mut pen = Pen::default();
    let mut width = 0;
    for cell in line.cells().iter().skip(usize::from(x0)) {
        let w = u16::from(cell.width());
        if w == 0 {
            continue;
        }
        if width + w > cols {
            break;
        }
        if *cell.pen() != pen {
            pen = *cell.pen();
            Style::of(&pen).write_sgr(out);
        }
        match table.get(cell.char()) {
            // Concealed text stays hidden from a watcher.
            Some(special) if special.extras.conceal => {
                out.extend(std::iter::repeat_n(' ', usize::from(w)));
            }
            Some(special) => out.push_str(&special.text),
            None => out.push(cell.char()),
        }
        width += w;
    }
}

/// A still picture of a screen of `size` from its `redraw`, as a
/// read-only client is shown the final screen of an ended session: the
/// lines drawn by tether from the screen model, one after the other from
/// where the cursor is, so that nothing of the session's own sequences
/// (its window title, modes, anything aimed at the viewer's machine)
/// reaches the viewer.
pub fn still(redraw: &[u8], size: WindowSize) -> Vec<u8> {
    let mut screen = Screen::new(size, HISTORY_CELLS);
    screen.feed(redraw);
    let lines: Vec<_> = screen.visible_lines().collect();
    let used = lines.iter().rposition(|l| !l.text().trim_end().is_empty()).map_or(0, |i| i + 1);
    let mut out = String::from("\x1b[0m");
    for line in &lines[..used] {
        // Trailing blanks are left out: a narrower terminal would wrap them.
        let cells = line.cells();
        let width = cells
            .iter()
            .rposition(|c| c.char() != ' ' || *c.pen() != Pen::default())
            .map_or(0, |i| i + usize::from(cells[i].width().max(1)));
        draw_line(&mut out, line, screen.table(), 0, u16::try_from(width).unwrap_or(u16::MAX));
        out.push_str("\x1b[0m\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(view: &WatchView) -> vt100::Parser {
        let t = view.terminal;
        let mut p = vt100::Parser::new(t.rows.try_into().unwrap(), t.cols.try_into().unwrap(), 0);
        p.process(ENTER.as_bytes());
        p.process(&view.frame());
        p
    }

    #[test]
    fn a_smaller_terminal_sees_a_crop_around_the_cursor_and_a_status_line() {
        let mut v = WatchView::new(
            "build",
            "alice",
            WindowSize { cols: 100, rows: 30 },
            WindowSize { cols: 40, rows: 10 },
            "Ctrl-\\",
        );
        let mut text = String::new();
        for r in 0..30 {
            let _ = write!(text, "{r:02}{}\r\n", "x".repeat(90));
        }
        text.push_str("\x1b[25;80Hcursor");
        v.feed(text.as_bytes());
        let p = render(&v);
        let screen = p.screen();
        let rows: Vec<String> = screen.rows(0, 40).collect();
        assert_eq!(rows.len(), 10);
        assert!(rows[9].starts_with(" watching build (owner alice) · read-on"), "{:?}", rows[9]);
        assert!(v.status().contains("cropped 100x30"), "{}", v.status());
        // The cursor's neighbourhood is in view, nothing wrapped.
        assert!(rows.iter().any(|r| r.contains("cursor")), "{rows:?}");
        assert!(rows[..9].iter().all(|r| r.chars().count() <= 40));
    }

    #[test]
    fn a_larger_terminal_is_padded() {
        let mut v = WatchView::new(
            "s",
            "bob",
            WindowSize { cols: 20, rows: 3 },
            WindowSize { cols: 60, rows: 10 },
            "Ctrl-\\",
        );
        v.feed(b"\x1b[31mred\x1b[0m text");
        let p = render(&v);
        assert_eq!(p.screen().rows(0, 60).next().unwrap().trim_end(), "red text");
        assert_eq!(p.screen().cell(0, 0).unwrap().fgcolor(), vt100::Color::Idx(1));
        assert_eq!(p.screen().cursor_position(), (0, 8));
        assert!(!v.status().contains("cropped"));
    }

    #[test]
    fn a_still_carries_the_screen_and_nothing_of_the_session() {
        let size = WindowSize { cols: 30, rows: 5 };
        let mut model = Screen::new(size, 0);
        model.feed(b"\x1b]2;EVIL TITLE\x07\x1b[?2004h\x1b[?1000h\x1b[31mred\x1b[0m line\r\nsecond");
        let redraw = model.redraw();
        assert!(
            String::from_utf8_lossy(&redraw).contains("EVIL TITLE"),
            "the redraw keeps the title"
        );
        let out = still(&redraw, size);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            !text.contains("EVIL") && !text.contains("\x1b]") && !text.contains("?2004"),
            "{text:?}"
        );
        let mut p = vt100::Parser::new(5.try_into().unwrap(), 30.try_into().unwrap(), 0);
        p.process(&out);
        assert_eq!(p.screen().contents(), "red line\nsecond");
        assert_eq!(p.screen().cell(0, 0).unwrap().fgcolor(), vt100::Color::Idx(1));
    }
}

//! `tether replay`: a full-screen player, and `--at` (the screen at a
//! moment, as text).
//!
//! Keys: space pause, `+`/`-` speed, ←/→ 5 s (with Shift: 1 min), `g` go
//! to a time, `[`/`]` previous/next marker, `{`/`}` previous/next command,
//! `/` search forward for text on screen, `n`/`N` repeat
//! forward/backward, `q` quit. The status line shows the command running
//! at the moment shown (docs/COMMANDS.md). Seeking uses the
//! recording's keyframes, so it is fast anywhere in a long recording.

use super::seek::{Seeked, apply, seek};
use super::timespec::{self, When};
use super::{Recording, output_bytes};
use crate::term::screen::Screen;
use anyhow::{Context, Result};
use avt::Color as VtColor;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ratatui::crossterm::{execute, terminal as ct};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tether_proto::record::v3::{self, Line};
use tether_proto::record::{EventData, MarkSource};

/// Options of `tether replay`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Playback speed.
    pub speed: f64,
    /// Longest pause played, in seconds.
    pub idle_limit: Option<f64>,
    /// Start here.
    pub start: f64,
}

/// The screen at `t` seconds as plain text.
///
/// # Errors
///
/// The recording cannot be read.
pub fn text_at(rec: &Recording, t: f64) -> Result<Vec<String>> {
    Ok(seek(rec, t)?.screen.visible_text())
}

/// The length of a recording: the time of its last event (read from the
/// tail of the last segment, not the whole file: from its last checkpoint
/// or end, whose time is absolute, or from the start when the tail is the
/// whole file).
pub fn duration(rec: &Recording) -> f64 {
    let Some(last) = rec.segments.last() else { return 0.0 };
    let Ok(mut file) = rec.source.open(last) else { return 0.0 };
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let from = len.saturating_sub(256 * 1024);
    let _ = file.seek(SeekFrom::Start(from));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let tail = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = tail.lines().collect();
    let checkpoint = lines.iter().rposition(|l| {
        matches!(v3::decode_comment(l), Some(Ok(Line::Checkpoint(_) | Line::End(_))))
    });
    let (mut decoder, rest) = match checkpoint {
        Some(i) => match v3::decode_comment(lines[i]) {
            Some(Ok(Line::Checkpoint(c) | Line::End(c))) => {
                (v3::Decoder::at(c.time), &lines[i + 1..])
            }
            _ => return 0.0,
        },
        // The whole of segment 0: its events from the start.
        None if from == 0 && rec.segments.len() == 1 => (v3::Decoder::new(), &lines[..]),
        None => return 0.0,
    };
    let mut time = decoder.time();
    for line in rest {
        if let Ok(Line::Event(e)) = decoder.line(line) {
            time = e.time;
        }
    }
    time
}

/// Markers, found by a background scan (a long recording takes a while).
fn scan_markers(rec: Recording) -> (Markers, Commands) {
    let found = Arc::new(Mutex::new(Vec::new()));
    let commands = Arc::new(Mutex::new(Vec::new()));
    let (out, ran) = (found.clone(), commands.clone());
    std::thread::spawn(move || {
        for event in rec.events().map_while(Result::ok) {
            if let EventData::Marker(label) = event.data {
                out.lock().unwrap_or_else(PoisonError::into_inner).push((event.time, label));
            }
        }
        // The same commands `tether commands` lists.
        let listed = super::cmdlog::commands(&rec).unwrap_or_default();
        *ran.lock().unwrap_or_else(PoisonError::into_inner) = listed
            .into_iter()
            .map(|r| Shown {
                n: r.n,
                start: r.offset,
                end: r.duration.map(|d| r.offset + d),
                command: r.command,
                exit: r.exit,
                tether: r.marks == MarkSource::Tether,
            })
            .collect();
    });
    (found, commands)
}

/// Markers found so far: time, label.
type Markers = Arc<Mutex<Vec<(f64, String)>>>;

/// Commands found so far, in the order they began.
type Commands = Arc<Mutex<Vec<Shown>>>;

/// A command, as the player shows it.
#[derive(Debug, Clone)]
struct Shown {
    n: u64,
    start: f64,
    end: Option<f64>,
    command: String,
    exit: Option<i32>,
    /// Its marks were the shell integration's own.
    tether: bool,
}

struct Player {
    rec: Recording,
    state: Seeked,
    time: f64,
    duration: f64,
    speed: f64,
    idle_limit: Option<f64>,
    paused: bool,
    markers: Markers,
    commands: Commands,
    search: Option<String>,
    prompt: Option<(Prompt, String)>,
    message: Option<String>,
    /// Wall time when the next event is due.
    due: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prompt {
    GoTo,
    Search,
}

/// Restores the terminal however the player ends.
struct Screenmode;

impl Screenmode {
    fn enter() -> Result<Screenmode> {
        ct::enable_raw_mode().context("switching the terminal to raw mode")?;
        execute!(std::io::stdout(), ct::EnterAlternateScreen, ratatui::crossterm::cursor::Hide)?;
        Ok(Screenmode)
    }
}

impl Drop for Screenmode {
    fn drop(&mut self) {
        let _ =
            execute!(std::io::stdout(), ratatui::crossterm::cursor::Show, ct::LeaveAlternateScreen);
        let _ = ct::disable_raw_mode();
    }
}

/// Plays `rec` in the terminal.
///
/// # Errors
///
/// No terminal, or the recording cannot be read.
pub fn run(rec: Recording, opts: &Options) -> Result<i32> {
    if !crate::term::tty::stdin_is_terminal() {
        return Err(crate::Failure::invalid(
            "replay needs a terminal; use --at TIME to print a moment",
        )
        .into());
    }
    let state = seek(&rec, opts.start)?;
    let (markers, commands) = scan_markers(rec.clone());
    let mut player = Player {
        duration: duration(&rec),
        markers,
        commands,
        rec,
        state,
        time: opts.start,
        speed: opts.speed,
        idle_limit: opts.idle_limit,
        paused: false,
        search: None,
        prompt: None,
        message: None,
        due: None,
    };
    let _mode = Screenmode::enter()?;
    let mut term = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    loop {
        player.play_due();
        term.draw(|f| player.render(f.area(), f.buffer_mut()))?;
        let wait = player.due.map_or(Duration::from_millis(250), |d| {
            d.saturating_duration_since(Instant::now()).min(Duration::from_millis(250))
        });
        if event::poll(wait)?
            && let TermEvent::Key(key) = event::read()?
            && !player.on_key(key)?
        {
            return Ok(0);
        }
    }
}

impl Player {
    /// Applies every event whose time has come.
    fn play_due(&mut self) {
        if self.paused {
            self.due = None;
            return;
        }
        let started = Instant::now();
        loop {
            let Some(next) = &self.state.next else {
                self.due = None;
                return;
            };
            let mut gap = (next.time - self.time).max(0.0);
            if let Some(limit) = self.idle_limit {
                gap = gap.min(limit);
            }
            let due = *self
                .due
                .get_or_insert_with(|| Instant::now() + Duration::from_secs_f64(gap / self.speed));
            if Instant::now() < due || started.elapsed() > Duration::from_millis(30) {
                return;
            }
            self.step();
            self.due = None;
        }
    }

    /// Applies the next event.
    fn step(&mut self) -> bool {
        let Some(event) = self.state.next.take() else { return false };
        apply(&mut self.state.screen, &event.data);
        self.time = event.time;
        self.state.next = match self.state.events.next() {
            Some(Ok(event)) => Some(event),
            // Damage (what verify reports) ends the recording here, said.
            Some(Err(e)) => {
                self.message = Some(crate::error::message(&e));
                None
            }
            None => None,
        };
        true
    }

    fn seek_to(&mut self, t: f64) {
        let t = t.clamp(0.0, self.duration.max(t.min(self.time)).max(0.0));
        match seek(&self.rec, t) {
            Ok(state) => {
                self.state = state;
                self.time = t;
                self.due = None;
            }
            Err(e) => self.message = Some(format!("{e:#}")),
        }
    }

    /// Returns false to quit.
    fn on_key(&mut self, key: KeyEvent) -> Result<bool> {
        if let Some((kind, text)) = &mut self.prompt {
            match key.code {
                KeyCode::Esc => self.prompt = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                KeyCode::Enter => {
                    let (kind, text) = (*kind, text.clone());
                    self.prompt = None;
                    match kind {
                        Prompt::GoTo => match timespec::parse(&text) {
                            Ok(when) => self.seek_to(when.offset_from(self.rec.started())),
                            Err(e) => self.message = Some(e.message),
                        },
                        Prompt::Search => {
                            self.search = Some(text);
                            self.find(true);
                        }
                    }
                }
                _ => {}
            }
            return Ok(true);
        }
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let jump = if shift { 60.0 } else { 5.0 };
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(false),
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Ok(false);
            }
            KeyCode::Char(' ') => {
                self.paused = !self.paused;
                self.due = None;
            }
            KeyCode::Char('+') | KeyCode::Char('=') => self.speed = (self.speed * 2.0).min(64.0),
            KeyCode::Char('-') => self.speed = (self.speed / 2.0).max(1.0 / 16.0),
            KeyCode::Left => self.seek_to((self.time - jump).max(0.0)),
            KeyCode::Right => self.seek_to(self.time + jump),
            KeyCode::Char('g') => self.prompt = Some((Prompt::GoTo, String::new())),
            KeyCode::Char('/') => self.prompt = Some((Prompt::Search, String::new())),
            KeyCode::Char('n') => self.find(true),
            KeyCode::Char('N') => self.find(false),
            KeyCode::Char('[') => self.marker(false),
            KeyCode::Char(']') => self.marker(true),
            KeyCode::Char('{') => self.command(false),
            KeyCode::Char('}') => self.command(true),
            _ => {}
        }
        Ok(true)
    }

    fn marker(&mut self, forward: bool) {
        let markers = self.markers.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let target = if forward {
            markers.iter().find(|(t, _)| *t > self.time + 0.001)
        } else {
            markers.iter().rev().find(|(t, _)| *t < self.time - 0.001)
        };
        match target {
            Some((t, label)) => {
                self.message = Some(format!("marker: {label}"));
                self.seek_to(*t);
            }
            None => self.message = Some("no more markers".into()),
        }
    }

    /// Moves to the start of the next (or previous) command.
    fn command(&mut self, forward: bool) {
        let commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let target = if forward {
            commands.iter().find(|c| c.start > self.time + 0.001)
        } else {
            commands.iter().rev().find(|c| c.start < self.time - 0.001)
        };
        match target {
            Some(c) => {
                self.message = None;
                self.seek_to(c.start);
            }
            None => self.message = Some("no more commands".into()),
        }
    }

    /// The command running (or last begun) at the moment shown.
    fn current_command(&self) -> Option<Shown> {
        let commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        commands.iter().rev().find(|c| c.start <= self.time + 0.001).cloned()
    }

    /// Moves to the next (or previous) moment the search text is on screen.
    fn find(&mut self, forward: bool) {
        let Some(needle) = self.search.clone().filter(|s| !s.is_empty()) else { return };
        let from = self.time;
        let found =
            if forward { self.find_forward(&needle) } else { self.find_backward(&needle, from) };
        match found {
            Some(t) => {
                self.message = Some(format!("found {needle:?}"));
                if !forward {
                    self.seek_to(t);
                }
            }
            None => {
                self.message = Some(format!("{needle:?} not found"));
                self.seek_to(from);
            }
        }
    }

    fn find_forward(&mut self, needle: &str) -> Option<f64> {
        while self.step() {
            if contains(&self.state.screen, needle) {
                return Some(self.time);
            }
        }
        None
    }

    fn find_backward(&mut self, needle: &str, before: f64) -> Option<f64> {
        let mut state = seek(&self.rec, 0.0).ok()?;
        let mut last = None;
        while let Some(event) = state.next.take() {
            if event.time >= before - 0.001 {
                break;
            }
            let output = output_bytes(&event.data).is_some();
            apply(&mut state.screen, &event.data);
            if output && contains(&state.screen, needle) {
                last = Some(event.time);
            }
            state.next = state.events.next().and_then(Result::ok);
        }
        last
    }

    fn render(&self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 {
            return;
        }
        let view = Rect { height: area.height - 1, ..area };
        let size = self.state.screen.size();
        let (ccol, crow, _) = self.state.screen.cursor();
        let window = |len: u16, have: u16, at: usize| -> u16 {
            if len <= have {
                return 0;
            }
            (at as u16).saturating_sub(have / 2).min(len - have)
        };
        let (x0, y0) = (window(size.cols, view.width, ccol), window(size.rows, view.height, crow));
        for (y, line) in self
            .state
            .screen
            .visible_lines()
            .enumerate()
            .skip(y0 as usize)
            .take(view.height as usize)
        {
            let row = view.y + (y as u16 - y0);
            for (x, cell) in
                line.cells().iter().enumerate().skip(x0 as usize).take(view.width as usize)
            {
                if cell.width() == 0 {
                    continue;
                }
                let col = view.x + (x as u16 - x0);
                if let Some(c) = buf.cell_mut((col, row)) {
                    let style = style_of(cell.pen());
                    match self.state.screen.table().get(cell.char()) {
                        Some(special) => c.set_symbol(&special.text).set_style(style),
                        None => c.set_char(cell.char()).set_style(style),
                    };
                }
            }
        }
        let cropped = size.cols > view.width || size.rows > view.height;
        let status = self.status(cropped, size);
        buf.set_stringn(
            area.x,
            area.y + area.height - 1,
            &status,
            area.width as usize,
            Style::new().add_modifier(Modifier::REVERSED),
        );
    }

    fn status(&self, cropped: bool, size: tether_proto::WindowSize) -> String {
        if let Some((kind, text)) = &self.prompt {
            let label =
                if *kind == Prompt::GoTo { "go to (HH:MM[:SS], +5m, RFC 3339)" } else { "search" };
            return format!(" {label}: {text}_");
        }
        let clock = self
            .rec
            .started()
            .and_then(|s| s.checked_add(jiff::SignedDuration::from_secs_f64(self.time)).ok())
            .map(|t| t.to_zoned_datetime(timespec::local_zone()).strftime("%H:%M:%S").to_string())
            .unwrap_or_default();
        let markers = self.markers.lock().map(|m| m.len()).unwrap_or(0);
        let commands = self.commands.lock().map(|c| c.len()).unwrap_or(0);
        let mut s = format!(
            " {} {clock} +{} / {} · {}x · {markers} markers · {commands} commands",
            if self.paused { "||" } else { ">" },
            hms(self.time),
            hms(self.duration),
            self.speed
        );
        if cropped {
            s.push_str(&format!(" · cropped {}x{}", size.cols, size.rows));
        }
        if let Some(c) = self.current_command() {
            let how = match (c.end, c.exit) {
                (Some(end), Some(exit)) if end <= self.time + 0.001 => format!("exit {exit}"),
                (Some(end), None) if end <= self.time + 0.001 => "ended".to_owned(),
                _ => "running".to_owned(),
            };
            let text: String = c.command.chars().take(40).collect();
            let trust = if c.tether { "" } else { ", marks from the job" };
            s.push_str(&format!(" · cmd {}: {text} ({how}{trust})", c.n));
        }
        match &self.message {
            Some(m) => s.push_str(&format!(" · {m}")),
            None => s.push_str(
                " · space pause +/- speed ←/→ seek g goto [ ] markers { } commands / search q quit",
            ),
        }
        s
    }
}

fn contains(screen: &Screen, needle: &str) -> bool {
    screen.visible_text().iter().any(|l| l.contains(needle))
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn style_of(pen: &avt::Pen) -> Style {
    let color = |c: Option<VtColor>| match c {
        Some(VtColor::Indexed(i)) => Some(Color::Indexed(i)),
        Some(VtColor::RGB(rgb)) => Some(Color::Rgb(rgb.r, rgb.g, rgb.b)),
        None => None,
    };
    let mut style = Style::new();
    if let Some(fg) = color(pen.foreground()) {
        style = style.fg(fg);
    }
    if let Some(bg) = color(pen.background()) {
        style = style.bg(bg);
    }
    let flags = [
        (pen.is_bold(), Modifier::BOLD),
        (pen.is_faint(), Modifier::DIM),
        (pen.is_italic(), Modifier::ITALIC),
        (pen.is_underline(), Modifier::UNDERLINED),
        (pen.is_blink(), Modifier::SLOW_BLINK),
        (pen.is_inverse(), Modifier::REVERSED),
        (pen.is_strikethrough(), Modifier::CROSSED_OUT),
    ];
    for (on, m) in flags {
        if on {
            style = style.add_modifier(m);
        }
    }
    style
}

/// Where `--at` or the start option points, in seconds.
pub fn offset(rec: &Recording, when: When) -> f64 {
    when.offset_from(rec.started()).max(0.0)
}

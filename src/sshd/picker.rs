//! `ssh -t host` with no command: a session picker drawn with ratatui on
//! the daemon side, into the SSH channel.
//!
//! Keys: ↑/↓ (or k/j) choose, Enter attaches, `n` creates (type a name,
//! Enter), `r` refreshes, `q` quits. The state ([`Picker`]) is pure and
//! rendered to bytes; the loop only moves bytes and keys.

use super::channel::InputReceiver;
use super::{Caller, Input, Output, Pty, Shared, bridge, say};
use crate::backend::{Backend, create_request};
use crate::term::text::visible;
use bytes::Bytes;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};
use ratatui::{Terminal, TerminalOptions, Viewport};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use tether_proto::{AttachMode, SessionInfo, SessionName, WindowSize};

/// A key the picker understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// ↑ or k.
    Up,
    /// ↓ or j.
    Down,
    /// Enter.
    Enter,
    /// Backspace.
    Backspace,
    /// Escape on its own, or Ctrl-C.
    Cancel,
    /// A printable character.
    Char(char),
}

/// Splits raw terminal input into keys.
pub fn keys(bytes: &[u8]) -> Vec<Key> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let (key, used) = match rest {
            [0x1b, b'[' | b'O', b'A', ..] => (Some(Key::Up), 3),
            [0x1b, b'[' | b'O', b'B', ..] => (Some(Key::Down), 3),
            [0x1b, b'[', ..] => (
                None,
                rest.iter()
                    .skip(2)
                    .position(|b| (0x40..=0x7e).contains(b))
                    .map_or(rest.len(), |p| p + 3),
            ),
            [0x1b, ..] | [0x03, ..] => (Some(Key::Cancel), 1),
            [b'\r' | b'\n', ..] => (Some(Key::Enter), 1),
            [0x7f | 0x08, ..] => (Some(Key::Backspace), 1),
            [b, ..] if b.is_ascii_graphic() || *b == b' ' => (Some(Key::Char(char::from(*b))), 1),
            _ => (None, 1),
        };
        out.extend(key);
        i += used;
    }
    out
}

/// What the picker asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing; redraw.
    None,
    /// Attach to this session.
    Attach(SessionName),
    /// Create this session and attach.
    Create(SessionName),
    /// Re-read the list.
    Refresh,
    /// Leave.
    Quit,
}

/// The picker's state.
#[derive(Debug, Default)]
pub struct Picker {
    /// The sessions shown.
    pub sessions: Vec<SessionInfo>,
    /// The highlighted row.
    pub selected: usize,
    /// While naming a new session: the name so far.
    pub naming: Option<String>,
    /// A line for the user (an error).
    pub message: Option<String>,
}

impl Picker {
    /// Handles one key.
    pub fn on_key(&mut self, key: Key) -> Action {
        if let Some(name) = &mut self.naming {
            match key {
                Key::Char(c) if name.len() < tether_proto::name::MAX_NAME_LEN => name.push(c),
                Key::Backspace => {
                    name.pop();
                }
                Key::Cancel => self.naming = None,
                Key::Enter => {
                    let typed = self.naming.take().unwrap_or_default();
                    match SessionName::new(&typed) {
                        Ok(n) => return Action::Create(n),
                        Err(e) => self.message = Some(e.to_string()),
                    }
                }
                _ => {}
            }
            return Action::None;
        }
        match key {
            Key::Up | Key::Char('k') => self.selected = self.selected.saturating_sub(1),
            Key::Down | Key::Char('j') => {
                self.selected = (self.selected + 1).min(self.sessions.len().saturating_sub(1));
            }
            Key::Enter => {
                if let Some(s) = self.sessions.get(self.selected) {
                    return Action::Attach(s.name.clone());
                }
            }
            Key::Char('n') => {
                self.naming = Some(String::new());
                self.message = None;
            }
            Key::Char('r') => return Action::Refresh,
            Key::Char('q') | Key::Cancel => return Action::Quit,
            _ => {}
        }
        Action::None
    }

    /// Draws the picker.
    pub fn render(&self, frame: &mut ratatui::Frame<'_>) {
        let [list_area, help_area] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(frame.area());
        let items: Vec<ListItem<'_>> = self
            .sessions
            .iter()
            .map(|s| {
                ListItem::new(format!(
                    "{:<24} {:<8} {:>6}  {}/{}  {}",
                    s.name.as_str(),
                    s.state.as_str(),
                    s.started.as_deref().map_or("-".into(), crate::clock::age),
                    s.clients,
                    s.watchers,
                    visible(&s.command.join(" "))
                ))
            })
            .collect();
        let title =
            if self.sessions.is_empty() { " no sessions yet " } else { " tether sessions " };
        let list = List::new(items)
            .block(Block::bordered().title(title))
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ");
        let mut state = ListState::default().with_selected(Some(self.selected));
        frame.render_stateful_widget(list, list_area, &mut state);
        let help = match (&self.naming, &self.message) {
            (Some(name), _) => {
                format!("new session name: {}_   (Enter create · Esc cancel)", visible(name))
            }
            (None, Some(msg)) => visible(msg).into_owned(),
            (None, None) => "↑/↓ choose · Enter attach · n new · r refresh · q quit".to_owned(),
        };
        frame.render_widget(Paragraph::new(Line::from(help)), help_area);
    }
}

/// A `Write` whose bytes the loop collects after each draw.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner)))
    }
}

fn viewport(size: WindowSize) -> Rect {
    Rect::new(0, 0, size.cols, size.rows)
}

/// Runs the picker until the user quits or an attachment ends.
pub async fn run(
    shared: &Arc<Shared>,
    caller: &Caller,
    pty: Pty,
    mut input: InputReceiver,
    out: &Output,
) -> i32 {
    let sink = Sink::default();
    let options = TerminalOptions { viewport: Viewport::Fixed(viewport(pty.size)) };
    let Ok(mut terminal) = Terminal::with_options(CrosstermBackend::new(sink.clone()), options)
    else {
        return 1;
    };
    let mut picker = Picker::default();
    let mut size = pty.size;
    refresh(shared, caller, &mut picker).await;
    say(out, "\x1b[?1049h\x1b[?25l\x1b[2J", false).await;
    let action = loop {
        if terminal.draw(|f| picker.render(f)).is_err() {
            break Action::Quit;
        }
        if out.data_bytes(sink.take()).await.is_err() {
            return 0;
        }
        let action = match input.recv().await {
            Some(Input::Data(bytes)) => {
                keys(&bytes).into_iter().map(|k| picker.on_key(k)).find(|a| *a != Action::None)
            }
            Some(Input::Resize(s)) => {
                size = s;
                let _ = terminal.resize(viewport(s));
                None
            }
            Some(Input::Eof) | None => Some(Action::Quit),
        };
        match action {
            Some(Action::Refresh) => refresh(shared, caller, &mut picker).await,
            Some(Action::Create(name)) => match create(shared, caller, &name, size, &pty).await {
                Ok(()) => break Action::Attach(name),
                Err(e) => picker.message = Some(crate::error::message(&e)),
            },
            Some(a @ (Action::Attach(_) | Action::Quit)) => break a,
            Some(Action::None) | None => {}
        }
    };
    say(out, "\x1b[?25h\x1b[?1049l", false).await;
    match action {
        Action::Attach(name) => {
            let mode = AttachMode::Interactive;
            let terminal = bridge::Terminal { size, term: Some(pty.term.clone()) };
            match bridge::attach_or_show(shared, caller, &name, mode, terminal, &mut input, out)
                .await
            {
                Ok(code) => code,
                Err(e) => {
                    say(out, &format!("tether: {}\r\n", crate::error::shown(&e)), true).await;
                    crate::error::exit_code(&e)
                }
            }
        }
        _ => 0,
    }
}

async fn refresh(shared: &Arc<Shared>, caller: &Caller, picker: &mut Picker) {
    let backend = shared.backend_for(caller);
    match tokio::task::spawn_blocking(move || backend.list()).await {
        Ok(Ok(sessions)) => {
            picker.sessions = sessions;
            picker.selected = picker.selected.min(picker.sessions.len().saturating_sub(1));
        }
        Ok(Err(e)) => picker.message = Some(crate::error::message(&e)),
        Err(e) => picker.message = Some(e.to_string()),
    }
}

async fn create(
    shared: &Arc<Shared>,
    caller: &Caller,
    name: &SessionName,
    size: WindowSize,
    pty: &Pty,
) -> anyhow::Result<()> {
    let backend = shared.backend_for(caller);
    let mut req = create_request(name, Vec::new(), size);
    req.term = Some(pty.term.clone());
    tokio::task::spawn_blocking(move || backend.create(&req)).await??;
    super::audit(shared, &caller.audit(crate::audit::Event::SessionCreate, Some(name.as_str())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;

    #[test]
    fn keys_are_decoded() {
        assert_eq!(
            keys(b"\x1b[A\x1bOBjk\rq\x1b\x7f\x1b[1;5C"),
            [
                Key::Up,
                Key::Down,
                Key::Char('j'),
                Key::Char('k'),
                Key::Enter,
                Key::Char('q'),
                Key::Cancel,
                Key::Backspace
            ]
        );
    }

    fn info(name: &str) -> SessionInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "state": "running", "frozen": false, "pid": 1, "keeper_pid": 2,
            "exit_code": null, "signal": null, "started": null, "ended": null, "cols": 80,
            "rows": 24, "clients": 0, "watchers": 1, "protected": false, "recording": "off",
            "recording_path": null, "command": ["make"]
        }))
        .unwrap()
    }

    #[test]
    fn choose_and_create() {
        let mut p = Picker { sessions: vec![info("a"), info("b")], ..Picker::default() };
        assert_eq!(p.on_key(Key::Down), Action::None);
        assert_eq!(p.on_key(Key::Down), Action::None);
        assert_eq!(p.on_key(Key::Enter), Action::Attach(SessionName::new("b").unwrap()));
        p.on_key(Key::Char('n'));
        for c in "x/".chars() {
            p.on_key(Key::Char(c));
        }
        assert_eq!(p.on_key(Key::Enter), Action::None);
        assert!(p.message.as_deref().unwrap().contains("'/'"));
        p.on_key(Key::Char('n'));
        p.on_key(Key::Char('z'));
        assert_eq!(p.on_key(Key::Enter), Action::Create(SessionName::new("z").unwrap()));
        assert_eq!(p.on_key(Key::Char('q')), Action::Quit);
    }

    #[test]
    fn renders_the_list() {
        let p = Picker { sessions: vec![info("build")], ..Picker::default() };
        let mut t = Terminal::new(TestBackend::new(60, 5)).unwrap();
        t.draw(|f| p.render(f)).unwrap();
        let text: String = t.backend().buffer().content().iter().map(|c| c.symbol()).collect();
        assert!(text.contains("> build"), "{text}");
        assert!(text.contains("Enter attach"), "{text}");
    }
}

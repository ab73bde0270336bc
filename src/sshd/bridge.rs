//! An SSH channel attached to a session: the client's bytes (through the
//! detach key) to the keeper, the keeper's output to the channel.
//!
//! Output is written with the channel's flow control: while the client's
//! window is closed we stop reading from the keeper, whose outbox for us
//! then overflows and is replaced by a redraw. The daemon's memory per
//! attachment stays bounded, and the job never waits.
//!
//! A read-only attachment (watch) never passes the session's bytes on: it
//! feeds them to a [`WatchView`] and sends the rendered, cropped view with
//! its status line, and nothing typed reaches the keeper.

use super::{Caller, Input, Output, Shared, frames, say};
use crate::term::detach::DetachKey;
use crate::term::scan::ModeTracker;
use crate::term::view::{self, WatchView};
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_proto::{AttachMode, AttachRequest, JobExit, Message, SessionName, WindowSize};
use tokio::sync::mpsc::Receiver;

/// How often a watcher's view may be repainted.
const FRAME_INTERVAL: Duration = Duration::from_millis(50);

/// How a bridged attachment ended, as an exit status for the channel.
pub struct Attached {
    /// The channel's exit status.
    pub code: i32,
}

/// The state of one bridged attachment.
struct Bridge<'a> {
    out: &'a Output,
    name: &'a SessionName,
    mode: AttachMode,
    detach: DetachKey,
    tracker: ModeTracker,
    view: Option<WatchView>,
    dirty: bool,
    ended: Option<JobExit>,
}

/// What the loop should do next.
enum Step {
    Continue,
    Leave,
    Done(i32),
}

/// Attaches the channel to `name` until detach, disconnect or the job's end.
///
/// # Errors
///
/// The keeper cannot be reached or refuses the attachment.
pub async fn attach(
    shared: &Arc<Shared>,
    caller: &Caller,
    name: &SessionName,
    mode: AttachMode,
    size: WindowSize,
    input: &mut Receiver<Input>,
    out: &Output,
) -> Result<Attached> {
    let (mut from_keeper, mut to_keeper, _) = frames::connect(&shared.paths, name).await?;
    let identity = caller.identity.clone();
    to_keeper.write_message(&Message::Attach(AttachRequest { mode, size, identity })).await?;
    let session = match from_keeper.read_message().await? {
        Some(Message::AttachReply(reply)) => reply.session,
        Some(Message::Error(e)) => return Err(crate::Failure::from(e).into()),
        _ => return Ok(Attached { code: lost(out, name).await }),
    };
    let event = if mode == AttachMode::ReadOnly {
        crate::audit::Event::Watch
    } else {
        crate::audit::Event::Attach
    };
    super::audit(shared, &caller.audit(event, Some(name.as_str())));
    let config = shared.config();
    let view = (mode == AttachMode::ReadOnly).then(|| {
        let session_size = WindowSize { cols: session.cols, rows: session.rows };
        let owner = session.owner.clone().unwrap_or_else(|| "?".into());
        let mut v = WatchView::new(
            name.as_str(),
            &owner,
            session_size,
            size,
            &config.detach_key.describe(),
        );
        v.set_watchers(session.watchers.max(1));
        v
    });
    if view.is_some() {
        say(out, view::ENTER, false).await;
    }
    let mut bridge = Bridge {
        out,
        name,
        mode,
        detach: DetachKey::new(config.detach_key.0),
        tracker: ModeTracker::new(),
        view,
        dirty: false,
        ended: None,
    };
    let mut frames = tokio::time::interval(FRAME_INTERVAL);
    let code = loop {
        let deadline = bridge.detach.deadline().map(tokio::time::Instant::from_std);
        let step = tokio::select! {
            msg = from_keeper.read_message() => bridge.on_keeper(msg.ok().flatten()).await,
            got = input.recv() => bridge.on_client(got, &mut to_keeper).await,
            () = sleep_until(deadline), if deadline.is_some() => {
                if bridge.detach.tick(Instant::now()).detach { Step::Leave } else { Step::Continue }
            }
            _ = frames.tick(), if bridge.dirty => bridge.paint().await,
        };
        match step {
            Step::Continue => {}
            Step::Leave => break bridge.leave(&mut to_keeper).await,
            Step::Done(code) => break code,
        }
    };
    super::audit(shared, &caller.audit(crate::audit::Event::Detach, Some(name.as_str())));
    Ok(Attached { code })
}

impl Bridge<'_> {
    async fn on_keeper(&mut self, msg: Option<Message>) -> Step {
        match (msg, &mut self.view) {
            (Some(Message::Output(bytes) | Message::Redraw(bytes)), Some(view)) => {
                view.feed(&bytes);
                self.dirty = true;
            }
            (Some(Message::Output(bytes) | Message::Redraw(bytes)), None) => {
                self.tracker.feed(&bytes);
                if self.out.data_bytes(bytes).await.is_err() {
                    return Step::Done(0);
                }
            }
            (Some(Message::Resize(size)), Some(view)) => {
                view.session_resized(size);
                self.dirty = true;
            }
            (Some(Message::Notice(n)), Some(view)) => {
                if let Some(w) = n.watchers {
                    view.set_watchers(w);
                }
                view.set_note(Some(n.text));
                self.dirty = true;
            }
            (Some(Message::Exit(exit)), _) => self.ended = Some(exit),
            (Some(_), _) => {}
            (None, _) => return self.gone().await,
        }
        Step::Continue
    }

    /// The keeper closed the connection: the job ended, or the keeper died.
    async fn gone(&mut self) -> Step {
        if self.view.is_some() {
            self.paint().await;
            say(self.out, view::LEAVE, false).await;
        }
        match self.ended.take() {
            Some(exit) => {
                let msg = format!("\r\n[session {} ended: {}]\r\n", self.name, exit.describe());
                say(self.out, &msg, false).await;
                Step::Done(exit.status())
            }
            None => Step::Done(lost(self.out, self.name).await),
        }
    }

    async fn on_client(
        &mut self,
        got: Option<Input>,
        to_keeper: &mut frames::FrameWriteHalf,
    ) -> Step {
        match got {
            Some(Input::Data(bytes)) => {
                let step = self.detach.feed(&bytes, Instant::now());
                // Read-only: nothing typed is sent at all.
                if !step.forward.is_empty() && self.mode == AttachMode::Interactive {
                    let msg = Message::Input(Bytes::from(step.forward));
                    if to_keeper.write_message(&msg).await.is_err() {
                        return Step::Done(lost(self.out, self.name).await);
                    }
                }
                if step.detach { Step::Leave } else { Step::Continue }
            }
            Some(Input::Resize(size)) => {
                match &mut self.view {
                    // Watchers never resize the session.
                    Some(view) => {
                        view.terminal_resized(size);
                        self.dirty = true;
                    }
                    None => {
                        let _ = to_keeper.write_message(&Message::Resize(size)).await;
                    }
                }
                Step::Continue
            }
            // Closing the connection detaches.
            Some(Input::Eof) | None => Step::Leave,
        }
    }

    async fn paint(&mut self) -> Step {
        if let Some(view) = &self.view {
            let _ = self.out.data_bytes(Bytes::from(view.frame())).await;
        }
        self.dirty = false;
        Step::Continue
    }

    async fn leave(&mut self, to_keeper: &mut frames::FrameWriteHalf) -> i32 {
        let _ = to_keeper.write_message(&Message::Detach).await;
        let reset = match &self.view {
            Some(_) => view::LEAVE.to_owned(),
            None => self.tracker.modes().reset_sequence(),
        };
        let text = format!("{reset}\r\n[detached from {}]\r\n", self.name);
        say(self.out, &text, false).await;
        0
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn lost(out: &Output, name: &SessionName) -> i32 {
    say(out, &format!("\r\n[lost the connection to session {name}]\r\n"), false).await;
    6
}

//! An SSH channel attached to a session: the client's bytes (through the
//! detach key) to the keeper, the keeper's output to the channel.
//!
//! Output is written with the channel's flow control: while the client's
//! window is closed we stop reading from the keeper, whose outbox for us
//! then overflows and is replaced by a redraw. The daemon's memory per
//! attachment stays bounded, and the job never waits.

use super::{Caller, Input, Output, Shared, frames, say};
use crate::client::detach::DetachKey;
use crate::vtscan::ModeTracker;
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tether_proto::{AttachMode, AttachRequest, Message, SessionName, WindowSize};
use tokio::sync::mpsc::Receiver;

/// How a bridged attachment ended, as an exit status for the channel.
pub struct Attached {
    /// The channel's exit status.
    pub code: i32,
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
    match from_keeper.read_message().await? {
        Some(Message::AttachReply(_)) => {}
        Some(Message::Error(e)) => return Err(crate::Failure::from(e).into()),
        _ => return Ok(Attached { code: lost(out, name).await }),
    }
    let event = if mode == AttachMode::ReadOnly {
        crate::audit::Event::Watch
    } else {
        crate::audit::Event::Attach
    };
    super::audit(shared, &caller.audit(event, Some(name.as_str())));
    let mut detach = DetachKey::new(shared.config().detach_key.0);
    let mut tracker = ModeTracker::new();
    let mut ended = None;
    let code = loop {
        let deadline = detach.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            msg = from_keeper.read_message() => match msg {
                Ok(Some(Message::Output(bytes) | Message::Redraw(bytes))) => {
                    tracker.feed(&bytes);
                    if out.data_bytes(bytes).await.is_err() {
                        break 0;
                    }
                }
                Ok(Some(Message::Exit(exit))) => ended = Some(exit),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => match ended.take() {
                    Some(exit) => {
                        let msg = format!("\r\n[session {name} ended: {}]\r\n", exit.describe());
                        say(out, &msg, false).await;
                        break exit.status();
                    }
                    None => break lost(out, name).await,
                },
            },
            got = input.recv() => match got {
                Some(Input::Data(bytes)) => {
                    let step = detach.feed(&bytes, Instant::now());
                    if !step.forward.is_empty() && mode == AttachMode::Interactive {
                        let msg = Message::Input(Bytes::from(step.forward));
                        if to_keeper.write_message(&msg).await.is_err() {
                            break lost(out, name).await;
                        }
                    }
                    if step.detach {
                        break leave(&mut to_keeper, out, &tracker, name).await;
                    }
                }
                Some(Input::Resize(size)) => {
                    let _ = to_keeper.write_message(&Message::Resize(size)).await;
                }
                // Closing the connection detaches.
                Some(Input::Eof) | None => break leave(&mut to_keeper, out, &tracker, name).await,
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                if detach.tick(Instant::now()).detach {
                    break leave(&mut to_keeper, out, &tracker, name).await;
                }
            }
        }
    };
    super::audit(shared, &caller.audit(crate::audit::Event::Detach, Some(name.as_str())));
    Ok(Attached { code })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn leave(
    to_keeper: &mut frames::FrameWriteHalf,
    out: &Output,
    tracker: &ModeTracker,
    name: &SessionName,
) -> i32 {
    let _ = to_keeper.write_message(&Message::Detach).await;
    let text = format!("{}\r\n[detached from {name}]\r\n", tracker.modes().reset_sequence());
    say(out, &text, false).await;
    0
}

async fn lost(out: &Output, name: &SessionName) -> i32 {
    say(out, &format!("\r\n[lost the connection to session {name}]\r\n"), false).await;
    6
}

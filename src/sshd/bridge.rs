//! An SSH channel attached to a session: the SSH side's driver of the same
//! [`Attachment`] state machine the local client drives, over the keeper
//! client that every front end uses (the caller's role and sessions are
//! checked when it connects).
//!
//! Output is written with the channel's flow control: while the client's
//! window is closed we stop reading from the keeper, whose outbox for us
//! then overflows and is replaced by a redraw. The daemon's memory per
//! attachment stays bounded, and the job never waits.
//!
//! A read-only attachment (watch) never passes the session's bytes on: the
//! state machine renders them into a cropped view with its status line,
//! and nothing typed reaches the keeper.

use super::channel::InputReceiver;
use super::{Caller, Input, Output, Shared};
use crate::Failure;
use crate::audit::Event;
use crate::backend::Backend as _;
use crate::client::access::Op;
use crate::client::attachment::{
    Attachment, Outcome, Settings, Start, ended_screen, exit_of, explain_failure, lost_message,
};
use crate::client::nonblocking::FrameWriteHalf;
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tether_proto::{AttachMode, ErrorCode, SessionName, WindowSize};

/// The client's terminal, as its `pty-req` described it.
#[derive(Debug, Clone)]
pub struct Terminal {
    /// Its size.
    pub size: WindowSize,
    /// Its type (`TERM`): a redraw uses what its terminfo entry has.
    pub term: Option<String>,
}

/// Attaches the channel to `name` until detach, disconnect or the job's
/// end; returns how it ended (the terminal has been put back and told).
///
/// # Errors
///
/// The caller may not (exit 5), or the keeper cannot be reached or refuses.
async fn attach(
    shared: &Arc<Shared>,
    caller: &Caller,
    name: &SessionName,
    mode: AttachMode,
    terminal: Terminal,
    input: &mut InputReceiver,
    out: &Output,
) -> Result<Outcome> {
    // The keeper connection is cut if the channel goes away, even while
    // we wait for a keeper that does not read what we write.
    let backend = shared.channel_backend(caller, out);
    let op = if mode == AttachMode::ReadOnly { Op::Watch } else { Op::Attach };
    let client = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || backend.connect(&name, op)).await??
    };
    let (mut from_keeper, mut to_keeper) = client.into_async()?;
    let config = shared.config();
    let (mut attachment, request) = Attachment::start(Settings {
        name: name.clone(),
        mode,
        identity: caller.identity.clone(),
        detach_key: config.detach_key.0,
        detach_name: config.detach_key.describe(),
        size: terminal.size,
        term: terminal.term,
    });
    to_keeper.write_message(&request).await?;
    match attachment.on_reply(from_keeper.read_message().await.ok().flatten()) {
        Start::Attached(enter) => send(out, enter).await,
        Start::Refused(e) => return Err(Failure::from(e).into()),
        Start::Lost => return Err(Failure::unavailable(lost_message(name)).into()),
    };
    let event = if mode == AttachMode::ReadOnly { Event::Watch } else { Event::Attach };
    super::audit(shared, &caller.audit(event, Some(name.as_str())));
    let mut terminal = Vec::new();
    let outcome = loop {
        let deadline = attachment.deadline().map(tokio::time::Instant::from_std);
        let leave = tokio::select! {
            msg = from_keeper.read_message() => match msg.ok().flatten() {
                Some(msg) => {
                    attachment.on_keeper(msg, &mut terminal);
                    // A client that is gone detaches.
                    !terminal.is_empty() && !send(out, std::mem::take(&mut terminal)).await
                }
                None => {
                    let (last, outcome) = attachment.closed();
                    send(out, last).await;
                    break outcome;
                }
            },
            got = input.recv() => match got {
                Some(Input::Data(bytes)) => {
                    let typed = attachment.on_input(&bytes, Instant::now());
                    if let Some(msg) = typed.to_keeper
                        && to_keeper.write_message(&msg).await.is_err()
                    {
                        let (last, outcome) = attachment.closed();
                        send(out, last).await;
                        break outcome;
                    }
                    typed.leave
                }
                Some(Input::Resize(size)) => {
                    if let Some(msg) = attachment.on_terminal_resized(size) {
                        let _ = to_keeper.write_message(&msg).await;
                    }
                    false
                }
                // Closing the connection detaches.
                Some(Input::Eof) | None => true,
            },
            () = sleep_until(deadline), if deadline.is_some() => attachment.tick(Instant::now()),
        };
        if leave {
            break leave_session(&mut attachment, &mut to_keeper, out).await;
        }
        if let Some(frame) = attachment.paint(Instant::now()) {
            send(out, frame).await;
        }
    };
    let event = if mode == AttachMode::ReadOnly { Event::Unwatch } else { Event::Detach };
    super::audit(shared, &caller.audit(event, Some(name.as_str())));
    Ok(outcome)
}

/// `attach`, and what the local CLI does when that fails: a session that
/// has ended shows its final screen (with the terminal put back), anything
/// else is explained from its record. Returns the channel's exit status.
///
/// # Errors
///
/// The refusal, no such session, lost, or the failure to attach.
pub async fn attach_or_show(
    shared: &Arc<Shared>,
    caller: &Caller,
    name: &SessionName,
    mode: AttachMode,
    terminal: Terminal,
    input: &mut InputReceiver,
    out: &Output,
) -> Result<i32> {
    let err = match attach(shared, caller, name, mode, terminal, input, out).await {
        Ok(Outcome::Lost) => return Err(Failure::unavailable(lost_message(name)).into()),
        Ok(outcome) => return Ok(outcome.status()),
        Err(e) => e,
    };
    let backend = shared.backend_for(caller);
    let n = name.clone();
    let shown = tokio::task::spawn_blocking(move || {
        let refused = crate::error::exit_code(&err) == ErrorCode::Refused.exit_code();
        let record = if refused { None } else { backend.lookup(&n)? };
        let info = explain_failure(&n, record, err)?;
        let screen = backend.final_screen(&n)?;
        anyhow::Ok((ended_screen(&info, screen.as_ref(), mode), exit_of(&info).status()))
    })
    .await??;
    send(out, shown.0).await;
    Ok(shown.1)
}

async fn leave_session(
    attachment: &mut Attachment,
    to_keeper: &mut FrameWriteHalf,
    out: &Output,
) -> Outcome {
    let (detach, last, outcome) = attachment.leave();
    let _ = to_keeper.write_message(&detach).await;
    send(out, last).await;
    outcome
}

/// Writes to the channel (waiting for its window); `false` if it is gone.
async fn send(out: &Output, bytes: Vec<u8>) -> bool {
    bytes.is_empty() || out.data_bytes(Bytes::from(bytes)).await.is_ok()
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

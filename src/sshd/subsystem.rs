//! The `tether` SSH subsystem: the framed protocol, for `tether --host`.
//!
//! One channel carries one conversation. After the hello the client sends
//! either a daemon-level [`Request`] (list, lookup, create, remove, final
//! screen), answered here, or [`Message::Route`]: from then on it talks to
//! that session's keeper through this daemon, which checks every request
//! against the key's role and replaces the identity in attach requests by
//! the authenticated one (a client cannot claim to be someone else).

use super::channel::InputReceiver;
use super::{Caller, Input, Output, Shared, finish};
use crate::Failure;
use crate::audit::Event;
use crate::backend::Backend as _;
use crate::client::access::Op;
use anyhow::Result;
use bytes::Bytes;
use std::sync::Arc;
use tether_proto::{
    AttachMode, ErrorReply, FrameDecoder, Message, Reply, Request, SessionName, encode,
};

/// The subsystem's name: `ssh -s host tether`.
pub const NAME: &str = tether_proto::SSH_SUBSYSTEM;

/// The client side of a subsystem channel: decoded frames in, frames out.
struct Client {
    input: InputReceiver,
    decoder: FrameDecoder,
    out: Output,
}

impl Client {
    async fn read(&mut self) -> Result<Option<Message>> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(Some(m));
            }
            match self.input.recv().await {
                Some(Input::Data(bytes)) => self.decoder.extend(&bytes),
                Some(Input::Resize(_)) => {}
                Some(Input::Eof) | None => return Ok(None),
            }
        }
    }

    async fn send(&self, msg: &Message) -> Result<()> {
        self.out
            .data_bytes(Bytes::from(encode(msg)?))
            .await
            .map_err(|_| anyhow::anyhow!("client gone"))
    }

    async fn fail(&self, err: &anyhow::Error) {
        let reply = match err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
            Some(f) => f.to_reply(),
            None => {
                ErrorReply { code: tether_proto::ErrorCode::Internal, message: format!("{err:#}") }
            }
        };
        let _ = self.send(&Message::Error(reply)).await;
    }
}

/// Serves one subsystem channel to its end.
pub async fn serve(shared: Arc<Shared>, caller: Caller, input: InputReceiver, out: Output) {
    let mut client = Client { input, decoder: FrameDecoder::new(), out };
    if let Err(e) = conversation(&shared, &caller, &mut client).await {
        tracing::debug!("subsystem: {e:#}");
        client.fail(&e).await;
    }
    finish(&client.out, 0).await;
}

async fn conversation(shared: &Arc<Shared>, caller: &Caller, client: &mut Client) -> Result<()> {
    let reply = match client.read().await? {
        Some(Message::Hello(h)) => tether_proto::answer_hello(&h, crate::SOFTWARE, None),
        _ => return Err(Failure::invalid("expected hello").into()),
    };
    match reply {
        Ok(reply) => client.send(&Message::HelloReply(reply)).await?,
        Err(refusal) => return Err(Failure::from(refusal).into()),
    }
    match client.read().await? {
        Some(Message::Request(req)) => {
            let reply = daemon_request(shared, caller, req).await?;
            client.send(&Message::Reply(reply)).await
        }
        Some(Message::Route(route)) => routed(shared, caller, &route.session, client).await,
        Some(_) => Err(Failure::invalid("expected a request or a route").into()),
        None => Ok(()),
    }
}

/// Requests the daemon answers itself.
async fn daemon_request(shared: &Arc<Shared>, caller: &Caller, req: Request) -> Result<Reply> {
    // Every request below is checked by the backend, where every path's
    // rights are checked.
    let backend = shared.backend_for(caller);
    let event = match &req {
        Request::List | Request::Lookup { .. } | Request::FinalScreen { .. } => None,
        Request::Health { .. } | Request::Authorize { .. } => None,
        Request::Create(c) => Some((Event::SessionCreate, c.name.to_string())),
        Request::Remove { name } => Some((Event::Rm, name.to_string())),
        _ => return Err(Failure::invalid("route to a session before this request").into()),
    };
    let reply = tokio::task::spawn_blocking(move || -> Result<Reply> {
        Ok(match req {
            Request::List => Reply::List { sessions: backend.list()? },
            Request::Lookup { name } => Reply::Info {
                session: backend.lookup(&name)?.ok_or_else(|| Failure::no_such_session(&name))?,
            },
            Request::Create(c) => {
                backend.create(&c)?;
                let session =
                    backend.lookup(&c.name)?.ok_or_else(|| Failure::no_such_session(&c.name))?;
                Reply::Info { session }
            }
            Request::Remove { name } => {
                backend.remove(&name)?;
                Reply::Done
            }
            Request::FinalScreen { name } => {
                Reply::FinalScreen { screen: backend.final_screen(&name)? }
            }
            Request::Health { probe } => Reply::Health { health: backend.health(probe.as_ref())? },
            Request::Authorize { right, session } => {
                let op = Op::from_key(&right)
                    .ok_or_else(|| Failure::invalid(format!("no such right: {right}")))?;
                backend.require(op, session.as_ref())?;
                Reply::Done
            }
            _ => return Err(Failure::invalid("not a daemon request").into()),
        })
    })
    .await??;
    if let Some((event, session)) = event {
        super::audit(shared, &caller.audit(event, Some(&session)));
    }
    Ok(reply)
}

/// The right a keeper-level message needs.
fn op_of(msg: &Message) -> Option<Op> {
    Some(match msg {
        Message::Attach(a) if a.mode == AttachMode::ReadOnly => Op::Watch,
        Message::Attach(_) => Op::Attach,
        Message::Request(Request::Info | Request::List | Request::Who) => Op::Who,
        Message::Request(Request::Tail { .. }) => Op::Tail,
        Message::Request(Request::Wait) => Op::Wait,
        Message::Request(Request::Kill { .. }) => Op::Kill,
        Message::Request(Request::Snapshot(_) | Request::Freeze | Request::Thaw) => Op::Forensics,
        _ => return None,
    })
}

/// A conversation with one keeper, checked and passed through.
async fn routed(
    shared: &Arc<Shared>,
    caller: &Caller,
    name: &SessionName,
    client: &mut Client,
) -> Result<()> {
    // Connected for the least right (every role may ask who is there);
    // the first message's own right is checked by the same backend below.
    let backend = shared.backend_for(caller);
    let keeper = {
        let (backend, name) = (backend.clone(), name.clone());
        tokio::task::spawn_blocking(move || backend.connect(&name, Op::Who)).await??
    };
    client.send(&Message::HelloReply(keeper.hello.clone())).await?;
    let Some(mut first) = client.read().await? else { return Ok(()) };
    let op = op_of(&first).ok_or_else(|| Failure::invalid("expected an attach or a request"))?;
    backend.require(op, Some(name))?;
    // If the client goes away, a conversation that only waits or watches
    // (an attachment, `wait`, `tail -f`) is cut at once; one that changes
    // something (kill, snapshot) runs to its answer, which is audited.
    if !matches!(op, Op::Kill | Op::Forensics) {
        client.out.cancel().watch(keeper.reader.stream());
    }
    let (mut from_keeper, mut to_keeper) = keeper.into_async()?;
    let attach_mode = match &mut first {
        Message::Attach(a) => {
            a.identity = caller.identity.clone();
            Some(a.mode)
        }
        Message::Request(Request::Snapshot(s)) => {
            // The caller cannot choose who the manifest says asked, nor
            // where on this host the bundle goes.
            s.requested_by = shared.backend_for(caller).requester();
            s.out = None;
            None
        }
        _ => None,
    };
    to_keeper.write_message(&first).await?;
    // The keeper's answer decides what happened: an attachment refused
    // (consent denied, the job just ended) or a kill refused (protected)
    // is not audited as done.
    let Some(answer) = from_keeper.read_message().await? else { return Ok(()) };
    client.send(&answer).await?;
    let done = matches!(answer, Message::AttachReply(_) | Message::Reply(_));
    match (done, attach_mode, op) {
        (false, ..) => {}
        (true, Some(AttachMode::ReadOnly), _) => {
            super::audit(shared, &caller.audit(Event::Watch, Some(name.as_str())))
        }
        (true, Some(_), _) => {
            super::audit(shared, &caller.audit(Event::Attach, Some(name.as_str())))
        }
        (true, None, Op::Kill) => {
            super::audit(shared, &caller.audit(Event::Kill, Some(name.as_str())))
        }
        _ => {}
    }
    if !done {
        return Ok(());
    }
    let mut client_done = false;
    loop {
        tokio::select! {
            bytes = from_keeper.read_raw() => {
                let bytes = bytes?;
                if bytes.is_empty() {
                    break;
                }
                if client.out.data_bytes(bytes).await.is_err() {
                    break;
                }
            }
            msg = client.read(), if !client_done => match msg? {
                // After the first request only stream messages may follow.
                Some(m @ (Message::Input(_) | Message::Resize(_) | Message::Detach)) if attach_mode.is_some() => {
                    to_keeper.write_message(&m).await?;
                }
                Some(_) => return Err(Failure::invalid("unexpected message on a routed channel").into()),
                // The client is done sending: an attachment detaches; a
                // request still gets its answer.
                None if attach_mode.is_some() => {
                    let _ = to_keeper.write_message(&Message::Detach).await;
                    break;
                }
                None => client_done = true,
            }
        }
    }
    match attach_mode {
        Some(AttachMode::ReadOnly) => {
            super::audit(shared, &caller.audit(Event::Unwatch, Some(name.as_str())))
        }
        Some(_) => super::audit(shared, &caller.audit(Event::Detach, Some(name.as_str()))),
        None => {}
    }
    Ok(())
}

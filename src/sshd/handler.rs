//! One SSH connection: authentication, channels, and the requests on them.

use super::auth;
use super::exec::Exec;
use super::{Caller, Input, Live, Output, Pty, Shared, finish, say, window_size, writer_of};
use crate::audit::{Entry, Event};
use crate::keys::fingerprint;
use bytes::Bytes;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// Input chunks queued for a channel's program. When it is full, the
/// connection stops reading from the client (SSH's own backpressure).
const INPUT_QUEUE: usize = 64;

/// A channel before and while a program runs on it.
#[derive(Default)]
struct Slot {
    /// Taken by the program when it starts.
    out: Option<Output>,
    pty: Option<Pty>,
    /// Set while a program runs; dropping it tells the program the client left.
    input: Option<mpsc::Sender<Input>>,
}

/// The per-connection handler russh calls.
pub struct Connection {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    /// The key logged in and its rights, also seen by SIGHUP.
    live: Arc<Live>,
    channels: HashMap<ChannelId, Slot>,
    /// Set once a key is accepted; the auth timeout watches it.
    authenticated: Arc<AtomicBool>,
    /// Keys refused on this connection.
    failures: usize,
}

impl Connection {
    /// A handler for the connection `live`.
    pub fn new(shared: Arc<Shared>, live: Arc<Live>, authenticated: Arc<AtomicBool>) -> Self {
        Connection {
            shared,
            peer: live.peer,
            live,
            channels: HashMap::new(),
            authenticated,
            failures: 0,
        }
    }

    fn address(&self) -> Option<String> {
        self.peer.map(|p| p.to_string())
    }

    /// The key's entry if it may log in from this peer; logs and audits
    /// refusals.
    fn authorize(&mut self, key: &russh::keys::PublicKey) -> Option<auth::AuthorizedKey> {
        let (path, file) = self.shared.authorized_keys();
        match auth::grant(&file, key, self.peer.map(|p| p.ip()), &path) {
            Ok(entry) => Some(entry.clone()),
            Err(why) => {
                self.failures += 1;
                tracing::warn!(
                    fingerprint = %fingerprint(key),
                    address = ?self.address(),
                    attempt = self.failures,
                    "authentication refused: {why}"
                );
                let entry = Entry {
                    fingerprint: Some(fingerprint(key)),
                    comment: Some(key.comment().as_str_lossy().to_owned()),
                    address: self.address(),
                    detail: Some(why),
                    ..Entry::new(Event::AuthFailure)
                };
                super::audit(&self.shared, &entry);
                None
            }
        }
    }

    /// The caller as authorized_keys grants it now, checked again for
    /// every new channel: a key no longer granted closes the connection
    /// (`None`); a key whose line changed gets its new role and globs.
    fn caller(&mut self) -> Option<Caller> {
        let (key, before) = self.live.login()?;
        let (path, file) = self.shared.authorized_keys();
        match auth::grant(&file, &key, self.peer.map(|p| p.ip()), &path) {
            Ok(entry) => {
                let now = Caller::new(&key, entry, self.peer);
                if now.role != before.role || now.visibility != before.visibility {
                    tracing::info!(
                        fingerprint = %now.fingerprint,
                        "rights changed in {}: role {} (was {})",
                        path.display(),
                        now.role.name(),
                        before.role.name()
                    );
                    self.live.note_caller(now.clone());
                }
                Some(now)
            }
            Err(why) => {
                self.shared.close(&self.live, &before, &why);
                None
            }
        }
    }

    fn start(&mut self, id: ChannelId) -> Option<(Output, Option<Pty>, mpsc::Receiver<Input>)> {
        let slot = self.channels.get_mut(&id)?;
        let out = slot.out.take()?;
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        slot.input = Some(tx);
        Some((out, slot.pty.clone(), rx))
    }
}

impl russh::server::Handler for Connection {
    type Error = anyhow::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.authorize(offer.public_key) {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(entry) = self.authorize(key.public_key) else { return Ok(Auth::reject()) };
        let caller = Caller::new(key.public_key, &entry, self.peer);
        tracing::info!(fingerprint = %caller.fingerprint, comment = %caller.comment, role = ?caller.role, address = ?caller.address, "authenticated");
        super::audit(&self.shared, &caller.audit(Event::AuthSuccess, None));
        self.live.set_login(key.public_key.clone(), caller);
        self.authenticated.store(true, Ordering::SeqCst);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.caller().is_none() {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        }
        let max = self.shared.config().max_channels;
        if self.channels.len() >= max {
            tracing::warn!(address = ?self.address(), "refusing a channel ({max} open at most)");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let id = channel.id();
        self.channels.insert(id, Slot { out: Some(writer_of(channel)), ..Slot::default() });
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let term =
            if term.is_empty() || term.len() > 64 || term.contains(|c: char| !c.is_ascii_graphic())
            {
                "xterm-256color".to_owned()
            } else {
                term.to_owned()
            };
        match self.channels.get_mut(&channel) {
            Some(slot) => {
                slot.pty = Some(Pty { term, size: window_size(col_width, row_height) });
                session.channel_success(channel)?;
            }
            None => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let size = window_size(col_width, row_height);
        if let Some(slot) = self.channels.get_mut(&channel) {
            if let Some(pty) = &mut slot.pty {
                pty.size = size;
            }
            if let Some(tx) = &slot.input {
                // A resize is worth dropping rather than stalling the connection.
                let _ = tx.try_send(Input::Resize(size));
            }
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(caller), Some((out, pty, input))) = (self.caller(), self.start(channel)) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let command = String::from_utf8_lossy(data).into_owned();
        tracing::info!(fingerprint = %caller.fingerprint, command = %command.escape_debug(), "exec");
        let exec = Exec { shared: self.shared.clone(), caller, pty, input, out };
        tokio::spawn(exec.run(command));
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(caller), Some((out, pty, input))) = (self.caller(), self.start(channel)) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let Some(pty) = pty else {
                let text = "tether: the session picker needs a terminal: use `ssh -t`, or give a command such as `ls`\n";
                say(&out, text, true).await;
                finish(&out, 2).await;
                return;
            };
            let code = super::picker::run(&shared, &caller, pty, input, &out).await;
            finish(&out, code).await;
        });
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != super::subsystem::NAME {
            session.channel_failure(channel)?;
            return Ok(());
        }
        let (Some(caller), Some((out, _pty, input))) = (self.caller(), self.start(channel)) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let shared = self.shared.clone();
        tokio::spawn(async move { super::subsystem::serve(shared, caller, input, out).await });
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let tx = self.channels.get(&channel).and_then(|s| s.input.clone());
        if let Some(tx) = tx {
            let _ = tx.send(Input::Data(Bytes::copy_from_slice(data))).await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let tx = self.channels.get(&channel).and_then(|s| s.input.clone());
        if let Some(tx) = tx {
            let _ = tx.send(Input::Eof).await;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

//! One SSH connection: authentication, channels, and the requests on them.
//!
//! russh calls these methods one message at a time for the whole
//! connection, so none of them waits on a channel's program: input is
//! offered to a bounded per-channel queue ([`super::channel`]), and a
//! channel whose program falls too far behind is failed on its own. Every
//! request that wants a reply gets one: what tether does not do (X11,
//! signals, environment) is refused.

use super::auth;
use super::channel::{InputReceiver, InputSender, Line, Refused, input_queue};
use super::exec::Exec;
use super::throttle::Limits;
use super::{Caller, Input, Live, Output, Pty, Shared, finish, say, window_size};
use crate::audit::{Entry, Event};
use crate::keys::fingerprint;
use bytes::Bytes;
use russh::keys::Algorithm;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, Sig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tether_proto::ErrorCode;

/// A channel before and while a program runs on it. Dropping it hangs the
/// channel up (see [`Line`]).
struct Slot {
    /// Taken by the program when it starts.
    out: Option<Output>,
    pty: Option<Pty>,
    /// Set while a program runs.
    input: Option<InputSender>,
    line: Line,
}

impl Slot {
    /// Whether the channel still counts as open: a channel whose program
    /// ended was closed by us, and russh tells us nothing more about it.
    fn open(&self) -> bool {
        !self.line.ended()
    }
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

    /// The key's entry if it may log in from this peer with this signature
    /// algorithm; logs and audits refusals.
    fn authorize(
        &mut self,
        key: &russh::keys::PublicKey,
        algorithm: &Algorithm,
    ) -> Option<auth::AuthorizedKey> {
        let (path, file) = self.shared.authorized_keys();
        // Plain `ssh-rsa` signs with SHA-1; rsa-sha2-256/512 use the same
        // key (every OpenSSH since 7.2 does so unasked).
        let granted = if *algorithm == (Algorithm::Rsa { hash: None }) {
            Err("ssh-rsa signatures (SHA-1) are refused; the same key works with rsa-sha2-256 or rsa-sha2-512".to_owned())
        } else {
            auth::grant(&file, key, self.peer.map(|p| p.ip()), &path).cloned()
        };
        match granted {
            Ok(entry) => Some(entry),
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

    /// The channel's output, terminal and input, to start a program on it.
    fn start(&mut self, id: ChannelId) -> Option<(Output, Option<Pty>, InputReceiver)> {
        let slot = self.channels.get_mut(&id)?;
        let out = slot.out.take()?;
        let (tx, rx) = input_queue();
        slot.input = Some(tx);
        Some((out, slot.pty.clone(), rx))
    }

    /// Queues client input for the channel's program. A program that takes
    /// no input has dropped its queue: the bytes are discarded. One that
    /// has fallen [`super::channel::INPUT_LIMIT`] behind fails its channel,
    /// and only that one.
    fn offer(
        &mut self,
        channel: ChannelId,
        input: Input,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(tx) = self.channels.get(&channel).and_then(|s| s.input.as_ref()) else {
            return Ok(());
        };
        match tx.offer(input) {
            Ok(()) | Err(Refused::Closed) => Ok(()),
            Err(Refused::Full) => self.overflow(channel, session),
        }
    }

    /// Ends a channel whose program does not take its input as fast as it
    /// comes: says why on stderr, exit status 6, close. Dropping the slot
    /// hangs the program up.
    fn overflow(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        let Some(slot) = self.channels.remove(&channel) else { return Ok(()) };
        tracing::warn!(
            address = ?self.address(),
            "closing a channel: {} MiB of its input are waiting for a program that does not take them",
            super::channel::INPUT_LIMIT >> 20
        );
        let eol = if slot.pty.is_some() { "\r\n" } else { "\n" };
        let text = format!(
            "{eol}tether: closing this channel: more than {} MiB of input are waiting for a session that does not read them{eol}",
            super::channel::INPUT_LIMIT >> 20
        );
        drop(slot);
        session.extended_data(channel, 1, Bytes::from(text))?;
        session.exit_status_request(channel, ErrorCode::Unavailable.exit_code() as u32)?;
        session.eof(channel)?;
        session.close(channel)
    }

    fn limits(&self) -> Limits {
        let config = self.shared.config();
        Limits { burst: config.per_address_burst, rate: config.per_address_rate }
    }
}

impl russh::server::Handler for Connection {
    type Error = anyhow::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.authorize(offer.public_key, offer.algorithm) {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(entry) = self.authorize(key.public_key, key.algorithm) else {
            return Ok(Auth::reject());
        };
        let caller = Caller::new(key.public_key, &entry, self.peer);
        tracing::info!(fingerprint = %caller.fingerprint, comment = %caller.comment, role = ?caller.role, address = ?caller.address, "authenticated");
        super::audit(&self.shared, &caller.audit(Event::AuthSuccess, None));
        self.live.set_login(key.public_key.clone(), caller);
        self.authenticated.store(true, Ordering::SeqCst);
        if let Some(peer) = self.peer {
            self.shared.throttle.logged_in(peer.ip(), self.limits());
        }
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Channels whose programs ended were closed by us; russh does not
        // report the client's answering close, so they are dropped here.
        // (russh 0.65 itself keeps a small record of each such channel,
        // about 3.5 KB, until the connection ends.)
        self.channels.retain(|_, slot| slot.open());
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
        // Input arrives through the callbacks below; a read half nobody
        // drains would stall the whole connection, so it is dropped.
        let (read, write) = channel.split();
        drop(read);
        let (line, out) = Line::open(write);
        self.channels.insert(id, Slot { out: Some(out), pty: None, input: None, line });
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
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let size = window_size(col_width, row_height);
        let Some(slot) = self.channels.get_mut(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if let Some(pty) = &mut slot.pty {
            pty.size = size;
        }
        if let Some(tx) = &slot.input {
            // A resize is worth dropping (the next one carries the size)
            // rather than failing the channel.
            let _ = tx.offer(Input::Resize(size));
        }
        // Sent only if the client asked for a reply (OpenSSH does not).
        session.channel_success(channel)?;
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

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // tether forwards nothing.
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        _signal: Sig,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Not delivered: a job is reached through its keeper (`kill`), and
        // an attached client types Ctrl-C to its terminal.
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
                drop(input);
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
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.offer(channel, Input::Data(Bytes::copy_from_slice(data)), session)?;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.offer(channel, Input::Eof, session)?;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Hangs up: the program's output fails, its keeper connections are cut.
        self.channels.remove(&channel);
        Ok(())
    }
}

//! `ssh host COMMAND`: the same commands, output and exit codes as the
//! local CLI.
//!
//! OpenSSH joins the remote argv with spaces, so the command line is split
//! like a shell would (quotes survive) and parsed by the CLI's own parser.
//! Interactive commands (`attach`, `watch`, `new` without `-d`) need a PTY
//! and go through [`super::bridge`]; the others run the CLI's code on a
//! blocking thread, their output streamed to the channel. Those read no
//! input (what the client sends is discarded), and the ones that wait for
//! a job (`wait`, `tail -f`) are cut off the moment the channel goes away.

use super::channel::InputReceiver;
use super::{Caller, Output, Pty, Shared, bridge, finish, say};
use crate::Failure;
use crate::audit::Event;
use crate::backend::{Backend, create_request};
use crate::cli::{Cli, Command};
use crate::client::access::Op;
use crate::commands::{Ctx, right_needed};
use anyhow::Result;
use bytes::Bytes;
use clap::Parser;
use std::io::Write;
use std::sync::Arc;
use tether_proto::{AttachMode, CreateRequest, SessionName, WindowSize};
use tokio::sync::mpsc;

/// Output chunks in flight from a blocking command to the channel.
const OUTPUT_QUEUE: usize = 64;

/// One `exec` request, from parsing to exit status.
pub struct Exec {
    /// Shared daemon state.
    pub shared: Arc<Shared>,
    /// The authenticated key.
    pub caller: Caller,
    /// The PTY, if the client asked for one.
    pub pty: Option<Pty>,
    /// The channel's input.
    pub input: InputReceiver,
    /// The channel's output.
    pub out: Output,
}

impl Exec {
    /// Runs `command` and ends the channel with its exit status.
    pub async fn run(mut self, command: String) {
        let code = match self.dispatch(&command).await {
            Ok(code) => code,
            Err(e) => {
                let text = format!("tether: {}\n", crate::error::shown(&e));
                say(&self.out, &self.crlf(&text), true).await;
                crate::error::exit_code(&e)
            }
        };
        finish(&self.out, code).await;
    }

    /// With a PTY the client's terminal is raw: lines need `\r\n`.
    fn crlf(&self, text: &str) -> String {
        if self.pty.is_some() { text.replace('\n', "\r\n") } else { text.to_owned() }
    }

    async fn dispatch(&mut self, command: &str) -> Result<i32> {
        let words = shell_words::split(command)
            .map_err(|e| Failure::invalid(format!("cannot parse the command: {e}")))?;
        let cli = match Cli::try_parse_from(std::iter::once("tether".to_owned()).chain(words)) {
            Ok(cli) => cli,
            Err(e) => {
                let text = e.render().to_string();
                let usage = e.use_stderr();
                say(&self.out, &self.crlf(&text), usage).await;
                return Ok(if usage { 2 } else { 0 });
            }
        };
        if cli.host.is_some() || cli.identity.is_some() {
            return Err(Failure::invalid("--host and --identity are not available over ssh").into());
        }
        // Refused before anything else (even before "needs a terminal"),
        // by the same check every path makes.
        let (op, session) = right_needed(&cli.command);
        self.shared.backend_for(&self.caller).require(op, session.as_ref())?;
        match cli.command {
            Command::Attach { name, command } => self.attach(&name, command).await,
            Command::Watch { name } => self.bridge(&name, AttachMode::ReadOnly).await,
            Command::New(args) => {
                if !args.detach {
                    self.need_pty("new (without -d)")?;
                }
                let req = CreateRequest {
                    cwd: args.cwd.as_ref().map(|p| p.display().to_string()),
                    env: args.env.clone(),
                    protect: args.protect,
                    no_record: args.no_record,
                    record_input: args.record_input,
                    consent: args.consent,
                    ..self.create_request(&args.name, args.command.clone())
                };
                self.create(req).await?;
                if args.detach {
                    Ok(0)
                } else {
                    self.bridge(&args.name, AttachMode::Interactive).await
                }
            }
            Command::Daemon { .. } | Command::Keeper => {
                Err(Failure::invalid("that command only runs locally").into())
            }
            Command::Replay { at: None, .. } => Err(Failure::invalid(
                "the interactive player runs where the recording is: use `replay --at TIME` over ssh, or `export` and play it locally",
            )
            .into()),
            // Files named on the command line would be the daemon's, not
            // the caller's: over ssh, recordings are named by session.
            Command::Export { output: Some(_), .. } => {
                Err(Failure::invalid("over ssh, export writes to stdout: drop -o and redirect").into())
            }
            Command::Snapshot { out: Some(_), .. } => {
                Err(Failure::invalid("over ssh the bundle stays in the host's evidence directory: drop --out").into())
            }
            Command::Verify { key: Some(_), .. } => {
                Err(Failure::invalid("over ssh, verify uses the host's key; copy the recording to check it against another key").into())
            }
            other => self.run_blocking(other).await,
        }
    }

    fn need_pty(&self, what: &str) -> Result<(), Failure> {
        if self.pty.is_some() {
            return Ok(());
        }
        Err(Failure::invalid(format!(
            "{what} needs a terminal: use `ssh -t` (or `tether new -d` to start a session without one)"
        )))
    }

    fn size(&self) -> WindowSize {
        self.pty.as_ref().map_or(WindowSize::DEFAULT, |p| p.size)
    }

    fn create_request(&self, name: &SessionName, command: Vec<String>) -> CreateRequest {
        CreateRequest {
            term: self.pty.as_ref().map(|p| p.term.clone()),
            ..create_request(name, command, self.size())
        }
    }

    async fn create(&self, req: CreateRequest) -> Result<()> {
        let backend = self.shared.backend_for(&self.caller);
        let name = req.name.clone();
        tokio::task::spawn_blocking(move || backend.create(&req)).await??;
        super::audit(&self.shared, &self.caller.audit(Event::SessionCreate, Some(name.as_str())));
        Ok(())
    }

    async fn attach(&mut self, name: &SessionName, command: Vec<String>) -> Result<i32> {
        self.need_pty("attach")?;
        let backend = self.shared.backend_for(&self.caller);
        let lookup = {
            let name = name.clone();
            tokio::task::spawn_blocking(move || backend.lookup(&name)).await??
        };
        if lookup.is_none() {
            match self.create(self.create_request(name, command)).await {
                Err(e) if crate::error::exit_code(&e) == 4 => {}
                other => other?,
            }
        }
        self.bridge(name, AttachMode::Interactive).await
    }

    /// Attaches the channel; an ended session shows its final screen.
    async fn bridge(&mut self, name: &SessionName, mode: AttachMode) -> Result<i32> {
        self.need_pty(if mode == AttachMode::ReadOnly { "watch" } else { "attach" })?;
        let terminal =
            bridge::Terminal { size: self.size(), term: self.pty.as_ref().map(|p| p.term.clone()) };
        bridge::attach_or_show(
            &self.shared,
            &self.caller,
            name,
            mode,
            terminal,
            &mut self.input,
            &self.out,
        )
        .await
    }

    /// Runs a non-interactive command with the CLI's code.
    async fn run_blocking(&mut self, command: Command) -> Result<i32> {
        // No command here reads its input: what the client sends is
        // discarded instead of waiting for a reader that never comes.
        self.input.close();
        // Commands that wait for a job are cut off when the client goes;
        // the others (kill, rm, …) finish, so that what they did is audited.
        let waits = matches!(command, Command::Wait { .. } | Command::Tail { follow: true, .. });
        let (op, session) = right_needed(&command);
        let session = session.map(|s| s.to_string());
        let own_failure = matches!(command, Command::Wait { .. }).then_some(125);
        let event = match op {
            Op::Kill => Some(Event::Kill),
            Op::Rm => Some(Event::Rm),
            _ => None,
        };
        let (tx, mut rx) = mpsc::channel::<(bool, Bytes)>(OUTPUT_QUEUE);
        let crlf = self.pty.is_some();
        let backend = if waits {
            self.shared.channel_backend(&self.caller, &self.out)
        } else {
            self.shared.backend_for(&self.caller)
        };
        let mut ctx = Ctx {
            backend: Box::new(backend),
            config: self.shared.config(),
            out: Box::new(ChannelSink { tx: tx.clone(), stderr: false, crlf }),
            err: Box::new(ChannelSink { tx, stderr: true, crlf }),
        };
        let job = tokio::task::spawn_blocking(move || ctx.execute(command));
        while let Some((stderr, bytes)) = rx.recv().await {
            let sent = if stderr {
                self.out.extended_data_bytes(1, bytes).await
            } else {
                self.out.data_bytes(bytes).await
            };
            if sent.is_err() {
                break;
            }
        }
        let result = job.await?;
        if let (Some(event), Ok(_)) = (event, &result) {
            super::audit(&self.shared, &self.caller.audit(event, session.as_deref()));
        }
        match (result, own_failure) {
            (Err(e), Some(code))
                if crate::error::exit_code(&e) != tether_proto::ErrorCode::Refused.exit_code() =>
            {
                let text = format!("tether: {}\n", crate::error::shown(&e));
                say(&self.out, &self.crlf(&text), true).await;
                Ok(code)
            }
            (result, _) => result,
        }
    }
}

/// A `Write` that hands its bytes to the async side, waiting when the
/// channel is slow (a blocking thread may wait).
struct ChannelSink {
    tx: mpsc::Sender<(bool, Bytes)>,
    stderr: bool,
    crlf: bool,
}

impl Write for ChannelSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bytes = if self.crlf {
            Bytes::from(String::from_utf8_lossy(buf).replace('\n', "\r\n").into_bytes())
        } else {
            Bytes::copy_from_slice(buf)
        };
        self.tx
            .blocking_send((self.stderr, bytes))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

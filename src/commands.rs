//! What each subcommand does, written once against [`Backend`]: the same
//! code serves the local CLI, `tether --host` and (for non-interactive
//! commands) `ssh host COMMAND` on the daemon.
//!
//! Each function returns the process exit code on success; failures are
//! `anyhow` errors whose [`crate::Failure`] decides the code.

use crate::Failure;
use crate::backend::{Backend, Local, create_request};
use crate::cli::{Cli, Command, NewArgs};
use crate::client::attach::{self, AttachOptions, Outcome};
use crate::client::{KeeperClient, terminal};
use crate::config::Config;
use crate::keeper::launch::keeper_main;
use crate::paths::Paths;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use tether_proto::{
    AttachMode, CreateRequest, ErrorCode, JobExit, Presence, Reply, Request, SessionInfo,
    SessionName, SessionState, WindowSize,
};

/// Everything a command needs.
pub struct Ctx {
    /// Where the sessions are.
    pub backend: Box<dyn Backend>,
    /// Settings (the detach key, on the client side).
    pub config: Config,
    /// Where results go.
    pub out: Box<dyn Write + Send>,
    /// Where warnings go.
    pub err: Box<dyn Write + Send>,
}

/// Runs the parsed command line of the local `tether` process.
///
/// # Errors
///
/// Whatever the command reports; see [`crate::error::exit_code`].
pub fn run(cli: Cli) -> Result<i32> {
    let paths = Paths::from_env()?;
    let config = Config::load(&paths.config_file())?;
    match cli.command {
        Command::Keeper => return Ok(keeper_main()),
        Command::Daemon { listen, foreground } => {
            return crate::daemon::run(paths, config, listen, foreground);
        }
        _ => {}
    }
    let backend: Box<dyn Backend> = match &cli.host {
        Some(host) => {
            let opts = crate::remote::RemoteOptions {
                identity: cli.identity.clone(),
                trust_new_host: cli.trust_new_host,
            };
            Box::new(crate::remote::Remote::connect(host, &opts)?)
        }
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            Box::new(Local::new(paths, config.clone(), cwd))
        }
    };
    let mut ctx =
        Ctx { backend, config, out: Box::new(std::io::stdout()), err: Box::new(std::io::stderr()) };
    ctx.execute(cli.command)
}

impl Ctx {
    /// Runs one command.
    ///
    /// # Errors
    ///
    /// Whatever the command reports.
    pub fn execute(&mut self, command: Command) -> Result<i32> {
        let code = match command {
            Command::Attach { name, command } => self.attach(&name, command),
            Command::New(args) => self.new_session(args),
            Command::Watch { name } => self.watch(&name),
            Command::Ls { json } => self.ls(json),
            Command::Who { name, json } => self.who(&name, json),
            Command::Kill { name, force } => self.kill(&name, force),
            Command::Rm { name } => self.rm(&name),
            Command::Wait { name } => self.wait(&name),
            Command::Tail { name, lines, follow } => self.tail(&name, lines, follow),
            Command::Daemon { .. } | Command::Keeper => {
                Err(Failure::invalid("that command only runs locally").into())
            }
        };
        let _ = self.out.flush();
        code
    }

    fn attach(&mut self, name: &SessionName, command: Vec<String>) -> Result<i32> {
        refuse_nested(name)?;
        require_terminal("attach")?;
        match self.backend.lookup(name)? {
            None => {
                let req = create_request(name, command, terminal::size());
                match self.backend.create(&req) {
                    // Someone else created it first: attach to theirs.
                    Err(e) if crate::error::exit_code(&e) == ErrorCode::Conflict.exit_code() => {}
                    other => other?,
                }
            }
            Some(info) if !command.is_empty() && info.state == SessionState::Running => {
                writeln!(
                    self.err,
                    "tether: session {name} exists; attaching without running {command:?}"
                )?;
            }
            Some(_) => {}
        }
        self.attach_existing(name, AttachMode::Interactive)
    }

    fn watch(&mut self, name: &SessionName) -> Result<i32> {
        require_terminal("watch")?;
        self.attach_existing(name, AttachMode::ReadOnly)
    }

    fn new_session(&mut self, args: NewArgs) -> Result<i32> {
        if !args.detach {
            refuse_nested(&args.name)?;
            require_terminal("new (without -d)")?;
        }
        let size =
            if terminal::stdin_is_terminal() { terminal::size() } else { WindowSize::DEFAULT };
        let cwd = match &args.cwd {
            Some(dir) => Some(std::path::absolute(dir)?.display().to_string()),
            None => None,
        };
        let req = CreateRequest {
            cwd,
            env: args.env.clone(),
            protect: args.protect,
            ..create_request(&args.name, args.command.clone(), size)
        };
        self.backend.create(&req)?;
        if args.detach {
            return Ok(0);
        }
        self.attach_existing(&args.name, AttachMode::Interactive)
    }

    fn attach_existing(&mut self, name: &SessionName, mode: AttachMode) -> Result<i32> {
        let client = match self.backend.connect(name) {
            Ok(c) => c,
            Err(e) => return self.not_running(name, e),
        };
        let opts = AttachOptions { name: name.clone(), mode, detach_key: self.config.detach_key.0 };
        match attach::run(client, &opts) {
            Ok(Outcome::Detached) => {
                write!(self.out, "\r\n[detached from {name}]\r\n")?;
                Ok(0)
            }
            Ok(Outcome::Ended(exit)) => {
                write!(self.out, "\r\n[session {name} ended: {}]\r\n", exit.describe())?;
                Ok(exit.status())
            }
            Ok(Outcome::Lost) => Err(Failure::unavailable(format!(
                "lost the connection to the keeper of session {name}"
            ))
            .into()),
            Err(e) => match self.backend.lookup(name)? {
                Some(info) if info.state == SessionState::Ended => self.show_ended(&info),
                _ => Err(e),
            },
        }
    }

    /// The keeper cannot be reached: explain from the record.
    fn not_running(&mut self, name: &SessionName, err: anyhow::Error) -> Result<i32> {
        match self.backend.lookup(name)? {
            None => Err(Failure::no_such_session(name).into()),
            Some(info) if info.state == SessionState::Ended => self.show_ended(&info),
            Some(info) if info.state == SessionState::Lost => Err(lost(name).into()),
            Some(_) => Err(err),
        }
    }

    /// Attaching to an ended session shows its final screen and how it ended.
    fn show_ended(&mut self, info: &SessionInfo) -> Result<i32> {
        let exit = exit_of(info);
        if let Some(screen) = self.backend.final_screen(&info.name)? {
            self.out.write_all(screen.redraw.as_bytes())?;
            // The final screen may have left modes on; put them back.
            let mut tracker = crate::vtscan::ModeTracker::new();
            tracker.feed(screen.redraw.as_bytes());
            self.out.write_all(tracker.modes().reset_sequence().as_bytes())?;
        }
        write!(
            self.out,
            "\r\n[session {} ended: {} at {}]\r\n",
            info.name,
            exit.describe(),
            info.ended.as_deref().unwrap_or("an unknown time")
        )?;
        Ok(exit.status())
    }

    fn ls(&mut self, json: bool) -> Result<i32> {
        let sessions = self.backend.list()?;
        write_sessions(&mut self.out, &sessions, json)?;
        Ok(0)
    }

    fn who(&mut self, name: &SessionName, json: bool) -> Result<i32> {
        let attachments = match self.running(name)?.request(Request::Who)? {
            Reply::Who { attachments } => attachments,
            other => return Err(unexpected(&other)),
        };
        if json {
            serde_json::to_writer_pretty(&mut self.out, &attachments)?;
            writeln!(self.out)?;
        } else if attachments.is_empty() {
            writeln!(self.out, "nobody is attached to {name}")?;
        } else {
            for a in &attachments {
                writeln!(self.out, "{}", describe_presence(a))?;
            }
        }
        Ok(0)
    }

    /// A connection to a running session's keeper, with a clear error for
    /// ended, lost and unknown sessions.
    fn running(&self, name: &SessionName) -> Result<KeeperClient> {
        let info = self.require(name)?;
        match info.state {
            SessionState::Running => self.backend.connect(name),
            SessionState::Ended => Err(Failure::new(
                ErrorCode::NoSuchSession,
                format!("session {name} has ended ({})", exit_of(&info).describe()),
            )
            .into()),
            SessionState::Lost => Err(lost(name).into()),
        }
    }

    fn require(&self, name: &SessionName) -> Result<SessionInfo> {
        self.backend.lookup(name)?.ok_or_else(|| Failure::no_such_session(name).into())
    }

    fn kill(&mut self, name: &SessionName, force: bool) -> Result<i32> {
        match self.running(name)?.request(Request::Kill { force })? {
            Reply::Exited { .. } => Ok(0),
            other => Err(unexpected(&other)),
        }
    }

    fn rm(&mut self, name: &SessionName) -> Result<i32> {
        self.backend.remove(name)?;
        Ok(0)
    }

    fn wait(&mut self, name: &SessionName) -> Result<i32> {
        let info = self.require(name)?;
        if info.state != SessionState::Running {
            return status_of_finished(&info);
        }
        let reply = self.backend.connect(name).and_then(|mut c| c.request(Request::Wait));
        match reply {
            Ok(Reply::Exited { exit }) => Ok(exit.status()),
            Ok(other) => Err(unexpected(&other)),
            // The keeper went away: the record says whether it recorded an end.
            Err(e) => match self.backend.lookup(name)? {
                Some(info) if info.state != SessionState::Running => status_of_finished(&info),
                _ => Err(e),
            },
        }
    }

    fn tail(&mut self, name: &SessionName, lines: Option<u32>, follow: bool) -> Result<i32> {
        let info = self.require(name)?;
        if info.state != SessionState::Running {
            let text = self.backend.final_screen(name)?.map(|s| s.text).unwrap_or_default();
            let skip = lines.map_or(0, |n| text.len().saturating_sub(n as usize));
            self.print_lines(&text[skip..])?;
            return Ok(0);
        }
        let mut client = self.backend.connect(name)?;
        let mut reply = Some(client.request(Request::Tail { lines, follow })?);
        while let Some(r) = reply {
            match r {
                Reply::Text { lines } => self.print_lines(&lines)?,
                Reply::Exited { .. } => break,
                other => return Err(unexpected(&other)),
            }
            if !follow {
                break;
            }
            reply = client.next_reply()?;
        }
        Ok(0)
    }

    fn print_lines(&mut self, lines: &[String]) -> Result<()> {
        for line in lines {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush().context("writing the output")
    }
}

/// `ls` output, as a table or JSON.
///
/// # Errors
///
/// Writing fails.
pub fn write_sessions(out: &mut dyn Write, sessions: &[SessionInfo], json: bool) -> Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, sessions)?;
        writeln!(out)?;
        return Ok(());
    }
    if sessions.is_empty() {
        writeln!(out, "no sessions")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<18} {:>8} {:>8} {:>6} {:>9}  COMMAND",
        "NAME", "STATE", "PID", "CLIENTS", "AGE", "SIZE"
    )?;
    for s in sessions {
        writeln!(
            out,
            "{:<20} {:<18} {:>8} {:>8} {:>6} {:>9}  {}",
            s.name,
            state_label(s),
            s.pid.map_or("-".into(), |p| p.to_string()),
            format!("{}/{}", s.clients, s.watchers),
            s.started.as_deref().map_or("-".into(), crate::clock::age),
            format!("{}x{}", s.cols, s.rows),
            s.command.join(" ")
        )?;
    }
    Ok(())
}

fn status_of_finished(info: &SessionInfo) -> Result<i32> {
    match info.state {
        SessionState::Lost => Err(lost(&info.name).into()),
        _ => Ok(exit_of(info).status()),
    }
}

fn require_terminal(what: &str) -> Result<()> {
    if terminal::stdin_is_terminal() {
        return Ok(());
    }
    Err(Failure::invalid(format!(
        "`tether {what}` needs a terminal on stdin; use `tether new -d` to start a session without one"
    ))
    .into())
}

/// Attaching a session from inside itself would feed its output back into
/// itself forever.
fn refuse_nested(name: &SessionName) -> Result<()> {
    if std::env::var("TETHER_SESSION").is_ok_and(|s| s == name.as_str()) {
        return Err(Failure::conflict(format!(
            "refusing to attach to session {name} from inside itself"
        ))
        .into());
    }
    Ok(())
}

/// The error for a session whose keeper died.
pub fn lost(name: &SessionName) -> Failure {
    Failure::unavailable(format!(
        "session {name} was lost (its keeper died); `tether rm {name}` forgets it"
    ))
}

/// How an ended session's job ended, from its record.
pub fn exit_of(info: &SessionInfo) -> JobExit {
    JobExit {
        code: info.exit_code,
        signal: info.signal,
        ended: info.ended.clone().unwrap_or_default(),
    }
}

fn state_label(s: &SessionInfo) -> String {
    match s.state {
        SessionState::Ended => {
            format!("ended ({})", exit_of(s).describe().replace("exit code ", "exit "))
        }
        other => other.as_str().to_owned(),
    }
}

fn describe_presence(p: &Presence) -> String {
    let role = serde_json::to_value(p.role).ok().and_then(|v| v.as_str().map(str::to_owned));
    format!(
        "{:<8} {:<20} {:<9} {:<22} since {}",
        p.kind,
        p.identity,
        role.unwrap_or_default(),
        p.address.as_deref().unwrap_or("local"),
        p.since
    )
}

fn unexpected(reply: &Reply) -> anyhow::Error {
    Failure::unavailable(format!("unexpected reply: {reply:?}")).into()
}

//! What each subcommand does, locally (over unix sockets, no daemon).
//!
//! Each function returns the process exit code on success; failures are
//! `anyhow` errors whose [`crate::Failure`] decides the code.

use crate::Failure;
use crate::cli::{Cli, Command, NewArgs};
use crate::client::attach::{self, AttachOptions, Outcome};
use crate::client::{KeeperClient, terminal};
use crate::config::Config;
use crate::keeper::launch::{KeeperSpec, keeper_main, launch};
use crate::paths::Paths;
use crate::session::Registry;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use tether_proto::{
    AttachMode, ErrorCode, JobExit, Presence, Reply, Request, SessionInfo, SessionName,
    SessionState, WindowSize,
};

/// Everything a command needs.
struct Ctx {
    paths: Paths,
    config: Config,
    registry: Registry,
}

/// Runs the parsed command line.
///
/// # Errors
///
/// Whatever the command reports; see [`crate::error::exit_code`].
pub fn run(cli: Cli) -> Result<i32> {
    if let Command::Keeper = cli.command {
        return Ok(keeper_main());
    }
    let paths = Paths::from_env()?;
    let config = Config::load(&paths.config_file())?;
    let ctx = Ctx { registry: Registry::new(paths.clone()), paths, config };
    match cli.command {
        Command::Attach { name, command } => ctx.attach(&name, command),
        Command::New(args) => ctx.new_session(args),
        Command::Watch { name } => ctx.watch(&name),
        Command::Ls { json } => ctx.ls(json),
        Command::Who { name, json } => ctx.who(&name, json),
        Command::Kill { name, force } => ctx.kill(&name, force),
        Command::Rm { name } => ctx.rm(&name),
        Command::Wait { name } => ctx.wait(&name),
        Command::Tail { name, lines, follow } => ctx.tail(&name, lines, follow),
        Command::Keeper => Ok(keeper_main()),
    }
}

impl Ctx {
    fn attach(&self, name: &SessionName, command: Vec<String>) -> Result<i32> {
        refuse_nested(name)?;
        require_terminal("attach")?;
        match self.registry.get(name)? {
            None => match self.create(name, command, &NewArgs::defaults(name)) {
                // Someone else created it first: attach to theirs.
                Err(e) if crate::error::exit_code(&e) == ErrorCode::Conflict.exit_code() => {}
                other => other?,
            },
            Some(info) if !command.is_empty() && info.state == SessionState::Running => {
                eprintln!("tether: session {name} exists; attaching without running {command:?}");
            }
            Some(_) => {}
        }
        self.attach_existing(name, AttachMode::Interactive)
    }

    fn watch(&self, name: &SessionName) -> Result<i32> {
        require_terminal("watch")?;
        self.attach_existing(name, AttachMode::ReadOnly)
    }

    fn new_session(&self, args: NewArgs) -> Result<i32> {
        if !args.detach {
            refuse_nested(&args.name)?;
            require_terminal("new (without -d)")?;
        }
        self.create(&args.name, args.command.clone(), &args)?;
        if args.detach {
            return Ok(0);
        }
        self.attach_existing(&args.name, AttachMode::Interactive)
    }

    /// Starts a keeper for a new session.
    fn create(&self, name: &SessionName, command: Vec<String>, args: &NewArgs) -> Result<()> {
        self.paths.prepare()?;
        let command = if command.is_empty() { vec![default_shell()] } else { command };
        let cwd = match &args.cwd {
            Some(dir) => std::path::absolute(dir)?,
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        };
        if !cwd.is_dir() {
            return Err(Failure::invalid(format!("{} is not a directory", cwd.display())).into());
        }
        let term = std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| self.config.default_term.clone());
        let size =
            if terminal::stdin_is_terminal() { terminal::size() } else { WindowSize::DEFAULT };
        let spec = KeeperSpec {
            name: name.clone(),
            command,
            cwd,
            env: args.env.clone(),
            size,
            term,
            protected: args.protect,
            scrollback_cells: self.config.scrollback_cells,
        };
        launch(&spec).map(|_| ())
    }

    fn attach_existing(&self, name: &SessionName, mode: AttachMode) -> Result<i32> {
        let client = match KeeperClient::connect(&self.paths, name) {
            Ok(c) => c,
            Err(e) => return self.not_running(name, e),
        };
        let opts = AttachOptions { name: name.clone(), mode, detach_key: self.config.detach_key.0 };
        match attach::run(client, &opts) {
            Ok(Outcome::Detached) => {
                print!("\r\n[detached from {name}]\r\n");
                Ok(0)
            }
            Ok(Outcome::Ended(exit)) => {
                print!("\r\n[session {name} ended: {}]\r\n", exit.describe());
                Ok(exit.status())
            }
            Ok(Outcome::Lost) => Err(Failure::unavailable(format!(
                "lost the connection to the keeper of session {name}"
            ))
            .into()),
            Err(e) => match self.registry.get(name)? {
                Some(info) if info.state == SessionState::Ended => self.show_ended(&info),
                _ => Err(e),
            },
        }
    }

    /// The keeper cannot be reached: explain from the record.
    fn not_running(&self, name: &SessionName, err: anyhow::Error) -> Result<i32> {
        match self.registry.get(name)? {
            None => Err(Failure::no_such_session(name).into()),
            Some(info) if info.state == SessionState::Ended => self.show_ended(&info),
            Some(info) if info.state == SessionState::Lost => Err(lost(name).into()),
            Some(_) => Err(err),
        }
    }

    /// Attaching to an ended session shows its final screen and how it ended.
    fn show_ended(&self, info: &SessionInfo) -> Result<i32> {
        let exit = exit_of(info);
        let mut out = std::io::stdout().lock();
        if let Some(screen) = self.registry.final_screen(&info.name)? {
            out.write_all(screen.redraw.as_bytes())?;
            // The final screen may have left modes on; put them back.
            let mut tracker = crate::vtscan::ModeTracker::new();
            tracker.feed(screen.redraw.as_bytes());
            out.write_all(tracker.modes().reset_sequence().as_bytes())?;
        }
        write!(
            out,
            "\r\n[session {} ended: {} at {}]\r\n",
            info.name,
            exit.describe(),
            info.ended.as_deref().unwrap_or("an unknown time")
        )?;
        Ok(exit.status())
    }

    fn ls(&self, json: bool) -> Result<i32> {
        let sessions = self.registry.list()?;
        let mut out = std::io::stdout().lock();
        if json {
            serde_json::to_writer_pretty(&mut out, &sessions)?;
            writeln!(out)?;
            return Ok(0);
        }
        if sessions.is_empty() {
            writeln!(out, "no sessions")?;
            return Ok(0);
        }
        writeln!(
            out,
            "{:<20} {:<18} {:>8} {:>8} {:>6} {:>9}  COMMAND",
            "NAME", "STATE", "PID", "CLIENTS", "AGE", "SIZE"
        )?;
        for s in &sessions {
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
        Ok(0)
    }

    fn who(&self, name: &SessionName, json: bool) -> Result<i32> {
        let attachments = match self.running(name)?.request(Request::Who)? {
            Reply::Who { attachments } => attachments,
            other => return Err(unexpected(&other)),
        };
        let mut out = std::io::stdout().lock();
        if json {
            serde_json::to_writer_pretty(&mut out, &attachments)?;
            writeln!(out)?;
        } else if attachments.is_empty() {
            writeln!(out, "nobody is attached to {name}")?;
        } else {
            for a in &attachments {
                writeln!(out, "{}", describe_presence(a))?;
            }
        }
        Ok(0)
    }

    /// A connection to a running session's keeper, with a clear error for
    /// ended, lost and unknown sessions.
    fn running(&self, name: &SessionName) -> Result<KeeperClient> {
        let info = self.registry.require(name)?;
        match info.state {
            SessionState::Running => KeeperClient::connect(&self.paths, name),
            SessionState::Ended => Err(Failure::new(
                ErrorCode::NoSuchSession,
                format!("session {name} has ended ({})", exit_of(&info).describe()),
            )
            .into()),
            SessionState::Lost => Err(lost(name).into()),
        }
    }

    fn kill(&self, name: &SessionName, force: bool) -> Result<i32> {
        match self.running(name)?.request(Request::Kill { force })? {
            Reply::Exited { .. } => Ok(0),
            other => Err(unexpected(&other)),
        }
    }

    fn rm(&self, name: &SessionName) -> Result<i32> {
        self.registry.remove(name)?;
        let _ = crate::fsutil::remove_if_exists(&self.paths.log_file(name));
        Ok(0)
    }

    fn wait(&self, name: &SessionName) -> Result<i32> {
        let info = self.registry.require(name)?;
        if info.state != SessionState::Running {
            return self.status_of_finished(&info);
        }
        let reply =
            KeeperClient::connect(&self.paths, name).and_then(|mut c| c.request(Request::Wait));
        match reply {
            Ok(Reply::Exited { exit }) => Ok(exit.status()),
            Ok(other) => Err(unexpected(&other)),
            // The keeper went away: the record says whether it recorded an end.
            Err(e) => match self.registry.get(name)? {
                Some(info) if info.state != SessionState::Running => self.status_of_finished(&info),
                _ => Err(e),
            },
        }
    }

    fn status_of_finished(&self, info: &SessionInfo) -> Result<i32> {
        match info.state {
            SessionState::Lost => Err(lost(&info.name).into()),
            _ => Ok(exit_of(info).status()),
        }
    }

    fn tail(&self, name: &SessionName, lines: Option<u32>, follow: bool) -> Result<i32> {
        let info = self.registry.require(name)?;
        if info.state != SessionState::Running {
            let text = self.registry.final_screen(name)?.map(|s| s.text).unwrap_or_default();
            let skip = lines.map_or(0, |n| text.len().saturating_sub(n as usize));
            print_lines(&text[skip..])?;
            return Ok(0);
        }
        let mut client = KeeperClient::connect(&self.paths, name)?;
        let mut reply = Some(client.request(Request::Tail { lines, follow })?);
        while let Some(r) = reply {
            match r {
                Reply::Text { lines } => print_lines(&lines)?,
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
}

impl NewArgs {
    /// The options `attach` uses when it creates a session.
    fn defaults(name: &SessionName) -> NewArgs {
        NewArgs {
            name: name.clone(),
            detach: false,
            protect: false,
            cwd: None,
            env: Vec::new(),
            command: Vec::new(),
        }
    }
}

fn print_lines(lines: &[String]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush().context("writing to stdout")
}

fn default_shell() -> String {
    std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "/bin/sh".into())
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

fn lost(name: &SessionName) -> Failure {
    Failure::unavailable(format!(
        "session {name} was lost (its keeper died); `tether rm {name}` forgets it"
    ))
}

fn exit_of(info: &SessionInfo) -> JobExit {
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
    Failure::unavailable(format!("unexpected reply from the keeper: {reply:?}")).into()
}

//! What each subcommand does, written once against [`Backend`]: the same
//! code serves the local CLI, `tether --host` and (for non-interactive
//! commands) `ssh host COMMAND` on the daemon.
//!
//! Each function returns the process exit code on success; failures are
//! `anyhow` errors whose [`crate::Failure`] decides the code.

use crate::Failure;
use crate::backend::{Backend, create_request};
use crate::cli::{Command, NewArgs};
use crate::client::KeeperClient;
use crate::client::access::Op;
use crate::client::attach::{self, AttachOptions, Outcome};
use crate::client::attachment::{ended_screen, exit_of, explain_failure, lost, lost_message};
use crate::config::Config;
use crate::paths::Paths;
use crate::recording::{self, Recording, export, grep, replay, timespec, verify};
use crate::term::text::visible;
use crate::term::tty as terminal;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use tether_proto::{
    AttachMode, CreateRequest, ErrorCode, Presence, Reply, Request, SessionInfo, SessionName,
    SessionState, WindowSize,
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

impl Ctx {
    /// Runs one command.
    ///
    /// # Errors
    ///
    /// Whatever the command reports.
    pub fn execute(&mut self, command: Command) -> Result<i32> {
        let (op, session) = right_needed(&command);
        self.backend.require(op, session.as_ref())?;
        let code = match command {
            Command::Attach { name, command } => self.attach(&name, command),
            Command::New(args) => self.new_session(args),
            Command::Watch { name } => self.watch(&name),
            Command::Ls { json, archive: false } => self.ls(json),
            Command::Ls { archive: true, .. } => Err(Failure::invalid(
                "ls --archive reads the bucket from where you run it: run it locally",
            )
            .into()),
            Command::Who { name, json } => self.who(&name, json),
            Command::Kill { name, force } => self.kill(&name, force),
            Command::Rm { name } => self.rm(&name),
            Command::Wait { name } => self.wait(&name),
            Command::Tail { name, lines, follow } => self.tail(&name, lines, follow),
            Command::Replay { target, speed, idle_limit, at } => {
                self.replay(&target, speed, idle_limit, at.as_deref())
            }
            Command::Grep {
                pattern,
                targets,
                since,
                until,
                json,
                command,
                archive,
                archive_host,
            } => {
                let archive = archive.then_some(archive_host);
                let span = Span { since: since.as_deref(), until: until.as_deref() };
                self.grep(&pattern, &targets, span, command.as_deref(), json, archive)
            }
            Command::Export { target, format, output } => self.export(&target, format, output),
            Command::Commands {
                targets,
                grep,
                since,
                until,
                failed,
                json,
                archive,
                archive_host,
            } => self.commands(
                &targets,
                grep.as_deref(),
                Span { since: since.as_deref(), until: until.as_deref() },
                failed,
                json,
                archive.then_some(archive_host),
            ),
            Command::Verify { path, key, json } => self.verify(&path, key, json),
            Command::Snapshot { name, system, out, freeze, memory } => {
                self.snapshot(name.as_ref(), system, out, freeze, memory)
            }
            Command::Freeze { name } => self.simple(&name, Request::Freeze),
            Command::Check { json } => {
                let outcomes = self.backend.check()?;
                print_checks(&mut self.out, &outcomes, json)?;
                Ok(if outcomes.iter().all(|o| o.ok) { 0 } else { 1 })
            }
            Command::Completions { .. } | Command::Man => Ok(0),
            Command::Thaw { name } => self.simple(&name, Request::Thaw),
            Command::Daemon { .. }
            | Command::Keeper
            | Command::Archive { .. }
            | Command::ShellInit { .. } => {
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
            no_record: args.no_record,
            record_input: args.record_input,
            consent: args.consent,
            ..create_request(&args.name, args.command.clone(), size)
        };
        self.backend.create(&req)?;
        if args.detach {
            return Ok(0);
        }
        self.attach_existing(&args.name, AttachMode::Interactive)
    }

    fn attach_existing(&mut self, name: &SessionName, mode: AttachMode) -> Result<i32> {
        let op = if mode == AttachMode::ReadOnly { Op::Watch } else { Op::Attach };
        let client = match self.backend.connect(name, op) {
            Ok(c) => c,
            Err(e) => return self.not_running(name, mode, e),
        };
        let opts = AttachOptions {
            name: name.clone(),
            mode,
            detach_key: self.config.detach_key.0,
            detach_name: self.config.detach_key.describe(),
        };
        match attach::run(client, &opts) {
            Ok(Outcome::Lost) => Err(Failure::unavailable(lost_message(name)).into()),
            Ok(outcome) => Ok(outcome.status()),
            Err(e) => self.not_running(name, mode, e),
        }
    }

    /// The session could not be attached: an ended one shows its final
    /// screen and how it ended; otherwise say why.
    fn not_running(
        &mut self,
        name: &SessionName,
        mode: AttachMode,
        err: anyhow::Error,
    ) -> Result<i32> {
        let record = if crate::error::exit_code(&err) == ErrorCode::Refused.exit_code() {
            None
        } else {
            self.backend.lookup(name)?
        };
        let info = explain_failure(name, record, err)?;
        let screen = self.backend.final_screen(&info.name)?;
        self.out.write_all(&ended_screen(&info, screen.as_ref(), mode))?;
        Ok(exit_of(&info).status())
    }

    fn ls(&mut self, json: bool) -> Result<i32> {
        let sessions = self.backend.list()?;
        write_sessions(&mut self.out, &sessions, json)?;
        Ok(0)
    }

    fn who(&mut self, name: &SessionName, json: bool) -> Result<i32> {
        let attachments = match self.running(name, Op::Who)?.request(Request::Who)? {
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
    fn running(&self, name: &SessionName, op: Op) -> Result<KeeperClient> {
        let info = self.require(name)?;
        match info.state {
            SessionState::Running => self.backend.connect(name, op),
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
        match self.running(name, Op::Kill)?.request(Request::Kill { force })? {
            Reply::Exited { .. } => {
                self.backend.audit_done(crate::audit::Event::Kill, name);
                Ok(0)
            }
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
        let reply = self.backend.connect(name, Op::Wait).and_then(|mut c| c.request(Request::Wait));
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
        let mut client = self.backend.connect(name, Op::Tail)?;
        let mut reply = Some(client.request(Request::Tail { lines, follow })?);
        while let Some(r) = reply {
            match r {
                Reply::Text { lines } => self.print_lines(&lines)?,
                Reply::Exited { .. } => break,
                other => return Err(unexpected(&other)),
            }
            // Long text comes in several replies; the keeper closes the
            // connection after the last (or, with -f, sends Exited).
            reply = client.next_reply()?;
        }
        Ok(0)
    }

    /// This host's paths, for reading recordings directly.
    fn recordings_paths(&self) -> Result<Paths> {
        self.backend.local_paths().cloned().ok_or_else(|| {
            Failure::invalid(
                "recordings are read on the host that keeps them: run this there, or over ssh",
            )
            .into()
        })
    }

    /// The recording `target` names, if the caller may read it: a target
    /// that is a session name is checked before anything is looked up (a
    /// refusal says nothing about what exists); a path only for callers
    /// not limited to some sessions; either way, the session the recording
    /// belongs to is checked.
    fn recording(&self, target: &str) -> Result<Recording> {
        if target.starts_with("s3://") {
            return self.archived_recording(target);
        }
        self.may_read_recording(target)?;
        let paths = self.recordings_paths()?;
        // A confined caller's word is a session's name, never a file
        // that happens to exist where the daemon runs.
        let rec = if self.backend.confined_paths() && !names_a_file(target) {
            recording::resolve_session(&paths, target)?
        } else {
            recording::resolve(&paths, target)?
        };
        let session =
            SessionName::new(&rec.session_name()).map_err(|_| Failure::no_such_session(target))?;
        self.backend.require(Op::Review, Some(&session))?;
        Ok(rec)
    }

    /// A recording in the archive (`s3://…`, as `ls --archive` prints it),
    /// read in place with range requests: locally only.
    fn archived_recording(&self, url: &str) -> Result<Recording> {
        let Some(archive) = &self.config.archive else {
            return Err(Failure::invalid(format!(
                "{url}: no [archive] in config.toml (docs/ARCHIVE.md)"
            ))
            .into());
        };
        if self.backend.local_paths().is_none() || self.backend.confined_paths() {
            return Err(Failure::invalid(
                "s3://… is read from where you run tether: run it locally",
            )
            .into());
        }
        Recording::open_archived(archive, url)
    }

    /// Whether a recording or bundle named `target` may be looked up at all.
    fn may_read_recording(&self, target: &str) -> Result<()> {
        let by_session_only = || -> anyhow::Error {
            Failure::new(
                ErrorCode::Refused,
                "a key limited by tether-sessions names recordings by session only",
            )
            .into()
        };
        if self.backend.confined_paths() && names_a_file(target) {
            if self.backend.limited() {
                return Err(by_session_only());
            }
            return self.confine(target);
        }
        match SessionName::new(target) {
            Ok(name) => self.backend.require(Op::Review, Some(&name)),
            Err(_) if self.backend.limited() => Err(by_session_only()),
            Err(_) => Ok(()),
        }
    }

    /// A file named by a caller through the daemon: only inside this
    /// host's recordings or evidence directory, and refused with the same
    /// message whatever exists outside them, so that the answer tells
    /// nothing about the rest of the host's files.
    fn confine(&self, target: &str) -> Result<()> {
        let refusal = || -> anyhow::Error {
            Failure::new(
                ErrorCode::Refused,
                "over ssh, a recording or bundle is named by its session, or by its absolute path inside this host's recordings or evidence directory",
            )
            .into()
        };
        let paths = self.recordings_paths()?;
        let path = std::path::Path::new(target);
        let lexical = path.is_absolute()
            && !path.components().any(|c| matches!(c, std::path::Component::ParentDir));
        let dirs = [paths.recordings_dir(), paths.evidence_dir()];
        if !lexical || !dirs.iter().any(|d| path.starts_with(d)) {
            return Err(refusal());
        }
        // Inside by name; a symbolic link in there must not lead out.
        if let Ok(real) = std::fs::canonicalize(path) {
            let inside = dirs
                .iter()
                .filter_map(|d| std::fs::canonicalize(d).ok())
                .any(|d| real.starts_with(d));
            if !inside {
                return Err(refusal());
            }
        }
        Ok(())
    }

    fn replay(
        &mut self,
        target: &str,
        speed: f64,
        idle_limit: Option<f64>,
        at: Option<&str>,
    ) -> Result<i32> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(Failure::invalid("--speed must be a positive number").into());
        }
        let rec = self.recording(target)?;
        // The moment command N began (docs/COMMANDS.md): where its mark is
        // in the output.
        if let Some(t) = at
            && let Some(n) = t.strip_prefix("cmd:")
        {
            let n: u64 = n
                .parse()
                .map_err(|_| Failure::invalid(format!("--at {t}: cmd:N takes a command number")))?;
            let ran = recording::cmdlog::commands(&rec)?;
            let Some(found) = ran.iter().find(|r| r.n == n) else {
                return Err(Failure::invalid(format!(
                    "--at {t}: the recording has {} command(s) (tether commands {target})",
                    ran.len()
                ))
                .into());
            };
            let lines = match found.out {
                Some(out) => recording::seek::at_output(&rec, out)?.visible_text(),
                None => replay::text_at(&rec, found.offset)?,
            };
            self.print_lines(&lines)?;
            return Ok(0);
        }
        let start = match at {
            Some(t) => replay::offset(&rec, timespec::parse(t)?),
            None => 0.0,
        };
        if at.is_some() {
            let lines = replay::text_at(&rec, start)?;
            self.print_lines(&lines)?;
            return Ok(0);
        }
        replay::run(rec, &replay::Options { speed, idle_limit, start })
    }

    fn grep(
        &mut self,
        pattern: &str,
        targets: &[String],
        span: Span<'_>,
        command: Option<&str>,
        json: bool,
        archive: Option<Option<String>>,
    ) -> Result<i32> {
        let regex = regex::Regex::new(pattern)
            .map_err(|e| Failure::invalid(format!("bad pattern: {e}")))?;
        let command = command
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| Failure::invalid(format!("bad --command pattern: {e}")))?;
        let since = span.since.map(timespec::parse).transpose()?;
        let until = span.until.map(timespec::parse).transpose()?;
        let mut recordings = self.searched("grep", targets, archive, since, until)?;
        let mut matches = 0u64;
        let mut damaged = false;
        while let Some(rec) = recordings.next(self) {
            let rec = &rec?;
            let from = since.map_or(f64::NEG_INFINITY, |w| w.offset_from(rec.started()));
            let to = until.map_or(f64::INFINITY, |w| w.offset_from(rec.started()));
            let out = &mut self.out;
            // With --command: only while a matching command ran.
            let within = match &command {
                None => None,
                Some(re) => Some(
                    recording::cmdlog::commands(rec)?
                        .into_iter()
                        .filter(|r| re.is_match(&r.command))
                        .map(|r| (r.offset, r.duration.map_or(f64::INFINITY, |d| r.offset + d)))
                        .collect::<Vec<_>>(),
                ),
            };
            let searched = grep::search(rec, &regex, from, to, within.as_deref(), &mut |m| {
                matches += 1;
                if json {
                    serde_json::to_writer(&mut *out, &m)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{:.3}\t{}",
                        m.session,
                        visible(&m.time),
                        m.offset,
                        visible(&m.line)
                    )?;
                }
                Ok(())
            });
            // A damaged recording (what verify reports) stops its own
            // search with an error, not the others'.
            if let Err(e) = searched {
                if !e.chain().any(|c| c.downcast_ref::<Failure>().is_some()) {
                    return Err(e);
                }
                let _ = self.out.flush();
                writeln!(self.err, "tether: {}", crate::error::message(&e))?;
                damaged = true;
            }
        }
        Ok(if damaged {
            ErrorCode::Invalid.exit_code()
        } else if matches > 0 {
            0
        } else {
            1
        })
    }

    /// The recordings `what` (grep, commands) reads: every host's in the
    /// archive (of one host, with `archive` naming it), the given targets,
    /// or every one here the caller may read.
    fn searched(
        &self,
        what: &str,
        targets: &[String],
        archive: Option<Option<String>>,
        since: Option<timespec::When>,
        until: Option<timespec::When>,
    ) -> Result<Searched> {
        Ok(match archive {
            // Archived recordings are read one at a time, as searched.
            Some(host) => Searched {
                local: Vec::new().into_iter(),
                urls: self.archived_between(what, host.as_deref(), since, until)?.into_iter(),
            },
            None if targets.is_empty() => {
                let mut all = recording::all(&self.recordings_paths()?)?;
                all.retain(|r| self.backend.visible(&r.session_name()));
                Searched { local: all.into_iter(), urls: Vec::new().into_iter() }
            }
            None => Searched {
                local: targets
                    .iter()
                    .map(|t| self.recording(t))
                    .collect::<Result<Vec<_>>>()?
                    .into_iter(),
                urls: Vec::new().into_iter(),
            },
        })
    }

    /// The URLs of the archived recordings (of `host`, if given) that may
    /// hold something between `since` and `until`: for `what --archive`.
    fn archived_between(
        &self,
        what: &str,
        host: Option<&str>,
        since: Option<timespec::When>,
        until: Option<timespec::When>,
    ) -> Result<Vec<String>> {
        let Some(config) = &self.config.archive else {
            return Err(
                Failure::invalid(format!("{what} --archive: no [archive] in config.toml")).into()
            );
        };
        if self.backend.confined_paths() {
            return Err(Failure::invalid(format!(
                "{what} --archive reads the bucket: run it locally"
            ))
            .into());
        }
        let mut urls = Vec::new();
        for a in crate::archive::fleet::list(config, host)? {
            // Not one that ended before --since or began after --until.
            let ended_before = match (&a.ended, since) {
                (Some(end), Some(w @ timespec::When::At(_))) => {
                    end.parse::<jiff::Timestamp>().is_ok_and(|e| w.offset_from(Some(e)) > 0.0)
                }
                _ => false,
            };
            let began_after = match (a.started.parse::<jiff::Timestamp>(), until) {
                (Ok(start), Some(w @ timespec::When::At(_))) => w.offset_from(Some(start)) < 0.0,
                _ => false,
            };
            if !ended_before && !began_after {
                urls.push(a.url);
            }
        }
        Ok(urls)
    }

    /// `tether commands`: the commands the recordings hold.
    fn commands(
        &mut self,
        targets: &[String],
        pattern: Option<&str>,
        span: Span<'_>,
        failed: bool,
        json: bool,
        archive: Option<Option<String>>,
    ) -> Result<i32> {
        let regex = pattern
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| Failure::invalid(format!("bad pattern: {e}")))?;
        let since = span.since.map(timespec::parse).transpose()?;
        let until = span.until.map(timespec::parse).transpose()?;
        let mut recordings = self.searched("commands", targets, archive, since, until)?;
        let mut listed = 0u64;
        let mut damaged = false;
        while let Some(rec) = recordings.next(self) {
            let rec = &rec?;
            let from = since.map_or(f64::NEG_INFINITY, |w| w.offset_from(rec.started()));
            let to = until.map_or(f64::INFINITY, |w| w.offset_from(rec.started()));
            // A damaged recording (what verify reports) is said and
            // skipped, as grep does: the others are still listed.
            let ran = match recording::cmdlog::commands(rec) {
                Ok(ran) => ran,
                Err(e) if e.chain().any(|c| c.downcast_ref::<Failure>().is_some()) => {
                    let _ = self.out.flush();
                    writeln!(self.err, "tether: {}", crate::error::message(&e))?;
                    damaged = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            for ran in ran {
                if ran.offset < from
                    || ran.offset > to
                    || (failed && ran.exit.is_none_or(|e| e == 0))
                    || regex.as_ref().is_some_and(|r| !r.is_match(&ran.command))
                {
                    continue;
                }
                listed += 1;
                if json {
                    serde_json::to_writer(&mut self.out, &ran)?;
                    writeln!(self.out)?;
                } else {
                    let duration = ran.duration.map_or_else(|| "-".into(), |d| format!("{d:.3}"));
                    let exit = match (ran.state, ran.exit) {
                        ("running", _) => "running".to_owned(),
                        (_, Some(e)) => e.to_string(),
                        (_, None) => "?".to_owned(),
                    };
                    writeln!(
                        self.out,
                        "{}\t{}\t{duration}\t{exit}\t{}\t{}\t{}",
                        ran.session,
                        ran.started.as_deref().unwrap_or("-"),
                        visible(ran.who.as_deref().unwrap_or("-")),
                        visible(ran.cwd.as_deref().unwrap_or("-")),
                        visible(&ran.command),
                    )?;
                }
            }
        }
        Ok(if damaged {
            ErrorCode::Invalid.exit_code()
        } else if listed > 0 {
            0
        } else {
            1
        })
    }

    fn export(
        &mut self,
        target: &str,
        format: export::Format,
        output: Option<PathBuf>,
    ) -> Result<i32> {
        let rec = self.recording(target)?;
        match output {
            Some(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let mut out = std::io::BufWriter::new(file);
                export::export(&rec, format, &mut out)?;
                out.flush()?;
            }
            None => export::export(&rec, format, &mut self.out)?,
        }
        Ok(0)
    }

    fn simple(&mut self, name: &SessionName, request: Request) -> Result<i32> {
        match self.running(name, Op::Forensics)?.request(request)? {
            Reply::Done => Ok(0),
            other => Err(unexpected(&other)),
        }
    }

    fn snapshot(
        &mut self,
        name: Option<&SessionName>,
        system: bool,
        out: Option<PathBuf>,
        freeze: bool,
        memory: bool,
    ) -> Result<i32> {
        let out = out.map(std::path::absolute).transpose()?;
        let path = if system {
            let paths = self.recordings_paths()?;
            let key = crate::signing::SigningKey::load_or_create(&paths.signing_key_file())?;
            let parent = out.unwrap_or_else(|| paths.evidence_dir());
            let mut bundle = crate::forensic::Bundle::create(&parent, "system")?;
            crate::forensic::system::capture(&mut bundle)?;
            bundle
                .finish("system", &self.backend.requester(), serde_json::json!({}), &key)?
                .display()
                .to_string()
        } else {
            let Some(name) = name else {
                return Err(Failure::invalid("give a session or --system").into());
            };
            if out.is_some() && self.backend.local_paths().is_none() {
                return Err(Failure::invalid(
                    "with --host the bundle stays on that host: drop --out",
                )
                .into());
            }
            let req = tether_proto::SnapshotRequest {
                out: out.map(|d| d.display().to_string()),
                freeze,
                memory,
                memory_limit: self.config.snapshot_memory_limit,
                requested_by: self.backend.requester(),
            };
            match self.running(name, Op::Forensics)?.request(Request::Snapshot(req))? {
                Reply::Snapshot { path } => path,
                other => return Err(unexpected(&other)),
            }
        };
        writeln!(self.out, "{path}")?;
        Ok(0)
    }

    fn verify(&mut self, path: &str, key: Option<PathBuf>, json: bool) -> Result<i32> {
        let paths = self.recordings_paths().ok();
        self.may_read_recording(path)?;
        let may_be_bundle = !self.backend.confined_paths() || names_a_file(path);
        if may_be_bundle && crate::forensic::is_bundle(std::path::Path::new(path)) {
            let trusted = trusted_key(key.as_deref(), paths.as_ref())?;
            let report = crate::forensic::verify_bundle(std::path::Path::new(path), trusted)?;
            if json {
                serde_json::to_writer_pretty(&mut self.out, &report)?;
                writeln!(self.out)?;
            } else {
                writeln!(self.out, "bundle: {}", visible(&report.path))?;
                writeln!(
                    self.out,
                    "signed by: {} ({})",
                    visible(report.key.as_deref().unwrap_or("nobody")),
                    if report.signature_ok {
                        "signature valid"
                    } else {
                        "SIGNATURE INVALID or key not trusted"
                    }
                )?;
                for (what, list) in [
                    ("modified", &report.modified),
                    ("missing", &report.missing),
                    ("added", &report.added),
                    ("symlink (not followed)", &report.symlinks),
                ] {
                    for f in list {
                        writeln!(self.out, "{what}: {}", visible(f))?;
                    }
                }
                writeln!(
                    self.out,
                    "{}",
                    if report.ok() {
                        "OK: every file matches the signed manifest"
                    } else {
                        "DAMAGED"
                    }
                )?;
            }
            return Ok(if report.ok() { 0 } else { 1 });
        }
        // A recording in the archive: fetched from the bucket (segments and
        // witness), wherever this runs.
        let fetched = match (path.starts_with("s3://"), &self.config.archive) {
            (false, _) => None,
            (true, Some(archive)) if paths.is_some() => {
                Some(crate::archive::fleet::fetch(archive, path)?)
            }
            (true, Some(_)) => {
                return Err(
                    Failure::invalid("verify s3://… reads the bucket: run it locally").into()
                );
            }
            (true, None) => {
                return Err(Failure::invalid(
                    "verify s3://…: no [archive] in config.toml (docs/ARCHIVE.md)",
                )
                .into());
            }
        };
        let rec = match (&fetched, &paths) {
            (Some(f), _) => recording::Recording::open(&f.base)?,
            (None, Some(_)) => self.recording(path)?,
            (None, None) => recording::Recording::open(std::path::Path::new(path))?,
        };
        let trusted = trusted_key(key.as_deref(), paths.as_ref())?;
        let mut report = verify::verify(&rec, trusted)?;
        if fetched.is_some() {
            report.path = path.to_owned();
        }
        if let (Some(_), Some(archive)) = (&paths, &self.config.archive) {
            // A rewrite re-signed with this host's key verifies locally;
            // the witness shipped off the host tells.
            let root = fetched.as_ref().map(|f| f.root.as_str());
            let witness = crate::archive::witness::check(archive, &rec.segments, root);
            if let Some(differs) = &witness.first_differs {
                report.status = "rewritten".into();
                report.message = format!(
                    "the recording no longer matches what the archive witnessed: {differs}"
                );
            } else if let (Some(why), true) = (&witness.unavailable, report.ok()) {
                // Fail closed: with an archive configured, a file whose
                // witness cannot be read is not vouched for.
                report.status = "unwitnessed".into();
                report.message = format!("the archive's witness could not be read: {why}");
            } else if let (Some(stale), true) = (&witness.stale, report.ok()) {
                // Fail closed: a file the archive should have seen by now
                // and has not is no better than an unsigned one.
                report.status = "unwitnessed".into();
                report.message = format!(
                    "{stale} was written more than {} s ago and is not in the archive's witness (a renamed or copied file, one written while the uploader was stopped, or another host's)",
                    crate::archive::witness::GRACE_SECS
                );
            }
            report.witness = Some(witness);
        }
        if json {
            serde_json::to_writer_pretty(&mut self.out, &report)?;
            writeln!(self.out)?;
        } else {
            writeln!(
                self.out,
                "recording: {} ({} segment(s))",
                visible(&report.path),
                report.segments
            )?;
            writeln!(
                self.out,
                "signed by: {} ({})",
                visible(report.key.as_deref().unwrap_or("nobody")),
                match (&report.trusted, &report.trusted_key) {
                    (true, Some(from)) => format!("trusted: {from}"),
                    (false, Some(from)) => format!("NOT the trusted key from {from}"),
                    _ => "no trusted key".into(),
                }
            )?;
            let verdict = if report.ok() {
                String::new()
            } else {
                format!("{}: ", report.status.to_uppercase())
            };
            writeln!(self.out, "{verdict}{}", visible(&report.message))?;
            if let Some(w) = &report.witness {
                let line = match (&w.unavailable, w.unwitnessed.len()) {
                    (Some(why), _) => format!("witness: not checked: {why}"),
                    (None, 0) => format!("witness: {} checkpoints match the archive", w.compared),
                    (None, n) => format!(
                        "witness: {} checkpoints match the archive; {n} not witnessed yet ({})",
                        w.compared,
                        w.unwitnessed.join(", ")
                    ),
                };
                writeln!(self.out, "{}", visible(&line))?;
            }
        }
        Ok(if report.ok() { 0 } else { 1 })
    }

    fn print_lines(&mut self, lines: &[String]) -> Result<()> {
        for line in lines {
            writeln!(self.out, "{}", visible(line))?;
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
            visible(&s.command.join(" "))
        )?;
        // Why the keeper ended the session (a thread panicked), under STATE.
        if let Some(reason) = &s.end_reason {
            writeln!(out, "{:<20} reason: {}", "", visible(reason))?;
        }
    }
    Ok(())
}

/// The right a command needs, and the session it names (a recording
/// named by path is checked where it is resolved).
pub fn right_needed(command: &Command) -> (Op, Option<SessionName>) {
    let s = |n: &SessionName| Some(n.clone());
    let target = |t: &str| SessionName::new(t).ok();
    match command {
        Command::Ls { .. } | Command::Completions { .. } | Command::Man => (Op::List, None),
        Command::Who { name, .. } => (Op::Who, s(name)),
        Command::Watch { name } => (Op::Watch, s(name)),
        Command::Attach { name, .. } => (Op::Attach, s(name)),
        Command::New(args) => (Op::New, s(&args.name)),
        Command::Tail { name, .. } => (Op::Tail, s(name)),
        Command::Wait { name } => (Op::Wait, s(name)),
        Command::Kill { name, .. } => (Op::Kill, s(name)),
        Command::Rm { name } => (Op::Rm, s(name)),
        Command::Replay { target: t, .. } | Command::Export { target: t, .. } => {
            (Op::Review, target(t))
        }
        Command::Grep { .. } | Command::Verify { .. } | Command::Commands { .. } => {
            (Op::Review, None)
        }
        Command::Snapshot { name, .. } => (Op::Forensics, name.clone()),
        Command::Freeze { name } | Command::Thaw { name } => (Op::Forensics, s(name)),
        // `check` creates (and removes) a probe session.
        Command::Check { .. } => (Op::New, None),
        Command::Daemon { .. }
        | Command::Keeper
        | Command::Archive { .. }
        | Command::ShellInit { .. } => (Op::Rm, None),
    }
}

/// The recordings a search reads, in order; archived ones are opened as
/// they come.
struct Searched {
    local: std::vec::IntoIter<Recording>,
    urls: std::vec::IntoIter<String>,
}

impl Searched {
    fn next(&mut self, ctx: &Ctx) -> Option<Result<Recording>> {
        self.local.next().map(Ok).or_else(|| self.urls.next().map(|url| ctx.recording(&url)))
    }
}

/// `--since` and `--until`, as given.
#[derive(Clone, Copy)]
struct Span<'a> {
    since: Option<&'a str>,
    until: Option<&'a str>,
}

/// Whether a recording target names a file rather than a session (the
/// same test `recording::resolve` makes, less looking at the disk).
fn names_a_file(target: &str) -> bool {
    target.contains('/') || target.ends_with(".cast")
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

fn state_label(s: &SessionInfo) -> String {
    let state = match s.state {
        SessionState::Ended => {
            format!("ended ({})", exit_of(s).describe().replace("exit code ", "exit "))
        }
        other => other.as_str().to_owned(),
    };
    // `tether check`'s throwaway session, there for a moment.
    if s.probe { format!("{state} [probe]") } else { state }
}

fn describe_presence(p: &Presence) -> String {
    let role = serde_json::to_value(p.role).ok().and_then(|v| v.as_str().map(str::to_owned));
    format!(
        "{:<8} {:<20} {:<9} {:<22} since {}",
        visible(&p.kind),
        visible(&p.identity),
        role.unwrap_or_default(),
        visible(p.address.as_deref().unwrap_or("local")),
        visible(&p.since)
    )
}

fn unexpected(reply: &Reply) -> anyhow::Error {
    Failure::unavailable(format!("unexpected reply: {reply:?}")).into()
}

/// The key `verify` trusts: `--key PUBFILE`, else this host's signing key.
fn trusted_key(
    key: Option<&std::path::Path>,
    paths: Option<&Paths>,
) -> Result<Option<(russh::keys::PublicKey, String)>> {
    let (file, from) = match (key, paths) {
        (Some(k), _) => (k.to_path_buf(), format!("--key {}", k.display())),
        (None, Some(p)) => {
            (p.signing_key_file().with_extension("pub"), "this host's signing key".into())
        }
        (None, None) => return Ok(None),
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let public = russh::keys::PublicKey::from_openssh(text.trim()).map_err(|e| {
                Failure::invalid(format!("{}: not a public key: {e}", file.display()))
            })?;
            Ok(Some((public, from)))
        }
        Err(e) if key.is_none() && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::invalid(format!("cannot read {}: {e}", file.display())).into()),
    }
}

/// `check`'s report: one line per check, or JSON.
///
/// # Errors
///
/// Writing fails.
pub fn print_checks(
    out: &mut dyn Write,
    outcomes: &[crate::check::Outcome],
    json: bool,
) -> Result<()> {
    if json {
        let ok = outcomes.iter().all(|o| o.ok);
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({"ok": ok, "checks": outcomes}),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    for o in outcomes {
        writeln!(
            out,
            "{:<4} {:<10} {:>6} ms  {}",
            if o.ok { "ok" } else { "FAIL" },
            o.name,
            o.ms,
            visible(&o.detail)
        )?;
    }
    Ok(())
}

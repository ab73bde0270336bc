//! `tether commands`: the commands a recording holds (its `c` events,
//! docs/COMMANDS.md), one per line.

use super::Recording;
use anyhow::Result;
use serde::Serialize;
use tether_proto::record::{Command, EventData, MarkSource, Phase};

/// Output events whose end and time are kept to date commands.
const RECENT_OUTPUT: usize = 4096;

/// One command, as `tether commands` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    /// The session.
    pub session: String,
    /// Its number in the recording, from 1.
    pub n: u64,
    /// When it began (RFC 3339 UTC), if the recording's start is known.
    pub started: Option<String>,
    /// Seconds from the recording's start to the command's.
    pub offset: f64,
    /// How long it ran, once it ended.
    pub duration: Option<f64>,
    /// Its exit status, once it ended (and the shell said).
    pub exit: Option<i32>,
    /// `ended`, or `running` (no end recorded yet).
    pub state: &'static str,
    /// Who typed it (an SSH key's comment, or the local user).
    pub who: Option<String>,
    /// Their key's fingerprint, over SSH.
    pub fingerprint: Option<String>,
    /// The working directory the shell reported.
    pub cwd: Option<String>,
    /// The command line as shown.
    pub command: String,
    /// Output bytes before its start mark (for `replay --at cmd:N`).
    #[serde(skip)]
    pub out: Option<u64>,
    /// Who wrote the marks: `tether` (its shell integration, vouched for
    /// by the session's secret) or `job` (anything else). A command is
    /// `tether` only when its start and end marks both were.
    pub marks: MarkSource,
    /// Ends the job wrote while a command begun by tether's marks ran
    /// (their exit statuses): they ended nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forged_ends: Vec<Option<i32>>,
    /// It had no end of its own: the session's job ended while it ran
    /// (`exit` typed, the session killed), and `exit` is the job's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub with_session: bool,
}

/// The commands of `rec`, in the order they began.
///
/// # Errors
///
/// The recording cannot be read (damage, an undecodable line).
pub fn commands(rec: &Recording) -> Result<Vec<Ran>> {
    let session = rec.session_name();
    let started = rec.started();
    let mut out: Vec<Ran> = Vec::new();
    // Output so far, and where the latest output events end and when they
    // were read: a command is dated by the output that held its mark (its
    // event may come a little after later output).
    let mut output = 0u64;
    let mut recent: std::collections::VecDeque<(u64, f64)> = std::collections::VecDeque::new();
    for event in rec.events() {
        let event = event?;
        if let EventData::Gap(gap) = &event.data {
            // Output the recording lost still counts in `out`.
            output += gap.lost_bytes;
        }
        if let Some(bytes) = super::output_bytes(&event.data) {
            output += bytes.len() as u64;
            recent.push_back((output, event.time));
            if recent.len() > RECENT_OUTPUT {
                recent.pop_front();
            }
            continue;
        }
        if let EventData::Exit(code) = event.data {
            // The shell itself ended: what it was running ended with it.
            for ran in out.iter_mut().filter(|r| r.state == "running") {
                ran.state = "ended";
                ran.exit = Some(code);
                ran.duration = Some((event.time - ran.offset).max(0.0));
                ran.with_session = true;
            }
            continue;
        }
        let EventData::Command(c) = event.data else { continue };
        let time = c
            .out
            .and_then(|o| recent.iter().find(|(end, _)| *end >= o).map(|(_, t)| *t))
            .unwrap_or(event.time);
        match c.phase {
            Phase::Start => out.push(begun(&session, started, time, c)),
            Phase::End => {
                // The latest command of that number still running.
                if let Some(ran) = out.iter_mut().rev().find(|r| r.n == c.n && r.state == "running")
                {
                    if ran.marks == MarkSource::Tether && c.marks == MarkSource::Job {
                        ran.forged_ends.push(c.exit);
                        continue;
                    }
                    ran.state = "ended";
                    ran.exit = c.exit;
                    ran.duration = Some((time - ran.offset).max(0.0));
                    if c.marks == MarkSource::Job {
                        ran.marks = MarkSource::Job;
                    }
                }
            }
        }
    }
    Ok(out)
}

fn begun(session: &str, started: Option<jiff::Timestamp>, time: f64, c: Command) -> Ran {
    let at = started.and_then(|s| {
        let ms = (time * 1000.0).round() as i64;
        s.checked_add(jiff::SignedDuration::from_millis(ms)).ok()
    });
    Ran {
        session: session.to_owned(),
        n: c.n,
        started: at.map(|t| t.round(jiff::Unit::Millisecond).unwrap_or(t).to_string()),
        offset: time,
        duration: None,
        exit: None,
        state: "running",
        who: c.who,
        fingerprint: c.fingerprint,
        cwd: c.cwd,
        command: c.command.unwrap_or_default(),
        out: c.out,
        marks: c.marks,
        forged_ends: Vec::new(),
        with_session: false,
    }
}

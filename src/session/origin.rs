//! Whether a request comes from inside a session: the requesting process
//! descends from a keeper, so it is the session's job or something the
//! job started.
//!
//! That matters for the audit log. A role limits what a key may ask
//! tether to do, not what the code it runs may do: an operator may not
//! `kill`, but a job it starts runs as the user and can run
//! `tether kill --force` itself. The request then arrives as the local
//! user's. So every entry for a request made from inside a session names
//! that session and who started it (`from_session`, `started_by`), and
//! the operator's job is not mistaken for the user at their terminal.
//!
//! Ancestry is the fact used, not the environment: a job can set
//! `TETHER_SESSION` to anything, but not change its parent. A keeper is
//! the child subreaper of its job, so even a process that double-forks
//! away from the job is reparented to the keeper, not to init. What
//! ancestry cannot see is a process the job had started elsewhere (a
//! `systemd-run`, a cron job, an `ssh` back to this host): those arrive
//! as whoever they authenticate as (docs/SSH.md).

use crate::paths::Paths;
use crate::session::Registry;
use tether_proto::SessionState;

/// The process name of every keeper (PRODUCT.md).
const KEEPER_COMM: &str = "tether-keeper";

/// How far up the process tree to look: deeper trees are not real.
const MAX_DEPTH: usize = 128;

/// The session a request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The session's name, or `keeper pid N` when no session record of
    /// this host's state directory names that keeper (another user's
    /// tether directories, or a process merely named like a keeper).
    pub session: String,
    /// Who started that session (its owner: a user name or a key's
    /// comment), when known.
    pub started_by: Option<String>,
}

/// The session `pid` runs inside, if it descends from a keeper.
pub fn of_process(pid: u32, paths: &Paths) -> Option<Origin> {
    let keeper = keeper_above(pid)?;
    let sessions = Registry::new(paths.clone()).list().unwrap_or_default();
    let info = sessions
        .into_iter()
        .find(|s| s.keeper_pid == Some(keeper) && s.state == SessionState::Running);
    Some(match info {
        Some(info) => Origin { session: info.name.to_string(), started_by: info.owner },
        None => Origin { session: format!("keeper pid {keeper}"), started_by: None },
    })
}

/// The session this process runs inside (for requests the CLI itself
/// audits, without a keeper to ask: `rm`, `kill`).
pub fn of_this_process(paths: &Paths) -> Option<Origin> {
    of_process(std::process::id(), paths)
}

/// The nearest ancestor of `pid` (not `pid` itself) that is a keeper.
fn keeper_above(pid: u32) -> Option<u32> {
    let mut current = pid;
    for _ in 0..MAX_DEPTH {
        let (comm, parent) = comm_and_parent(current)?;
        if current != pid && comm == KEEPER_COMM {
            return Some(current);
        }
        if parent <= 1 {
            return None;
        }
        current = parent;
    }
    None
}

/// The process name and the parent of `pid`, from `/proc/PID/stat`.
fn comm_and_parent(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// `PID (COMM) STATE PPID …`; the name may hold spaces and parentheses,
/// so it ends at the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let parent = stat.get(close + 1..)?.split_whitespace().nth(1)?.parse().ok()?;
    Some((comm, parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_name_holds() {
        assert_eq!(parse_stat("42 (tether-keeper) S 7 42 42 0"), Some(("tether-keeper".into(), 7)));
        assert_eq!(parse_stat("43 (a) b) (c) R 42 1 1"), Some(("a) b) (c".into(), 42)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_test_does_not_run_inside_a_session_unless_it_does() {
        // The test runner may itself run inside tether; either way the
        // walk ends, and only at a keeper.
        if let Some(k) = keeper_above(std::process::id()) {
            assert_eq!(comm_and_parent(k).map(|(c, _)| c).as_deref(), Some(KEEPER_COMM));
        }
    }
}

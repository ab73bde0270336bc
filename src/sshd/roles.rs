//! The one place where a role's rights are decided (PRODUCT.md's table).
//!
//! | operation | owner | operator | watcher |
//! |---|---|---|---|
//! | ls, who | yes | yes | yes |
//! | watch | yes | yes | yes |
//! | attach, new, tail, wait | yes | yes | no |
//! | replay, grep, export, verify | yes | yes | no |
//! | kill, rm, freeze, thaw, snapshot | yes | no | no |

use crate::Failure;
use tether_proto::{ErrorCode, Role};

/// An operation that needs a right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `ls`.
    List,
    /// `who`.
    Who,
    /// Read-only attach.
    Watch,
    /// Interactive attach.
    Attach,
    /// Create a session.
    New,
    /// Read a session's text.
    Tail,
    /// Wait for a job.
    Wait,
    /// End a job.
    Kill,
    /// Forget a session.
    Rm,
    /// Replay, grep, export or verify recordings.
    Review,
    /// Snapshot, freeze, thaw.
    Forensics,
}

impl Op {
    /// The command's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::List => "ls",
            Op::Who => "who",
            Op::Watch => "watch",
            Op::Attach => "attach",
            Op::New => "new",
            Op::Tail => "tail",
            Op::Wait => "wait",
            Op::Kill => "kill",
            Op::Rm => "rm",
            Op::Review => "read recordings",
            Op::Forensics => "snapshot, freeze or thaw",
        }
    }
}

/// Whether `role` may do `op`.
pub fn permits(role: Role, op: Op) -> bool {
    match op {
        Op::List | Op::Who | Op::Watch => true,
        Op::Attach | Op::New | Op::Tail | Op::Wait | Op::Review => role != Role::Watcher,
        Op::Kill | Op::Rm | Op::Forensics => role == Role::Owner,
    }
}

/// `Ok` if `role` may do `op`, else a refusal (exit 5) naming both.
///
/// # Errors
///
/// The refusal.
pub fn check(role: Role, op: Op) -> Result<(), Failure> {
    if permits(role, op) {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::Refused,
        format!("the {} role may not {}", role_name(role), op.name()),
    ))
}

/// `owner`, `operator` or `watcher`.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Operator => "operator",
        Role::Watcher => "watcher",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Op::*;
        let all = [List, Who, Watch, Attach, New, Tail, Wait, Kill, Rm, Review, Forensics];
        let allowed = |role| all.iter().filter(|op| permits(role, **op)).count();
        assert_eq!(allowed(Role::Owner), 11);
        assert_eq!(allowed(Role::Operator), 8);
        assert_eq!(allowed(Role::Watcher), 3);
        let err = check(Role::Watcher, Attach).unwrap_err();
        assert_eq!(err.message, "the watcher role may not attach");
        assert_eq!(err.code.exit_code(), 5);
    }
}

//! Who may do what to which session: the one place where a caller's role
//! and the sessions its key may reach are checked, for every front end
//! (the local CLI, `ssh host COMMAND`, `ssh -t`, the session picker, the
//! `tether` subsystem behind `--host`, and later the browser).
//!
//! Every operation goes through [`Access::require`]: the keeper client
//! ([`super::KeeperClient`], reached through [`crate::backend::Local`])
//! will not open a keeper socket without it. The rights are PRODUCT.md's
//! table:
//!
//! | operation | owner | operator | watcher |
//! |---|---|---|---|
//! | ls, who | yes | yes | yes |
//! | watch | yes | yes | yes |
//! | attach, new, tail, wait | yes | yes | no |
//! | replay, grep, export, verify | yes | yes | no |
//! | kill, rm, freeze, thaw, snapshot | yes | no | no |
//!
//! A key limited by `tether-sessions` globs reaches only sessions whose
//! names match. A name outside them is refused (exit 5) whether or not
//! such a session exists, so the refusal says nothing about what runs.

use crate::Failure;
use crate::audit::{AuditLog, Entry, Event};
use tether_proto::{ErrorCode, Role, SessionName};

/// An operation that needs a right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Every operation, for tables and tests.
    pub const ALL: [Op; 11] = [
        Op::List,
        Op::Who,
        Op::Watch,
        Op::Attach,
        Op::New,
        Op::Tail,
        Op::Wait,
        Op::Kill,
        Op::Rm,
        Op::Review,
        Op::Forensics,
    ];

    /// The right's name on the wire ([`tether_proto::Request::Authorize`]).
    pub fn key(self) -> &'static str {
        match self {
            Op::Review => "review",
            Op::Forensics => "forensics",
            other => other.name(),
        }
    }

    /// The right named `key` (see [`Op::key`]).
    pub fn from_key(key: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.key() == key)
    }

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

/// Which sessions a caller may reach: all, or those matching one of the
/// globs of an SSH key's `tether-sessions` option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    globs: Option<Vec<String>>,
}

impl Visibility {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only names matching one of `globs` (`*` and `?` wildcards).
    pub fn only(globs: Vec<String>) -> Self {
        Visibility { globs: Some(globs) }
    }

    /// Whether `name` is visible.
    pub fn allows(&self, name: &SessionName) -> bool {
        match &self.globs {
            None => true,
            Some(globs) => globs.iter().any(|g| glob_match(g.as_bytes(), name.as_str().as_bytes())),
        }
    }

    /// The globs, as written in `authorized_keys`; `None` for everything.
    pub fn describe(&self) -> Option<String> {
        self.globs.as_ref().map(|g| g.join(","))
    }
}

/// `*` matches any run, `?` any one character; everything else itself.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// A caller's rights, and where its refusals are audited.
#[derive(Debug, Clone)]
pub struct Access {
    /// The role.
    pub role: Role,
    /// The sessions it may reach.
    pub visibility: Visibility,
    /// The audit log and the caller's part of every entry (SSH callers);
    /// `None` for the local user, which is how the local user is told
    /// from an SSH caller.
    audit: Option<(AuditLog, Entry)>,
}

impl Access {
    /// The local user: the owner of every session.
    pub fn owner() -> Self {
        Access { role: Role::Owner, visibility: Visibility::all(), audit: None }
    }

    /// A remote caller; refusals go to `log` as `caller`'s entries.
    pub fn remote(role: Role, visibility: Visibility, log: AuditLog, caller: Entry) -> Self {
        Access { role, visibility, audit: Some((log, caller)) }
    }

    /// Whether this is the local user rather than an SSH caller: only
    /// the local user may create `tether check` probes.
    pub fn is_local(&self) -> bool {
        self.audit.is_none()
    }

    /// Whether `name` may be seen at all (for filtering lists).
    pub fn sees(&self, name: &SessionName) -> bool {
        self.visibility.allows(name)
    }

    /// `Ok` if this caller may do `op` (on `session`, when one is named),
    /// else a refusal naming the right that is missing, logged and audited.
    ///
    /// # Errors
    ///
    /// The refusal (exit 5).
    pub fn require(&self, op: Op, session: Option<&SessionName>) -> Result<(), Failure> {
        let refusal = if !permits(self.role, op) {
            Some(format!("the {} role may not {}", self.role.name(), op.name()))
        } else {
            session.filter(|name| !self.visibility.allows(name)).map(|name| {
                format!(
                    "this key may not reach session {name}: its tether-sessions allow only {}",
                    self.visibility.describe().unwrap_or_default()
                )
            })
        };
        match refusal {
            Some(message) => Err(self.refuse(session, message)),
            None => Ok(()),
        }
    }

    /// A refusal (exit 5) of something this caller asked for on `session`,
    /// logged and audited like the refusals of [`Access::require`].
    pub fn refuse(&self, session: Option<&SessionName>, message: String) -> Failure {
        tracing::warn!(session = ?session.map(SessionName::as_str), "refused: {message}");
        if let Some((log, caller)) = &self.audit {
            log.record(&Entry {
                event: Event::Refused,
                time: String::new(),
                session: session.map(ToString::to_string),
                detail: Some(message.clone()),
                ..caller.clone()
            });
        }
        Failure::new(ErrorCode::Refused, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        for op in Op::ALL {
            assert_eq!(Op::from_key(op.key()), Some(op));
        }
        let allowed = |role| Op::ALL.iter().filter(|op| permits(role, **op)).count();
        assert_eq!(allowed(Role::Owner), 11);
        assert_eq!(allowed(Role::Operator), 8);
        assert_eq!(allowed(Role::Watcher), 3);
        let watcher = Access { role: Role::Watcher, ..Access::owner() };
        let err = watcher.require(Op::Attach, None).unwrap_err();
        assert_eq!(err.message, "the watcher role may not attach");
        assert_eq!(err.code.exit_code(), 5);
    }

    #[test]
    fn globs() {
        let cases = [
            ("*", "anything", true),
            ("build-*", "build-42", true),
            ("build-*", "deploy", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-prod", "db-prod", true),
            ("*x*y", "axbxy", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p.as_bytes(), t.as_bytes()), want, "{p} {t}");
        }
    }

    #[test]
    fn visibility() {
        let n = |s| SessionName::new(s).unwrap();
        let v = Visibility::only(vec!["mentee-*".into(), "shared".into()]);
        assert!(v.allows(&n("mentee-1")) && v.allows(&n("shared")) && !v.allows(&n("prod")));
        assert!(Visibility::all().allows(&n("prod")));
        let limited = Access { visibility: v, ..Access::owner() };
        assert!(limited.require(Op::Watch, Some(&n("shared"))).is_ok());
        let err = limited.require(Op::Watch, Some(&n("prod"))).unwrap_err();
        assert_eq!(err.code.exit_code(), 5);
        assert!(
            err.message.contains("session prod") && err.message.contains("mentee-*"),
            "{}",
            err.message
        );
    }
}

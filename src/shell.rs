//! Shell integration (docs/COMMANDS.md): the marks a shell writes around
//! its prompt and commands (OSC 133 `A` prompt, `B` command line, `C` runs,
//! `D;EXIT` ended) and about its working directory (OSC 7), from which the
//! keeper records each command.
//!
//! `tether shell-init bash` prints the snippet for a user's own rc file.
//! A session whose command is the default shell gets it without any rc
//! file changed: the keeper starts bash with a start-up file of its own
//! that reads the user's `~/.bashrc` first, then the snippet, with the
//! session's mark secret (`keeper/marks.rs`), and deletes itself.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The shells tether integrates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// GNU bash 4.4 or later (PS0).
    Bash,
}

impl Shell {
    /// The shell a program is, by its file name.
    pub fn of_program(program: &str) -> Option<Shell> {
        match Path::new(program).file_name()?.to_str()? {
            "bash" => Some(Shell::Bash),
            _ => None,
        }
    }

    /// The shell `tether shell-init NAME` names.
    ///
    /// # Errors
    ///
    /// Not a shell tether knows.
    pub fn named(name: &str) -> Result<Shell> {
        match name {
            "bash" => Ok(Shell::Bash),
            other => Err(crate::Failure::invalid(format!(
                "shell-init {other}: tether integrates with bash (zsh and fish: not yet)"
            ))
            .into()),
        }
    }
}

/// The snippet that makes `shell` write the marks. With the session's
/// secret set beforehand (`__tether_secret`), each mark carries it; the
/// snippet keeps it in a variable no program it runs inherits.
pub fn snippet(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => BASH,
    }
}

/// bash: `A` and `D;$?` from PROMPT_COMMAND (first, so that `$?` is the
/// command's), `B` at the end of PS1 (after any PROMPT_COMMAND of the
/// user's has set it), `C` in PS0 (printed once a command line is read,
/// before it runs), OSC 7 at each prompt. A prompt that already writes
/// OSC 133 is left alone.
const BASH: &str = r#"# tether shell integration (docs/COMMANDS.md): OSC 133 and OSC 7 marks.
if [[ $- == *i* && -z ${__tether_marks-} && $PS1${PROMPT_COMMAND[*]-} != *'133;'* ]]; then
  __tether_marks=1
  __tether_tag=${__tether_secret:+;tether=$__tether_secret}
  __tether_b=$(printf '\033]133;B%s\007' "$__tether_tag")
  __tether_precmd() {
    local status=$?
    printf '\033]133;D;%s%s\007\033]7;file://%s%s%s\007\033]133;A%s\007' \
      "$status" "$__tether_tag" "${HOSTNAME-}" "${PWD//%/%25}" "$__tether_tag" "$__tether_tag"
    return $status
  }
  __tether_prompt() {
    local status=$?
    [[ $PS1 == *"$__tether_b"* ]] || PS1="$PS1\[$__tether_b\]"
    return $status
  }
  PS0="${PS0-}$(printf '\033]133;C%s\007' "$__tether_tag")"
  if [[ $(declare -p PROMPT_COMMAND 2>/dev/null) == 'declare -a'* ]]; then
    PROMPT_COMMAND=(__tether_precmd "${PROMPT_COMMAND[@]}" __tether_prompt)
  else
    PROMPT_COMMAND="__tether_precmd${PROMPT_COMMAND:+; $PROMPT_COMMAND}; __tether_prompt"
  fi
fi
unset __tether_secret
"#;

/// How to start a session's default shell with the integration: its argv,
/// and the start-up file to remove when the session ends.
pub struct Prepared {
    /// The shell's argv.
    pub command: Vec<String>,
    /// The start-up file (it deletes itself once read).
    pub file: PathBuf,
}

/// Writes the start-up file of session `name`'s shell `program` (in `dir`,
/// private) with `secret`, and gives the argv that reads it; `None` for a
/// shell tether does not integrate with.
///
/// # Errors
///
/// The file cannot be written.
pub fn prepare(dir: &Path, name: &str, program: &str, secret: &str) -> Result<Option<Prepared>> {
    let Some(shell) = Shell::of_program(program) else { return Ok(None) };
    crate::fsutil::ensure_private_dir(dir)?;
    let file = dir.join(format!("{name}.{}", "bashrc"));
    let quoted = file.display().to_string().replace('\'', r"'\''");
    let text = match shell {
        Shell::Bash => format!(
            "command rm -f -- '{quoted}' 2>/dev/null\n\
             __tether_secret={secret}\n\
             # The user's own start-up file first (bash read /etc/bash.bashrc already).\n\
             if [ -r ~/.bashrc ]; then . ~/.bashrc; fi\n\
             {}",
            snippet(shell)
        ),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("creating {}", file.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(Some(Prepared {
        command: vec![program.to_owned(), "--rcfile".into(), file.display().to_string()],
        file,
    }))
}

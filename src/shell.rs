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
    /// zsh.
    Zsh,
    /// fish 3.
    Fish,
}

impl Shell {
    /// The shell a program is, by its file name.
    pub fn of_program(program: &str) -> Option<Shell> {
        match Path::new(program).file_name()?.to_str()? {
            "bash" => Some(Shell::Bash),
            "zsh" => Some(Shell::Zsh),
            "fish" => Some(Shell::Fish),
            _ => None,
        }
    }

    /// The shell `tether shell-init NAME` names.
    ///
    /// # Errors
    ///
    /// Not a shell tether knows.
    pub fn named(name: &str) -> Result<Shell> {
        Shell::of_program(name).filter(|_| !name.contains('/')).ok_or_else(|| {
            crate::Failure::invalid(format!(
                "shell-init {name}: tether integrates with bash, zsh and fish"
            ))
            .into()
        })
    }
}

/// The snippet that makes `shell` write the marks. With the session's
/// secret set beforehand (`__tether_secret`), each mark carries it; the
/// snippet keeps it in a variable no program it runs inherits.
pub fn snippet(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => BASH,
        Shell::Zsh => ZSH,
        Shell::Fish => FISH,
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
  # Never in a program's environment (not even with `set -a`).
  export -n __tether_marks __tether_tag __tether_b
  __tether_precmd() {
    local status=$? dir=${PWD//[[:cntrl:]]/?}
    printf '\033]133;D;%s%s\007\033]7;file://%s%s%s\007\033]133;A%s\007' \
      "$status" "$__tether_tag" "${HOSTNAME-}" "${dir//%/%25}" "$__tether_tag" "$__tether_tag"
    return $status
  }
  __tether_prompt() {
    local status=$?
    [[ $PS1 == *"$__tether_b"* ]] || PS1="$PS1\[$__tether_b\]"
    # An exported prompt would hand the marks to every program.
    export -n PS1 PS0
    return $status
  }
  PS0="${PS0-}$(printf '\033]133;C%s\007' "$__tether_tag")"
  export -n PS0
  if [[ $(declare -p PROMPT_COMMAND 2>/dev/null) == 'declare -a'* ]]; then
    PROMPT_COMMAND=(__tether_precmd "${PROMPT_COMMAND[@]}" __tether_prompt)
  else
    # One command a line: the user's may end in `;`, `&` or a comment.
    PROMPT_COMMAND=$'__tether_precmd\n'"${PROMPT_COMMAND-}"$'\n__tether_prompt'
  fi
  # Exported, it would name tether's functions in every nested shell.
  export -n PROMPT_COMMAND
fi
unset __tether_secret
"#;

/// zsh: `D;$?`, OSC 7 and `A` from a precmd hook run first, `B` at the end
/// of PS1 from one run last (after any a theme runs), `C` from preexec.
const ZSH: &str = r#"# tether shell integration (docs/COMMANDS.md): OSC 133 and OSC 7 marks.
if [[ -o interactive && -z ${__tether_marks-} && $PS1 != *'133;'* ]]; then
  typeset -g __tether_marks=1
  typeset -g __tether_tag=${__tether_secret:+;tether=$__tether_secret}
  typeset -g __tether_b=$'\e]133;B'$__tether_tag$'\a'
  typeset -g +x __tether_marks __tether_tag __tether_b
  __tether_precmd() {
    local st=$? dir=${PWD//[[:cntrl:]]/?}
    printf '\033]133;D;%s%s\a\033]7;file://%s%s%s\a\033]133;A%s\a' \
      $st "$__tether_tag" "${HOST-}" "${dir//\%/%25}" "$__tether_tag" "$__tether_tag"
    return $st
  }
  __tether_prompt_end() {
    local st=$?
    [[ $PS1 == *$__tether_b* ]] || PS1=$PS1"%{$__tether_b%}"
    # An exported prompt would hand the marks to every program.
    typeset -g +x PS1
    return $st
  }
  __tether_preexec() { printf '\033]133;C%s\a' "$__tether_tag"; }
  precmd_functions=(__tether_precmd $precmd_functions __tether_prompt_end)
  preexec_functions+=(__tether_preexec)
fi
unset __tether_secret
"#;

/// fish 3: `A` and OSC 7 on the `fish_prompt` event, `B` after the prompt
/// (its function wrapped), `C` and `D;$status` on `fish_preexec` and
/// `fish_postexec`.
const FISH: &str = r#"# tether shell integration (docs/COMMANDS.md): OSC 133 and OSC 7 marks.
if status is-interactive; and not set -q __tether_marks
    set -g __tether_marks 1
    set -g __tether_tag ""
    set -q __tether_secret; and set -g __tether_tag ";tether=$__tether_secret"
    function __tether_prompt_event --on-event fish_prompt
        set -l dir (string replace -ra '[[:cntrl:]]' '?' -- $PWD | string replace -a % %25)
        printf '\e]7;file://%s%s%s\a\e]133;A%s\a' (hostname) $dir $__tether_tag $__tether_tag
    end
    function __tether_preexec --on-event fish_preexec
        printf '\e]133;C%s\a' $__tether_tag
    end
    function __tether_postexec --on-event fish_postexec
        printf '\e]133;D;%s%s\a' $status $__tether_tag
    end
    # The user's prompt runs first thing, so that it sees the command's
    # $status.
    if functions -q fish_prompt
        functions -c fish_prompt __tether_user_prompt
        function fish_prompt
            __tether_user_prompt
            printf '\e]133;B%s\a' $__tether_tag
        end
    else
        function fish_prompt
            printf '\e]133;B%s\a' $__tether_tag
        end
    end
end
set -e __tether_secret
"#;

/// How to start a session's default shell with the integration.
pub struct Prepared {
    /// The shell's argv.
    pub command: Vec<String>,
    /// Environment for it.
    pub env: Vec<(String, String)>,
    /// The start-up file or directory (it deletes itself once read), to
    /// remove when the session ends if the shell never read it.
    pub file: PathBuf,
}

/// Writes the start-up file of session `name`'s shell `program` (in `dir`,
/// private) with `secret`, and gives the argv and environment that make
/// the shell read it; `None` for a shell tether does not integrate with.
/// `zdotdir`: the user's `ZDOTDIR`, if set (zsh).
///
/// # Errors
///
/// The file cannot be written.
pub fn prepare(
    dir: &Path,
    name: &str,
    program: &str,
    secret: &str,
    zdotdir: Option<&str>,
) -> Result<Option<Prepared>> {
    let Some(shell) = Shell::of_program(program) else { return Ok(None) };
    crate::fsutil::ensure_private_dir(dir)?;
    let snippet = snippet(shell);
    Ok(Some(match shell {
        Shell::Bash => {
            let file = dir.join(format!("{name}.bashrc"));
            let q = sh_quote(&file.display().to_string());
            write_private(
                &file,
                &format!(
                    "command rm -f -- {q} 2>/dev/null\n\
                     __tether_secret={secret}\n\
                     # The user's own start-up file first (bash read /etc/bash.bashrc already).\n\
                     if [ -r ~/.bashrc ]; then . ~/.bashrc; fi\n\
                     {snippet}"
                ),
            )?;
            Prepared {
                command: vec![program.to_owned(), "--rcfile".into(), file.display().to_string()],
                env: Vec::new(),
                file,
            }
        }
        Shell::Zsh => {
            // ZDOTDIR points at a directory of tether's: its .zshenv reads
            // the user's, its .zshrc the user's then adds the marks (so
            // that they come after every hook the user's files add), and
            // gives ZDOTDIR back.
            let zdir = dir.join(format!("{name}.zsh"));
            crate::fsutil::ensure_private_dir(&zdir)?;
            let q = sh_quote(&zdir.display().to_string());
            write_private(
                &zdir.join(".zshenv"),
                &format!(
                    "if [[ -n ${{TETHER_ZDOTDIR+x}} ]]; then ZDOTDIR=$TETHER_ZDOTDIR; else unset ZDOTDIR; fi\n\
                     unset TETHER_ZDOTDIR\n\
                     typeset -g __tether_user_zdotdir=${{ZDOTDIR-}}\n\
                     [[ -r ${{ZDOTDIR:-$HOME}}/.zshenv ]] && source ${{ZDOTDIR:-$HOME}}/.zshenv\n\
                     __tether_user_zdotdir=${{ZDOTDIR-$__tether_user_zdotdir}}\n\
                     if [[ -o interactive ]]; then ZDOTDIR={q}; else command rm -rf -- {q} 2>/dev/null; fi\n"
                ),
            )?;
            write_private(
                &zdir.join(".zshrc"),
                &format!(
                    "command rm -rf -- {q} 2>/dev/null\n\
                     __tether_secret={secret}\n\
                     if [[ -n $__tether_user_zdotdir ]]; then ZDOTDIR=$__tether_user_zdotdir; else unset ZDOTDIR; fi\n\
                     unset __tether_user_zdotdir\n\
                     [[ -r ${{ZDOTDIR:-$HOME}}/.zshrc ]] && source ${{ZDOTDIR:-$HOME}}/.zshrc\n\
                     {snippet}"
                ),
            )?;
            let mut env = vec![("ZDOTDIR".to_owned(), zdir.display().to_string())];
            if let Some(user) = zdotdir {
                env.push(("TETHER_ZDOTDIR".to_owned(), user.to_owned()));
            }
            Prepared { command: vec![program.to_owned()], env, file: zdir }
        }
        Shell::Fish => {
            let file = dir.join(format!("{name}.fish"));
            let q = fish_quote(&file.display().to_string());
            write_private(
                &file,
                &format!(
                    "command rm -f -- {q} 2>/dev/null\nset -g __tether_secret {secret}\n{snippet}"
                ),
            )?;
            Prepared {
                command: vec![program.to_owned(), "-C".into(), format!("source {q}")],
                env: Vec::new(),
                file,
            }
        }
    }))
}

/// `text` in single quotes for sh, bash and zsh.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` in single quotes for fish.
fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

/// Writes `text` to a new private file (0600).
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

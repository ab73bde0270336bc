//! Commands as audit records (docs/COMMANDS.md): keys typed into a real
//! PTY running `tether attach` with bash as the default shell (no rc file
//! touched), then `tether commands`.

use crate::support::*;
use serde_json::Value;

/// `tether attach NAME` with bash as the default shell.
fn bash_session(env: &TestEnv, name: &str) -> Terminal {
    shell_session(env, "/bin/bash", name)
}

/// `tether attach NAME` with `shell` as the default shell, at its first
/// prompt.
fn shell_session(env: &TestEnv, shell: &str, name: &str) -> Terminal {
    let var = format!("SHELL={shell}");
    let term = env.terminal_program(&["/usr/bin/env", &var, bin(), "attach", name], 100, 30);
    term.wait_attached();
    // The first prompt (the recording's first command mark).
    wait_until("a prompt", || {
        let text = term.contents();
        let text = text.trim_end();
        text.ends_with(['$', '#', '>', '%'])
    });
    term
}

/// The commands `tether commands ARGS --json` lists.
fn commands(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    let mut argv = vec!["commands"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let out = env.run(&argv);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Types `keys` and waits until `name` has `count` commands that ended.
fn run_line(env: &TestEnv, term: &mut Terminal, name: &str, keys: &[u8], count: usize) {
    term.send(keys);
    wait_until(&format!("{count} commands ended in {name}"), || {
        commands(env, &[name]).iter().filter(|c| c["state"] == "ended").count() >= count
    });
}

#[test]
fn typed_commands_are_recorded_with_their_text_status_directory_and_typist() {
    let env = TestEnv::new();
    let mut term = bash_session(&env, "cmds");
    let lines: [&[u8]; 7] = [
        b"echo one\r",
        b"false\r",
        b"cd /tmp\r",
        b"printf 'x%.0s' {1..3}\r",
        // Edited before Enter: a backspace, and three steps left to
        // insert a letter.
        b"echo wrlx\x7fd\x1b[D\x1b[D\x1b[Do\r",
        // Recalled with the up arrow.
        b"\x1b[A\r",
        // A job that prints a forged end mark, then ends itself.
        b"printf '\\033]133;D;7\\007'; sleep 0.2\r",
    ];
    for (i, keys) in lines.iter().enumerate() {
        run_line(&env, &mut term, "cmds", keys, i + 1);
    }
    term.detach();
    let all = commands(&env, &["cmds"]);
    let texts: Vec<&str> = all.iter().map(|c| c["command"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "echo one",
            "false",
            "cd /tmp",
            "printf 'x%.0s' {1..3}",
            "echo world",
            "echo world",
            "printf '\\033]133;D;7\\007'; sleep 0.2",
        ],
        "{all:?}"
    );
    let exits: Vec<i64> = all.iter().map(|c| c["exit"].as_i64().unwrap()).collect();
    assert_eq!(exits, [0, 1, 0, 0, 0, 0, 0], "{all:?}");
    // The directory each began in: /tmp once `cd /tmp` has run.
    let home_cwd = env.root().display().to_string();
    assert_eq!(all[0]["cwd"], home_cwd.as_str());
    assert_eq!(all[2]["cwd"], home_cwd.as_str());
    assert_eq!(all[3]["cwd"], "/tmp");
    // Who typed them: the local user; the marks were tether's own.
    for c in &all {
        assert_eq!(c["who"], user_name().as_str(), "{c}");
        assert_eq!(c["marks"], "tether", "{c}");
    }
    // The forged end ended nothing: it is kept, as the job's.
    assert_eq!(all[6]["forged_ends"], serde_json::json!([7]), "{}", all[6]);
    // Times in order.
    let starts: Vec<f64> = all.iter().map(|c| c["offset"].as_f64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    // --failed: only `false`.
    let failed = commands(&env, &["cmds", "--failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["command"], "false");
    // The secret that vouches for the marks is nowhere in the recording.
    let recordings = env.root().join("data/tether/recordings");
    for entry in std::fs::read_dir(recordings).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(!text.contains("tether="), "{}", entry.path().display());
    }
    // The screen when command 4 began: its command line, not yet its output.
    let at = env.ok(&["replay", "cmds", "--at", "cmd:4"]);
    assert!(at.contains("printf 'x%.0s' {1..3}"), "{at}");
    assert!(!at.contains("xxx"), "{at}");
    assert_eq!(env.run(&["replay", "cmds", "--at", "cmd:99"]).status.code(), Some(2));
    // grep within the output of matching commands only.
    let found = env.ok(&["grep", "^one$", "cmds", "--command", "^echo one"]);
    assert_eq!(found.lines().count(), 1, "{found}");
    assert_eq!(env.run(&["grep", "^one$", "cmds", "--command", "^false"]).status.code(), Some(1));
    // The player: `}` jumps to the next command's start, and the status
    // line names the command at the moment shown, with its status.
    let mut player = env.terminal(&["replay", "cmds", "--speed", "0.25"], 120, 30);
    player.send(b" ");
    player.wait_text("||");
    player.wait_text("7 commands");
    player.send(b"}");
    player.wait_text("cmd 1: echo one (");
    player.send(b"}");
    player.wait_text("cmd 2: false (");
    player.send(b"}}");
    player.wait_text("cmd 4:");
    player.send(b"{");
    player.wait_text("cmd 3: cd /tmp");
    player.send(b"q");
    assert_eq!(player.wait_exit(), 0);
    // The plain listing: session, start, duration, exit, who, cwd, command.
    let listing = env.ok(&["commands", "cmds"]);
    let second: Vec<&str> = listing.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!(second.len(), 7, "{listing}");
    assert_eq!((second[0], second[3], second[6]), ("cmds", "1", "false"), "{listing}");
}

#[test]
fn commands_grep_finds_the_session_that_ran_it_and_a_running_command_shows_running() {
    let env = TestEnv::new();
    let mut a = bash_session(&env, "alpha");
    run_line(&env, &mut a, "alpha", b"echo alpha-only\r", 1);
    a.detach();
    let mut b = bash_session(&env, "beta");
    run_line(&env, &mut b, "beta", b"echo needle-in-beta\r", 1);
    b.send(b"sleep 30\r");
    wait_until("sleep to be listed as running", || {
        commands(&env, &["beta"])
            .iter()
            .any(|c| c["command"] == "sleep 30" && c["state"] == "running")
    });
    // Across every recording, the one session that ran it.
    let found = commands(&env, &["--grep", "needle-in"]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["session"], "beta");
    let listing = env.ok(&["commands", "beta"]);
    assert!(
        listing.lines().any(|l| l.ends_with("sleep 30") && l.contains("\trunning\t")),
        "{listing}"
    );
    // Nothing matches: exit 1.
    assert_eq!(env.run(&["commands", "--grep", "no-such-command"]).status.code(), Some(1));
    b.send(b"\x03");
    b.detach();
}

#[test]
fn shell_init_prints_a_snippet_bash_accepts_and_other_commands_get_no_integration() {
    let env = TestEnv::new();
    let snippet = env.ok(&["shell-init", "bash"]);
    assert!(snippet.contains("133;"), "{snippet}");
    let check = std::process::Command::new("bash").args(["-n", "-c", &snippet]).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let out = env.run(&["shell-init", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    // A session with a command of its own (here bash itself) is started
    // as asked: no integration, no commands.
    env.start("plain", &["bash", "-c", "echo plain; sleep 0.3"]);
    env.ok(&["wait", "plain"]);
    assert!(commands(&env, &["plain"]).is_empty());
}

#[test]
fn over_ssh_the_typist_is_the_key_s_comment_and_fingerprint() {
    use crate::support::ssh::{Daemon, Key, Ssh, authorize};
    let env = TestEnv::new();
    let key = Key::new(&env.root().join("keys"), "alice", "alice@laptop");
    authorize(&env, &[key.public()]);
    let daemon = Daemon::start(&env, "127.0.0.1:0");
    let ssh = Ssh::new(&env, &daemon, &key);
    // A session whose command is the default shell, bash.
    let mut new = env.cmd(&["new", "-d", "remote"]);
    new.env("SHELL", "/bin/bash");
    let out = run_with_timeout(new, TIMEOUT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let argv = ssh.argv(&["-tt"], &["attach", "remote"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut term = env.terminal_program(&argv, 100, 30);
    term.wait_attached();
    run_line(&env, &mut term, "remote", b"echo typed-over-ssh\r", 1);
    assert_eq!(term.detach(), 0);
    let all = commands(&env, &["remote"]);
    assert_eq!(all[0]["command"], "echo typed-over-ssh", "{all:?}");
    assert_eq!(all[0]["who"], "alice@laptop", "{all:?}");
    assert_eq!(all[0]["fingerprint"], key.fingerprint().as_str(), "{all:?}");
    assert_eq!(all[0]["marks"], "tether", "{all:?}");
}

/// The same commands typed into `shell`: text, status, directory, marks.
fn zsh_or_fish(shell: &str) {
    let env = TestEnv::new();
    // The user's own start-up file sets the prompt in a hook, as themes do.
    let zshrc = "theme() { PS1='themed %# ' }\nprecmd_functions+=(theme)\n";
    std::fs::write(env.home().join(".zshrc"), zshrc).unwrap();
    let mut term = shell_session(&env, shell, "sh1");
    let lines: [&[u8]; 4] = [b"echo one\r", b"false\r", b"cd /tmp\r", b"echo two\r"];
    for (i, keys) in lines.iter().enumerate() {
        run_line(&env, &mut term, "sh1", keys, i + 1);
    }
    if shell.ends_with("zsh") {
        term.wait_text("themed");
    }
    term.detach();
    let all = commands(&env, &["sh1"]);
    let texts: Vec<&str> = all.iter().map(|c| c["command"].as_str().unwrap()).collect();
    assert_eq!(texts, ["echo one", "false", "cd /tmp", "echo two"], "{all:?}");
    let exits: Vec<i64> = all.iter().map(|c| c["exit"].as_i64().unwrap()).collect();
    assert_eq!(exits, [0, 1, 0, 0], "{all:?}");
    assert_eq!(all[3]["cwd"], "/tmp", "{all:?}");
    for c in &all {
        assert_eq!(c["marks"], "tether", "{c}");
    }
    // The start-up files are gone.
    let left: Vec<_> = std::fs::read_dir(env.runtime_dir().join("shell"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn zsh_marks_its_commands_even_when_a_theme_sets_the_prompt() {
    zsh_or_fish("/usr/bin/zsh");
}

#[test]
fn fish_marks_its_commands() {
    zsh_or_fish("/usr/bin/fish");
}

#[test]
fn the_command_that_ends_the_shell_ends_with_the_session_and_nothing_leaks_to_children() {
    let env = TestEnv::new();
    // A user's own exported PROMPT_COMMAND: a nested shell must not
    // inherit tether's functions in it.
    std::fs::write(env.home().join(".bashrc"), "export PROMPT_COMMAND='history -a;'\n").unwrap();
    let mut term = bash_session(&env, "last");
    run_line(&env, &mut term, "last", b"env | grep -c __tether\r", 1);
    term.send(b"exit 3\r");
    term.wait_exit();
    env.run(&["wait", "last"]);
    let all = commands(&env, &["last"]);
    assert_eq!(all.len(), 2, "{all:?}");
    // `grep -c` found nothing: exit 1.
    assert_eq!(all[0]["exit"], 1, "{all:?}");
    assert_eq!(all[1]["command"], "exit 3");
    assert_eq!(all[1]["state"], "ended");
    assert_eq!(all[1]["exit"], 3);
    assert_eq!(all[1]["with_session"], true);
}

#[test]
fn fish_s_own_prompt_still_sees_the_command_s_status() {
    let env = TestEnv::new();
    let functions = env.root().join("config/fish/functions");
    std::fs::create_dir_all(&functions).unwrap();
    std::fs::write(
        functions.join("fish_prompt.fish"),
        "function fish_prompt\n    set -l s $status\n    echo -n \"st=$s> \"\nend\n",
    )
    .unwrap();
    let mut term = shell_session(&env, "/usr/bin/fish", "fst");
    run_line(&env, &mut term, "fst", b"false\r", 1);
    term.wait_text("st=1>");
    term.detach();
    assert_eq!(commands(&env, &["fst"])[0]["exit"], 1);
}

#[test]
fn a_hand_edited_command_event_is_named_and_the_other_recordings_still_listed() {
    let env = TestEnv::new();
    // Jobs that write the marks themselves (as a prompt of the user's own).
    let script =
        r"printf '$ \033]133;B\007make\r\n\033]133;C\007out\r\n\033]133;D;2\007'; sleep 0.2";
    for name in ["good", "bent"] {
        env.start(name, &["sh", "-c", script]);
        env.ok(&["wait", name]);
    }
    let dir = env.root().join("data/tether/recordings");
    let bent = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("bent-") && name.ends_with(".cast")
        })
        .unwrap();
    let text = std::fs::read_to_string(&bent).unwrap().replacen("\"c\", \"{", "\"c\", \"{oops", 1);
    assert!(text.contains("{oops"), "no command event in {text}");
    std::fs::write(&bent, text).unwrap();
    let out = env.run(&["commands", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad command"));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("\"session\":\"good\""), "{listed}");
    // verify names the edited line.
    let out = env.run(&["verify", &bent.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
}

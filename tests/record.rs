//! Recording: lossless, tamper-evident, readable by the real asciinema
//! tools; verify, export, grep, replay.

use crate::support::*;
use std::path::PathBuf;
use std::process::Command;

fn recording_of(env: &TestEnv, name: &str) -> PathBuf {
    PathBuf::from(env.session(name)["recording_path"].as_str().expect("a recording path"))
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The asciinema 3.x CLI (from crates.io), on PATH or in ~/.cargo/bin.
fn asciinema3() -> PathBuf {
    let cargo_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/asciinema"));
    cargo_bin.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("asciinema"))
}

fn verify(env: &TestEnv, target: &str) -> (i32, serde_json::Value) {
    let out = env.run(&["verify", target, "--json"]);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), report)
}

/// A job printing text, colours, a UTF-8 character split across two
/// writes, and binary garbage; and the bytes it wrote.
fn mixed_job(env: &TestEnv) -> (Vec<String>, Vec<u8>) {
    let noise: Vec<u8> =
        (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let noise_file = env.root().join("noise.bin");
    std::fs::write(&noise_file, &noise).unwrap();
    let script = format!(
        "printf 'plain text\\n\\033[1;31mred bold\\033[0m \\342\\202'; sleep 0.2; printf '\\254 euro\\n'; cat {}; printf 'end\\n'",
        noise_file.display()
    );
    let mut expected = b"plain text\n\x1b[1;31mred bold\x1b[0m \xe2\x82\xac euro\n".to_vec();
    expected.extend_from_slice(&noise);
    expected.extend_from_slice(b"end\n");
    (vec!["sh".into(), "-c".into(), script], expected)
}

#[test]
fn raw_export_is_exactly_what_the_job_wrote() {
    let env = TestEnv::new();
    let (command, expected) = mixed_job(&env);
    let argv: Vec<&str> = command.iter().map(String::as_str).collect();
    env.start("mixed", &argv);
    assert_eq!(env.run(&["wait", "mixed"]).status.code(), Some(0));
    let out = env.run(&["export", "mixed", "--format", "raw"]);
    assert!(out.status.success());
    assert_eq!(sha256(&out.stdout), sha256(&expected));
    // The same with the terminal in raw mode (no \n → \r\n translation).
    let raw_script = format!("stty raw -echo; {}", command[2]);
    env.start("mixed-raw", &["sh", "-c", &raw_script]);
    assert_eq!(env.run(&["wait", "mixed-raw"]).status.code(), Some(0));
    let out = env.run(&["export", "mixed-raw", "--format", "raw"]);
    assert_eq!(sha256(&out.stdout), sha256(&expected));
    let (code, report) = verify(&env, "mixed");
    assert_eq!(code, 0, "{report}");
}

#[test]
fn recordings_are_private_asciicast_v3_played_by_asciinema() {
    let env = TestEnv::new();
    env.start(
        "text",
        &[
            "sh",
            "-c",
            "printf 'hello \\033[32mworld\\033[0m\\n'; sleep 0.2; printf 'second line\\n'",
        ],
    );
    env.run(&["wait", "text"]);
    let path = recording_of(&env, "text");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let header: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&path).unwrap().lines().next().unwrap())
            .unwrap();
    assert_eq!(header["version"], 3);
    assert_eq!(header["title"], "text");
    assert_eq!(header["term"]["cols"], 80);
    // asciinema 3 converts it; the output is what the terminal showed.
    let raw = env.root().join("a3.raw");
    let out = Command::new(asciinema3())
        .arg("convert")
        .arg("-f")
        .arg("raw")
        .arg(&path)
        .arg(&raw)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8(std::fs::read(&raw).unwrap()).unwrap();
    assert!(shown.ends_with("hello \x1b[32mworld\x1b[0m\r\nsecond line\r\n"), "{shown:?}");
    // asciinema 2 (PyPI) plays the v2 export.
    let v2 = env.root().join("text.v2.cast");
    env.ok(&["export", "text", "--format", "v2", "-o", v2.to_str().unwrap()]);
    let out = Command::new("python3").args(["-m", "asciinema", "cat"]).arg(&v2).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello \x1b[32mworld\x1b[0m\r\nsecond line\r\n"
    );
    let txt = env.ok(&["export", "text", "--format", "txt"]);
    assert_eq!(txt, "hello world\nsecond line\n");
}

/// A finished recording whose lines can be tampered with.
fn finished(env: &TestEnv) -> PathBuf {
    env.start("audit", &["sh", "-c", "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.3; done"]);
    env.run(&["wait", "audit"]);
    recording_of(env, "audit")
}

/// A change to a recording's lines.
type Tamper = dyn Fn(&mut Vec<String>);

/// A changed copy of a recording, under the same name in a directory of
/// its own (a name of tether's form that is not its own would be reported
/// as renamed first).
fn tamper(path: &PathBuf, f: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let dir = path.parent().unwrap().parent().unwrap().join("tampered");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(path.file_name().unwrap());
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    std::fs::write(&copy, lines.join("\n") + "\n").unwrap();
    copy
}

fn event_lines(lines: &[String]) -> Vec<usize> {
    (1..lines.len()).filter(|i| lines[*i].starts_with('[')).collect()
}

#[test]
fn verify_tells_intact_from_each_kind_of_tampering() {
    let env = TestEnv::new();
    let path = finished(&env);
    let (code, report) = verify(&env, path.to_str().unwrap());
    assert_eq!((code, report["status"].as_str()), (0, Some("intact")), "{report}");
    assert!(report["trusted"].as_bool().unwrap());
    let human = env.ok(&["verify", path.to_str().unwrap()]);
    assert!(human.contains("SHA256:") && human.contains("OK"), "{human}");

    let cases: Vec<(&str, Box<Tamper>)> = vec![
        (
            "modified",
            Box::new(|l: &mut Vec<String>| {
                let i = *event_lines(l).iter().find(|i| l[**i].contains("line 3")).unwrap();
                l[i] = l[i].replace("line 3", "line 9");
            }),
        ),
        (
            "deleted",
            Box::new(|l: &mut Vec<String>| {
                let i = event_lines(l)[1];
                l.remove(i);
            }),
        ),
        (
            "reordered",
            Box::new(|l: &mut Vec<String>| {
                let e = event_lines(l);
                l.swap(e[0], e[1]);
            }),
        ),
        (
            "inserted",
            Box::new(|l: &mut Vec<String>| {
                let i = event_lines(l)[1];
                l.insert(i, "[0.1, \"o\", \"forged\\r\\n\"]".into());
            }),
        ),
        (
            "truncated",
            Box::new(|l: &mut Vec<String>| {
                l.truncate(l.len() - 3);
            }),
        ),
    ];
    for (want, change) in cases {
        let copy = tamper(&path, change);
        let (code, report) = verify(&env, copy.to_str().unwrap());
        assert_eq!(code, 1, "{want}: {report}");
        let got = report["status"].as_str().unwrap();
        // A cut file has no session record pointing at it: it reads as a
        // crash, and only the part before the last checkpoint counts.
        let ok = got == want || (want == "truncated" && got == "interrupted");
        assert!(ok, "{want}: {report}");
        assert!(!report["message"].as_str().unwrap().is_empty());
    }
    // Cutting the session's own file is told apart from a crash: the
    // session record keeps the signed end.
    let original = std::fs::read_to_string(&path).unwrap();
    let cut: Vec<&str> = original.lines().collect();
    std::fs::write(&path, cut[..cut.len() - 3].join("\n") + "\n").unwrap();
    let (code, report) = verify(&env, "audit");
    assert_eq!((code, report["status"].as_str()), (1, Some("truncated")), "{report}");
}

#[test]
fn a_killed_keeper_leaves_an_interrupted_recording_that_verifies_up_to_its_checkpoint() {
    let env = TestEnv::new();
    env.start("crash", &["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done"]);
    wait_until("a few checkpoints", || {
        std::fs::read_to_string(recording_of(&env, "crash"))
            .unwrap()
            .matches("#tether:checkpoint")
            .count()
            >= 2
    });
    let (code, report) = verify(&env, "crash");
    assert_eq!((code, report["status"].as_str()), (1, Some("live")), "{report}");
    kill9(env.session("crash")["keeper_pid"].as_u64().unwrap() as u32);
    wait_until("the session to be lost", || env.session("crash")["state"] == "lost");
    let (code, report) = verify(&env, "crash");
    assert_eq!((code, report["status"].as_str()), (1, Some("interrupted")), "{report}");
    assert!(report["vouched_lines"].as_u64().unwrap() > 0);
    // asciinema still plays it.
    let path = recording_of(&env, "crash");
    let out = Command::new(asciinema3())
        .arg("convert")
        .arg("-f")
        .arg("txt")
        .arg(&path)
        .arg(env.root().join("c.txt"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(env.root().join("c.txt")).unwrap().contains("tick 1"));
}

#[test]
fn replay_at_grep_and_markers() {
    let env = TestEnv::new();
    env.start("story", &["sh", "-c", "echo first; sleep 1.2; printf 'abc\\rX\\033[3Cmoved\\n'; sleep 1.2; echo third; read x"]);
    env.wait_text("story", "third");
    let mut term = env.terminal(&["attach", "story"], 80, 24);
    term.wait_attached();
    term.send(b"go\r");
    assert_eq!(env.run(&["wait", "story"]).status.code(), Some(0));
    // The screen of a moment.
    let at = env.ok(&["replay", "story", "--at", "+0.5"]);
    assert_eq!(at.trim_end(), "first");
    let at = env.ok(&["replay", "story", "--at", "+2"]);
    assert!(at.contains("Xbc moved") && !at.contains("third"), "{at}");
    // grep finds text drawn with a carriage return and cursor movement.
    let out = env.ok(&["grep", "Xbc +moved"]);
    let fields: Vec<&str> = out.trim_end().split('\t').collect();
    assert_eq!(fields[0], "story");
    assert!(fields[1].ends_with('Z'));
    let offset: f64 = fields[2].parse().unwrap();
    assert!((1.0..2.0).contains(&offset), "{out}");
    assert_eq!(fields[3], "Xbc moved");
    assert_eq!(env.run(&["grep", "no such text"]).status.code(), Some(1));
    let json = env.ok(&["grep", "third", "story", "--json"]);
    let m: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(m["line"], "third");
    // The attach and detach are markers in the recording.
    let text = std::fs::read_to_string(recording_of(&env, "story")).unwrap();
    let marker = format!("\"m\", \"attach {} (owner, local)\"", user_name());
    assert!(text.contains(&marker), "{text}");
}

#[test]
fn the_player_pauses_seeks_and_searches() {
    let env = TestEnv::new();
    env.start("movie", &["sh", "-c", "for i in $(seq 1 30); do echo frame $i; sleep 0.1; done; echo needle here; sleep 0.5; echo after"]);
    env.run(&["wait", "movie"]);
    let mut player = env.terminal(&["replay", "movie", "--speed", "0.25"], 80, 24);
    player.wait_text("frame 1");
    player.send(b" ");
    player.wait_text("||");
    let paused = player.contents();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(player.contents(), paused, "nothing moves while paused");
    player.send(b"/needle\r");
    player.wait_text("needle here");
    player.send(b"\x1b[D");
    player.wait_screen("seeking back 5 s", |s| !s.contents().contains("needle here"));
    player.send(b"g+1\r");
    player.wait_screen("go to +1s", |s| {
        s.contents().contains("frame 5") && !s.contents().contains("frame 20")
    });
    player.send(b"q");
    assert_eq!(player.wait_exit(), 0);
}

#[test]
fn a_disk_that_refuses_writes_degrades_the_recording_and_the_gap_is_recorded() {
    let env = TestEnv::new();
    let flag = env.root().join("fail-writes");
    let mut cmd = env.cmd(&[
        "new",
        "-d",
        "disk",
        "--",
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo n$i; sleep 0.05; done",
    ]);
    cmd.env("TETHER_TEST_FAIL_RECORDING", &flag);
    assert!(run_with_timeout(cmd, TIMEOUT).status.success());
    env.wait_text("disk", "n3");
    std::fs::write(&flag, "").unwrap();
    wait_until("degraded", || env.session("disk")["recording"] == "degraded");
    // The job runs on.
    let count = || {
        env.tail("disk")
            .lines()
            .filter_map(|l| l.strip_prefix('n')?.parse::<u64>().ok())
            .max()
            .unwrap()
    };
    let before = count();
    wait_until("the job to keep running", || count() > before + 10);
    std::fs::remove_file(&flag).unwrap();
    wait_until("recovery", || env.session("disk")["recording"] == "ok");
    let text = std::fs::read_to_string(recording_of(&env, "disk")).unwrap();
    let gap = text.lines().find(|l| l.contains("\"g\"")).expect("a gap event");
    assert!(gap.contains("lost_bytes"), "{gap}");
    env.ok(&["kill", "disk"]);
    let (_, report) = verify(&env, "disk");
    assert_eq!(report["status"], "intact", "{report}");
}

#[test]
fn input_is_recorded_only_when_asked_and_masked_without_echo() {
    let env = TestEnv::new();
    env.ok(&[
        "new",
        "-d",
        "--record-input",
        "typed",
        "--",
        "sh",
        "-c",
        "read a; stty -echo; read secret; stty echo; echo ok",
    ]);
    let mut term = env.terminal(&["attach", "typed"], 80, 24);
    term.wait_attached();
    term.send(b"visible\r");
    wait_until("the prompt to turn echo off", || env.tail("typed").contains("visible"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    term.send(b"hunter2\r");
    assert_eq!(env.run(&["wait", "typed"]).status.code(), Some(0));
    let text = std::fs::read_to_string(recording_of(&env, "typed")).unwrap();
    assert!(text.contains("\"i\", \"visible"), "{text}");
    assert!(!text.contains("hunter2"), "the secret was recorded");
    assert!(text.contains("\"i\", \"*******"), "{text}");
    env.start("plain", &["sh", "-c", "read a"]);
    let mut term = env.terminal(&["attach", "plain"], 80, 24);
    term.wait_attached();
    term.send(b"nope\r");
    env.run(&["wait", "plain"]);
    assert!(!std::fs::read_to_string(recording_of(&env, "plain")).unwrap().contains("\"i\""));
}

#[test]
fn no_record_and_required_recording() {
    let env = TestEnv::new();
    env.ok(&["new", "-d", "--no-record", "quiet", "--", "sleep", "60"]);
    let s = env.session("quiet");
    assert_eq!(s["recording"], "off");
    assert!(s["recording_path"].is_null());
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("config.toml"), "recording = \"required\"\n").unwrap();
    let out = env.run(&["new", "-d", "--no-record", "must", "--", "true"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires recording"));
}

/// A finished recording of several segments (64 KiB each), and the text
/// its job printed.
fn segmented(env: &TestEnv) -> (PathBuf, String) {
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("config.toml"), "segment_bytes = 65536\n").unwrap();
    let data = env.root().join("data.txt");
    let text: String = (0..20_000).map(|i| format!("row {i} of the log\n")).collect();
    std::fs::write(&data, &text).unwrap();
    env.start("big", &["sh", "-c", &format!("cat {}", data.display())]);
    env.run(&["wait", "big"]);
    (recording_of(env, "big"), text)
}

/// Segment `n` of the recording whose base is `first`.
fn segment(first: &std::path::Path, n: u32) -> PathBuf {
    if n == 0 {
        return first.to_owned();
    }
    PathBuf::from(first.to_string_lossy().replace(".cast", &format!(".{n}.cast")))
}

/// The `seq` of the last checkpoint in a segment.
fn last_checkpoint(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().rev().find(|l| l.starts_with("#tether:checkpoint ")).unwrap();
    let cp: serde_json::Value =
        serde_json::from_str(line.strip_prefix("#tether:checkpoint ").unwrap()).unwrap();
    cp["seq"].as_u64().unwrap()
}

#[test]
fn segments_rotate_and_read_as_one_recording() {
    let env = TestEnv::new();
    let (first, text) = segmented(&env);
    let second = segment(&first, 1);
    assert!(second.exists(), "a second segment");
    let (code, report) = verify(&env, "big");
    assert_eq!(code, 0, "{report}");
    assert!(report["segments"].as_u64().unwrap() >= 3, "{report}");
    let raw = env.run(&["export", "big", "--format", "raw"]).stdout;
    assert_eq!(raw, text.as_bytes());
    // A moment deep in the recording.
    let at = env.ok(&["replay", "big", "--at", "+60"]);
    assert!(at.contains("row 19999"), "{at}");
}

/// `tether grep PATTERN NAME --json`: each match's offset and line.
fn grep_lines(env: &TestEnv, pattern: &str, name: &str) -> Vec<(f64, String)> {
    let out = env.run(&["grep", pattern, name, "--json"]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let m: serde_json::Value = serde_json::from_str(l).unwrap();
            // The exact number as printed (serde_json may round the last
            // digit), so that `replay --at` sees the very same moment.
            let offset = l.split("\"offset\":").nth(1).unwrap().split(',').next().unwrap();
            (offset.parse().unwrap(), m["line"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Asserts that grep found exactly `expected` (substrings, in order), each
/// at a time when the screen showed it, at increasing times.
fn assert_found_as_shown(env: &TestEnv, name: &str, found: &[(f64, String)], expected: &[&str]) {
    assert_eq!(found.len(), expected.len(), "{found:?}");
    for ((offset, line), want) in found.iter().zip(expected) {
        assert!(line.contains(want), "{want}: {found:?}");
        let screen = env.ok(&["replay", name, "--at", &format!("+{offset}")]);
        assert!(
            screen.contains(line.trim()),
            "{line:?} is not on the screen at {offset}: {screen}"
        );
    }
    assert!(found.windows(2).all(|w| w[0].0 < w[1].0), "{found:?}");
}

/// A job that draws four full screens in place, `PHASE-A` .. `PHASE-D`,
/// with a clear and cursor moves (SCREEN, then ALT to end).
fn phases(start: &str, end: &str) -> String {
    format!(
        "printf 'before\\n{start}'; for p in A B C D; do printf '\\033[2J\\033[H== status ==\\033[5;10HPHASE-%s running\\033[12;1Hstep %s\\033[H' $p $p; sleep 0.3; done; printf '{end}after\\n'"
    )
}

#[test]
fn grep_finds_every_screen_of_a_display_cleared_and_redrawn_in_place() {
    let env = TestEnv::new();
    env.start("phases", &["sh", "-c", &phases("", "\\033[2J\\033[H")]);
    assert_eq!(env.run(&["wait", "phases"]).status.code(), Some(0));
    let found = grep_lines(&env, "PHASE", "phases");
    assert_found_as_shown(&env, "phases", &found, &["PHASE-A", "PHASE-B", "PHASE-C", "PHASE-D"]);
    let steps = grep_lines(&env, "^step", "phases");
    assert_found_as_shown(&env, "phases", &steps, &["step A", "step B", "step C", "step D"]);
    assert_eq!(grep_lines(&env, "before|after", "phases").len(), 2);
}

#[test]
fn grep_finds_every_screen_of_a_full_screen_program() {
    let env = TestEnv::new();
    env.start("top", &["sh", "-c", &phases("\\033[?1049h", "\\033[?1049l")]);
    assert_eq!(env.run(&["wait", "top"]).status.code(), Some(0));
    let found = grep_lines(&env, "PHASE", "top");
    assert_found_as_shown(&env, "top", &found, &["PHASE-A", "PHASE-B", "PHASE-C", "PHASE-D"]);
    // Redrawn unchanged in place: shown once.
    assert_eq!(grep_lines(&env, "== status ==", "top").len(), 1);
    // The main screen's lines, kept under the program, once each.
    let around: Vec<String> =
        grep_lines(&env, "before|after", "top").into_iter().map(|(_, l)| l).collect();
    assert_eq!(around, ["before", "after"]);
}

#[test]
fn grep_finds_each_form_of_an_overwritten_line_and_a_line_printed_in_pieces_once() {
    let env = TestEnv::new();
    let script = "printf 'progress 1/3'; sleep 0.3; printf '\\rprogress 2/3'; sleep 0.3; printf '\\rprogress 3/3 ok\\n'; \
                  printf 'piece-one '; sleep 0.3; printf 'piece-two '; sleep 0.3; printf 'piece-three\\n'";
    env.start("forms", &["sh", "-c", script]);
    assert_eq!(env.run(&["wait", "forms"]).status.code(), Some(0));
    let found = grep_lines(&env, "progress", "forms");
    assert_found_as_shown(
        &env,
        "forms",
        &found,
        &["progress 1/3", "progress 2/3", "progress 3/3 ok"],
    );
    let pieces = grep_lines(&env, "piece", "forms");
    assert_eq!(pieces.len(), 1, "{pieces:?}");
    assert_eq!(pieces[0].1, "piece-one piece-two piece-three");
}

#[test]
fn grep_finds_lines_under_a_full_screen_program_once() {
    let env = TestEnv::new();
    let script = "printf 'under-1\\nunder-2\\n'; sleep 0.3; printf '\\033[?1049h\\033[Hfull-screen'; sleep 0.3; \
                  printf '\\033[?1049l'; sleep 0.3; printf 'over\\n'";
    env.start("under", &["sh", "-c", script]);
    assert_eq!(env.run(&["wait", "under"]).status.code(), Some(0));
    let found = grep_lines(&env, "under|full|over", "under");
    assert_found_as_shown(&env, "under", &found[1..], &["under-2", "full-screen", "over"]);
    assert_eq!(found[0].1, "under-1");
}

#[test]
fn grep_finds_each_of_many_lines_printed_at_once() {
    let env = TestEnv::new();
    env.start("flood", &["sh", "-c", "awk 'BEGIN { for (i = 1; i <= 5000; i++) print \"n-\" i }'"]);
    assert_eq!(env.run(&["wait", "flood"]).status.code(), Some(0));
    let found = grep_lines(&env, "^n-", "flood");
    let lines: Vec<String> = found.iter().map(|(_, l)| l.clone()).collect();
    let expected: Vec<String> = (1..=5000).map(|i| format!("n-{i}")).collect();
    assert_eq!(lines, expected);
    assert!(found.windows(2).all(|w| w[0].0 <= w[1].0));
}

/// Issue "Attacked from outside the repo", 4: one byte without a newline at
/// the end of segment 0 hid every later segment from grep, export and
/// replay while verify said OK. Now verify reports it (segment and byte
/// offset) and the readers stop with an error instead of a silent end.
#[test]
fn a_torn_line_before_the_last_segment_is_damage_for_verify_and_every_reader() {
    let env = TestEnv::new();
    let (first, _) = segmented(&env);
    assert!(segment(&first, 2).exists());
    let len = std::fs::metadata(&first).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&first).unwrap();
    std::io::Write::write_all(&mut f, b"X").unwrap();
    drop(f);
    let (code, report) = verify(&env, "big");
    assert_eq!((code, report["status"].as_str()), (1, Some("modified")), "{report}");
    assert_eq!(report["first_bad"]["segment"], 0, "{report}");
    assert_eq!(report["first_bad"]["offset"], len, "{report}");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("segment 0") && message.contains(&format!("byte {len}")), "{report}");
    // The readers say the same instead of stopping quietly at segment 0.
    for args in [
        &["export", "big", "--format", "raw"][..],
        &["grep", "row 19999", "big"],
        &["replay", "big", "--at", "+60"],
    ] {
        let out = env.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.status.code() != Some(1), "{args:?}: {out:?}");
        assert!(stderr.contains("segment 0") && stderr.contains("torn"), "{args:?}: {stderr}");
    }
}

/// Issue "Attacked from outside the repo", 5: a recording copied over
/// another's file name verified OK.
#[test]
fn a_recording_copied_over_anothers_name_is_reported_replaced_or_renamed() {
    let env = TestEnv::new();
    for name in ["alpha", "beta"] {
        env.start(name, &["sh", "-c", &format!("echo {name} was here")]);
        env.run(&["wait", name]);
    }
    let (alpha, beta) = (recording_of(&env, "alpha"), recording_of(&env, "beta"));
    assert_eq!(verify(&env, "beta").1["status"], "intact");
    // A copy under a name of its own (not tether's form) is still the same
    // recording.
    let plain = env.root().join("evidence.cast");
    std::fs::copy(&alpha, &plain).unwrap();
    let (code, report) = verify(&env, plain.to_str().unwrap());
    assert_eq!((code, report["status"].as_str()), (0, Some("intact")), "{report}");
    // Over beta's own file: beta's session record names the file.
    std::fs::copy(&alpha, &beta).unwrap();
    for target in ["beta", beta.to_str().unwrap()] {
        let (code, report) = verify(&env, target);
        assert_eq!((code, report["status"].as_str()), (1, Some("replaced")), "{report}");
        let message = report["message"].as_str().unwrap();
        assert!(message.contains("alpha") && message.contains("beta"), "{report}");
    }
    // Under beta's file name elsewhere: no record, the name alone tells.
    let elsewhere = env.root().join("copies");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let renamed = elsewhere.join(beta.file_name().unwrap());
    std::fs::copy(&alpha, &renamed).unwrap();
    let (code, report) = verify(&env, renamed.to_str().unwrap());
    assert_eq!((code, report["status"].as_str()), (1, Some("renamed")), "{report}");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("alpha") && message.contains("beta"), "{report}");
}

/// Issue "Attacked from outside the repo", 5: a deleted middle segment read
/// as a plain truncation, without naming the segments still there.
#[test]
fn missing_and_stray_segments_are_named_and_a_cut_at_a_checkpoint_is_told() {
    let env = TestEnv::new();
    let (first, _) = segmented(&env);
    let count = (0..).take_while(|n| segment(&first, *n).exists()).count() as u32;
    assert!(count >= 6, "{count} segments");
    let keep: Vec<Vec<u8>> =
        (0..count).map(|n| std::fs::read(segment(&first, n)).unwrap()).collect();
    let restore = || {
        for (n, bytes) in keep.iter().enumerate() {
            std::fs::write(segment(&first, n as u32), bytes).unwrap();
        }
    };
    let name = |n: u32| segment(&first, n).file_name().unwrap().to_string_lossy().into_owned();

    // A middle segment: named, with the cut and what remains after it.
    std::fs::remove_file(segment(&first, 2)).unwrap();
    let (code, report) = verify(&env, "big");
    assert_eq!((code, report["status"].as_str()), (1, Some("deleted")), "{report}");
    assert_eq!(report["missing_segments"], serde_json::json!([2]), "{report}");
    let message = report["message"].as_str().unwrap();
    let cut = last_checkpoint(&segment(&first, 1));
    assert!(message.contains(&format!("cut at checkpoint {cut}")), "{report}");
    assert!(message.contains(&name(3)) && message.contains(&name(count - 1)), "{report}");
    assert_eq!(report["cut_at_checkpoint"], cut, "{report}");
    let unread = report["unread_segments"].as_array().unwrap();
    assert_eq!(unread.len() as u32, count - 3, "{report}");
    let out = env.run(&["export", "big", "--format", "raw"]);
    assert!(!out.status.success(), "export reads past a missing segment");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"), "{out:?}");

    // Two of them, and a stray named like a segment.
    std::fs::remove_file(segment(&first, 4)).unwrap();
    let stray = PathBuf::from(first.to_string_lossy().replace(".cast", ".03.cast"));
    std::fs::write(&stray, &keep[3]).unwrap();
    let (_, report) = verify(&env, "big");
    assert_eq!(report["status"], "deleted", "{report}");
    assert_eq!(report["missing_segments"], serde_json::json!([2, 4]), "{report}");
    let extra = report["extra_files"].as_array().unwrap();
    assert!(extra.iter().any(|f| f.as_str().unwrap().ends_with(".03.cast")), "{report}");

    // The stray alone: the recording is whole, but not alone.
    restore();
    let (code, report) = verify(&env, "big");
    assert_eq!((code, report["status"].as_str()), (1, Some("inserted")), "{report}");
    assert!(report["message"].as_str().unwrap().contains(".03.cast"), "{report}");
    std::fs::remove_file(&stray).unwrap();
    assert_eq!(verify(&env, "big").0, 0);

    // The last segments gone: a truncation at a checkpoint, and the
    // index still names what was there.
    for n in 2..count {
        std::fs::remove_file(segment(&first, n)).unwrap();
    }
    let (code, report) = verify(&env, "big");
    assert_eq!((code, report["status"].as_str()), (1, Some("truncated")), "{report}");
    let message = report["message"].as_str().unwrap();
    assert!(message.contains(&format!("cut at checkpoint {cut}")), "{report}");
    let missing: Vec<u64> = (2..u64::from(count)).collect();
    assert_eq!(report["missing_segments"], serde_json::json!(missing), "{report}");
    restore();

    // A later segment's header changed is a modified header, not reordering.
    let mut text = String::from_utf8(keep[1].clone()).unwrap();
    let end = text.find('\n').unwrap();
    let header = text[..end].replacen("\"cols\":80", "\"cols\":81", 1);
    assert_ne!(header, text[..end]);
    text.replace_range(..end, &header);
    std::fs::write(segment(&first, 1), text).unwrap();
    let (code, report) = verify(&env, "big");
    assert_eq!((code, report["status"].as_str()), (1, Some("modified")), "{report}");
    assert!(report["message"].as_str().unwrap().contains("header of segment 1"), "{report}");
    assert_eq!(report["first_bad"]["segment"], 1, "{report}");
}

/// Issue "Attacked from outside the repo", 6: a changed header read as
/// reordering; an inserted comment line went unnoticed.
#[test]
fn a_changed_header_and_an_inserted_comment_are_reported_as_such() {
    let env = TestEnv::new();
    let path = finished(&env);
    let header = tamper(&path, |l| {
        l[0] = l[0].replacen("\"cols\":80", "\"cols\":132", 1);
    });
    let (code, report) = verify(&env, header.to_str().unwrap());
    assert_eq!((code, report["status"].as_str()), (1, Some("modified")), "{report}");
    assert!(report["message"].as_str().unwrap().contains("header of segment 0"), "{report}");
    let comment = tamper(&path, |l| {
        let i = event_lines(l)[2];
        l.insert(i, "# nothing to see here".into());
    });
    let (code, report) = verify(&env, comment.to_str().unwrap());
    assert_eq!((code, report["status"].as_str()), (1, Some("inserted")), "{report}");
    assert!(report["message"].as_str().unwrap().contains("comment"), "{report}");
    assert!(report["first_bad"]["line"].as_u64().unwrap() > 1, "{report}");
}

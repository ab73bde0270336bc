//! Reattaching shows exactly the screen that was left: text, colours,
//! cursor, the alternate screen and the primary screen behind it, input
//! modes; and an ended session shows its final screen.

use crate::support::*;

/// A full-screen "application": draws the primary screen, switches to the
/// alternate screen, draws there with colours, turns on bracketed paste and
/// waits; on input it leaves the alternate screen and says goodbye.
const APP: &str = r#"
printf 'primary one\r\nprimary two\r\n'
printf '\033[?1049h\033[H\033[2J'
printf '\033[1;31mRED TITLE\033[0m\r\n'
i=1; while [ $i -le 5 ]; do printf 'row %s\r\n' $i; i=$((i+1)); done
printf '\033[?2004h\033[10;20Hcursor-here'
read answer
printf '\033[?2004l\033[?1049l'
echo "back on primary: $answer"
sleep 60
"#;

fn assert_app_screen(term: &Terminal) {
    term.wait_text("RED TITLE");
    term.wait_text("row 5");
    term.with_screen(|s| {
        assert!(s.alternate_screen(), "on the alternate screen");
        let cell = s.cell(0, 0).unwrap();
        assert_eq!(cell.contents(), "R");
        assert!(cell.bold(), "bold kept");
        assert_eq!(cell.fgcolor(), vt100::Color::Idx(1), "red kept");
        assert_eq!(s.cursor_position(), (9, 30), "cursor kept");
        assert!(s.bracketed_paste(), "bracketed paste restored");
        assert!(!s.contents().contains("primary one"), "primary hidden behind");
    });
}

#[test]
fn reattach_restores_the_alternate_screen_and_the_primary_behind_it() {
    let env = TestEnv::new();
    env.start("app", &["sh", "-c", APP]);
    let mut first = env.terminal(&["attach", "app"], 80, 24);
    assert_app_screen(&first);
    assert_eq!(first.detach(), 0);
    // The client's own terminal is back on its primary screen, modes off.
    first.with_screen(|s| {
        assert!(!s.alternate_screen());
        assert!(!s.bracketed_paste());
    });

    let mut second = env.terminal(&["attach", "app"], 80, 24);
    assert_app_screen(&second);
    second.send(b"bye\r");
    second.wait_text("back on primary: bye");
    second.with_screen(|s| {
        assert!(!s.alternate_screen());
        let text = s.contents();
        assert!(text.contains("primary one") && text.contains("primary two"), "{text}");
        assert!(!text.contains("RED TITLE"), "{text}");
    });
}

#[test]
fn reattach_restores_a_real_full_screen_program() {
    if std::process::Command::new("vi").arg("--version").output().is_err() {
        panic!("vi is required (the CI script installs vim)");
    }
    let env = TestEnv::new();
    let file = env.root().join("numbers.txt");
    let numbers: String = (1..=200).map(|n| format!("number {n}\n")).collect();
    std::fs::write(&file, numbers).unwrap();
    env.start("editor", &["sh"]);
    let mut term = env.terminal(&["attach", "editor"], 80, 24);
    term.wait_attached();
    term.send(b"echo before-vi\r");
    term.wait_text("before-vi");
    term.send(format!("vi -u NONE {}\r", file.display()).as_bytes());
    term.wait_text("number 1\n");
    term.send(b"100G");
    term.wait_text("number 100");
    let screen_before = term.contents();
    term.detach();

    let mut again = env.terminal(&["attach", "editor"], 80, 24);
    again.wait_text("number 100");
    assert!(again.alternate_screen());
    let trimmed = |s: &str| s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
    assert_eq!(trimmed(&again.contents()), trimmed(&screen_before));
    again.send(b":q\r");
    again.wait_screen("vi to exit", |s| !s.alternate_screen());
    again.wait_text("before-vi");
}

#[test]
fn an_ended_session_shows_its_final_screen_and_how_it_ended() {
    let env = TestEnv::new();
    env.start("gone", &["sh", "-c", "printf '\\033[32mgreen goodbye\\033[0m\\n'; exit 3"]);
    assert_eq!(env.run(&["wait", "gone"]).status.code(), Some(3));
    let mut term = env.terminal(&["attach", "gone"], 80, 24);
    assert_eq!(term.wait_exit(), 3);
    term.wait_text("green goodbye");
    term.wait_text("ended: exit code 3");
    term.with_screen(|s| assert_eq!(s.cell(0, 0).unwrap().fgcolor(), vt100::Color::Idx(2)));
}

#[test]
fn a_client_attached_when_the_job_ends_is_told_and_exits_with_its_code() {
    let env = TestEnv::new();
    let mut term = env.terminal(&["attach", "short", "--", "sh", "-c", "read x; exit $x"], 80, 24);
    term.wait_attached();
    term.send(b"5\r");
    assert_eq!(term.wait_exit(), 5);
    term.wait_text("[session short ended: exit code 5]");
}

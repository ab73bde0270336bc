//! The keeper as its own small executable: a keeper lives as long as its
//! job, so it should carry only the code it runs (no command-line parser,
//! no SSH, no TUI). `tether` starts it from the same directory, and falls
//! back to `tether __keeper` when it is missing.

fn main() {
    std::process::exit(tether::keeper::launch::keeper_main());
}

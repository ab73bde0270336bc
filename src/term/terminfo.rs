//! What a client's terminal says it can do, read from its compiled
//! terminfo entry (term(5)), as tmux does: a redraw uses an optional
//! capability only where the entry has it.
//!
//! Only the extended capabilities a redraw can use are looked for:
//! `Smulx` (underline styles) and `Setulc` (underline colours). The
//! terminal's name comes from the client (its `TERM`), so it is checked to
//! be a plain name before any file is opened.

use crate::term::redraw::Caps;
use std::path::{Path, PathBuf};

/// The largest terminfo file read (real ones are a few KiB).
const MAX_FILE: u64 = 64 * 1024;

/// The capabilities of terminal `term`, as its terminfo entry gives them;
/// none for an unknown or malformed name or entry.
pub fn caps(term: Option<&str>) -> Caps {
    let Some(term) = term.filter(|t| plain_name(t)) else { return Caps::default() };
    let Some(data) = dirs().iter().find_map(|d| read_entry(d, term)) else {
        return Caps::default();
    };
    let names = extended_strings(&data).unwrap_or_default();
    Caps {
        styled_underline: names.iter().any(|n| n == "Smulx"),
        underline_color: names.iter().any(|n| n == "Setulc"),
    }
}

/// Whether `term` can only name an entry, never a path elsewhere.
fn plain_name(term: &str) -> bool {
    !term.is_empty()
        && term.len() <= 64
        && !term.starts_with('.')
        && term.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// Where terminfo entries are looked for, in ncurses' order.
fn dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("TERMINFO") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".terminfo"));
    }
    if let Some(list) = std::env::var_os("TERMINFO_DIRS") {
        dirs.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.extend(["/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"].map(PathBuf::from));
    dirs
}

fn read_entry(dir: &Path, term: &str) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let first = term.chars().next()?;
    for sub in [first.to_string(), format!("{:02x}", u32::from(first))] {
        let path = dir.join(sub).join(term);
        if let Ok(file) = std::fs::File::open(&path) {
            let mut data = Vec::new();
            file.take(MAX_FILE).read_to_end(&mut data).ok()?;
            return Some(data);
        }
    }
    None
}

fn short(data: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_le_bytes([*data.get(at)?, *data.get(at + 1)?]))
}

fn count(data: &[u8], at: usize) -> Option<usize> {
    usize::try_from(short(data, at)?).ok()
}

/// The names of the extended string capabilities an entry holds (present,
/// not cancelled).
fn extended_strings(data: &[u8]) -> Option<Vec<String>> {
    let number_size = match short(data, 0)? {
        0o432 => 2,
        0o1036 => 4,
        _ => return None,
    };
    let (names, bools, nums, strs, table) =
        (count(data, 2)?, count(data, 4)?, count(data, 6)?, count(data, 8)?, count(data, 10)?);
    let mut at = 12 + names + bools;
    at += at % 2;
    at += nums * number_size + strs * 2 + table;
    at += at % 2;
    // The extended part, if any.
    let (ebools, enums, estrs, _items, etable) = (
        count(data, at)?,
        count(data, at + 2)?,
        count(data, at + 4)?,
        count(data, at + 6)?,
        count(data, at + 8)?,
    );
    at += 10 + ebools;
    at += at % 2;
    at += enums * number_size;
    let values: Vec<i16> = (0..estrs).map(|i| short(data, at + 2 * i)).collect::<Option<_>>()?;
    at += estrs * 2;
    let total = ebools + enums + estrs;
    let name_offsets: Vec<i16> =
        (0..total).map(|i| short(data, at + 2 * i)).collect::<Option<_>>()?;
    at += total * 2;
    let strings = data.get(at..at + etable)?;
    // The names follow the value strings in the table.
    let names_start = values
        .iter()
        .filter_map(|v| usize::try_from(*v).ok())
        .filter_map(|v| Some(v + strings.get(v..)?.iter().position(|b| *b == 0)? + 1))
        .max()
        .unwrap_or(0);
    let name_at = |off: i16| -> Option<String> {
        let start = names_start + usize::try_from(off).ok()?;
        let rest = strings.get(start..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let present = values.iter().map(|v| *v >= 0);
    let string_names = name_offsets[ebools + enums..].iter();
    Some(
        string_names
            .zip(present)
            .filter(|(_, p)| *p)
            .filter_map(|(off, _)| name_at(*off))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_be_paths_are_refused() {
        for bad in ["", "../../etc/passwd", "a/b", ".hidden", "x y", &"x".repeat(65)] {
            assert!(!plain_name(bad), "{bad:?}");
        }
        assert!(plain_name("xterm-256color") && plain_name("rxvt-unicode.x+y"));
        assert_eq!(caps(Some("../../etc/passwd")), Caps::default());
    }

    #[test]
    fn extended_capabilities_are_read_from_the_entry() {
        // Entries that ncurses ships on every Debian-like system: tmux's
        // has Smulx, xterm's does not. Skipped where they are missing.
        let has = |t: &str| dirs().iter().any(|d| read_entry(d, t).is_some());
        if has("tmux-256color") {
            assert!(caps(Some("tmux-256color")).styled_underline);
        }
        if has("xterm-256color") {
            assert_eq!(caps(Some("xterm-256color")), Caps::default());
        }
        assert_eq!(caps(Some("no-such-terminal")), Caps::default());
        assert_eq!(caps(None), Caps::default());
    }
}

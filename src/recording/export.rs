//! `tether export`: a recording as one asciicast v3 file (checkpoints
//! kept, so the export still verifies), asciicast v2 for older players,
//! the text a person reads, or the exact bytes the job wrote.

use super::{Recording, output_bytes};
use crate::term::screen::Screen;
use anyhow::Result;
use std::io::Write;
use tether_proto::WindowSize;
use tether_proto::record::EventData;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// asciicast v3, all segments in one file, checkpoints kept.
    V3,
    /// asciicast v2 (absolute times; only o, i, r, m events).
    V2,
    /// The text, as a person reads it (history and final screen).
    Txt,
    /// Exactly the bytes the job wrote.
    Raw,
}

/// Writes `rec` in `format` to `out`.
///
/// # Errors
///
/// The recording cannot be read or `out` cannot be written.
pub fn export(rec: &Recording, format: Format, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::V3 => v3(rec, out),
        Format::V2 => v2(rec, out),
        Format::Txt => txt(rec, out),
        Format::Raw => raw(rec, out),
    }
}

fn v3(rec: &Recording, out: &mut dyn Write) -> Result<()> {
    for line in rec.lines() {
        let line = line?;
        // Later segments' headers go; the chain's continuity is kept by
        // their `prev`, which verify reads from the original segments.
        if line.number == 1 && line.seg > 0 {
            continue;
        }
        if !line.complete {
            break;
        }
        out.write_all(line.text.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn v2(rec: &Recording, out: &mut dyn Write) -> Result<()> {
    let h = &rec.header;
    let header = serde_json::json!({
        "version": 2,
        "width": h.term.cols,
        "height": h.term.rows,
        "timestamp": h.timestamp,
        "title": h.title,
        "command": h.command,
        "env": h.env,
    });
    writeln!(out, "{header}")?;
    for event in rec.events() {
        let event = event?;
        let (code, data) = match event.data {
            EventData::Output(s) => ("o", s),
            EventData::Input(s) => ("i", s),
            EventData::Resize { cols, rows } => ("r", format!("{cols}x{rows}")),
            EventData::Marker(s) => ("m", s),
            _ => continue,
        };
        writeln!(
            out,
            "[{:.6}, {}, {}]",
            event.time,
            serde_json::to_string(code)?,
            serde_json::to_string(&data)?
        )?;
    }
    Ok(())
}

/// The bytes the job wrote: the terminal's output, with the PTY's
/// `\n` → `\r\n` translation undone while it was on.
fn raw(rec: &Recording, out: &mut dyn Write) -> Result<()> {
    let mut onlcr = false;
    // A `\r` at the end of an event may be the translation's, if the next
    // event starts with `\n`.
    let mut held_cr = false;
    for event in rec.events() {
        let event = event?;
        if let EventData::TtyMode { onlcr: on } = event.data {
            onlcr = on;
            continue;
        }
        let Some(bytes) = output_bytes(&event.data) else { continue };
        if !onlcr {
            if std::mem::take(&mut held_cr) {
                out.write_all(b"\r")?;
            }
            out.write_all(bytes)?;
            continue;
        }
        let mut kept = Vec::with_capacity(bytes.len() + 1);
        if std::mem::take(&mut held_cr) {
            kept.push(b'\r');
        }
        kept.extend_from_slice(bytes);
        let mut job = Vec::with_capacity(kept.len());
        for (i, &b) in kept.iter().enumerate() {
            match (b, kept.get(i + 1)) {
                (b'\r', Some(b'\n')) => {}
                (b'\r', None) => held_cr = true,
                _ => job.push(b),
            }
        }
        out.write_all(&job)?;
    }
    if held_cr {
        out.write_all(b"\r")?;
    }
    Ok(())
}

/// Every line the session showed: what scrolled by, then the final screen.
fn txt(rec: &Recording, out: &mut dyn Write) -> Result<()> {
    let size = WindowSize { cols: rec.header.term.cols, rows: rec.header.term.rows };
    // A modest history: lines are written out as they complete.
    let mut screen = Screen::new(size, 2000 * usize::from(size.sanitized().cols));
    let mut next = 0;
    for event in rec.events() {
        let event = event?;
        match &event.data {
            EventData::Resize { cols, rows } => {
                screen.resize(WindowSize { cols: *cols, rows: *rows })
            }
            data => {
                if let Some(bytes) = output_bytes(data) {
                    screen.feed(bytes);
                    let (lines, after) = screen.completed_lines(next, false);
                    next = after;
                    for l in lines {
                        writeln!(out, "{l}")?;
                    }
                }
            }
        }
    }
    let (lines, _) = screen.completed_lines(next, true);
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

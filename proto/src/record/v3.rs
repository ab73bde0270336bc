//! asciicast v3 lines: the header, events, and tether's comment lines.
//!
//! Times in the file are intervals since the previous event (v3); the
//! [`Decoder`] turns them back into absolute times.

use super::{
    CHECKPOINT_PREFIX, Checkpoint, END_PREFIX, Event, EventData, Gap, TetherHeader, base64,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The v3 header (first line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always 3.
    pub version: u8,
    /// The terminal.
    pub term: Term,
    /// Unix time of the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// The recorded command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The session name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `SHELL` and `TERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// tether's part; absent in recordings from other tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tether: Option<TetherHeader>,
}

/// The `term` object of a v3 header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// `TERM`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One line of a recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// An event.
    Event(Event),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
    /// The signed end.
    End(Checkpoint),
    /// Another comment (ignored).
    Comment,
}

/// Encodes an event line (without newline). `prev` is the previous event's
/// absolute time.
pub fn encode_event(event: &Event, prev: f64) -> String {
    let interval = (event.time - prev).max(0.0);
    let (code, data) = match &event.data {
        EventData::Output(s) => ("o", json_string(s)),
        EventData::Bytes(b) => ("b", json_string(&base64::encode(b))),
        EventData::Input(s) => ("i", json_string(s)),
        EventData::Resize { cols, rows } => ("r", json_string(&format!("{cols}x{rows}"))),
        EventData::Marker(s) => ("m", json_string(s)),
        EventData::Exit(code) => ("x", json_string(&code.to_string())),
        EventData::Gap(g) => ("g", json_string(&serde_json::to_string(g).unwrap_or_default())),
        EventData::TtyMode { onlcr } => ("t", json_string(if *onlcr { "onlcr" } else { "-onlcr" })),
        EventData::Command(c) => ("c", json_string(&serde_json::to_string(c).unwrap_or_default())),
        EventData::Other(code, data) => (code.as_str(), json_string(data)),
    };
    format!("[{interval:.6}, {}, {data}]", json_string(code))
}

/// Encodes a header line (without newline).
pub fn encode_header(header: &Header) -> String {
    // Strings, numbers and maps with string keys: serializing cannot fail.
    serde_json::to_string(header).unwrap_or_default()
}

/// Encodes a signed checkpoint line, `#tether:checkpoint {...}` or, for
/// the recording's last line, `#tether:end {...}` (without newline).
pub fn encode_checkpoint(checkpoint: &Checkpoint, end: bool) -> String {
    let prefix = if end { END_PREFIX } else { CHECKPOINT_PREFIX };
    // Strings and numbers: serializing cannot fail.
    let json = serde_json::to_string(checkpoint).unwrap_or_default();
    format!("{prefix}{json}")
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

/// Reads lines in order, keeping absolute time.
#[derive(Debug, Default)]
pub struct Decoder {
    time: f64,
}

impl Decoder {
    /// A decoder at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder continuing at absolute time `time` (a later segment, or
    /// after a seek).
    pub fn at(time: f64) -> Self {
        Decoder { time }
    }

    /// The absolute time of the last event.
    pub fn time(&self) -> f64 {
        self.time
    }

    /// Decodes one line (without newline).
    ///
    /// # Errors
    ///
    /// The line is neither a comment nor a well-formed event.
    pub fn line(&mut self, line: &str) -> Result<Line, LineError> {
        if let Some(comment) = decode_comment(line) {
            return comment;
        }
        let (interval, code, data): (f64, String, serde_json::Value) =
            serde_json::from_str(line).map_err(|e| LineError(format!("not an event: {e}")))?;
        if !interval.is_finite() || interval < 0.0 {
            return Err(LineError(format!("bad interval {interval}")));
        }
        let text = match &data {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let time = self.time + interval;
        if !time.is_finite() {
            return Err(LineError(format!("time overflows after interval {interval}")));
        }
        let data = event_data(&code, text)?;
        self.time = time;
        Ok(Line::Event(Event { time, data }))
    }
}

/// Decodes a comment line (one starting with `#`): a checkpoint, the end,
/// or another comment. `None` if the line is not a comment. Comments carry
/// no time, so no [`Decoder`] is needed.
///
/// # Errors
///
/// A checkpoint or end line whose JSON does not parse.
pub fn decode_comment(line: &str) -> Option<Result<Line, LineError>> {
    if let Some(rest) = line.strip_prefix(CHECKPOINT_PREFIX) {
        return Some(parse_checkpoint(rest).map(Line::Checkpoint));
    }
    if let Some(rest) = line.strip_prefix(END_PREFIX) {
        return Some(parse_checkpoint(rest).map(Line::End));
    }
    line.starts_with('#').then_some(Ok(Line::Comment))
}

fn parse_checkpoint(json: &str) -> Result<Checkpoint, LineError> {
    serde_json::from_str(json).map_err(|e| LineError(format!("bad checkpoint: {e}")))
}

fn event_data(code: &str, text: String) -> Result<EventData, LineError> {
    Ok(match code {
        "o" => EventData::Output(text),
        "b" => EventData::Bytes(
            base64::decode(&text).ok_or_else(|| LineError("bad base64 in a b event".into()))?,
        ),
        "i" => EventData::Input(text),
        "r" => {
            let (c, r) =
                text.split_once('x').ok_or_else(|| LineError(format!("bad resize {text:?}")))?;
            let parse = |v: &str| {
                v.trim().parse::<u16>().map_err(|_| LineError(format!("bad resize {text:?}")))
            };
            EventData::Resize { cols: parse(c)?, rows: parse(r)? }
        }
        "m" => EventData::Marker(text),
        "x" => EventData::Exit(
            text.trim().parse().map_err(|_| LineError(format!("bad exit {text:?}")))?,
        ),
        "t" => EventData::TtyMode { onlcr: text == "onlcr" },
        "g" => EventData::Gap(
            serde_json::from_str::<Gap>(&text).map_err(|e| LineError(format!("bad gap: {e}")))?,
        ),
        "c" => EventData::Command(
            serde_json::from_str(&text).map_err(|e| LineError(format!("bad command: {e}")))?,
        ),
        other => EventData::Other(other.to_owned(), text),
    })
}

/// Parses a header line.
///
/// # Errors
///
/// Not a v3 header.
pub fn parse_header(line: &str) -> Result<Header, LineError> {
    let header: Header = serde_json::from_str(line)
        .map_err(|e| LineError(format!("not an asciicast v3 header: {e}")))?;
    if header.version != 3 {
        return Err(LineError(format!("asciicast version {} (expected 3)", header.version)));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the recording_line fuzz target: huge intervals summed to
    /// an infinite time.
    #[test]
    fn time_never_becomes_infinite() {
        let mut d = Decoder::new();
        assert!(d.line(r#"[1e308, "o", "a"]"#).is_ok());
        assert!(d.line(r#"[1e308, "o", "b"]"#).is_err());
        assert!(d.time().is_finite());
    }

    #[test]
    fn events_round_trip_with_absolute_times() {
        let events = [
            Event { time: 0.5, data: EventData::Output("héllo\u{1b}[1m\n".into()) },
            Event { time: 0.75, data: EventData::Bytes(vec![0xff, 0x00, 0xfe]) },
            Event { time: 1.0, data: EventData::Resize { cols: 120, rows: 40 } },
            Event { time: 2.25, data: EventData::Marker("attach alice".into()) },
            Event { time: 2.25, data: EventData::Input("ls\r".into()) },
            Event {
                time: 3.0,
                data: EventData::Gap(Gap { lost_bytes: 5, lost_events: 1, since: 2.5 }),
            },
            Event { time: 4.0, data: EventData::Exit(137) },
            Event { time: 4.0, data: EventData::TtyMode { onlcr: false } },
            Event {
                time: 4.5,
                data: EventData::Command(crate::record::Command {
                    n: 3,
                    phase: crate::record::Phase::Start,
                    command: Some("cd /tmp".into()),
                    cwd: Some("/home/al ice".into()),
                    who: Some("alice@laptop".into()),
                    fingerprint: Some("SHA256:abc".into()),
                    exit: None,
                    out: Some(1234),
                    marks: crate::record::MarkSource::Tether,
                }),
            },
            Event {
                time: 5.0,
                data: EventData::Command(crate::record::Command {
                    n: 3,
                    phase: crate::record::Phase::End,
                    command: None,
                    cwd: None,
                    who: None,
                    fingerprint: None,
                    exit: Some(1),
                    out: None,
                    marks: crate::record::MarkSource::Job,
                }),
            },
        ];
        let mut prev = 0.0;
        let mut dec = Decoder::new();
        for e in &events {
            let line = encode_event(e, prev);
            prev = e.time;
            match dec.line(&line).unwrap() {
                Line::Event(back) => {
                    assert!((back.time - e.time).abs() < 1e-6);
                    assert_eq!(back.data, e.data);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_header_as_on_disk() {
        let sample = concat!(
            r#"{"version":3,"term":{"cols":80,"rows":24,"type":"xterm-256color"},"timestamp":1795840381,"#,
            r#""command":"make -j8","title":"build","env":{"SHELL":"/bin/bash","TERM":"xterm-256color"},"#,
            r#""tether":{"format":1,"session":"build","segment":1,"started":"2026-11-28T04:33:01Z","#,
            r#""key":"SHA256:abc","prev":"00ff","offset":12.5}}"#,
        );
        let header = Header {
            version: 3,
            term: Term { cols: 80, rows: 24, kind: Some("xterm-256color".into()) },
            timestamp: Some(1_795_840_381),
            command: Some("make -j8".into()),
            title: Some("build".into()),
            env: Some(BTreeMap::from([
                ("TERM".to_owned(), "xterm-256color".to_owned()),
                ("SHELL".to_owned(), "/bin/bash".to_owned()),
            ])),
            tether: Some(TetherHeader {
                format: 1,
                session: "build".into(),
                segment: 1,
                started: "2026-11-28T04:33:01Z".into(),
                key: "SHA256:abc".into(),
                prev: Some("00ff".into()),
                offset: 12.5,
            }),
        };
        assert_eq!(encode_header(&header), sample);
        assert_eq!(parse_header(sample).unwrap(), header);
    }

    #[test]
    fn checkpoint_lines_as_on_disk() {
        let mut cp = Checkpoint {
            seq: 7,
            lines: 1480,
            count: 212,
            set: "5e".into(),
            hash: "a1".into(),
            time: 12.503,
            wall: "2026-11-28T04:33:14Z".into(),
            exit: None,
            sig: "U1NIU0lH".into(),
        };
        let line = encode_checkpoint(&cp, false);
        assert_eq!(
            line,
            r##"#tether:checkpoint {"seq":7,"lines":1480,"count":212,"set":"5e","hash":"a1","time":12.503,"wall":"2026-11-28T04:33:14Z","sig":"U1NIU0lH"}"##
        );
        assert_eq!(decode_comment(&line), Some(Ok(Line::Checkpoint(cp.clone()))));
        cp.exit = Some(0);
        let line = encode_checkpoint(&cp, true);
        assert_eq!(
            line,
            r##"#tether:end {"seq":7,"lines":1480,"count":212,"set":"5e","hash":"a1","time":12.503,"wall":"2026-11-28T04:33:14Z","exit":0,"sig":"U1NIU0lH"}"##
        );
        assert_eq!(Decoder::new().line(&line), Ok(Line::End(cp)));
        assert_eq!(decode_comment("[0.1, \"o\", \"#\"]"), None);
        assert!(matches!(decode_comment("#tether:end {"), Some(Err(_))));
        assert_eq!(decode_comment("# another tool's note"), Some(Ok(Line::Comment)));
    }

    /// A recording written by an earlier build (the verify fuzz target's
    /// seed) reads, and every line encodes back to the same bytes.
    #[test]
    fn an_existing_recording_re_encodes_byte_for_byte() {
        let text = include_str!("../../../fuzz/seeds/recording.cast");
        let mut lines = text.lines();
        let first = lines.next().unwrap();
        assert_eq!(encode_header(&parse_header(first).unwrap()), first);
        let mut dec = Decoder::new();
        for line in lines {
            let prev = dec.time();
            let again = match dec.line(line).unwrap() {
                Line::Event(e) => encode_event(&e, prev),
                Line::Checkpoint(cp) => encode_checkpoint(&cp, false),
                Line::End(cp) => encode_checkpoint(&cp, true),
                Line::Comment => line.to_owned(),
            };
            assert_eq!(again, line);
        }
    }

    #[test]
    fn an_event_line_as_on_disk() {
        let e = Event { time: 1.25, data: EventData::Output("a\u{1b}[1m\n".into()) };
        assert_eq!(encode_event(&e, 1.0), r#"[0.250000, "o", "a\u001b[1m\n"]"#);
        let g = Gap { lost_bytes: 5, lost_events: 1, since: 2.5 };
        let e = Event { time: 3.0, data: EventData::Gap(g) };
        assert_eq!(
            encode_event(&e, 3.0),
            r#"[0.000000, "g", "{\"lost_bytes\":5,\"lost_events\":1,\"since\":2.5}"]"#
        );
    }

    #[test]
    fn reads_other_tools_events_and_comments() {
        let mut dec = Decoder::new();
        assert_eq!(dec.line("# a comment").unwrap(), Line::Comment);
        assert!(matches!(
            dec.line("[1.5, \"z\", \"?\"]").unwrap(),
            Line::Event(Event { data: EventData::Other(..), .. })
        ));
        assert!(dec.line("[-1, \"o\", \"x\"]").is_err());
        assert!(dec.line("garbage").is_err());
        assert!(dec.line("[1, \"b\", \"!!\"]").is_err());
        let h = parse_header(r#"{"version": 3, "term": {"cols": 80, "rows": 24}}"#).unwrap();
        assert_eq!(h.term.cols, 80);
        assert!(parse_header(r#"{"version": 2, "width": 80, "height": 24}"#).is_err());
    }
}

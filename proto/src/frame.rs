//! Sans-IO framing: [`Message`] ⇄ bytes.
//!
//! [`encode`] writes one frame; [`decode`] reads one frame from the front of
//! a byte slice and says how many bytes it used, or that it needs more; the
//! [`FrameDecoder`] keeps the bytes of a stream between reads. Lengths are
//! checked before anything is allocated, so a hostile length prefix costs
//! nothing.

use crate::error::DecodeError;
use crate::message::{Message, WindowSize, kind};
use bytes::{Buf, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame, counting the kind byte and the payload.
///
/// 1 MiB: far above any single PTY read (64 KiB) or control reply, small
/// enough that a peer cannot make us buffer much. Larger data is sent as
/// several frames (see [`MAX_DATA_LEN`]).
pub const MAX_FRAME_LEN: u32 = 1 << 20;

/// The largest data payload (input, output, redraw) of one frame.
pub const MAX_DATA_LEN: usize = MAX_FRAME_LEN as usize - 1;

/// The bytes of the length prefix.
const HEADER_LEN: usize = 4;

/// A message whose encoding would exceed [`MAX_FRAME_LEN`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("message of {0} bytes exceeds the frame limit of {MAX_FRAME_LEN} bytes")]
pub struct TooLargeToSend(pub usize);

/// Encodes `msg` as one frame appended to `out`.
///
/// # Errors
///
/// [`TooLargeToSend`] when the payload does not fit a frame; `out` is then
/// unchanged. Split data with [`Message::data_frames`] to avoid it.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) -> Result<(), TooLargeToSend> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(msg.kind());
    match msg {
        Message::Input(b) | Message::Output(b) | Message::Redraw(b) => out.extend_from_slice(b),
        Message::Resize(s) => {
            out.extend_from_slice(&s.cols.to_be_bytes());
            out.extend_from_slice(&s.rows.to_be_bytes());
        }
        Message::Detach => {}
        Message::Hello(m) => json_into(m, out),
        Message::HelloReply(m) => json_into(m, out),
        Message::Route(m) => json_into(m, out),
        Message::Attach(m) => json_into(m, out),
        Message::AttachReply(m) => json_into(m, out),
        Message::Exit(m) => json_into(m, out),
        Message::Notice(m) => json_into(m, out),
        Message::Request(m) => json_into(m, out),
        Message::Reply(m) => json_into(m, out),
        Message::Error(m) => json_into(m, out),
    }
    let len = out.len() - start - HEADER_LEN;
    if len > MAX_FRAME_LEN as usize {
        out.truncate(start);
        return Err(TooLargeToSend(len));
    }
    // `len` fits u32: it is at most MAX_FRAME_LEN, checked above.
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Encodes `msg` as one frame.
///
/// # Errors
///
/// As [`encode_into`].
pub fn encode(msg: &Message) -> Result<Vec<u8>, TooLargeToSend> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

fn json_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    // Serializing these plain structs to a Vec cannot fail: no maps with
    // non-string keys, no I/O.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame, or
/// `Ok(Some((message, used)))`.
///
/// # Errors
///
/// A [`DecodeError`] when the bytes can never form a valid frame; the stream
/// is then unusable.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, DecodeError> {
    let Some(len) = frame_len(buf)? else { return Ok(None) };
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[HEADER_LEN..total];
    let msg = parse_body(body[0], Bytes::copy_from_slice(&body[1..]))?;
    Ok(Some((msg, total)))
}

/// Reads and checks the length prefix, if complete.
fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else { return Ok(None) };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    if len > MAX_FRAME_LEN {
        return Err(DecodeError::TooLarge { len, max: MAX_FRAME_LEN });
    }
    Ok(Some(len as usize))
}

fn parse_body(kind: u8, payload: Bytes) -> Result<Message, DecodeError> {
    Ok(match kind {
        kind::HELLO => Message::Hello(json("hello", &payload)?),
        kind::HELLO_REPLY => Message::HelloReply(json("hello reply", &payload)?),
        kind::ROUTE => Message::Route(json("route", &payload)?),
        kind::ATTACH => Message::Attach(json("attach", &payload)?),
        kind::ATTACH_REPLY => Message::AttachReply(json("attach reply", &payload)?),
        kind::INPUT => Message::Input(payload),
        kind::OUTPUT => Message::Output(payload),
        kind::REDRAW => Message::Redraw(payload),
        kind::RESIZE => Message::Resize(resize(&payload)?),
        kind::DETACH if payload.is_empty() => Message::Detach,
        kind::DETACH => return Err(bad("detach", "payload must be empty")),
        kind::EXIT => Message::Exit(json("exit", &payload)?),
        kind::NOTICE => Message::Notice(json("notice", &payload)?),
        kind::REQUEST => Message::Request(json("request", &payload)?),
        kind::REPLY => Message::Reply(json("reply", &payload)?),
        kind::ERROR => Message::Error(json("error", &payload)?),
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

fn resize(payload: &[u8]) -> Result<WindowSize, DecodeError> {
    match payload {
        [c0, c1, r0, r1] => Ok(WindowSize {
            cols: u16::from_be_bytes([*c0, *c1]),
            rows: u16::from_be_bytes([*r0, *r1]),
        }),
        _ => Err(bad("resize", format!("payload is {} bytes, expected 4", payload.len()))),
    }
}

fn json<T: DeserializeOwned>(what: &'static str, payload: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| bad(what, e.to_string()))
}

fn bad(kind: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::BadPayload { kind, reason: reason.into() }
}

impl Message {
    /// This message's frame kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Hello(_) => kind::HELLO,
            Message::HelloReply(_) => kind::HELLO_REPLY,
            Message::Route(_) => kind::ROUTE,
            Message::Attach(_) => kind::ATTACH,
            Message::AttachReply(_) => kind::ATTACH_REPLY,
            Message::Input(_) => kind::INPUT,
            Message::Output(_) => kind::OUTPUT,
            Message::Redraw(_) => kind::REDRAW,
            Message::Resize(_) => kind::RESIZE,
            Message::Detach => kind::DETACH,
            Message::Exit(_) => kind::EXIT,
            Message::Notice(_) => kind::NOTICE,
            Message::Request(_) => kind::REQUEST,
            Message::Reply(_) => kind::REPLY,
            Message::Error(_) => kind::ERROR,
        }
    }

    /// Splits `data` into frames of at most [`MAX_DATA_LEN`] bytes, each built
    /// by `make` (e.g. `Message::Output`).
    pub fn data_frames(data: Bytes, make: fn(Bytes) -> Message) -> impl Iterator<Item = Message> {
        let mut rest = data;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let n = rest.len().min(MAX_DATA_LEN);
            Some(make(rest.split_to(n)))
        })
    }
}

/// Accumulates a byte stream and yields whole messages.
///
/// Holds at most one partial frame plus whatever the last read added, so
/// memory is bounded by [`MAX_FRAME_LEN`] plus the caller's read size.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if any.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`]: the stream is unusable and should be closed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        let Some(len) = frame_len(&self.buf)? else { return Ok(None) };
        if self.buf.len() < HEADER_LEN + len {
            // Reserve once for the whole frame rather than growing repeatedly;
            // `len` is already checked against MAX_FRAME_LEN.
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let mut body = self.buf.split_to(len).freeze();
        let kind = body[0];
        body.advance(1);
        parse_body(kind, body).map(Some)
    }

    /// Bytes received but not yet decoded (a partial frame).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes the bytes received but not yet decoded, for a caller that
    /// passes the rest of the stream on without decoding it.
    pub fn take_pending(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;
    use crate::name::SessionName;
    use proptest::prelude::*;

    fn info() -> SessionInfo {
        SessionInfo {
            name: SessionName::new("build").unwrap(),
            state: SessionState::Running,
            frozen: false,
            pid: Some(42),
            keeper_pid: Some(41),
            exit_code: None,
            signal: None,
            started: Some("2026-11-28T03:00:00Z".into()),
            ended: None,
            cols: 80,
            rows: 24,
            clients: 1,
            watchers: 0,
            protected: false,
            recording: RecordingState::Off,
            recording_path: None,
            recording_end: None,
            command: vec!["/bin/sh".into()],
            owner: Some("alice".into()),
            consent: false,
            end_reason: None,
            probe: false,
            archived: None,
        }
    }

    fn samples() -> Vec<Message> {
        let identity =
            Identity { name: "alice".into(), fingerprint: None, role: Role::Owner, address: None };
        vec![
            Message::Hello(HelloRequest { protocol: 1, software: "tether 0.1.0".into() }),
            Message::HelloReply(HelloReply {
                protocol: 1,
                software: "tether".into(),
                session: Some(SessionName::new("s").unwrap()),
            }),
            Message::Route(RouteRequest { session: SessionName::new("s").unwrap() }),
            Message::Request(Request::Create(CreateRequest {
                name: SessionName::new("n").unwrap(),
                command: vec!["sh".into()],
                cwd: None,
                env: vec![("A".into(), "b".into())],
                size: WindowSize::DEFAULT,
                term: Some("xterm".into()),
                protect: true,
                no_record: false,
                record_input: true,
                consent: false,
                probe: false,
            })),
            Message::Reply(Reply::Done),
            Message::Attach(AttachRequest {
                mode: AttachMode::ReadOnly,
                size: WindowSize { cols: 100, rows: 30 },
                identity,
                term: Some("tmux-256color".into()),
            }),
            Message::AttachReply(AttachReply { session: info() }),
            Message::Input(Bytes::from_static(b"ls\r")),
            Message::Output(Bytes::from_static(b"\x1b[1mhi\xff")),
            Message::Redraw(Bytes::new()),
            Message::Resize(WindowSize { cols: 0, rows: 65535 }),
            Message::Detach,
            Message::Exit(JobExit { code: None, signal: Some(9), ended: "t".into() }),
            Message::Notice(Notice { text: "hello".into(), clients: Some(1), watchers: None }),
            Message::Request(Request::Tail { lines: Some(5), follow: true }),
            Message::Request(Request::Kill { force: false }),
            Message::Reply(Reply::List { sessions: vec![info()] }),
            Message::Reply(Reply::Text { lines: vec!["a".into(), "".into()] }),
            Message::Error(ErrorReply { code: ErrorCode::Conflict, message: "busy".into() }),
        ]
    }

    /// Writes the samples as the fuzz targets' seed corpus:
    /// `cargo test -p tether-proto -- --ignored write_fuzz_seeds`.
    #[test]
    #[ignore = "writes fuzz/corpus; run by hand when messages change"]
    fn write_fuzz_seeds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        for target in ["frame", "control"] {
            std::fs::create_dir_all(root.join(target)).unwrap();
        }
        let mut stream = vec![7u8];
        for (i, msg) in samples().iter().enumerate() {
            let bytes = encode(msg).unwrap();
            stream.extend_from_slice(&bytes);
            let mut one = vec![3u8];
            one.extend_from_slice(&bytes);
            std::fs::write(root.join(format!("frame/sample-{i:02}")), one).unwrap();
            // The control target takes a kind byte and the payload.
            std::fs::write(root.join(format!("control/sample-{i:02}")), &bytes[4..]).unwrap();
        }
        std::fs::write(root.join("frame/stream"), stream).unwrap();
    }

    #[test]
    fn every_sample_round_trips() {
        for msg in samples() {
            let bytes = encode(&msg).unwrap();
            let (back, used) = decode(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn hello_layout_is_stable() {
        let bytes =
            encode(&Message::Hello(HelloRequest { protocol: 1, software: "x".into() })).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 30, 0x01]);
        assert_eq!(&bytes[5..], br#"{"protocol":1,"software":"x"}"#);
    }

    #[test]
    fn rejects_bad_frames_with_clear_errors() {
        assert_eq!(decode(&[0, 0, 0, 0]), Err(DecodeError::Empty));
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::TooLarge { len: u32::MAX, max: MAX_FRAME_LEN })
        );
        assert_eq!(decode(&[0, 0, 0, 1, 0x55]), Err(DecodeError::UnknownKind(0x55)));
        assert!(matches!(
            decode(&[0, 0, 0, 2, kind::RESIZE, 1]),
            Err(DecodeError::BadPayload { kind: "resize", .. })
        ));
        assert!(matches!(
            decode(b"\0\0\0\x03\x20{}"),
            Err(DecodeError::BadPayload { kind: "request", .. })
        ));
        assert_eq!(decode(&[0, 0, 0]), Ok(None));
        assert_eq!(decode(&[0, 0, 0, 9, 0x13, 1]), Ok(None));
    }

    #[test]
    fn oversized_messages_are_refused_on_send() {
        let big = Message::Output(Bytes::from(vec![0u8; MAX_DATA_LEN + 1]));
        assert_eq!(encode(&big), Err(TooLargeToSend(MAX_DATA_LEN + 2)));
        let frames: Vec<_> =
            Message::data_frames(Bytes::from(vec![7u8; MAX_DATA_LEN + 10]), Message::Output)
                .collect();
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| encode(f).is_ok()));
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let data = proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from);
        prop_oneof![
            data.clone().prop_map(Message::Input),
            data.clone().prop_map(Message::Output),
            data.prop_map(Message::Redraw),
            (any::<u16>(), any::<u16>())
                .prop_map(|(cols, rows)| Message::Resize(WindowSize { cols, rows })),
            Just(Message::Detach),
            ".*".prop_map(|text| Message::Notice(Notice {
                text,
                clients: None,
                watchers: Some(2)
            })),
            (any::<Option<u32>>(), any::<bool>())
                .prop_map(|(lines, follow)| Message::Request(Request::Tail { lines, follow })),
            (any::<Option<i32>>(), any::<Option<i32>>(), ".*").prop_map(|(code, signal, ended)| {
                Message::Exit(JobExit { code, signal, ended })
            }),
            proptest::sample::select(samples()),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(msg in arb_message()) {
            let bytes = encode(&msg).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), Some((msg, bytes.len())));
        }

        /// Any split of a valid stream into reads yields the same messages.
        #[test]
        fn any_split_decodes_the_same(
            msgs in proptest::collection::vec(arb_message(), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            for m in &msgs {
                encode_into(m, &mut stream).unwrap();
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut dec = FrameDecoder::new();
            let mut got = Vec::new();
            for w in points.windows(2) {
                dec.extend(&stream[w[0]..w[1]]);
                while let Some(m) = dec.next_message().unwrap() {
                    got.push(m);
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(dec.pending(), 0);
        }

        /// Garbage never panics, and never makes the decoder hold more than
        /// one frame's worth of memory.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
            let mut dec = FrameDecoder::new();
            dec.extend(&bytes);
            while let Ok(Some(_)) = dec.next_message() {}
            prop_assert!(dec.buf.capacity() <= bytes.len().max(HEADER_LEN + MAX_FRAME_LEN as usize));
        }

        /// A valid frame with one byte changed either decodes or errors; never panics.
        #[test]
        fn mutated_frames_never_panic(msg in arb_message(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
            let mut bytes = encode(&msg).unwrap();
            let i = at.index(bytes.len());
            bytes[i] = b;
            let _ = decode(&bytes);
        }
    }
}

//! A framed, blocking connection over a unix socket: the byte pipe under
//! every client/keeper conversation.
//!
//! Reading and writing are separate halves ([`FrameReader`],
//! [`FrameWriter`]) so that one thread can wait for the peer while another
//! sends to it.

use anyhow::{Context, Result};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use tether_proto::{FrameDecoder, Message, encode_into};

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// The receiving half.
pub struct FrameReader {
    stream: UnixStream,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl FrameReader {
    /// Reads frames from `stream`.
    pub fn new(stream: UnixStream) -> Self {
        FrameReader { stream, decoder: FrameDecoder::new(), buf: vec![0; READ_CHUNK] }
    }

    /// The next message; `None` when the peer closed the connection cleanly
    /// (at a frame boundary).
    ///
    /// # Errors
    ///
    /// I/O errors (including a read timeout), a connection closed in the
    /// middle of a frame, or a malformed frame.
    pub fn read_message(&mut self) -> Result<Option<Message>> {
        loop {
            if let Some(msg) = self.try_message()? {
                return Ok(Some(msg));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Decodes a message from what has already been read, without reading.
    ///
    /// # Errors
    ///
    /// A malformed frame.
    pub fn try_message(&mut self) -> Result<Option<Message>> {
        self.decoder.next_message().context("reading a frame from the peer")
    }

    /// One read from the socket into the decoder. Returns `false` at a clean
    /// end of stream.
    ///
    /// # Errors
    ///
    /// I/O errors, or the stream ended inside a frame.
    pub fn fill(&mut self) -> Result<bool> {
        let n = loop {
            match self.stream.read(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.context("reading from the socket")?,
            }
        };
        if n == 0 {
            if self.decoder.pending() > 0 {
                anyhow::bail!("connection closed in the middle of a frame");
            }
            return Ok(false);
        }
        self.decoder.extend(&self.buf[..n]);
        Ok(true)
    }

    /// The socket, e.g. for timeouts or polling.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// The socket and the decoder with whatever it holds, to go on with
    /// the same conversation elsewhere (an async task).
    pub fn into_parts(self) -> (UnixStream, FrameDecoder) {
        (self.stream, self.decoder)
    }
}

/// The sending half.
pub struct FrameWriter {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl FrameWriter {
    /// Writes frames to `stream`.
    pub fn new(stream: UnixStream) -> Self {
        FrameWriter { stream, buf: Vec::new() }
    }

    /// Sends one message, blocking until the kernel took it.
    ///
    /// # Errors
    ///
    /// The peer is gone, or the message is too large for a frame.
    pub fn write_message(&mut self, msg: &Message) -> Result<()> {
        self.buf.clear();
        encode_into(msg, &mut self.buf)?;
        self.stream.write_all(&self.buf).context("writing to the socket")
    }

    /// Sends `first` and then whatever `more` yields, in one write of at
    /// most about `max_bytes` (the rest stays with `more`'s source).
    ///
    /// # Errors
    ///
    /// As [`FrameWriter::write_message`].
    pub fn write_batch(
        &mut self,
        first: &Message,
        max_bytes: usize,
        mut more: impl FnMut() -> Option<Message>,
    ) -> Result<()> {
        self.buf.clear();
        encode_into(first, &mut self.buf)?;
        while self.buf.len() < max_bytes {
            let Some(msg) = more() else { break };
            encode_into(&msg, &mut self.buf)?;
        }
        self.stream.write_all(&self.buf).context("writing to the socket")?;
        if self.buf.capacity() > 2 * max_bytes {
            // One huge redraw must not pin its buffer for the connection's life.
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Sends bytes that are already framed (the rest of a frame).
    ///
    /// # Errors
    ///
    /// The peer is gone.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).context("writing to the socket")
    }

    /// The socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// The socket.
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }
}

/// Splits a connected stream into its two halves.
///
/// # Errors
///
/// The socket cannot be duplicated (out of file descriptors).
pub fn split(stream: UnixStream) -> Result<(FrameReader, FrameWriter)> {
    let write = stream.try_clone().context("duplicating a socket")?;
    Ok((FrameReader::new(stream), FrameWriter::new(write)))
}

//! The keeper client on an async runtime: the same connection as
//! [`super::KeeperClient`] (connected, checked and past the hello there),
//! handed to the daemon's tokio tasks, which must not block on a socket.

use super::KeeperClient;
use anyhow::{Context, Result};
use bytes::Bytes;
use tether_proto::{FrameDecoder, Message, encode_into};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Reads frames; cancel-safe (a cancelled read loses nothing).
pub struct FrameReadHalf {
    read: OwnedReadHalf,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl FrameReadHalf {
    /// The next message; `None` at a clean end of stream.
    ///
    /// # Errors
    ///
    /// I/O errors, or a malformed frame.
    pub async fn read_message(&mut self) -> Result<Option<Message>> {
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(Some(m));
            }
            let n = self.read.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.decoder.extend(&self.buf[..n]);
        }
    }

    /// Raw bytes as they come (for passing a conversation on without
    /// decoding it), starting with any the decoder holds; empty at the end.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub async fn read_raw(&mut self) -> Result<Bytes> {
        if self.decoder.pending() > 0 {
            return Ok(self.decoder.take_pending());
        }
        let n = self.read.read(&mut self.buf).await?;
        Ok(Bytes::copy_from_slice(&self.buf[..n]))
    }
}

/// Writes frames.
pub struct FrameWriteHalf {
    write: OwnedWriteHalf,
    buf: Vec<u8>,
}

impl FrameWriteHalf {
    /// Sends one message.
    ///
    /// # Errors
    ///
    /// The peer is gone.
    pub async fn write_message(&mut self, msg: &Message) -> Result<()> {
        self.buf.clear();
        encode_into(msg, &mut self.buf)?;
        self.write.write_all(&self.buf).await.context("writing to a keeper")
    }
}

impl KeeperClient {
    /// This connection, for a tokio task. Must be called within a runtime.
    ///
    /// # Errors
    ///
    /// The socket cannot be registered with the runtime.
    pub fn into_async(self) -> Result<(FrameReadHalf, FrameWriteHalf)> {
        let (stream, decoder) = self.reader.into_parts();
        drop(self.writer);
        stream.set_nonblocking(true)?;
        let (read, write) = UnixStream::from_std(stream)?.into_split();
        Ok((
            FrameReadHalf { read, decoder, buf: vec![0; 64 * 1024] },
            FrameWriteHalf { write, buf: Vec::new() },
        ))
    }
}

//! Async framed connections from the daemon to keepers.

use crate::Failure;
use crate::paths::Paths;
use anyhow::{Context, Result};
use std::time::Duration;
use tether_proto::{
    FrameDecoder, HelloReply, HelloRequest, Message, PROTOCOL_VERSION, SessionName, encode_into,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// How long a keeper has to answer the hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// Raw bytes as they come (for proxying without decoding); empty at the end.
    ///
    /// # Errors
    ///
    /// I/O errors.
    pub async fn read_raw(&mut self) -> Result<&[u8]> {
        let n = self.read.read(&mut self.buf).await?;
        Ok(&self.buf[..n])
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

/// Connects to `name`'s keeper and exchanges hellos.
///
/// # Errors
///
/// The keeper cannot be reached or refuses (its error is passed on).
pub async fn connect(
    paths: &Paths,
    name: &SessionName,
) -> Result<(FrameReadHalf, FrameWriteHalf, HelloReply)> {
    let stream = UnixStream::connect(paths.socket_file(name)).await.map_err(|e| {
        Failure::unavailable(format!("cannot reach the keeper of session {name}: {e}"))
    })?;
    let (read, write) = stream.into_split();
    let mut r = FrameReadHalf { read, decoder: FrameDecoder::new(), buf: vec![0; 64 * 1024] };
    let mut w = FrameWriteHalf { write, buf: Vec::new() };
    w.write_message(&Message::Hello(HelloRequest {
        protocol: PROTOCOL_VERSION,
        software: crate::SOFTWARE.into(),
    }))
    .await?;
    let reply = tokio::time::timeout(HELLO_TIMEOUT, r.read_message()).await.map_err(|_| {
        Failure::unavailable(format!("the keeper of session {name} did not answer"))
    })?;
    match reply? {
        Some(Message::HelloReply(h)) => Ok((r, w, h)),
        Some(Message::Error(e)) => Err(Failure::from(e).into()),
        _ => {
            Err(Failure::unavailable(format!("the keeper of session {name} did not answer")).into())
        }
    }
}

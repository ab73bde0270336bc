//! A russh client for hostile SSH tests: sizes, lengths and channel counts
//! that the OpenSSH client will not send.

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, load_secret_key};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Trusts any host key: these tests attack the daemon, not the reverse.
pub struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// A current-thread runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Connects to 127.0.0.1:`port` and authenticates with the key at `key`.
pub async fn connect(port: u16, key: &Path) -> Handle<Trusting> {
    let (handle, accepted) = connect_signing(port, key, None).await;
    assert!(accepted, "the test key was refused");
    handle
}

/// Connects and tries the key at `key`, signing with `hash` (for an RSA
/// key: `None` is `ssh-rsa`, SHA-1); says whether the key was accepted.
pub async fn connect_signing(
    port: u16,
    key: &Path,
    hash: Option<russh::keys::HashAlg>,
) -> (Handle<Trusting>, bool) {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    });
    let mut handle = client::connect(config, ("127.0.0.1", port), Trusting).await.unwrap();
    let key = load_secret_key(key, None).unwrap();
    let auth = handle
        .authenticate_publickey("tester", PrivateKeyWithHashAlg::new(Arc::new(key), hash))
        .await
        .unwrap();
    (handle, auth.success())
}

/// What a channel said until it closed: its data and exit status.
pub struct Outcome {
    /// stdout and stderr, in order.
    pub output: Vec<u8>,
    /// The exit status, if one was sent.
    pub status: Option<u32>,
}

impl Outcome {
    /// The output as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// Reads a channel until it closes or `timeout` passes.
pub async fn finish(channel: &mut russh::Channel<client::Msg>, timeout: Duration) -> Outcome {
    let mut out = Outcome { output: Vec::new(), status: None };
    let _ = tokio::time::timeout(timeout, async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                    out.output.extend_from_slice(&data);
                }
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    })
    .await;
    out
}

/// Reads a channel until its output contains `needle`.
pub async fn read_until(channel: &mut russh::Channel<client::Msg>, needle: &str) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(super::TIMEOUT, async {
        while let Some(msg) = channel.wait().await {
            if let ChannelMsg::Data { data } = msg {
                seen.extend_from_slice(&data);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    return;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{needle:?} not seen in {:?}", String::from_utf8_lossy(&seen)));
    String::from_utf8_lossy(&seen).into_owned()
}

//! The bucket, through `object_store`'s S3 client: write-once puts, reads,
//! and one clear line for what makes the bucket unusable.

use crate::config::ArchiveConfig;
use anyhow::{Result, anyhow};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig,
};
use std::time::Duration;

/// The archive's bucket.
pub struct Store {
    s3: AmazonS3,
    bucket: String,
    prefix: String,
    /// Where requests go, for messages.
    target: String,
}

/// The credentials variables the S3 client reads (docs/ARCHIVE.md).
const KEY_ID: &str = "AWS_ACCESS_KEY_ID";
const SECRET: &str = "AWS_SECRET_ACCESS_KEY";

impl Store {
    /// The bucket `config` names, with credentials from the environment.
    /// Each request is retried a few times within `patience`; the
    /// uploader's own loop retries forever beyond that.
    ///
    /// # Errors
    ///
    /// The configuration or the credentials are unusable (one line).
    pub fn open(config: &ArchiveConfig, patience: Duration) -> Result<Self> {
        let (bucket, prefix) = config.bucket_and_prefix().map_err(crate::Failure::invalid)?;
        let from_env =
            [KEY_ID, SECRET].iter().all(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        let profile = if from_env { None } else { profile_credentials()? };
        if !from_env && profile.is_none() {
            return Err(crate::Failure::invalid(format!(
                "archive: no credentials: set {KEY_ID} and {SECRET} (and AWS_SESSION_TOKEN for temporary ones), or a profile in ~/.aws/credentials (AWS_PROFILE); config.toml never holds them"
            ))
            .into());
        }
        let mut builder = AmazonS3Builder::from_env();
        if let Some(p) = profile {
            builder = builder.with_access_key_id(p.key_id).with_secret_access_key(p.secret);
            if let Some(token) = p.token {
                builder = builder.with_token(token);
            }
        }
        let mut builder = builder
            .with_bucket_name(&bucket)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: patience,
                ..RetryConfig::default()
            })
            .with_client_options(
                // (allow_http is a client option: set here, not before.)
                ClientOptions::new()
                    .with_allow_http(config.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(patience.max(Duration::from_secs(30))),
            );
        let region = config.region.clone().or_else(|| std::env::var("AWS_REGION").ok());
        builder = builder.with_region(region.unwrap_or_else(|| "us-east-1".into()));
        let target = match &config.endpoint {
            Some(endpoint) => {
                // Path-style requests: what S3-compatible servers expect.
                builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
                endpoint.clone()
            }
            None => std::env::var("AWS_ENDPOINT").unwrap_or_else(|_| "AWS S3".into()),
        };
        let s3 = builder.build().map_err(|e| anyhow!("archive: {e}"))?;
        Ok(Store { s3, bucket, prefix, target })
    }

    /// Checks that the bucket exists and the credentials may use it.
    ///
    /// # Errors
    ///
    /// One line naming the cause ([`describe`]).
    pub async fn preflight(&self) -> Result<()> {
        let prefix = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        match self.s3.list_with_delimiter(prefix.as_ref()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(anyhow!(describe(&e, &self.bucket, &self.target))),
        }
    }

    /// The object `key`, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// Anything but "not found"; an object larger than `limit` bytes.
    pub async fn read(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        self.read_path(&Key::from(key), limit).await
    }

    /// [`Store::read`] for a key as the bucket listed it.
    ///
    /// # Errors
    ///
    /// As [`Store::read`].
    pub async fn read_path(&self, key: &Key, limit: u64) -> Result<Option<Vec<u8>>> {
        match self.s3.get(key).await {
            Ok(got) if got.meta.size > limit => {
                Err(anyhow!("{key}: {} bytes, more than the {limit} expected", got.meta.size))
            }
            Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow!(describe(&e, &self.bucket, &self.target))),
        }
    }

    /// Writes `key` only if it does not exist (`If-None-Match: *`), with
    /// the SHA-256 `sha` of what it stands for in its metadata: an object
    /// is never overwritten, even by a race between two uploaders.
    ///
    /// # Errors
    ///
    /// The put fails for another reason than an existing object.
    pub async fn write_once(&self, key: &str, body: Vec<u8>, sha: &str) -> Result<WriteOutcome> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata("sha256".into()), sha.to_owned().into());
        let opts = PutOptions { mode: PutMode::Create, attributes, ..PutOptions::default() };
        match self.s3.put_opts(&Key::from(key), PutPayload::from(body), opts).await {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(WriteOutcome::Exists),
            Err(e) => Err(anyhow!(describe(&e, &self.bucket, &self.target))),
        }
    }

    /// The keys under `prefix` (a folder: `…/`), all pages, as listed.
    ///
    /// # Errors
    ///
    /// The listing fails (one line).
    pub async fn keys_under(&self, prefix: &str) -> Result<Vec<Key>> {
        Ok(self.objects_under(prefix).await?.into_iter().map(|o| o.location).collect())
    }

    /// The objects directly under `prefix` (a folder: `…/`), with their
    /// sizes, all pages.
    ///
    /// # Errors
    ///
    /// The listing fails (one line).
    pub async fn objects_under(&self, prefix: &str) -> Result<Vec<object_store::ObjectMeta>> {
        let listed = self
            .s3
            .list_with_delimiter(Some(&Key::from(prefix)))
            .await
            .map_err(|e| anyhow!(describe(&e, &self.bucket, &self.target)))?;
        Ok(listed.objects)
    }

    /// Bytes `range` of object `key` (a range request).
    ///
    /// # Errors
    ///
    /// The request fails, or the object is shorter.
    pub async fn read_range(&self, key: &Key, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let want = range.end - range.start;
        let got = self
            .s3
            .get_range(key, range)
            .await
            .map_err(|e| anyhow!(describe(&e, &self.bucket, &self.target)))?;
        anyhow::ensure!(
            got.len() as u64 == want,
            "{key}: {} bytes where {want} were asked",
            got.len()
        );
        Ok(got.to_vec())
    }
}

impl Store {
    /// Every object under `prefix`, as the bucket lists them (page after
    /// page, as the stream is read).
    pub fn list_all(
        &self,
        prefix: &str,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
    {
        let prefix = (!prefix.is_empty()).then(|| Key::from(prefix));
        self.s3.list(prefix.as_ref())
    }

    /// The `sha256` metadata of object `key`, if it has one.
    ///
    /// # Errors
    ///
    /// The request fails.
    pub async fn sha256_of(&self, key: &Key) -> Result<Option<String>> {
        let opts = object_store::GetOptions { head: true, ..object_store::GetOptions::default() };
        let got = self
            .s3
            .get_opts(key, opts)
            .await
            .map_err(|e| anyhow!(describe(&e, &self.bucket, &self.target)))?;
        Ok(got.attributes.get(&Attribute::Metadata("sha256".into())).map(|v| v.to_string()))
    }
}

/// Credentials of a profile in the shared credentials file.
struct Profile {
    key_id: String,
    secret: String,
    token: Option<String>,
}

/// The profile `AWS_PROFILE` names (else `default`) in
/// `AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`), as the AWS
/// tools read it; `None` when there is no such file or profile.
///
/// # Errors
///
/// The profile exists but lacks a key.
fn profile_credentials() -> Result<Option<Profile>> {
    let file = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(f) => std::path::PathBuf::from(f),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::Path::new(&home).join(".aws/credentials"),
            None => return Ok(None),
        },
    };
    let Ok(text) = std::fs::read_to_string(&file) else { return Ok(None) };
    let wanted = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let mut section = String::new();
    let mut found = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if section != wanted {
            continue;
        }
        found = true;
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().to_owned();
        match k.trim() {
            "aws_access_key_id" => key_id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    if !found {
        return Ok(None);
    }
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => Ok(Some(Profile { key_id, secret, token })),
        _ => Err(crate::Failure::invalid(format!(
            "archive: profile {wanted:?} in {} lacks aws_access_key_id or aws_secret_access_key",
            file.display()
        ))
        .into()),
    }
}

/// What a write-once put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The object is new.
    Written,
    /// An object of that key was there already; nothing was written.
    Exists,
}

/// One line for an error from the bucket: the cause, in words.
pub fn describe(e: &object_store::Error, bucket: &str, target: &str) -> String {
    let text = format!("{e}");
    let full = {
        let mut s = text.clone();
        let mut source = std::error::Error::source(e);
        while let Some(err) = source {
            s.push_str(&format!(": {err}"));
            source = err.source();
        }
        s
    };
    let has = |needle: &str| full.contains(needle);
    // By kind and by the server's error code, never by numbers in the
    // text (keys and ports hold digits).
    let refused = matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"]
        .iter()
        .any(|c| has(c));
    if has("NoSuchBucket") {
        format!("archive: the bucket {bucket:?} does not exist at {target}")
    } else if refused {
        format!(
            "archive: {target} refused the credentials for bucket {bucket:?} (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    } else if has("onnection refused")
        || has("error sending request")
        || has("dns error")
        || has("timed out")
    {
        format!("archive: cannot reach {target}: {}", last_cause(&full))
    } else {
        format!("archive: {}", last_cause(&full))
    }
}

/// The innermost cause of a chain of messages joined with ": ".
fn last_cause(full: &str) -> &str {
    full.rsplit(": ").find(|s| !s.trim().is_empty()).unwrap_or(full).trim()
}

//! The signing key of recordings and evidence: Ed25519, with SSHSIG
//! signatures (OpenSSH's `PROTOCOL.sshsig`).
//!
//! Keepers sign a recording checkpoint every second and evidence manifests,
//! so they carry this small Ed25519-only implementation instead of
//! `ssh-key`'s, which links every algorithm (RSA, the NIST curves, big
//! integers: about 700 KB of code, enough to put an idle keeper over its
//! 4 MB resident budget). Verifying stays with `ssh-key` in the `tether`
//! binary, and the unit tests check that both agree byte for byte: the
//! key files are OpenSSH's own format (`ssh-keygen` reads them) and the
//! signatures are what `ssh-key` and `ssh-keygen -Y sign` produce.
//!
//! The key lives at `$XDG_DATA_HOME/tether/signing_ed25519_key` (+ `.pub`)
//! and is created atomically by whichever process needs it first: written
//! to a private temporary file, then hard-linked into place, which fails
//! if another process won the race; the loser loads the winner's key.

use anyhow::{Context, Result, anyhow, bail, ensure};
use ed25519_dalek::Signer;
use sha2::Digest;
use std::path::Path;
use tether_proto::record::base64;

const KEY_TYPE: &str = "ssh-ed25519";
const AUTH_MAGIC: &[u8] = b"openssh-key-v1\0";
const PEM_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PEM_END: &str = "-----END OPENSSH PRIVATE KEY-----";
const SIG_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const SIG_END: &str = "-----END SSH SIGNATURE-----";
const SIG_MAGIC: &[u8] = b"SSHSIG";
/// OpenSSH wraps base64 armour at 70 columns.
const PEM_WIDTH: usize = 70;

/// The hash an SSHSIG signature is made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigHash {
    /// `sha256`.
    Sha256,
    /// `sha512`.
    Sha512,
}

impl SigHash {
    fn name(self) -> &'static str {
        match self {
            SigHash::Sha256 => "sha256",
            SigHash::Sha512 => "sha512",
        }
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            SigHash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            SigHash::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }
}

/// An Ed25519 private key.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    comment: String,
}

impl SigningKey {
    /// Loads the key at `path`, creating it (0600, with a `.pub` beside it)
    /// if it does not exist.
    ///
    /// # Errors
    ///
    /// The key cannot be read, parsed (it must be an unencrypted Ed25519
    /// key), generated or written.
    pub fn load_or_create(path: &Path) -> Result<SigningKey> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::load_private(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| describe(path)),
        }
        let dir = path.parent().context("a key path has a directory")?;
        crate::fsutil::ensure_private_dir(dir)?;
        let key = Self::generate()?;
        // A random name: a leftover of a crashed process (whose pid may be
        // ours now) must not stand in the way.
        let mut nonce = [0u8; 8];
        fill_random(&mut nonce)?;
        let tmp = path.with_extension(format!("tmp{}", u64::from_le_bytes(nonce)));
        write_private(&tmp, key.to_openssh().as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                let public = format!("{}\n", key.public_openssh());
                let pub_path = path.with_extension("pub");
                crate::fsutil::write_atomic(&pub_path, public.as_bytes())?;
                let _ = set_mode(&pub_path, 0o644);
                Ok(key)
            }
            // Another process created it between our check and our link.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).with_context(|| describe(path))?;
                Self::load_private(path, &text)
            }
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// Parses the key file at `path`, which only its owner may read: like
    /// OpenSSH, a signing key others can read is refused (anyone who read
    /// it could forge recordings and evidence).
    fn load_private(path: &Path, text: &str) -> Result<SigningKey> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| describe(path))?.permissions().mode();
        ensure!(
            mode & 0o077 == 0,
            "the signing key {} can be read by others (mode {:04o}); `chmod 600` it, or \
             replace it if it may have been copied",
            path.display(),
            mode & 0o7777
        );
        Self::from_openssh(text).with_context(|| describe(path))
    }

    /// A new random key.
    ///
    /// # Errors
    ///
    /// The system's random source fails.
    pub fn generate() -> Result<SigningKey> {
        let mut seed = [0u8; 32];
        fill_random(&mut seed)?;
        Ok(SigningKey { key: ed25519_dalek::SigningKey::from_bytes(&seed), comment: String::new() })
    }

    /// Parses an OpenSSH private key file.
    ///
    /// # Errors
    ///
    /// Not an OpenSSH private key, encrypted, not Ed25519, or inconsistent.
    pub fn from_openssh(text: &str) -> Result<SigningKey> {
        let body = text
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|t| t.strip_suffix(PEM_END))
            .ok_or_else(|| anyhow!("not an OpenSSH private key"))?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::decode(&b64).ok_or_else(|| anyhow!("the key is not valid base64"))?;
        let mut r = Reader(
            bytes.strip_prefix(AUTH_MAGIC).ok_or_else(|| anyhow!("not an openssh-key-v1 key"))?,
        );
        let (cipher, kdf) = (r.string()?, r.string()?);
        ensure!(
            cipher == b"none" && kdf == b"none",
            "the key is encrypted (tether needs an unencrypted key)"
        );
        r.string()?; // KDF options: empty without a KDF.
        ensure!(r.u32()? == 1, "the file holds more than one key");
        let public = r.string()?;
        let mut private = Reader(r.string()?);
        ensure!(private.u32()? == private.u32()?, "the key is damaged (check values differ)");
        let kind = private.string()?;
        ensure!(
            kind == KEY_TYPE.as_bytes(),
            "not an Ed25519 key (found {})",
            String::from_utf8_lossy(kind)
        );
        let pk = private.string()?;
        let sk = private.string()?;
        let comment = String::from_utf8_lossy(private.string()?).into_owned();
        ensure!(pk.len() == 32 && sk.len() == 64 && &sk[32..] == pk, "the Ed25519 key is damaged");
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&sk[..32]);
        let key = SigningKey { key: ed25519_dalek::SigningKey::from_bytes(&seed), comment };
        ensure!(key.public_blob() == public, "the key's public and private parts do not match");
        ensure!(key.key.verifying_key().to_bytes() == pk, "the key's private part is inconsistent");
        Ok(key)
    }

    /// The key as an unencrypted OpenSSH private key file.
    pub fn to_openssh(&self) -> String {
        let public = self.public_blob();
        let mut private = Vec::new();
        // Two equal check values (a decryption check for encrypted keys).
        let mut check = [0u8; 4];
        let _ = fill_random(&mut check);
        private.extend_from_slice(&check);
        private.extend_from_slice(&check);
        put_string(&mut private, KEY_TYPE.as_bytes());
        put_string(&mut private, &self.key.verifying_key().to_bytes());
        let mut sk = self.key.to_bytes().to_vec();
        sk.extend_from_slice(&self.key.verifying_key().to_bytes());
        put_string(&mut private, &sk);
        put_string(&mut private, self.comment.as_bytes());
        // Padded to the cipher's block size (8 for "none") with 1, 2, 3, …
        let mut pad = 1u8;
        while !private.len().is_multiple_of(8) {
            private.push(pad);
            pad += 1;
        }
        let mut out = AUTH_MAGIC.to_vec();
        put_string(&mut out, b"none");
        put_string(&mut out, b"none");
        put_string(&mut out, b"");
        out.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut out, &public);
        put_string(&mut out, &private);
        armour(PEM_BEGIN, &out, PEM_END)
    }

    /// The public key in the SSH wire format.
    pub fn public_blob(&self) -> Vec<u8> {
        let mut blob = Vec::with_capacity(51);
        put_string(&mut blob, KEY_TYPE.as_bytes());
        put_string(&mut blob, &self.key.verifying_key().to_bytes());
        blob
    }

    /// `ssh-ed25519 AAAA… comment`, as in a `.pub` file.
    pub fn public_openssh(&self) -> String {
        let line = format!("{KEY_TYPE} {}", base64::encode(&self.public_blob()));
        if self.comment.is_empty() { line } else { format!("{line} {}", self.comment) }
    }

    /// `SHA256:…`, as OpenSSH prints it.
    pub fn fingerprint(&self) -> String {
        let digest = sha2::Sha256::digest(self.public_blob());
        format!("SHA256:{}", base64::encode(&digest).trim_end_matches('='))
    }

    /// An SSHSIG signature of `message` in `namespace`, in the wire format.
    pub fn sshsig(&self, namespace: &str, hash: SigHash, message: &[u8]) -> Vec<u8> {
        let mut signed = SIG_MAGIC.to_vec();
        put_string(&mut signed, namespace.as_bytes());
        put_string(&mut signed, b"");
        put_string(&mut signed, hash.name().as_bytes());
        put_string(&mut signed, &hash.digest(message));
        let signature = self.key.sign(&signed).to_bytes();
        let mut sig_blob = Vec::with_capacity(83);
        put_string(&mut sig_blob, KEY_TYPE.as_bytes());
        put_string(&mut sig_blob, &signature);
        let mut out = SIG_MAGIC.to_vec();
        out.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut out, &self.public_blob());
        put_string(&mut out, namespace.as_bytes());
        put_string(&mut out, b"");
        put_string(&mut out, hash.name().as_bytes());
        put_string(&mut out, &sig_blob);
        out
    }

    /// [`SigningKey::sshsig`] armoured, as `ssh-keygen -Y sign` writes it.
    pub fn sshsig_pem(&self, namespace: &str, hash: SigHash, message: &[u8]) -> String {
        armour(SIG_BEGIN, &self.sshsig(namespace, hash, message), SIG_END)
    }
}

fn describe(path: &Path) -> String {
    format!("reading the key {}", path.display())
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => bail!("reading the system's random source: {e}"),
        }
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Appends an SSH `string`: a 32-bit big-endian length, then the bytes.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every string here is a key, a hash or a name: far below 4 GiB.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn armour(begin: &str, bytes: &[u8], end: &str) -> String {
    let b64 = base64::encode(bytes);
    let mut out = format!("{begin}\n");
    for line in b64.as_bytes().chunks(PEM_WIDTH) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(end);
    out.push('\n');
    out
}

/// Reads SSH wire-format values from a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32> {
        let (head, rest) =
            self.0.split_at_checked(4).ok_or_else(|| anyhow!("the key is truncated"))?;
        self.0 = rest;
        Ok(u32::from_be_bytes([head[0], head[1], head[2], head[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        let (s, rest) =
            self.0.split_at_checked(len).ok_or_else(|| anyhow!("the key is truncated"))?;
        self.0 = rest;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::{LineEnding, SshSig};
    use russh::keys::{HashAlg, PrivateKey};

    #[test]
    fn our_key_files_are_read_by_ssh_key_and_theirs_by_us() {
        let ours = SigningKey::generate().unwrap();
        let theirs = PrivateKey::from_openssh(ours.to_openssh()).unwrap();
        assert_eq!(theirs.public_key().to_openssh().unwrap(), ours.public_openssh());
        assert_eq!(crate::keys::fingerprint(theirs.public_key()), ours.fingerprint());

        let theirs = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let text = theirs.to_openssh(LineEnding::LF).unwrap();
        let ours = SigningKey::from_openssh(&text).unwrap();
        assert_eq!(theirs.public_key().to_openssh().unwrap(), ours.public_openssh());
    }

    #[test]
    fn signatures_are_byte_for_byte_ssh_keys() {
        let ours = SigningKey::generate().unwrap();
        let theirs = PrivateKey::from_openssh(ours.to_openssh()).unwrap();
        for (hash, alg) in [(SigHash::Sha256, HashAlg::Sha256), (SigHash::Sha512, HashAlg::Sha512)]
        {
            let msg = b"the manifest";
            let want = theirs.sign("tether-test", alg, msg).unwrap();
            let pem = ours.sshsig_pem("tether-test", hash, msg);
            assert_eq!(pem, want.to_pem(LineEnding::LF).unwrap());
            let sig = SshSig::from_pem(pem.as_bytes()).unwrap();
            assert!(theirs.public_key().verify("tether-test", msg, &sig).is_ok());
            assert!(theirs.public_key().verify("tether-test", b"other", &sig).is_err());
        }
    }

    #[test]
    fn damaged_encrypted_and_foreign_keys_are_refused_clearly() {
        let key = SigningKey::generate().unwrap().to_openssh();
        let mut lines: Vec<&str> = key.lines().collect();
        lines.truncate(2);
        let cut = format!("{}\n{PEM_END}\n", lines.join("\n"));
        assert!(SigningKey::from_openssh(&cut).is_err());
        assert!(SigningKey::from_openssh("ssh-ed25519 AAAA").is_err());
        let curve = russh::keys::ssh_key::EcdsaCurve::NistP256;
        let ecdsa =
            PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ecdsa { curve }).unwrap();
        let err = SigningKey::from_openssh(&ecdsa.to_openssh(LineEnding::LF).unwrap());
        assert!(format!("{:#}", err.err().unwrap()).contains("not an Ed25519 key"));
    }

    #[test]
    fn load_or_create_makes_a_private_key_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/signing_ed25519_key");
        let a = SigningKey::load_or_create(&path).unwrap();
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_blob(), b.public_blob());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert_eq!(public.trim(), a.public_openssh());
        // A key others can read is refused, naming the fix.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load_or_create(&path).err().unwrap();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
    }
}

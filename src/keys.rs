//! The SSH host keys tether creates for itself: Ed25519, which every
//! current client prefers, and RSA (signing with SHA-2 only) for clients
//! that cannot verify Ed25519 (older JSch, as embedded in Java tools).
//!
//! A key is created atomically by whichever process needs it first: written
//! to a private temporary file, then hard-linked into place, which fails if
//! another process won the race; the loser loads the winner's key.

use anyhow::{Context, Result};
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::RsaKeypair;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use std::path::Path;

/// The RSA modulus of a new host key: OpenSSH's own default, and the
/// smallest that ssh-audit does not warn about (2048 bits give 112 bits of
/// strength).
const RSA_BITS: usize = 3072;

/// A kind of host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `ssh-ed25519`.
    Ed25519,
    /// An RSA key, offered as `rsa-sha2-512` and `rsa-sha2-256`.
    Rsa,
}

impl KeyKind {
    /// The file name under the data directory.
    pub fn file_name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "host_ed25519_key",
            KeyKind::Rsa => "host_rsa_key",
        }
    }

    fn generate(self) -> Result<PrivateKey> {
        Ok(match self {
            KeyKind::Ed25519 => PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
                .context("generating an Ed25519 key")?,
            KeyKind::Rsa => PrivateKey::from(
                RsaKeypair::random(&mut rand::rng(), RSA_BITS).context("generating an RSA key")?,
            ),
        })
    }
}

/// Loads the key at `path`, creating one of `kind` (0600, with a `.pub`
/// beside it) if it does not exist.
///
/// # Errors
///
/// The key cannot be read, parsed, generated or written.
pub fn load_or_create(path: &Path, kind: KeyKind) -> Result<PrivateKey> {
    if let Ok(key) = PrivateKey::read_openssh_file(path) {
        return Ok(key);
    }
    if path.exists() {
        return PrivateKey::read_openssh_file(path)
            .with_context(|| format!("reading the key {}", path.display()));
    }
    let dir = path.parent().context("a key path has a directory")?;
    crate::fsutil::ensure_private_dir(dir)?;
    let key = kind.generate()?;
    // A random name: a leftover of a crashed process must not stand in the way.
    let tmp = path.with_extension(format!("tmp{}", rand::random::<u64>()));
    // ssh-key creates the file with mode 0600.
    key.write_openssh_file(&tmp, LineEnding::LF)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            let public = key.public_key().to_openssh().context("encoding the public key")?;
            crate::fsutil::write_atomic(
                &path.with_extension("pub"),
                format!("{public}\n").as_bytes(),
            )?;
            let _ = set_mode(&path.with_extension("pub"), 0o644);
            Ok(key)
        }
        // Another process created it between our check and our link.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            PrivateKey::read_openssh_file(path)
                .with_context(|| format!("reading the key {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// `SHA256:…`, as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_once_then_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/host_ed25519_key");
        let a = load_or_create(&path, KeyKind::Ed25519).unwrap();
        let b = load_or_create(&path, KeyKind::Ed25519).unwrap();
        assert_eq!(a.public_key().key_data(), b.public_key().key_data());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "));
        assert!(fingerprint(a.public_key()).starts_with("SHA256:"));
    }

    #[test]
    fn rsa_host_keys_have_3072_bits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_rsa_key");
        let key = load_or_create(&path, KeyKind::Rsa).unwrap();
        let rsa = key.key_data().rsa().unwrap();
        assert_eq!(rsa.key_size(), 3072);
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert!(public.starts_with("ssh-rsa "));
        let again = load_or_create(&path, KeyKind::Rsa).unwrap();
        assert_eq!(again.public_key().key_data(), key.public_key().key_data());
    }
}

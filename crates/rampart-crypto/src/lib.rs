//! Rampart's key material. Signing keys are generated on first start and kept in the
//! data dir (mode 0600); nothing outside this crate sees a private key, only what is
//! signed with it and the public half.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

/// What can go wrong with a key.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file holds something that is not an Ed25519 PKCS#8 key.
    #[error("key file {0} does not hold an Ed25519 PKCS#8 key")]
    Malformed(PathBuf),
    /// Key generation or signing failed.
    #[error("{0}")]
    Signing(String),
}

/// An Ed25519 signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| CryptoError::Signing(format!("key generation: {e}")))?;
        Self::from_pkcs8(pkcs8.as_ref().to_vec())
            .map_err(|()| CryptoError::Signing("generated key rejected".into()))
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<Self, ()> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| ())?;
        let key_id = jwk_thumbprint(pair.public_key().as_ref());
        Ok(Self {
            pair,
            pkcs8,
            key_id,
        })
    }

    /// Loads the key in `path` (PKCS#8 DER), generating and saving one (mode 0600) if
    /// the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let io = |source| CryptoError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                Self::from_pkcs8(bytes).map_err(|()| CryptoError::Malformed(path.to_path_buf()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(path, &key.pkcs8).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key (32 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The key id: the RFC 7638 JWK thumbprint of the public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `message` (Ed25519, 64 bytes).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }

    /// A compact JWS (`alg` EdDSA, `typ` JWT, `kid` this key's id) over `claims`.
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> Result<String, CryptoError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        let key = jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8);
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| CryptoError::Signing(e.to_string()))
    }

    /// The public key as a JWK (RFC 8037 `OKP`).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.public_key()),
            "kid": self.key_id,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

/// Per-data-subject encryption keys (ChaCha20-Poly1305), one file each under a
/// directory (mode 0600). Destroying a subject's key ([`SubjectKeys::forget`]) makes
/// everything sealed for them unreadable — crypto-shredding — without touching the
/// sealed bytes themselves.
pub struct SubjectKeys {
    dir: PathBuf,
    rng: SystemRandom,
}

impl std::fmt::Debug for SubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKeys")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SubjectKeys {
    /// Keys kept in `dir` (created if needed).
    pub fn open(dir: &Path) -> Result<Self, CryptoError> {
        std::fs::create_dir_all(dir).map_err(|source| CryptoError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rng: SystemRandom::new(),
        })
    }

    fn path(&self, subject: &str) -> PathBuf {
        // File names reveal nothing about the subject.
        let digest = Sha256::digest(subject.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }

    fn key(&self, subject: &str, create: bool) -> Result<Option<LessSafeKey>, CryptoError> {
        let path = self.path(subject);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut fresh = [0u8; 32];
                ring::rand::SecureRandom::fill(&self.rng, &mut fresh)
                    .map_err(|_| CryptoError::Signing("no randomness".into()))?;
                match write_private(&path, &fresh) {
                    Ok(()) => fresh.to_vec(),
                    // Another writer made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(&path)
                        .map_err(|source| CryptoError::Io {
                            path: path.clone(),
                            source,
                        })?,
                    Err(source) => return Err(CryptoError::Io { path, source }),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CryptoError::Io { path, source }),
        };
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| CryptoError::Malformed(path.clone()))?;
        Ok(Some(LessSafeKey::new(key)))
    }

    /// Encrypts `plaintext` for `subject` (creating their key on first use); returns
    /// base64url of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, subject: &str, plaintext: &[u8]) -> Result<String, CryptoError> {
        let key = self
            .key(subject, true)?
            .ok_or_else(|| CryptoError::Signing("subject key missing".into()))?;
        let mut nonce = [0u8; 12];
        ring::rand::SecureRandom::fill(&self.rng, &mut nonce)
            .map_err(|_| CryptoError::Signing("no randomness".into()))?;
        let mut data = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(subject.as_bytes()),
            &mut data,
        )
        .map_err(|_| CryptoError::Signing("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`SubjectKeys::seal`] made; `None` when the key is gone or the
    /// data was altered.
    pub fn open_sealed(&self, subject: &str, sealed: &str) -> Option<Vec<u8>> {
        let key = self.key(subject, false).ok()??;
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..12]).ok()?;
        let mut data = bytes[12..].to_vec();
        let clear = key
            .open_in_place(nonce, Aad::from(subject.as_bytes()), &mut data)
            .ok()?;
        Some(clear.to_vec())
    }

    /// Destroys `subject`'s key.
    pub fn forget(&self, subject: &str) -> Result<(), CryptoError> {
        let path = self.path(subject);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CryptoError::Io { path, source }),
        }
    }
}

/// Checks an Ed25519 `signature` of `message` by `public_key` (32 bytes).
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// The RFC 7638 thumbprint of an Ed25519 public key's JWK.
fn jwk_thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        tempfile::Builder::new()
            .prefix("rampart-crypto-")
            .tempdir()
            .expect("temp dir")
            .keep()
            .join(name)
    }

    #[test]
    fn a_key_is_created_once_private_and_loaded_again() {
        let path = temp_path("signing.p8");
        let first = SigningKey::load_or_create(&path).expect("create");
        let again = SigningKey::load_or_create(&path).expect("load");
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(first.key_id(), again.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(
            SigningKey::load_or_create(&path),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn signed_jwts_verify_with_the_published_jwk() {
        let key = SigningKey::generate().expect("key");
        let token = key
            .sign_jwt(&serde_json::json!({ "sub": "c1", "exp": 4_000_000_000u64 }))
            .expect("sign");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).expect("jwk parses");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(key.key_id()));
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation)
            .expect("verifies");
        assert_eq!(data.claims["sub"], "c1");
        // Another key's JWK does not verify it.
        let other = SigningKey::generate().expect("key");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(other.jwk()).expect("jwk");
        let wrong = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &wrong, &validation).is_err());
    }

    #[test]
    fn raw_signatures_verify() {
        let key = SigningKey::generate().expect("key");
        let signature = key.sign(b"message");
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.public_key());
        assert!(public.verify(b"message", &signature).is_ok());
        assert!(public.verify(b"messagE", &signature).is_err());
    }
}

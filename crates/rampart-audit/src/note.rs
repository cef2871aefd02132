//! Checkpoints in the C2SP `tlog-checkpoint` format, signed as C2SP `signed-note`s with
//! Ed25519, and verifier keys in the note verifier-key format.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rampart_crypto::SigningKey;
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The signature type byte of Ed25519 in note keys.
const ED25519: u8 = 0x01;

/// A checkpoint: the log's origin, its size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name.
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// The root hash of those entries.
    pub root: Hash,
}

/// Why a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The text is not a well-formed note or checkpoint.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by a known key verifies.
    #[error("no valid signature by a known key")]
    Unverified,
}

impl Checkpoint {
    /// The checkpoint body: origin, size and base64 root, one per line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint body (extension lines after the root are allowed).
    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::Malformed("no origin"))?;
        let size = lines
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(NoteError::Malformed("bad size"))?;
        let root = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or(NoteError::Malformed("bad root hash"))?;
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// The 4-byte key hash of a note key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4].
fn key_hash(name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public_key);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key `<name>+<key hash hex>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(name: &str, public_key: &[u8]) -> String {
    let hash = key_hash(name, public_key);
    let mut typed = vec![ED25519];
    typed.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        STANDARD.encode(typed)
    )
}

/// A parsed verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    /// Key name.
    pub name: String,
    hash: [u8; 4],
    public_key: Vec<u8>,
}

impl Verifier {
    /// Parses `<name>+<hash>+<base64 key>`, checking that the hash matches.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Malformed("verifier key needs name+hash+key"));
        };
        let typed = STANDARD
            .decode(key)
            .map_err(|_| NoteError::Malformed("verifier key is not base64"))?;
        if typed.len() != 33 || typed[0] != ED25519 {
            return Err(NoteError::Malformed("not an Ed25519 verifier key"));
        }
        let public_key = typed[1..].to_vec();
        let expected = key_hash(name, &public_key);
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        if hex != hash {
            return Err(NoteError::Malformed("verifier key hash mismatch"));
        }
        Ok(Self {
            name: name.to_string(),
            hash: expected,
            public_key,
        })
    }
}

/// Signs `body` (which must end in a newline) as a note by `key` under `name`.
pub fn sign(body: &str, name: &str, key: &SigningKey) -> String {
    let signature = key.sign(body.as_bytes());
    let mut blob = key_hash(name, key.public_key()).to_vec();
    blob.extend_from_slice(&signature);
    format!("{body}\n\u{2014} {name} {}\n", STANDARD.encode(blob))
}

/// Verifies a signed note against `verifiers`; returns its body when at least one
/// known key's signature verifies (signatures by unknown keys are ignored).
pub fn open<'a>(note: &'a str, verifiers: &[Verifier]) -> Result<&'a str, NoteError> {
    if note.len() > 64 * 1024 {
        return Err(NoteError::Malformed("note too large"));
    }
    let split = note
        .find("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let body = &note[..split + 1];
    let signatures = &note[split + 2..];
    if !signatures.ends_with('\n') {
        return Err(NoteError::Malformed("signatures must end in a newline"));
    }
    for line in signatures.lines() {
        let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
            "signature line must start with an em dash",
        ))?;
        let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "signature line needs a name and a signature",
        ))?;
        let Ok(blob) = STANDARD.decode(blob) else {
            return Err(NoteError::Malformed("signature is not base64"));
        };
        if blob.len() != 68 {
            continue;
        }
        for v in verifiers {
            if v.name == name
                && blob[..4] == v.hash
                && rampart_crypto::verify_ed25519(&v.public_key, body.as_bytes(), &blob[4..])
            {
                return Ok(body);
            }
        }
    }
    Err(NoteError::Unverified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoints_verify_and_altered_ones_do_not() {
        let key = SigningKey::generate().expect("key");
        let name = "example.com/rampart-audit";
        let checkpoint = Checkpoint {
            origin: name.into(),
            size: 42,
            root: crate::merkle::leaf_hash(b"x"),
        };
        let note = sign(&checkpoint.body(), name, &key);
        let vkey = verifier_key(name, key.public_key());
        let verifier = Verifier::parse(&vkey).expect("verifier");
        let body = open(&note, std::slice::from_ref(&verifier)).expect("verifies");
        assert_eq!(Checkpoint::parse(body).expect("parse"), checkpoint);
        let altered = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            open(&altered, std::slice::from_ref(&verifier)),
            Err(NoteError::Unverified)
        );
        let other = SigningKey::generate().expect("key");
        let stranger = Verifier::parse(&verifier_key(name, other.public_key())).expect("v");
        assert_eq!(open(&note, &[stranger]), Err(NoteError::Unverified));
        assert!(Verifier::parse(&vkey.replacen('+', "x+", 1)).is_err());
        assert!(open("no signatures", &[verifier]).is_err());
    }
}

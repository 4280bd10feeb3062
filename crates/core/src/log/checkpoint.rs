//! Signed checkpoints: C2SP tlog-checkpoint bodies signed as C2SP signed
//! notes with Ed25519, and the key formats of Go's
//! `golang.org/x/mod/sumdb/note` (signer and verifier key texts).
//!
//! A checkpoint body is three lines, each ending in `\n`:
//!
//! ```text
//! <origin>            e.g. audit.example.com/acme  (configured origin / account)
//! <tree size>         decimal, no leading zeros
//! <root hash>         standard base64 with padding
//! ```
//!
//! A signed note is the body, a blank line, and the signature line
//! `— <key name> <base64(key hash ‖ Ed25519 signature)>\n`, where the key hash
//! is the first 4 bytes of `SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key)`.
//!
//! The parsers here are a security boundary, so they are strict: they accept
//! exactly what [`NoteSigner`] and [`Checkpoint::to_body`] write, and nothing
//! that differs from it by a byte. Two deliberate restrictions go beyond the
//! C2SP specs: checkpoint extension lines are rejected (auditlog writes none),
//! and a note must carry exactly one signature, by the expected key. The
//! signed-note spec asks verifiers to ignore signatures by unknown keys so
//! that witnesses can cosign; accepting such lines would let anyone append
//! bytes to a checkpoint that still "verifies". A witness-aware opener would
//! be a separate function with an explicit policy.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::log::merkle::Hash;

/// The signature-type byte of Ed25519 in signed-note keys.
const ALG_ED25519: u8 = 0x01;

/// The em dash and space that start a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Largest note [`open_note`] reads; a checkpoint is a few hundred bytes.
pub const MAX_NOTE_LEN: usize = 16 * 1024;

/// A Merkle tree head: which log, how many leaves, which root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The log's identity: `<configured origin>/<account>`.
    pub origin: String,
    /// Number of leaves (records) the tree holds.
    pub size: u64,
    /// The RFC 9162 root hash of those leaves.
    pub root: Hash,
}

/// A checkpoint body is not exactly what [`Checkpoint::to_body`] writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseCheckpointError {
    /// Not three lines each ending in `\n`.
    #[error(
        "checkpoint must be exactly three lines (origin, size, root), each ending in a newline"
    )]
    WrongLineCount,
    /// The origin line is empty or has white space or control characters.
    #[error("invalid checkpoint origin {0:?}")]
    BadOrigin(String),
    /// The size line is not a canonical decimal `u64`.
    #[error("invalid checkpoint tree size {0:?}")]
    BadSize(String),
    /// The root line is not the canonical base64 of 32 bytes.
    #[error("invalid checkpoint root hash {0:?}")]
    BadRoot(String),
}

fn valid_origin(origin: &str) -> bool {
    !origin.is_empty() && !origin.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Checkpoint {
    /// A checkpoint with a validated origin.
    pub fn new(
        origin: impl Into<String>,
        size: u64,
        root: Hash,
    ) -> Result<Self, ParseCheckpointError> {
        let origin = origin.into();
        if !valid_origin(&origin) {
            return Err(ParseCheckpointError::BadOrigin(origin));
        }
        Ok(Self { origin, size, root })
    }

    /// The account this checkpoint is for: the origin's last `/` segment,
    /// `None` when the origin has no `/`.
    pub fn account(&self) -> Option<&str> {
        self.origin.rsplit_once('/').map(|(_, account)| account)
    }

    /// The tlog-checkpoint body: origin, size and base64 root, each line
    /// ending in `\n`.
    pub fn to_body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Parses a body written by [`to_body`](Self::to_body), strictly: exactly
    /// three lines, no extra white space, a size without sign or leading
    /// zeros, a root in canonical padded base64.
    pub fn parse_body(body: &str) -> Result<Self, ParseCheckpointError> {
        let Some(body) = body.strip_suffix('\n') else {
            return Err(ParseCheckpointError::WrongLineCount);
        };
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(ParseCheckpointError::WrongLineCount);
        };
        if !valid_origin(origin) {
            return Err(ParseCheckpointError::BadOrigin(origin.to_owned()));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size: parse_canonical_u64(size)
                .ok_or_else(|| ParseCheckpointError::BadSize(size.to_owned()))?,
            root: decode_root(root)
                .ok_or_else(|| ParseCheckpointError::BadRoot(root.to_owned()))?,
        })
    }
}

/// A decimal `u64` with no sign, no leading zeros, nothing else.
fn parse_canonical_u64(s: &str) -> Option<u64> {
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn decode_root(s: &str) -> Option<Hash> {
    let bytes = decode_base64_exact(s)?;
    bytes.try_into().ok()
}

/// Decodes standard padded base64, only if encoding the result gives `s`
/// back (so there is exactly one accepted spelling of any byte string).
fn decode_base64_exact(s: &str) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(s).ok()?;
    (BASE64.encode(&bytes) == s).then_some(bytes)
}

/// A key text (signer, verifier) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseKeyError {
    /// The text does not have the `name+hash+key` shape.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// The key name is empty, or holds white space, a control character or `+`.
    #[error("invalid key name {0:?}")]
    BadName(String),
    /// The key is not Ed25519 (signature type byte other than 0x01).
    #[error("unsupported key type {0:#04x}, expected Ed25519 (0x01)")]
    UnsupportedAlgorithm(u8),
    /// The key hash in the text is not the hash of the name and key.
    #[error("key hash {stated:08x} does not match the name and key ({computed:08x})")]
    HashMismatch {
        /// Hash written in the text.
        stated: u32,
        /// Hash of the name and key.
        computed: u32,
    },
    /// The public key is not a usable Ed25519 point.
    #[error("invalid Ed25519 public key")]
    BadPublicKey,
}

/// A signed-note key name: non-empty, no white space, no control
/// character, no `+` (which separates the fields of key texts).
fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4]`, big-endian.
fn key_hash(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Splits `<name>+<8 hex>+<base64(0x01 ‖ 32 bytes)>` into its parts,
/// checking everything but the hash, which depends on the key kind.
fn split_key_text(text: &str) -> Result<(&str, u32, [u8; 32]), ParseKeyError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseKeyError::Malformed("expected <name>+<hash>+<key>"));
    };
    if !valid_key_name(name) {
        return Err(ParseKeyError::BadName(name.to_owned()));
    }
    let hash_ok = hash_hex.len() == 8
        && hash_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hash_ok {
        return Err(ParseKeyError::Malformed(
            "key hash must be 8 lowercase hex digits",
        ));
    }
    let stated = u32::from_str_radix(hash_hex, 16)
        .map_err(|_| ParseKeyError::Malformed("key hash must be 8 lowercase hex digits"))?;
    let key = decode_base64_exact(key_b64)
        .ok_or(ParseKeyError::Malformed("key is not canonical base64"))?;
    let Some((&alg, key)) = key.split_first() else {
        return Err(ParseKeyError::Malformed("empty key"));
    };
    if alg != ALG_ED25519 {
        return Err(ParseKeyError::UnsupportedAlgorithm(alg));
    }
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| ParseKeyError::Malformed("Ed25519 key must be 32 bytes"))?;
    Ok((name, stated, key))
}

/// Signs checkpoints: an Ed25519 key with its signed-note name.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_hash: u32,
}

impl fmt::Debug for NoteSigner {
    // Never print the seed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_hash", &format_args!("{:08x}", self.key_hash))
            .finish_non_exhaustive()
    }
}

/// A note could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignNoteError {
    /// The text is empty, does not end in `\n`, holds a blank line or a
    /// control character other than `\n`, so it would not open again.
    #[error(
        "note text must be non-empty lines each ending in a newline, without blank lines or control characters"
    )]
    BadText,
    /// The checkpoint's origin is not valid.
    #[error(transparent)]
    BadCheckpoint(#[from] ParseCheckpointError),
}

impl NoteSigner {
    /// A signer for `name` from a 32-byte Ed25519 seed (the private key).
    /// To make a new key, pass 32 bytes from the operating system's random
    /// number generator; this crate reads no randomness itself.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, ParseKeyError> {
        if !valid_key_name(name) {
            return Err(ParseKeyError::BadName(name.to_owned()));
        }
        let key = SigningKey::from_bytes(seed);
        let key_hash = key_hash(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_hash,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ seed)>`, the format
    /// of Go's `note.NewSigner`. Surrounding white space (a key file's final
    /// newline) is ignored.
    pub fn from_private_key_text(text: &str) -> Result<Self, ParseKeyError> {
        let Some(rest) = text.trim().strip_prefix("PRIVATE+KEY+") else {
            return Err(ParseKeyError::Malformed(
                "expected PRIVATE+KEY+<name>+<hash>+<key>",
            ));
        };
        let (name, stated, seed) = split_key_text(rest)?;
        let signer = Self::from_seed(name, &seed)?;
        if signer.key_hash != stated {
            return Err(ParseKeyError::HashMismatch {
                stated,
                computed: signer.key_hash,
            });
        }
        Ok(signer)
    }

    /// The private key text, which [`from_private_key_text`](Self::from_private_key_text)
    /// reads back. It is the secret: store it like one.
    pub fn to_private_key_text(&self) -> String {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_hash,
            BASE64.encode(key)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key hash that identifies this key in signature lines.
    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// The verifier key text `<name>+<hash>+<base64(0x01 ‖ public key)>`,
    /// to publish for auditors.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_string()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_hash: self.key_hash,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` as a signed note: the text, a blank line, and one
    /// signature line. The text must be what [`NoteVerifier::open`] accepts
    /// back: non-empty, every line ending in `\n`, no blank line, no control
    /// character but `\n`.
    pub fn sign(&self, text: &str) -> Result<String, SignNoteError> {
        if !valid_note_text(text) {
            return Err(SignNoteError::BadText);
        }
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_hash.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(blob)
        ))
    }

    /// Signs a checkpoint: [`sign`](Self::sign) of its body.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, SignNoteError> {
        if !valid_origin(&checkpoint.origin) {
            return Err(ParseCheckpointError::BadOrigin(checkpoint.origin.clone()).into());
        }
        self.sign(&checkpoint.to_body())
    }
}

fn valid_note_text(text: &str) -> bool {
    text.ends_with('\n')
        && !text.starts_with('\n')
        && !text.contains("\n\n")
        && !text.chars().any(|c| c.is_control() && c != '\n')
}

/// Checks signatures of one key: a signed-note verifier key.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_hash: u32,
    key: VerifyingKey,
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NoteVerifier")
            .field(&self.to_string())
            .finish()
    }
}

impl fmt::Display for NoteVerifier {
    /// The verifier key text `<name>+<hash>+<base64(0x01 ‖ public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_hash,
            BASE64.encode(key)
        )
    }
}

/// A signed note did not open.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenNoteError {
    /// Larger than [`MAX_NOTE_LEN`].
    #[error("note is {0} bytes, larger than the {MAX_NOTE_LEN} allowed")]
    TooLarge(usize),
    /// Not text, blank line, signature lines.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// The signature is by another key than the one trusted.
    #[error("note is signed by key {name}+{key_hash:08x}, not by the trusted key {expected}")]
    UnknownKey {
        /// Key name in the signature line.
        name: String,
        /// Key hash in the signature line.
        key_hash: u32,
        /// The trusted verifier key.
        expected: String,
    },
    /// More than one signature line.
    #[error("note has {0} signature lines, expected exactly one")]
    TooManySignatures(usize),
    /// The signature does not verify: the text or signature was altered.
    #[error("invalid signature by {0}")]
    BadSignature(String),
    /// The signed text is not a checkpoint.
    #[error("signed text is not a checkpoint: {0}")]
    BadCheckpoint(#[from] ParseCheckpointError),
}

impl NoteVerifier {
    /// Parses a verifier key `<name>+<hash>+<base64(0x01 ‖ public key)>`
    /// (Go's `note.NewVerifier` format). Surrounding white space is ignored.
    pub fn parse(vkey: &str) -> Result<Self, ParseKeyError> {
        let (name, stated, public) = split_key_text(vkey.trim())?;
        let computed = key_hash(name, &public);
        if computed != stated {
            return Err(ParseKeyError::HashMismatch { stated, computed });
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| ParseKeyError::BadPublicKey)?;
        // A small-order key admits signatures that verify for many messages.
        if key.is_weak() {
            return Err(ParseKeyError::BadPublicKey);
        }
        Ok(Self {
            name: name.to_owned(),
            key_hash: stated,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key hash.
    pub fn key_hash(&self) -> u32 {
        self.key_hash
    }

    /// Opens a signed note: checks its shape and its one signature, by this
    /// key, and returns the signed text (ending in `\n`).
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, OpenNoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(OpenNoteError::TooLarge(note.len()));
        }
        // As in Go's note.Open: the signatures follow the last blank line.
        let Some(split) = note.rfind("\n\n") else {
            return Err(OpenNoteError::Malformed(
                "no blank line before the signatures",
            ));
        };
        let (text, sigs) = (&note[..=split], &note[split + 2..]);
        if !valid_note_text(text) {
            return Err(OpenNoteError::Malformed(
                "text has blank lines or control characters",
            ));
        }
        let Some(sigs) = sigs.strip_suffix('\n') else {
            return Err(OpenNoteError::Malformed(
                "signature lines must end in a newline",
            ));
        };
        let lines: Vec<&str> = sigs.split('\n').collect();
        let [line] = lines[..] else {
            return Err(OpenNoteError::TooManySignatures(lines.len()));
        };
        let Some(line) = line.strip_prefix(SIG_PREFIX) else {
            return Err(OpenNoteError::Malformed(
                "signature line must start with an em dash and a space",
            ));
        };
        let Some((name, blob)) = line.split_once(' ') else {
            return Err(OpenNoteError::Malformed(
                "signature line must be a key name, a space and base64",
            ));
        };
        if !valid_key_name(name) {
            return Err(OpenNoteError::Malformed(
                "invalid key name in signature line",
            ));
        }
        let Some(blob) = decode_base64_exact(blob) else {
            return Err(OpenNoteError::Malformed(
                "signature is not canonical base64",
            ));
        };
        let Some((hash, sig)) = blob.split_first_chunk::<4>() else {
            return Err(OpenNoteError::Malformed("signature too short"));
        };
        let key_hash = u32::from_be_bytes(*hash);
        if name != self.name || key_hash != self.key_hash {
            return Err(OpenNoteError::UnknownKey {
                name: name.to_owned(),
                key_hash,
                expected: self.to_string(),
            });
        }
        let sig: &[u8; 64] = sig
            .try_into()
            .map_err(|_| OpenNoteError::Malformed("Ed25519 signature must be 64 bytes"))?;
        // verify_strict also rejects small-order R and non-canonical
        // encodings, so a valid signature cannot be re-spelled into another
        // valid one.
        self.key
            .verify_strict(text.as_bytes(), &Signature::from_bytes(sig))
            .map_err(|_| OpenNoteError::BadSignature(self.to_string()))?;
        Ok(text)
    }
}

/// Opens a signed checkpoint: the note's signature by `verifier`, then the
/// body, both strictly.
pub fn open_note(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, OpenNoteError> {
    let body = verifier.open(note)?;
    Ok(Checkpoint::parse_body(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers from golang.org/x/mod/sumdb/note (its documentation
    // example) and from the C2SP signed-note spec's example.
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    pub(crate) fn test_signer() -> NoteSigner {
        NoteSigner::from_seed("audit.example.com", &[7u8; 32]).expect("valid name")
    }

    pub(crate) fn test_checkpoint() -> Checkpoint {
        Checkpoint::new(
            "audit.example.com/acme",
            1234,
            crate::log::merkle::hash_leaf(b"root"),
        )
        .expect("valid origin")
    }

    #[test]
    fn go_sumdb_note_known_answer() {
        let signer = NoteSigner::from_private_key_text(GO_SKEY).expect("go key");
        assert_eq!(signer.to_private_key_text(), GO_SKEY);
        assert_eq!(signer.verifier_key(), GO_VKEY);
        assert_eq!(signer.key_hash(), 0xc74f20a3);
        let note = signer.sign(GO_TEXT).expect("sign");
        assert_eq!(note, format!("{GO_TEXT}\n{GO_SIG}"));

        let verifier = NoteVerifier::parse(GO_VKEY).expect("go vkey");
        assert_eq!(verifier.to_string(), GO_VKEY);
        assert_eq!(verifier.open(&note), Ok(GO_TEXT));
    }

    #[test]
    fn c2sp_spec_example_opens() {
        let verifier = NoteVerifier::parse(SPEC_VKEY).expect("spec vkey");
        assert_eq!(verifier.name(), "example.com/foo");
        assert_eq!(
            verifier.open(SPEC_NOTE),
            Ok("This is an example message.\n")
        );
    }

    #[test]
    fn checkpoint_body_round_trips_and_is_strict() {
        let cp = test_checkpoint();
        let body = cp.to_body();
        assert_eq!(
            body,
            format!("audit.example.com/acme\n1234\n{}\n", BASE64.encode(cp.root))
        );
        assert_eq!(Checkpoint::parse_body(&body), Ok(cp.clone()));
        assert_eq!(cp.account(), Some("acme"));

        let root = BASE64.encode(cp.root);
        let bad = [
            format!("o/a\n1234\n{root}"),                         // no final newline
            format!("o/a\n1234\n{root}\n\n"),                     // blank line
            format!("o/a\n1234\n{root}\nextension\n"),            // extension line
            format!("o/a\n01234\n{root}\n"),                      // leading zero
            format!("o/a\n+1234\n{root}\n"),                      // sign
            format!("o/a\n 1234\n{root}\n"),                      // space
            format!("o/a\n18446744073709551616\n{root}\n"),       // u64 overflow
            format!("o/a\n\n{root}\n"),                           // empty size
            format!("o a\n1234\n{root}\n"),                       // space in origin
            format!("\n1234\n{root}\n"),                          // empty origin
            format!("o/a\r\n1234\n{root}\n"),                     // CRLF
            format!("o/a\n1234\n{root} \n"),                      // trailing space
            format!("o/a\n1234\n{}\n", &root[..root.len() - 1]),  // no padding
            format!("o/a\n1234\n{}\n", BASE64.encode([0u8; 31])), // short root
        ];
        for body in &bad {
            assert!(Checkpoint::parse_body(body).is_err(), "{body:?}");
        }
        // Non-canonical base64: the last character carries unused bits.
        let mut chars: Vec<char> = root.chars().collect();
        let i = chars.len() - 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let twisted: String = chars.into_iter().collect();
        if BASE64
            .decode(&twisted)
            .map(|b| b == cp.root)
            .unwrap_or(false)
        {
            assert!(Checkpoint::parse_body(&format!("o/a\n1\n{twisted}\n")).is_err());
        }
        assert_eq!(
            Checkpoint::parse_body(&format!("o/a\n0\n{root}\n")).map(|c| c.size),
            Ok(0)
        );
    }

    #[test]
    fn signed_checkpoint_opens_and_keys_round_trip() {
        let signer = test_signer();
        let cp = test_checkpoint();
        let note = signer.sign_checkpoint(&cp).expect("sign");
        let verifier = NoteVerifier::parse(&signer.verifier_key()).expect("vkey");
        assert_eq!(open_note(&note, &verifier), Ok(cp));

        let again =
            NoteSigner::from_private_key_text(&format!("{}\n", signer.to_private_key_text()))
                .expect("private key text");
        assert_eq!(again.verifier_key(), signer.verifier_key());
        assert!(format!("{signer:?}").contains("audit.example.com"));
        assert!(!format!("{signer:?}").contains(&BASE64.encode([7u8; 32])));
    }

    #[test]
    fn keys_are_checked() {
        let signer = test_signer();
        let vkey = signer.verifier_key();
        let skey = signer.to_private_key_text();
        // Wrong hash, wrong algorithm byte, bad names.
        let (name_hash, key) = vkey.rsplit_once('+').expect("shape");
        let (name, _) = name_hash.split_once('+').expect("shape");
        let wrong_hash = format!("{name}+00000000+{key}");
        assert!(matches!(
            NoteVerifier::parse(&wrong_hash),
            Err(ParseKeyError::HashMismatch { .. })
        ));
        let upper = format!("{name}+{:08X}+{key}", signer.key_hash());
        if upper != vkey {
            assert!(NoteVerifier::parse(&upper).is_err());
        }
        let mut raw = BASE64.decode(key).expect("b64");
        raw[0] = 0x02;
        assert!(matches!(
            NoteVerifier::parse(&format!("{name_hash}+{}", BASE64.encode(&raw))),
            Err(ParseKeyError::UnsupportedAlgorithm(2))
        ));
        assert!(NoteVerifier::parse(name_hash).is_err());
        assert!(NoteSigner::from_seed("has space", &[1; 32]).is_err());
        assert!(NoteSigner::from_seed("has+plus", &[1; 32]).is_err());
        assert!(NoteSigner::from_seed("", &[1; 32]).is_err());
        assert!(NoteSigner::from_private_key_text(&skey.replacen("PRIVATE", "PUBLIC", 1)).is_err());
        let mismatched = skey.replacen(&format!("{:08x}", signer.key_hash()), "00000000", 1);
        assert!(matches!(
            NoteSigner::from_private_key_text(&mismatched),
            Err(ParseKeyError::HashMismatch { .. })
        ));
        // A small-order public key is refused even with a correct hash.
        // y = 1 with a positive sign: the identity point, of order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut text = vec![ALG_ED25519];
        text.extend_from_slice(&identity);
        let vk = format!(
            "weak+{:08x}+{}",
            key_hash("weak", &identity),
            BASE64.encode(text)
        );
        assert_eq!(NoteVerifier::parse(&vk), Err(ParseKeyError::BadPublicKey));
    }

    #[test]
    fn notes_are_opened_strictly() {
        let signer = test_signer();
        let verifier = signer.verifier();
        let body = test_checkpoint().to_body();
        let note = signer.sign(&body).expect("sign");
        let sig_line = &note[body.len() + 1..];

        let other = NoteSigner::from_seed("audit.example.com", &[8u8; 32]).expect("signer");
        let other_note = other.sign(&body).expect("sign");
        let renamed = NoteSigner::from_seed("other.example.com", &[7u8; 32]).expect("signer");

        let cases: Vec<(String, &str)> = vec![
            (other_note.clone(), "other key, same name"),
            (renamed.sign(&body).expect("sign"), "same key, other name"),
            (
                format!("{note}{}", &other_note[body.len() + 1..]),
                "second signature",
            ),
            (format!("{note}{sig_line}"), "duplicate signature"),
            (format!("{note}\n"), "trailing newline"),
            (format!("{note}junk"), "trailing junk"),
            (note.trim_end().to_owned(), "no final newline"),
            (format!("{body}{sig_line}"), "no blank line"),
            (format!("{body}\n\n{sig_line}"), "two blank lines"),
            (note.replace('\u{2014}', "-"), "hyphen for em dash"),
            (note.replace("\u{2014} ", "\u{2014}  "), "two spaces"),
            (note.replace('\n', "\r\n"), "CRLF"),
            (note.replacen("1234", "1235", 1), "edited size"),
            (format!("{body}\n"), "no signature"),
            (String::new(), "empty"),
            ("x".repeat(MAX_NOTE_LEN + 1), "too large"),
        ];
        for (bad, what) in &cases {
            assert!(open_note(bad, &verifier).is_err(), "{what}: {bad:?}");
        }
        assert!(matches!(
            open_note(&other_note, &verifier),
            Err(OpenNoteError::UnknownKey { .. })
        ));
        assert!(matches!(
            open_note(&note.replacen("1234", "1235", 1), &verifier),
            Err(OpenNoteError::BadSignature(_))
        ));
        assert!(signer.sign("no newline").is_err());
        assert!(signer.sign("a\n\nb\n").is_err());
        assert!(signer.sign("tab\there\n").is_err());
        assert!(signer.sign("").is_err());
    }

    /// The fuzz target's property over deterministic mutations: no mutation
    /// of a valid signed checkpoint opens. Each mutation is a bit flip, a
    /// truncation, an insertion or a deletion.
    #[test]
    fn mutated_notes_never_open() {
        let signer = test_signer();
        let verifier = signer.verifier();
        let note = signer.sign_checkpoint(&test_checkpoint()).expect("sign");
        let original = note.as_bytes();
        let mut tried = 0;
        for mutated in crate::log::verify::testkit::mutations(original) {
            tried += 1;
            assert!(
                !crate::log::verify::testkit::note_accepts(&mutated, &verifier),
                "mutation accepted: {:?}",
                String::from_utf8_lossy(&mutated)
            );
        }
        assert!(tried > 2000, "{tried} mutations");
    }
}

//! The server's secret and the keys derived from it, one per purpose, so
//! that one file (or one setting shared by every instance) holds them all
//! and no key is used for two things.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// 32 random bytes known only to the server(s). Fingerprints of secrets
/// ([`crate::ingest::redact`]) and cursors ([`crate::query`]) are keyed with
/// keys derived from it: losing it changes every fingerprint and voids every
/// cursor handed out, nothing else.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(<secret>)")
    }
}

/// A server secret file that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a server secret is 64 hex digits (32 bytes)")]
pub struct ParseServerSecretError;

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> ServerSecret {
        ServerSecret(bytes)
    }

    /// Reads the text form: 64 hex digits, surrounding white space ignored.
    pub fn parse(text: &str) -> Result<ServerSecret, ParseServerSecretError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| ParseServerSecretError)?;
        Ok(ServerSecret(bytes))
    }

    /// The text form [`ServerSecret::parse`] reads.
    pub fn to_text(&self) -> String {
        hex::encode(self.0)
    }

    /// The key for one purpose: HMAC-SHA-256(secret, "auditlog " ‖ purpose).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(b"auditlog ");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_separate_keys() {
        let s = ServerSecret::from_bytes([9; 32]);
        let back = ServerSecret::parse(&format!("  {}\n", s.to_text())).unwrap();
        assert_eq!(back.derive("cursor"), s.derive("cursor"));
        assert_ne!(s.derive("cursor"), s.derive("fingerprint"));
        assert!(ServerSecret::parse("abc").is_err());
    }
}

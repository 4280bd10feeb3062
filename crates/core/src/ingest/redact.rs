//! Secrets never enter the log: credentials in event metadata are replaced
//! by keyed fingerprints before an event is validated into its canonical
//! form, so no record, leaf hash, export, index or error ever holds them.
//!
//! The log is append-only and hashed into a Merkle tree that auditors keep
//! checkpoints of, so a secret once written could never be removed. What is
//! kept instead is a **fingerprint**: the first 16 hex digits of
//! HMAC-SHA-256 under a server key, plus the last four characters when the
//! secret is long enough for them to give nothing useful away. A person
//! holding the credential can match it (same server, same key, same
//! fingerprint); nobody can recover it. The hash is keyed because access
//! tokens and passwords are often short or low-entropy: an unkeyed SHA-256
//! of one can be brute-forced from the log alone.
//!
//! What is replaced (see [`Redactor::metadata`]):
//! - catalog fields marked `"sensitive": true` (the workflow's access token);
//! - in any string value that is an absolute URL: the password of its
//!   userinfo and the values of query parameters with secret-like names;
//! - unknown metadata keys with secret-like names ([`is_secret_name`]): their
//!   string values are fingerprinted (numbers, booleans and null say nothing
//!   secret and are kept, so `"session_count": 3` stays readable).
//!
//! The forms, both stable for a given secret and key:
//! - a whole value: `[REDACTED hmac-sha256:3f2a9c0d1e4b5a6f …7731]` (the
//!   ` …7731` part only for secrets of at least [`LAST4_MIN_CHARS`]
//!   characters whose last four are ASCII letters or digits);
//! - inside a URL: `REDACTED-3f2a9c0d1e4b5a6f` (URL-safe, and without the
//!   last four characters: passwords are short).
//!
//! A value already in the first form is kept as it is, so importing an
//! export does not fingerprint a fingerprint.

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::ingest::catalog::EventDef;

/// Secrets shorter than this never show their last four characters.
pub const LAST4_MIN_CHARS: usize = 16;

const VALUE_PREFIX: &str = "[REDACTED hmac-sha256:";
const URL_PREFIX: &str = "REDACTED-";
/// Hex digits of the HMAC kept: 64 bits, enough to tell credentials apart,
/// too few to be worth anything as a hash.
const FINGERPRINT_HEX: usize = 16;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Name fragments that make an unknown metadata key (compared without case
/// and separators) a secret's name.
const SECRET_NAME_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "authorization",
    "cookie",
    "session",
];

/// Query parameter names (compared without case and separators) whose
/// values are secrets, beyond the [`SECRET_NAME_PARTS`].
const SECRET_QUERY_NAMES: &[&str] = &["key", "sig", "signature", "pwd", "auth"];

/// The server key fingerprints are computed with. Derived from the server's
/// secret so that one file (or one setting) holds every key of the server.
#[derive(Clone)]
pub struct Redactor {
    /// HMAC-SHA-256 under the key, with the domain prefix already absorbed:
    /// each fingerprint clones it instead of keying a new MAC (which hashes
    /// the padded key twice, half of the work for a short secret).
    keyed: hmac::Hmac<Sha256>,
}

/// Domain separation of the fingerprint MAC.
const FINGERPRINT_DOMAIN: &[u8] = b"auditlog fingerprint v1\0";

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor { key: <secret> }")
    }
}

/// Whether an unknown metadata key's name says its value is a secret:
/// `password`, `api_secret`, `X-Api-Key`, `sessionToken`, … (case and the
/// separators `_ - . ` space ignored).
pub fn is_secret_name(name: &str) -> bool {
    with_normalized(name, has_secret_part)
}

fn is_secret_query_name(name: &str) -> bool {
    with_normalized(name, |n| {
        has_secret_part(n) || SECRET_QUERY_NAMES.contains(&n)
    })
}

/// Whether the normalized name `n` contains one of [`SECRET_NAME_PARTS`].
/// One pass over `n`, comparing a part only where its first byte matches:
/// this runs on every metadata key of every event, and nine `str::contains`
/// (each setting up a searcher) were 2 % of batch ingest's CPU.
fn has_secret_part(n: &str) -> bool {
    let n = n.as_bytes();
    (0..n.len()).any(|i| {
        SECRET_NAME_PARTS
            .iter()
            .any(|p| p.as_bytes()[0] == n[i] && n[i..].starts_with(p.as_bytes()))
    })
}

/// Names up to this many bytes are normalized on the stack: every metadata
/// key of a typical event (keys are at most
/// [`super::limits::MAX_METADATA_KEY_CHARS`] characters), so the check
/// that runs on each of them allocates nothing.
const STACK_NAME_BYTES: usize = 64;

/// Calls `f` with `name` lowercased and without the separators `_ - . `
/// (space).
fn with_normalized<T>(name: &str, f: impl FnOnce(&str) -> T) -> T {
    let is_sep = |b: u8| matches!(b, b'_' | b'-' | b'.' | b' ');
    if name.is_ascii() && name.len() <= STACK_NAME_BYTES {
        let mut buf = [0u8; STACK_NAME_BYTES];
        let mut len = 0;
        for b in name.bytes().filter(|b| !is_sep(*b)) {
            buf[len] = b.to_ascii_lowercase();
            len += 1;
        }
        // ASCII in, ASCII out.
        return f(std::str::from_utf8(&buf[..len]).unwrap_or_default());
    }
    let n: String = name
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    f(&n)
}

/// Whether `s` is a whole-value fingerprint this module writes.
pub fn is_fingerprint(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(VALUE_PREFIX) else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(']') else {
        return false;
    };
    let (hex, last4) = match rest.split_once(" …") {
        Some((hex, last4)) => (hex, Some(last4)),
        None => (rest, None),
    };
    hex.len() == FINGERPRINT_HEX
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && last4.is_none_or(|l| l.len() == 4 && l.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Redactor {
    /// A redactor keyed with `key` (32 bytes from the server's secret).
    pub fn new(key: [u8; 32]) -> Redactor {
        let mut keyed = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key)
            .expect("HMAC takes a key of any length");
        keyed.update(FINGERPRINT_DOMAIN);
        Redactor { keyed }
    }

    /// Appends the 16 hex digits of `secret`'s MAC to `out`.
    fn push_tag(&self, secret: &str, out: &mut String) {
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        let tag = mac.finalize().into_bytes();
        for b in &tag[..FINGERPRINT_HEX / 2] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }

    /// The whole-value form: `[REDACTED hmac-sha256:<16 hex> …<last 4>]`.
    pub fn fingerprint(&self, secret: &str) -> String {
        let mut out = String::with_capacity(VALUE_PREFIX.len() + FINGERPRINT_HEX + 10);
        out.push_str(VALUE_PREFIX);
        self.push_tag(secret, &mut out);
        // The last 4 bytes are shown only when they are 4 ASCII letters or
        // digits (so also 4 characters, starting on a char boundary: a
        // secret ending in multi-byte characters is not cut inside one).
        let cut = secret.len().saturating_sub(4);
        if secret.is_char_boundary(cut)
            && secret.chars().count() >= LAST4_MIN_CHARS
            && let tail = &secret[cut..]
            && tail.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            out.push_str(" …");
            out.push_str(tail);
        }
        out.push(']');
        out
    }

    fn url_fingerprint(&self, secret: &str) -> String {
        let mut out = String::with_capacity(URL_PREFIX.len() + FINGERPRINT_HEX);
        out.push_str(URL_PREFIX);
        self.push_tag(secret, &mut out);
        out
    }

    /// `value` with the secrets of a URL replaced, or `None` when it is not
    /// an absolute URL or holds no secret (then it is kept byte for byte).
    pub fn url(&self, value: &str) -> Option<String> {
        // Cheap test first: most metadata strings are not URLs.
        if !value.contains("://") {
            return None;
        }
        let mut url = url::Url::parse(value.trim()).ok()?;
        let mut changed = false;
        if let Some(password) = url.password().filter(|p| !p.starts_with(URL_PREFIX)) {
            let password = percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned();
            let fp = self.url_fingerprint(&password);
            // Only URLs that cannot have a password fail here, and those
            // did not have one.
            changed |= url.set_password(Some(&fp)).is_ok();
        }
        if url
            .query_pairs()
            .any(|(k, v)| is_secret_query_name(&k) && !v.starts_with(URL_PREFIX))
        {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_query_name(&k) && !v.starts_with(URL_PREFIX) {
                        self.url_fingerprint(&v)
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
            changed = true;
        }
        changed.then(|| url.into())
    }

    /// Replaces every secret in an event's metadata, in place (module docs
    /// say which). `def` is the event's catalog entry when it is known.
    /// Values of the wrong type are left for validation to reject; their
    /// messages never quote a value.
    pub fn metadata(&self, metadata: &mut BTreeMap<String, Value>, def: Option<&EventDef>) {
        for (key, value) in metadata.iter_mut() {
            let Value::String(s) = value else {
                continue;
            };
            let field = def.and_then(|d| d.fields.iter().find(|f| f.key == *key));
            let sensitive = match field {
                Some(f) => f.sensitive,
                None => is_secret_name(key),
            };
            if sensitive {
                if !is_fingerprint(s) {
                    *s = self.fingerprint(s);
                }
            } else if let Some(clean) = self.url(s) {
                *s = clean;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn redactor() -> Redactor {
        Redactor::new([7; 32])
    }

    #[test]
    fn fingerprint_form() {
        let r = redactor();
        let fp = r.fingerprint("sk_live_4eC39HqLyjWDarjtT1zdp7dc7731");
        assert!(fp.starts_with("[REDACTED hmac-sha256:"), "{fp}");
        assert!(fp.ends_with(" …7731]"), "{fp}");
        assert!(is_fingerprint(&fp));
        // Short secrets show nothing of themselves.
        let short = r.fingerprint("hunter2");
        assert!(!short.contains('…'), "{short}");
        assert!(is_fingerprint(&short));
        // Another key, another fingerprint.
        assert_ne!(Redactor::new([8; 32]).fingerprint("hunter2"), short);
        // Pinned: HMAC-SHA-256(key, "auditlog fingerprint v1\0" ‖ secret),
        // computed independently. Stored fingerprints must never change
        // with how the MAC is set up.
        assert_eq!(short, "[REDACTED hmac-sha256:49915b9ed6945d9a]");
        assert_eq!(r.fingerprint("hunter2"), short, "the keyed state is reused");
        // A long secret ending in multi-byte characters: no last four, and
        // no slice through a character (this panicked).
        let fp = r.fingerprint("aaaaaaaaaaaaaa€€");
        assert!(is_fingerprint(&fp) && !fp.contains('…'), "{fp}");
        assert!(!is_fingerprint("[REDACTED hmac-sha256:xyz]"));
    }

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "api_secret",
            "X-Api-Key",
            "sessionToken",
            "Private.Key",
            "AUTHORIZATION",
            "passwd",
            "cookie",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["role_id", "url", "model_name", "key_count_is_not"] {
            assert!(!is_secret_name(name), "{name}");
        }
        // Past the stack buffer, and not ASCII: the same rules.
        let long = format!("{}_Pass-Word", "x".repeat(70));
        assert!(is_secret_name(&long));
        assert!(!is_secret_name(&"x".repeat(70)));
        assert!(is_secret_name("Ünïcode.Session_ID"));
        assert!(!is_secret_name("Ünïcode_name"));
        assert!(is_secret_query_name("Sig") && is_secret_query_name("api-KEY"));
        assert!(!is_secret_query_name("keys"));
    }

    #[test]
    fn urls_lose_passwords_and_secret_parameters() {
        let r = redactor();
        let clean = r
            .url("https://bob:s3cr3t-pa55@hooks.example.com/in?token=abc123xyz&x=1&api_key=k9")
            .unwrap();
        assert!(!clean.contains("s3cr3t-pa55"), "{clean}");
        assert!(!clean.contains("abc123xyz"), "{clean}");
        assert!(!clean.contains("=k9"), "{clean}");
        assert!(clean.contains("bob:REDACTED-"), "{clean}");
        assert!(clean.contains("x=1"), "{clean}");
        // Already clean: nothing to do, so the caller keeps the bytes.
        assert_eq!(r.url("https://hooks.example.com/in?x=1"), None);
        assert_eq!(r.url("not a url"), None);
        // Idempotent: a redacted URL has nothing left to redact.
        assert_eq!(r.url(&clean), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn the_one_pass_search_finds_what_contains_finds(
            n in "(password|passwd|secret|token|apikey|privatekey|authorization|cookie|session|pa|se|to|x|s|p){0,6}"
        ) {
            let naive = SECRET_NAME_PARTS.iter().any(|p| n.contains(p));
            prop_assert_eq!(has_secret_part(&n), naive);
        }

        #[test]
        fn secrets_never_survive(
            secret in "[A-Za-z0-9!$%&*+@:/?#=~_-]{8,40}",
            host in "[a-z]{3,10}",
        ) {
            let r = redactor();
            let fp = r.fingerprint(&secret);
            prop_assert!(!fp.contains(&secret));
            prop_assert_eq!(&fp, &r.fingerprint(&secret), "stable");
            prop_assert!(is_fingerprint(&fp));

            // As a password and as a query token of a URL, encoded as a
            // client would.
            let enc: String = percent_encoding::utf8_percent_encode(
                &secret, percent_encoding::NON_ALPHANUMERIC).to_string();
            let url = format!("https://user:{enc}@{host}.example/p?token={enc}&q=1");
            let clean = r.url(&url).expect("has secrets");
            prop_assert!(!clean.contains(&secret), "{}", clean);
            prop_assert!(!clean.contains(&enc), "{}", clean);
            prop_assert_eq!(r.url(&url), Some(clean.clone()), "stable");

            let mut meta = BTreeMap::new();
            meta.insert("api_secret".to_owned(), Value::String(secret.clone()));
            meta.insert("callback".to_owned(), Value::String(url));
            r.metadata(&mut meta, None);
            let text = serde_json::to_string(&meta).unwrap();
            prop_assert!(!text.contains(&secret), "{}", text);
            // Redacting again changes nothing (an import of an export).
            let before = meta.clone();
            r.metadata(&mut meta, None);
            prop_assert_eq!(before, meta);
        }
    }
}

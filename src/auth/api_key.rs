//! API keys: random secrets of `[[user]]`s, of which the configuration holds only salted
//! hashes (`sha256:<salt>:<digest>`, both base64url without padding).
//!
//! Why a fast hash (one SHA-256) and not a password hash (argon2, bcrypt): an API key is 32
//! random bytes made by [`generate`], not a human password, so there is nothing to guess from a
//! dictionary and a brute force over 2^256 keys is out of reach however fast each try is. A slow
//! hash would only cost us: the check runs on an event-loop thread for every CONNECT, where a
//! 100 ms password hash would stall every other connection of that thread. The salt keeps equal
//! keys from having equal hashes across users and deployments.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{Context, SHA256, SHA256_OUTPUT_LEN};
use subtle::ConstantTimeEq;

/// The scheme prefix of the stored hash strings.
const SCHEME: &str = "sha256";
/// Random bytes in a new API key.
const KEY_LEN: usize = 32;
/// Random bytes in a new salt.
const SALT_LEN: usize = 16;
/// Shortest salt accepted from the configuration.
const MIN_SALT_LEN: usize = 8;

/// A freshly made API key: give `key` to the user, put `hash` into their `api_keys`.
pub struct NewApiKey {
    /// The secret, base64url (43 characters).
    pub key: String,
    /// The string for `[[user]].api_keys`.
    pub hash: String,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Makes a new API key from the operating system's random source.
pub fn generate() -> Result<NewApiKey, getrandom::Error> {
    let mut key = [0u8; KEY_LEN];
    getrandom::getrandom(&mut key)?;
    let mut salt = [0u8; SALT_LEN];
    getrandom::getrandom(&mut salt)?;
    let key = URL_SAFE_NO_PAD.encode(key);
    let hash = ApiKeyHash::new(salt.to_vec(), &key).to_string();
    Ok(NewApiKey { key, hash })
}

/// One parsed `api_keys` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyHash {
    salt: Vec<u8>,
    digest: [u8; SHA256_OUTPUT_LEN],
}

impl ApiKeyHash {
    fn new(salt: Vec<u8>, key: &str) -> ApiKeyHash {
        let digest = digest(&salt, key);
        ApiKeyHash { salt, digest }
    }

    /// Parses `sha256:<salt>:<digest>`; the error says what is wrong (never the value).
    pub fn parse(s: &str) -> Result<ApiKeyHash, String> {
        let mut parts = s.split(':');
        let (Some(scheme), Some(salt), Some(digest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "not of the form `{SCHEME}:<salt>:<digest>` (an API key itself was perhaps pasted instead of its hash)"
            ));
        };
        if scheme != SCHEME {
            return Err(format!(
                "unknown hash scheme `{scheme}` (expected `{SCHEME}`)"
            ));
        }
        let salt = URL_SAFE_NO_PAD
            .decode(salt)
            .map_err(|e| format!("the salt is not base64url: {e}"))?;
        if salt.len() < MIN_SALT_LEN {
            return Err(format!(
                "the salt has {} bytes, at least {MIN_SALT_LEN} are needed",
                salt.len()
            ));
        }
        let digest = URL_SAFE_NO_PAD
            .decode(digest)
            .map_err(|e| format!("the digest is not base64url: {e}"))?;
        let digest: [u8; SHA256_OUTPUT_LEN] = digest.as_slice().try_into().map_err(|_| {
            format!(
                "the digest has {} bytes, a SHA-256 digest has {SHA256_OUTPUT_LEN}",
                digest.len()
            )
        })?;
        Ok(ApiKeyHash { salt, digest })
    }

    /// Whether `key` is the key this hash was made from. Constant time in the digest
    /// comparison, so response times do not tell how much of a guess was right.
    pub fn verify(&self, key: &str) -> bool {
        digest(&self.salt, key).ct_eq(&self.digest).into()
    }
}

impl fmt::Display for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}:{}:{}",
            URL_SAFE_NO_PAD.encode(&self.salt),
            URL_SAFE_NO_PAD.encode(self.digest)
        )
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not the key, but there is no reason to spread it through logs either.
        f.write_str("ApiKeyHash(<redacted>)")
    }
}

/// SHA-256 over salt then key (the key as presented: its base64url text).
fn digest(salt: &[u8], key: &str) -> [u8; SHA256_OUTPUT_LEN] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(salt);
    ctx.update(key.as_bytes());
    let mut out = [0u8; SHA256_OUTPUT_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Checks `key` against all of `hashes`, without stopping at the first match, so that the time
/// taken does not tell which of a user's keys matched.
pub fn matches_any(hashes: &[ApiKeyHash], key: &str) -> bool {
    hashes
        .iter()
        .fold(subtle::Choice::from(0), |acc, h| {
            acc | digest(&h.salt, key).ct_eq(&h.digest)
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips() {
        let new = generate().unwrap();
        assert_eq!(new.key.len(), 43, "32 bytes in base64url without padding");
        assert_eq!(URL_SAFE_NO_PAD.decode(&new.key).unwrap().len(), KEY_LEN);
        let hash = ApiKeyHash::parse(&new.hash).unwrap();
        assert!(hash.verify(&new.key));
        assert!(!hash.verify(&new.key[1..]));
        assert_eq!(hash.to_string(), new.hash);
        assert!(new.hash.starts_with("sha256:"));
        assert!(!format!("{new:?}").contains(&new.key));
    }

    #[test]
    fn keys_and_salts_differ_each_time() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a.key, b.key);
        assert_ne!(a.hash, b.hash);
        let ha = ApiKeyHash::parse(&a.hash).unwrap();
        // Same key, another salt: another hash.
        let other_salt = ApiKeyHash::new(vec![7; SALT_LEN], &a.key);
        assert_ne!(other_salt.to_string(), a.hash);
        assert!(other_salt.verify(&a.key));
        assert!(!ha.verify(&b.key));
    }

    #[test]
    fn matches_any_of_several() {
        let [a, b, c] = std::array::from_fn(|_| generate().unwrap());
        let hashes = [
            ApiKeyHash::parse(&a.hash).unwrap(),
            ApiKeyHash::parse(&b.hash).unwrap(),
        ];
        assert!(matches_any(&hashes, &a.key));
        assert!(matches_any(&hashes, &b.key));
        assert!(!matches_any(&hashes, &c.key));
        assert!(!matches_any(&[], &a.key));
    }

    #[test]
    fn malformed_hashes_are_refused_with_a_reason() {
        let good = generate().unwrap().hash;
        let (_, rest) = good.split_once(':').unwrap();
        let (salt, digest) = rest.split_once(':').unwrap();
        let cases = [
            (generate().unwrap().key, "not of the form"),
            (format!("md5:{salt}:{digest}"), "unknown hash scheme"),
            (format!("sha256:{salt}:{digest}:x"), "not of the form"),
            (format!("sha256:!!:{digest}"), "salt is not base64url"),
            (format!("sha256:AAAA:{digest}"), "at least 8"),
            (format!("sha256:{salt}:AAAA"), "a SHA-256 digest has 32"),
            (format!("sha256:{salt}:%%"), "digest is not base64url"),
            (String::new(), "not of the form"),
        ];
        for (input, expected) in cases {
            let err = ApiKeyHash::parse(&input).unwrap_err();
            assert!(err.contains(expected), "{input}: {err}");
        }
        assert!(ApiKeyHash::parse(&good).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let new = generate().unwrap();
        let hash = ApiKeyHash::parse(&new.hash).unwrap();
        assert_eq!(format!("{hash:?}"), "ApiKeyHash(<redacted>)");
    }
}

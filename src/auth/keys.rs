//! Token signing keys: a JSON Web Key Set (RFC 7517) or the HS256 test secret, each key with
//! the one algorithm it may verify.
//!
//! The allowed algorithm comes from the key, never from the token: an RSA key verifies RS256
//! (or the `alg` its JWK names), an EC P-256 key ES256. A token whose header asks for anything
//! else is refused before any verification, which closes the classic algorithm confusion (an
//! HS256 token "signed" with the RSA public key as HMAC secret).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::error::AuthError;

/// One verification key and the algorithm it is for.
pub struct VerifyKey {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // DecodingKey may hold the HS256 secret.
        f.debug_struct("VerifyKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The keys tokens are checked with.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// JWKs without `kid`.
    unnamed: Vec<Arc<VerifyKey>>,
    /// The HS256 secret: used whatever `kid` the token names.
    shared_secret: Option<Arc<VerifyKey>>,
}

impl KeySet {
    /// The HS256 test secret as a key set.
    pub fn hs256(secret: &str) -> KeySet {
        KeySet {
            shared_secret: Some(Arc::new(VerifyKey {
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            })),
            ..KeySet::default()
        }
    }

    /// Parses a JWKS document. Keys that cannot sign tokens for us (`use: enc`, symmetric
    /// keys, unsupported curves or algorithms) are skipped with a warning, as identity
    /// providers list encryption keys beside signing keys; a document without any usable key
    /// is an error.
    pub fn from_jwks(json: &str) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut set = KeySet::default();
        for (i, value) in doc.keys.into_iter().enumerate() {
            let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
            match key_of(value) {
                Ok(key) => {
                    let key = Arc::new(key);
                    match kid {
                        Some(kid) => {
                            set.by_kid.insert(kid, key);
                        }
                        None => set.unnamed.push(key),
                    }
                }
                Err(why) => {
                    tracing::warn!(index = i, kid = ?kid, "JWKS key skipped: {why}");
                }
            }
        }
        if set.is_empty() {
            return Err("it has no usable signing key (RSA, or EC P-256/P-384)".to_owned());
        }
        Ok(set)
    }

    /// How many keys it has.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len() + usize::from(self.shared_secret.is_some())
    }

    /// Whether it has no key (a JWKS URL not fetched yet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key for a token whose header names `kid`.
    pub fn find(&self, kid: Option<&str>) -> Result<&Arc<VerifyKey>, AuthError> {
        if let Some(secret) = &self.shared_secret {
            return Ok(secret);
        }
        match kid {
            Some(kid) => self.by_kid.get(kid).ok_or_else(|| AuthError::UnknownKid {
                kid: kid.to_owned(),
            }),
            // Without a kid, only an unambiguous key set will do: trying every key would let
            // one token be checked against keys meant for other uses.
            None if self.len() == 1 => Ok(self
                .by_kid
                .values()
                .next()
                .or_else(|| self.unnamed.first())
                .expect("one key")),
            None => Err(AuthError::MissingKid),
        }
    }
}

/// One JWK as a verification key, or why it cannot be one.
fn key_of(value: serde_json::Value) -> Result<VerifyKey, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return Err("not a signing key (`use` is not `sig`)".to_owned());
    }
    let default_alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        // A symmetric key in a published key set would let anyone who reads it mint tokens.
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are not accepted".into()),
        AlgorithmParameters::OctetKeyPair(_) => return Err("OKP keys are not supported".into()),
    };
    let alg = match jwk.common.key_algorithm {
        None => default_alg,
        Some(named) => {
            // KeyAlgorithm's Debug is the JOSE name, which Algorithm parses.
            let alg = Algorithm::from_str(&format!("{named:?}"))
                .map_err(|_| format!("unsupported algorithm {named:?}"))?;
            if !fits(alg, default_alg) {
                return Err(format!("algorithm {alg:?} does not fit the key"));
            }
            alg
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(VerifyKey { alg, key })
}

/// Whether `alg` may be used with a key whose default algorithm is `default`: any RSA
/// algorithm for an RSA key, only the curve's own algorithm for an EC key.
fn fits(alg: Algorithm, default: Algorithm) -> bool {
    use Algorithm::*;
    match default {
        RS256 => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        other => alg == other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_encryption_keys_are_skipped() {
        let json = r#"{"keys": [
            {"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird", "kid": "w"}
        ]}"#;
        let err = KeySet::from_jwks(json).unwrap_err();
        assert!(err.contains("no usable signing key"), "{err}");
    }

    #[test]
    fn not_a_jwks() {
        assert!(KeySet::from_jwks("[]").is_err());
        assert!(KeySet::from_jwks("{").is_err());
        assert!(KeySet::from_jwks(r#"{"keys": []}"#).is_err());
    }

    #[test]
    fn hs256_secret_is_used_for_any_kid() {
        let set = KeySet::hs256("s3cret");
        assert_eq!(set.find(Some("x")).unwrap().alg, Algorithm::HS256);
        assert_eq!(set.find(None).unwrap().alg, Algorithm::HS256);
        assert!(!format!("{set:?}").contains("s3cret"));
    }
}

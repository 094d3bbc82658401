//! OAuth2 access tokens (JWT) as configured in `[auth.oauth]`.
//!
//! Order of checks: the header (`alg: none` refused, the key found by `kid`, the header's
//! algorithm must be the key's), then the signature, then `iss`/`aud` (by `jsonwebtoken`), then
//! `exp`/`nbf` against the caller's `now` with the configured leeway (here, so that tests and the
//! AUTH re-authentication path control the clock), then the user name and roles.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde_json::Value;

use super::error::{AuthError, AuthSetupError};
use super::keys::KeySet;
use super::remote::{RefreshPolicy, RemoteKeys};
use super::Authenticated;
use crate::config::{KeySource, OAuthConfig};
use crate::registry::Identity;

/// Where the keys are.
#[derive(Debug)]
enum Keys {
    /// `jwks_file` or `hs256_secret`: fixed for the life of the process.
    Fixed(std::sync::Arc<KeySet>),
    /// `jwks_url`: fetched and refreshed in the background.
    Remote(RemoteKeys),
}

/// Checks tokens against one `[auth.oauth]`.
#[derive(Debug)]
pub struct TokenVerifier {
    keys: Keys,
    issuer: String,
    audience: Option<String>,
    username_claim: String,
    admin_role: String,
    leeway: Duration,
}

impl TokenVerifier {
    /// Loads the keys (reads `jwks_file`; starts the refresher for `jwks_url`).
    pub fn new(config: &OAuthConfig) -> Result<TokenVerifier, AuthSetupError> {
        Self::with_policy(config, RefreshPolicy::default())
    }

    pub(crate) fn with_policy(
        config: &OAuthConfig,
        policy: RefreshPolicy,
    ) -> Result<TokenVerifier, AuthSetupError> {
        let keys = match config.key_source().ok_or(AuthSetupError::NoKeySource)? {
            KeySource::Hs256Secret(secret) => Keys::Fixed(KeySet::hs256(secret).into()),
            KeySource::JwksFile(path) => Keys::Fixed(load_jwks_file(path)?.into()),
            KeySource::JwksUrl(url) => Keys::Remote(RemoteKeys::start(url, policy)?),
        };
        Ok(TokenVerifier {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            username_claim: config.username_claim.clone(),
            admin_role: config.admin_role.clone(),
            leeway: config.leeway,
        })
    }

    /// Verifies `token` at time `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Authenticated, AuthError> {
        let header = Header::parse(token)?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(AuthError::AlgNone);
        }
        let keys = match &self.keys {
            Keys::Fixed(set) => set.clone(),
            Keys::Remote(remote) => remote.current(),
        };
        let key = match keys.find(header.kid.as_deref()) {
            Ok(key) => key,
            Err(e) => {
                if let Keys::Remote(remote) = &self.keys {
                    // The issuer may have rotated its keys: fetch again, in the background.
                    remote.request_refresh();
                }
                return Err(e);
            }
        };
        // The key decides the algorithm, never the token (algorithm confusion).
        let allowed = format!("{:?}", key.alg);
        if header.alg != allowed {
            return Err(AuthError::AlgorithmNotAllowed {
                alg: header.alg,
                allowed,
            });
        }
        let claims = self.decode(token, key)?;
        let expires_at = self.check_times(&claims, now)?;
        let name = claims
            .get(&self.username_claim)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| AuthError::NoUsername {
                claim: self.username_claim.clone(),
            })?;
        let admin = claims
            .pointer("/realm_access/roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| roles.iter().any(|r| r.as_str() == Some(&self.admin_role)));
        Ok(Authenticated {
            identity: Identity::User {
                name: name.to_owned(),
                admin,
            },
            expires_at: Some(expires_at),
        })
    }

    /// Signature, `iss`, `aud`; returns the claims.
    fn decode(&self, token: &str, key: &super::keys::VerifyKey) -> Result<Value, AuthError> {
        let mut validation = Validation::new(key.alg);
        // exp/nbf are checked in `check_times` against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature | ErrorKind::Crypto(_) => AuthError::BadSignature,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer {
                found: String::new(),
            },
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim {
                claim: claim.clone(),
            },
            other => AuthError::Malformed(format!("{other:?}")),
        });
        let claims = match data {
            Ok(data) => data.claims,
            Err(AuthError::WrongIssuer { .. }) => {
                // Name the issuer the token claims (not a secret, and what an operator needs
                // to see a realm mix-up).
                let found = Header::claims_unverified(token)
                    .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_default();
                return Err(AuthError::WrongIssuer { found });
            }
            Err(e) => return Err(e),
        };
        // jsonwebtoken skips `iss` when the token has none; we require it.
        if claims.get("iss").and_then(Value::as_str).is_none() {
            return Err(AuthError::MissingClaim {
                claim: "iss".into(),
            });
        }
        if self.audience.is_some() && claims.get("aud").is_none() {
            return Err(AuthError::WrongAudience);
        }
        Ok(claims)
    }

    /// `exp` (required) and `nbf` (optional) with leeway; returns the instant from which the
    /// token is refused.
    fn check_times(&self, claims: &Value, now: SystemTime) -> Result<SystemTime, AuthError> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = self.leeway.as_secs();
        let exp =
            claims
                .get("exp")
                .and_then(Value::as_u64)
                .ok_or_else(|| AuthError::MissingClaim {
                    claim: "exp".into(),
                })?;
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired { expired_at: exp });
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_u64().ok_or_else(|| AuthError::MissingClaim {
                claim: "nbf".into(),
            })?;
            if now.saturating_add(leeway) < nbf {
                return Err(AuthError::NotYetValid { not_before: nbf });
            }
        }
        Ok(UNIX_EPOCH + Duration::from_secs(exp.saturating_add(leeway)))
    }
}

fn load_jwks_file(path: &std::path::Path) -> Result<KeySet, AuthSetupError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| AuthSetupError::JwksFileUnreadable {
            path: path.to_owned(),
            source,
        })?;
    KeySet::from_jwks(&text).map_err(|problem| AuthSetupError::InvalidJwks {
        key: "auth.oauth.jwks_file",
        origin: path.display().to_string(),
        problem,
    })
}

/// Checks `[auth.oauth]` without starting anything (for `check-config`): the key source, the
/// JWKS file, the JWKS URL's scheme.
pub fn check(config: &OAuthConfig) -> Result<(), AuthSetupError> {
    match config.key_source().ok_or(AuthSetupError::NoKeySource)? {
        KeySource::Hs256Secret(_) => Ok(()),
        KeySource::JwksFile(path) => load_jwks_file(path).map(drop),
        KeySource::JwksUrl(url) => super::remote::check_url(url),
    }
}

/// The part of the JOSE header we look at before choosing a key.
struct Header {
    alg: String,
    kid: Option<String>,
}

impl Header {
    fn parse(token: &str) -> Result<Header, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "not three dot-separated parts".to_owned(),
            ));
        };
        let json = decode_part(header, "header")?;
        let alg = json
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Malformed("the header has no `alg`".to_owned()))?
            .to_owned();
        let kid = json.get("kid").and_then(Value::as_str).map(str::to_owned);
        Ok(Header { alg, kid })
    }

    /// The claims without any verification: only to name what a refused token claimed.
    fn claims_unverified(token: &str) -> Option<Value> {
        decode_part(token.split('.').nth(1)?, "claims").ok()
    }
}

fn decode_part(part: &str, what: &str) -> Result<Value, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed(format!("the {what} is not JSON")))
}

//! Why credentials were refused ([`AuthError`]) and why authentication could not be set up
//! ([`AuthSetupError`]).
//!
//! Every message names the reason and enough context to act on it (the claim, the issuer the
//! token named, the key id, the user), never the secret itself: these texts go to the log and
//! into HTTP `401` bodies.

use std::path::PathBuf;

/// Why a token or an API key was refused. All of them are "bad credentials" to the client
/// (v5 `0x86`, v3.1.1 `4`, HTTP `401`); the variant is for the log and the HTTP error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `exp` (plus the leeway) is in the past.
    #[error("the token expired at {expired_at} (seconds since the epoch)")]
    Expired { expired_at: u64 },
    /// `nbf` (minus the leeway) is in the future.
    #[error("the token is not valid before {not_before} (seconds since the epoch)")]
    NotYetValid { not_before: u64 },
    /// A claim every accepted token must carry is absent or not of the right type.
    #[error("the token has no valid `{claim}` claim")]
    MissingClaim { claim: String },
    /// `iss` is not `auth.oauth.issuer`.
    #[error("the token was issued by `{found}`, not by the configured issuer")]
    WrongIssuer { found: String },
    /// `aud` does not contain `auth.oauth.audience`.
    #[error("the token is not meant for the configured audience")]
    WrongAudience,
    /// The signature does not verify with the key the token names.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `alg: none`: an unsigned token.
    #[error("the token is unsigned (`alg: none`)")]
    AlgNone,
    /// The header's algorithm is not the one the key is for (algorithm confusion, e.g. an
    /// HS256 token "signed" with an RSA public key).
    #[error("the token's algorithm `{alg}` is not allowed for its key (allowed: {allowed})")]
    AlgorithmNotAllowed { alg: String, allowed: String },
    /// The header names a key id that is not in the key set (a refresh was requested).
    #[error("the token's key id `{kid}` is unknown")]
    UnknownKid { kid: String },
    /// The header names no key id and the key set has several keys (or none yet).
    #[error("the token names no key id (`kid`) and no single key applies")]
    MissingKid,
    /// Not a JWT: wrong shape, bad base64 or JSON.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// `[auth.oauth]` is not configured, so tokens cannot be checked.
    #[error("tokens are not accepted: auth.oauth is not configured")]
    TokensNotConfigured,
    /// The user name claim (`auth.oauth.username_claim`) is absent or not a string.
    #[error("the token has no user name in claim `{claim}`")]
    NoUsername { claim: String },
    /// No `[[user]]` of that name (or it has no API keys).
    #[error("unknown user `{user}`")]
    UnknownUser { user: String },
    /// The API key is none of the user's.
    #[error("wrong API key for user `{user}`")]
    WrongApiKey { user: String },
    /// The password of an MQTT 5 CONNECT without user name, or an HTTP header, is not UTF-8.
    #[error("the credentials are not valid UTF-8")]
    NotUtf8,
    /// An HTTP `Authorization` header that is neither `Bearer` nor `Basic user:key`.
    #[error("unsupported Authorization header: {0}")]
    BadHeader(String),
}

/// Authentication cannot be set up from the configuration; the service must not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// `auth.oauth.jwks_file` cannot be read.
    #[error("auth.oauth.jwks_file: cannot read `{}`: {source}", path.display())]
    JwksFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A JWKS document (file or URL) is not a usable JSON Web Key Set.
    #[error("{key}: `{origin}` is not a usable JSON Web Key Set: {problem}")]
    InvalidJwks {
        /// `auth.oauth.jwks_file` or `auth.oauth.jwks_url`.
        key: &'static str,
        origin: String,
        problem: String,
    },
    /// `auth.oauth.jwks_url` is not an `https://` URL (plain `http://` only to loopback).
    #[error("auth.oauth.jwks_url: `{url}` must be an https:// URL (http:// only for localhost): keys fetched in the clear could be replaced")]
    InsecureJwksUrl { url: String },
    /// `[auth.oauth]` names zero or several key sources (a configuration that was not checked).
    #[error("auth.oauth: needs exactly one of jwks_url, jwks_file or hs256_secret")]
    NoKeySource,
    /// A `[[user]].api_keys` entry is not a hash printed by `mqtt-integration api-key`.
    #[error("{key} (user `{user}`): {problem}; use the second line printed by `mqtt-integration api-key {user}`")]
    MalformedApiKey {
        /// The key path, e.g. `user[0].api_keys[1]`.
        key: String,
        user: String,
        problem: String,
    },
    /// The JWKS refresher thread could not be started.
    #[error("cannot start the JWKS refresher: {0}")]
    Thread(std::io::Error),
    /// The operating system's random source failed.
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
}

impl AuthSetupError {
    /// The configuration key the error is about (for `check-config`'s message).
    pub fn config_key(&self) -> String {
        match self {
            Self::JwksFileUnreadable { .. } => "auth.oauth.jwks_file".to_owned(),
            Self::InvalidJwks { key, .. } => (*key).to_owned(),
            Self::InsecureJwksUrl { .. } => "auth.oauth.jwks_url".to_owned(),
            Self::NoKeySource | Self::Thread(_) => "auth.oauth".to_owned(),
            Self::Random(_) => "auth".to_owned(),
            Self::MalformedApiKey { key, .. } => key.clone(),
        }
    }
}

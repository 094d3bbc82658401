//! `[auth]` and `[[user]]`: how clients prove who they are.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What `Debug` prints in place of a secret.
const REDACTED: &str = "<redacted>";

/// `[auth]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accept connections without credentials. They may still only use applications that give
    /// the member `anonymous` a role. Turn it off for any deployment outside a lab.
    pub allow_anonymous: bool,
    /// How long a refused CONNECT waits before its CONNACK: slows down guessing of API keys and
    /// tokens. The connection reads nothing meanwhile. "0s" answers at once.
    #[serde(with = "humantime_serde")]
    pub failure_delay: std::time::Duration,
    /// OAuth2 / OpenID Connect access tokens (JWT). Absent = tokens are refused.
    pub oauth: Option<OAuthConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            failure_delay: std::time::Duration::from_secs(1),
            oauth: None,
        }
    }
}

/// `[auth.oauth]`: how access tokens are verified. Exactly one of `jwks_url`, `jwks_file` and
/// `hs256_secret` names the signing keys.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// Expected `iss` claim: your identity provider's issuer URL (the Keycloak realm URL).
    pub issuer: String,
    /// Expected `aud` claim; absent = not checked. Set it so tokens issued to other clients
    /// of the same realm are refused.
    #[serde(default)]
    pub audience: Option<String>,
    /// URL of the provider's JSON Web Key Set (fetched and refreshed).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Local JSON Web Key Set file, for providers the service cannot reach.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Shared HMAC secret (HS256). For tests only: whoever knows it can mint tokens.
    #[serde(default)]
    pub hs256_secret: Option<String>,
    /// Claim holding the user name that `owner` and `members` refer to.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Role (in `realm_access.roles`) that may do everything on every application.
    #[serde(default = "default_admin_role")]
    pub admin_role: String,
    /// Clock skew tolerated on `exp`/`nbf`. Raise it when clocks drift; 0 = none.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
}

fn default_username_claim() -> String {
    "preferred_username".to_owned()
}

fn default_admin_role() -> String {
    "drogue-admin".to_owned()
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

/// Where the token signing keys come from, as chosen by [`OAuthConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource<'a> {
    /// `jwks_url`.
    JwksUrl(&'a str),
    /// `jwks_file`.
    JwksFile(&'a Path),
    /// `hs256_secret`.
    Hs256Secret(&'a str),
}

impl OAuthConfig {
    /// The one configured key source; `None` only for a configuration that was not checked
    /// (loading refuses zero or several).
    pub fn key_source(&self) -> Option<KeySource<'_>> {
        match (&self.jwks_url, &self.jwks_file, &self.hs256_secret) {
            (Some(url), None, None) => Some(KeySource::JwksUrl(url)),
            (None, Some(file), None) => Some(KeySource::JwksFile(file)),
            (None, None, Some(secret)) => Some(KeySource::Hs256Secret(secret)),
            _ => None,
        }
    }
}

impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_file", &self.jwks_file)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| REDACTED),
            )
            .field("username_claim", &self.username_claim)
            .field("admin_role", &self.admin_role)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// One `[[user]]`: a user who connects with a user name and an API key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user name, as used in CONNECT and in applications' `owner` and `members`.
    pub name: String,
    /// Salted hashes of the user's API keys (printed by `mqtt-integration api-key USER`).
    /// Several keys let you rotate without downtime.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Connecting with one of these keys grants the admin role, as a token carrying
    /// `auth.oauth.admin_role` does: every right on every application, and the status page.
    /// For operators; devices and applications should not have it.
    #[serde(default)]
    pub admin: bool,
}

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("api_keys", &Redacted(self.api_keys.len()))
            .field("admin", &self.admin)
            .finish()
    }
}

/// Prints `<N redacted>` for a list of N secrets.
pub(crate) struct Redacted(pub(crate) usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted>", self.0)
    }
}

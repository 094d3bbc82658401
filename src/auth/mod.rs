//! Authentication: who is connecting (spec 2.6).
//!
//! | credentials | checked as |
//! |---|---|
//! | none | anonymous, if `auth.allow_anonymous` |
//! | user name only, or (v5) password only | an OAuth2 access token ([`token`]) |
//! | user name and password | a `[[user]]` and one of its API keys ([`api_key`]) |
//!
//! [`Authenticator`] is called on event-loop threads (MQTT CONNECT and v5 AUTH) and HTTP
//! workers, so every check is CPU-only and short: no file or network I/O after start-up (the
//! JWKS of `auth.oauth.jwks_url` is fetched by a background thread, see [`remote`]).
//!
//! - [`api_key`]: making, storing and checking API keys.
//! - [`keys`]: token signing keys (JWKS, HS256 secret) and the algorithm each allows.
//! - [`remote`]: the JWKS URL's background refresher.
//! - [`token`]: access token checks.
//! - [`http`]: the `Authorization` header of the HTTP routes.
//! - [`error`]: why credentials were refused, why set-up failed.
//! - `authenticated.rs`: [`Authenticated`], what every way of authenticating hands back.
//!
//! Owns: credentials and their checks (API keys, access tokens, signing keys and their refresh),
//! and the answer to "who is this". Must not touch: what an identity may do (that is the
//! [`crate::registry`]'s), sockets, sessions' state or backends; the JWKS refresher is its only
//! network I/O, on its own thread.

pub mod api_key;
mod authenticated;
mod error;
mod http;
pub mod keys;
pub mod remote;
#[cfg(test)]
mod tests;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::SystemTime;

pub use api_key::{generate as generate_api_key, ApiKeyHash, NewApiKey};
pub use authenticated::Authenticated;
pub use error::{AuthError, AuthSetupError};

use crate::config::{AuthConfig, UserConfig};
use crate::protocol::Version;
use crate::registry::Identity;
use crate::session::{ConnectRefusal, ConnectRequest};
use remote::RefreshPolicy;
use token::TokenVerifier;

/// Checks credentials. Cheap to clone (one `Arc`); every clone sees a [`Authenticator::replace`]
/// (a reload) from its next check on.
#[derive(Debug, Clone)]
pub struct Authenticator {
    inner: Arc<ArcSwap<Inner>>,
}

#[derive(Debug)]
struct Inner {
    allow_anonymous: bool,
    tokens: Option<TokenVerifier>,
    /// User name → hashes of its API keys, and whether they grant the admin role.
    users: HashMap<String, (Vec<ApiKeyHash>, bool)>,
    /// Checked against when the user is unknown, so that an unknown user costs as much time
    /// as a known one with a wrong key (user names are not probed by timing).
    decoy: ApiKeyHash,
}

impl Inner {
    fn new(
        auth: &AuthConfig,
        users: &[UserConfig],
        policy: RefreshPolicy,
    ) -> Result<Inner, AuthSetupError> {
        let users = parse_users(users)?;
        let tokens = match &auth.oauth {
            Some(oauth) => Some(TokenVerifier::with_policy(oauth, policy)?),
            None => None,
        };
        let decoy = ApiKeyHash::parse(&generate_api_key().map_err(random_failed)?.hash)
            .expect("a generated hash parses");
        Ok(Inner {
            allow_anonymous: auth.allow_anonymous,
            tokens,
            users,
            decoy,
        })
    }
}

impl Authenticator {
    /// Builds the authenticator: parses the API key hashes, reads `auth.oauth.jwks_file`, and
    /// for `auth.oauth.jwks_url` starts the background refresher (which fetches at once).
    pub fn new(auth: &AuthConfig, users: &[UserConfig]) -> Result<Authenticator, AuthSetupError> {
        Self::with_policy(auth, users, RefreshPolicy::default())
    }

    pub(crate) fn with_policy(
        auth: &AuthConfig,
        users: &[UserConfig],
        policy: RefreshPolicy,
    ) -> Result<Authenticator, AuthSetupError> {
        let inner = Inner::new(auth, users, policy)?;
        Ok(Authenticator {
            inner: Arc::new(ArcSwap::from_pointee(inner)),
        })
    }

    /// Puts new settings and users in force (a reload): API keys, `allow_anonymous` and the
    /// token keys (the JWKS file is read again; a JWKS URL gets a new refresher and the old one
    /// stops). On an error nothing changes. Connections keep the identity they authenticated
    /// as; whether that identity may still read is the registry's question
    /// ([`crate::registry::Current`]).
    pub fn replace(&self, auth: &AuthConfig, users: &[UserConfig]) -> Result<(), AuthSetupError> {
        let inner = Inner::new(auth, users, RefreshPolicy::default())?;
        self.inner.store(Arc::new(inner));
        Ok(())
    }

    /// Decides a CONNECT's identity from its credentials (spec 2.6); logs why a refusal
    /// happened (never the secret).
    pub fn authenticate(
        &self,
        req: &ConnectRequest,
        now: SystemTime,
    ) -> Result<Authenticated, ConnectRefusal> {
        if let Some(token) = &req.oauth2_token {
            // MQTT 5 Authentication Method `oauth2`: the token came as Authentication Data.
            return self.authenticate_token(token, now).map_err(|why| {
                tracing::info!(client = %req.client_id, "refused: {why}");
                ConnectRefusal::BadCredentials
            });
        }
        // MQTT.js (mqtt-packet) cannot send a password without a user name, so "password only"
        // arrives as an empty user name: the same thing. No `[[user]]` may be named "" (config
        // check), so this never hides an API-key login.
        let username = req.username.as_ref().filter(|u| !u.is_empty());
        let result = match (username, &req.password) {
            (None, None) if self.inner.load().allow_anonymous => Ok(Authenticated {
                identity: Identity::Anonymous,
                expires_at: None,
            }),
            (None, None) => {
                tracing::info!(client = %req.client_id, "refused: no credentials, and anonymous access is not allowed");
                // Spec 2.6: v5 0x87, v3.1.1 5.
                return Err(ConnectRefusal::NotAuthorized);
            }
            (Some(token), None) => self.authenticate_token(token, now),
            (None, Some(password)) if req.version == Version::V5 => {
                match std::str::from_utf8(password) {
                    Ok(token) => self.authenticate_token(token, now),
                    Err(_) => Err(AuthError::NotUtf8),
                }
            }
            // MQTT 3.1.1 3.1.2.9: a password needs a user name. The codec refuses that already;
            // should it ever pass, it is bad credentials.
            (None, Some(_)) => Err(AuthError::BadHeader(
                "a password without user name (MQTT 3.1.1)".to_owned(),
            )),
            (Some(user), Some(password)) => match std::str::from_utf8(password) {
                Ok(key) => self.authenticate_api_key(user, key),
                Err(_) => Err(AuthError::WrongApiKey { user: user.clone() }),
            },
        };
        result.map_err(|why| {
            tracing::info!(client = %req.client_id, "refused: {why}");
            ConnectRefusal::BadCredentials
        })
    }

    /// Checks an access token: on CONNECT, and for MQTT 5 AUTH re-authentication (method
    /// `oauth2`, data = the new token).
    pub fn authenticate_token(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<Authenticated, AuthError> {
        match &self.inner.load().tokens {
            Some(verifier) => verifier.verify(token, now),
            None => Err(AuthError::TokensNotConfigured),
        }
    }

    /// Checks `user` and one of its API keys.
    pub fn authenticate_api_key(&self, user: &str, key: &str) -> Result<Authenticated, AuthError> {
        let inner = self.inner.load();
        let Some((hashes, admin)) = inner.users.get(user) else {
            let _ = inner.decoy.verify(key);
            return Err(AuthError::UnknownUser {
                user: user.to_owned(),
            });
        };
        if !api_key::matches_any(hashes, key) {
            return Err(AuthError::WrongApiKey {
                user: user.to_owned(),
            });
        }
        Ok(Authenticated {
            identity: Identity::User {
                name: user.to_owned(),
                // `admin = true` in the user's `[[user]]` entry; else a plain user.
                admin: *admin,
            },
            expires_at: None,
        })
    }

    /// Whether requests without credentials are anonymous (else refused).
    pub fn allows_anonymous(&self) -> bool {
        self.inner.load().allow_anonymous
    }
}

/// Checks `[auth]` and the users' API key hashes without starting anything (for
/// `check-config`): what [`Authenticator::new`] would refuse, except an unreachable JWKS URL.
pub fn check_config(auth: &AuthConfig, users: &[UserConfig]) -> Result<(), AuthSetupError> {
    parse_users(users)?;
    match &auth.oauth {
        Some(oauth) => token::check(oauth),
        None => Ok(()),
    }
}

type Users = HashMap<String, (Vec<ApiKeyHash>, bool)>;

fn parse_users(users: &[UserConfig]) -> Result<Users, AuthSetupError> {
    let mut out = HashMap::with_capacity(users.len());
    for (i, user) in users.iter().enumerate() {
        let hashes = user
            .api_keys
            .iter()
            .enumerate()
            .map(|(j, s)| {
                ApiKeyHash::parse(s).map_err(|problem| AuthSetupError::MalformedApiKey {
                    key: format!("user[{i}].api_keys[{j}]"),
                    user: user.name.clone(),
                    problem,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(user.name.clone(), (hashes, user.admin));
    }
    Ok(out)
}

fn random_failed(e: getrandom::Error) -> AuthSetupError {
    AuthSetupError::Random(e.to_string())
}

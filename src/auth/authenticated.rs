//! What a successful authentication hands back, whichever way it was made (anonymous, API key,
//! access token): its own file, so that the token checks and the [`super::Authenticator`] that
//! calls them both name it without importing each other.

use std::time::SystemTime;

use crate::registry::Identity;

/// The outcome of a successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub identity: Identity,
    /// When a token was used: the instant from which it is refused (its `exp` plus
    /// `auth.oauth.leeway`). The connection must end then unless it re-authenticated
    /// (spec 2.6). `None` for API keys and anonymous connections, which do not expire.
    pub expires_at: Option<SystemTime>,
}

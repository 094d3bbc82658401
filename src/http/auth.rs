//! The authentication seam of the HTTP routes.
//!
//! Ingest requests authenticate as MQTT clients do (spec 2.6), via `Authorization: Bearer <jwt>`
//! or `Basic <user>:<api-key>`. Checking tokens and API keys lives elsewhere; the HTTP module
//! only asks an [`HttpAuthenticator`] who is calling, and answers `401` when it says no.

use crate::registry::Identity;

/// Turns a request's `Authorization` header into an [`Identity`].
pub trait HttpAuthenticator: Send + Sync {
    /// `authorization` is the header's value, `None` when the request has none. Whether a
    /// request without credentials is [`Identity::Anonymous`] or [`AuthFailure::Missing`] is the
    /// implementation's decision (`auth.allow_anonymous`).
    fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthFailure>;
}

/// Why a request is not authenticated; both become `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials, and anonymous access is not allowed.
    Missing,
    /// Credentials were given but refused; the text says why.
    Invalid(String),
}

/// An authenticator for builds without token and API-key checking: requests without
/// credentials are anonymous (if allowed), requests with credentials are refused rather than
/// silently treated as anonymous.
#[derive(Debug, Clone, Copy)]
pub struct AnonymousOnly {
    pub allow_anonymous: bool,
}

impl HttpAuthenticator for AnonymousOnly {
    fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthFailure> {
        match authorization {
            None if self.allow_anonymous => Ok(Identity::Anonymous),
            None => Err(AuthFailure::Missing),
            Some(_) => Err(AuthFailure::Invalid(
                "token and API-key authentication are not available in this build yet".to_owned(),
            )),
        }
    }
}

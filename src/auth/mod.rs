//! Authentication: who is connecting (spec 2.6).
//!
//! This build knows anonymous connections only. OAuth2 access tokens and API keys plug in here
//! (their own piece of work): the shard asks [`Authenticator::authenticate`] and acts on the answer,
//! so nothing else changes when they arrive.

use crate::registry::Identity;
use crate::session::{ConnectRefusal, ConnectRequest};

#[derive(Debug, Clone)]
pub struct Authenticator {
    allow_anonymous: bool,
}

impl Authenticator {
    pub fn new(allow_anonymous: bool) -> Authenticator {
        Authenticator { allow_anonymous }
    }

    /// Decides a CONNECT's identity from its credentials.
    pub fn authenticate(&self, req: &ConnectRequest) -> Result<Identity, ConnectRefusal> {
        match (&req.username, &req.password) {
            (None, None) if self.allow_anonymous => Ok(Identity::Anonymous),
            // Spec 2.6: anonymous where not allowed is "not authorized" (v5 0x87, v3.1.1 5).
            (None, None) => Err(ConnectRefusal::NotAuthorized),
            _ => {
                tracing::info!(
                    client = %req.client_id,
                    "credentials refused: token and API-key authentication are not available in this build yet"
                );
                Err(ConnectRefusal::BadCredentials)
            }
        }
    }
}

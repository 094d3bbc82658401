//! The HTTP routes' `Authorization` header (spec 5): `Bearer <token>` or
//! `Basic base64(<user>:<api-key>)`, checked as MQTT credentials are.

use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{AuthError, Authenticator};
use crate::http::{AuthFailure, HttpAuthenticator};
use crate::registry::Identity;

impl HttpAuthenticator for Authenticator {
    fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthFailure> {
        let Some(header) = authorization else {
            return if self.allows_anonymous() {
                Ok(Identity::Anonymous)
            } else {
                Err(AuthFailure::Missing)
            };
        };
        let result = match Credentials::parse(header) {
            Ok(Credentials::Bearer(token)) => self.authenticate_token(token, SystemTime::now()),
            Ok(Credentials::Basic { user, key }) => self.authenticate_api_key(&user, &key),
            Err(e) => Err(e),
        };
        result.map(|a| a.identity).map_err(|why| {
            tracing::info!("HTTP credentials refused: {why}");
            AuthFailure::Invalid(why.to_string())
        })
    }
}

/// A parsed `Authorization` header.
enum Credentials<'a> {
    Bearer(&'a str),
    Basic { user: String, key: String },
}

impl<'a> Credentials<'a> {
    fn parse(header: &'a str) -> Result<Credentials<'a>, AuthError> {
        let (scheme, value) = header
            .trim()
            .split_once(' ')
            .ok_or_else(|| AuthError::BadHeader("expected `Bearer` or `Basic`".into()))?;
        let value = value.trim();
        // RFC 9110 11.1: the scheme is case-insensitive.
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Credentials::Bearer(value));
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::BadHeader(format!(
                "scheme `{scheme}` is not supported (use `Bearer` or `Basic`)"
            )));
        }
        let decoded = STANDARD
            .decode(value)
            .map_err(|_| AuthError::BadHeader("Basic credentials are not base64".into()))?;
        let text = String::from_utf8(decoded).map_err(|_| AuthError::NotUtf8)?;
        // RFC 7617: the user id cannot contain a colon; the password may.
        let (user, key) = text.split_once(':').ok_or_else(|| {
            AuthError::BadHeader("Basic credentials are not `<user>:<api-key>`".into())
        })?;
        Ok(Credentials::Basic {
            user: user.to_owned(),
            key: key.to_owned(),
        })
    }
}

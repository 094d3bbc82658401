//! The CONNECT credentials table of spec 2.6.

use bytes::Bytes;
use serde_json::json;

use super::fixtures::*;
use crate::auth::{Authenticator, NewApiKey};
use crate::protocol::Version;
use crate::registry::Identity;
use crate::session::{ConnectRefusal, ConnectRequest};

const SECRET: &str = "connect-test-secret";

fn setup(allow_anonymous: bool) -> (Authenticator, NewApiKey) {
    hs256_and_bob(SECRET, allow_anonymous)
}

fn req(version: Version, username: Option<&str>, password: Option<&[u8]>) -> ConnectRequest {
    ConnectRequest {
        version,
        client_id: "c1".into(),
        clean_start: true,
        username: username.map(str::to_owned),
        password: password.map(Bytes::copy_from_slice),
        oauth2_token: None,
    }
}

#[test]
fn no_credentials() {
    let (auth, _) = setup(true);
    let ok = auth
        .authenticate(&req(Version::V5, None, None), now())
        .unwrap();
    assert_eq!(ok.identity, Identity::Anonymous);
    assert_eq!(ok.expires_at, None);
    let (auth, _) = setup(false);
    for v in [Version::V5, Version::V311] {
        assert_eq!(
            auth.authenticate(&req(v, None, None), now()),
            Err(ConnectRefusal::NotAuthorized)
        );
    }
}

#[test]
fn token_as_username_or_v5_password() {
    let (auth, _) = setup(false);
    let token = sign_hs256(SECRET.as_bytes(), None, &claims());
    for r in [
        req(Version::V311, Some(&token), None),
        req(Version::V5, Some(&token), None),
        req(Version::V5, None, Some(token.as_bytes())),
        // MQTT.js says "password only" with an empty user name.
        req(Version::V5, Some(""), Some(token.as_bytes())),
    ] {
        let ok = auth.authenticate(&r, now()).unwrap();
        assert_eq!(
            ok.identity,
            Identity::User {
                name: "alice".into(),
                admin: false
            }
        );
        assert!(ok.expires_at.is_some());
    }
    // MQTT 3.1.1 has no password without user name.
    assert_eq!(
        auth.authenticate(&req(Version::V311, None, Some(token.as_bytes())), now()),
        Err(ConnectRefusal::BadCredentials)
    );
}

#[test]
fn bad_or_expired_token_is_bad_credentials() {
    let (auth, _) = setup(false);
    let mut c = claims();
    c["exp"] = json!(secs(now()) - 3600);
    let expired = sign_hs256(SECRET.as_bytes(), None, &c);
    for r in [
        req(Version::V5, Some(&expired), None),
        req(Version::V5, None, Some(expired.as_bytes())),
        req(Version::V311, Some("not a token"), None),
        req(Version::V5, None, Some(&[0xff, 0xfe])),
    ] {
        assert_eq!(
            auth.authenticate(&r, now()),
            Err(ConnectRefusal::BadCredentials)
        );
    }
}

#[test]
fn user_and_api_key() {
    let (auth, key) = setup(false);
    for v in [Version::V311, Version::V5] {
        let ok = auth
            .authenticate(&req(v, Some("bob"), Some(key.key.as_bytes())), now())
            .unwrap();
        assert_eq!(
            ok.identity,
            Identity::User {
                name: "bob".into(),
                admin: false
            }
        );
        assert_eq!(ok.expires_at, None);
        for (user, password) in [("bob", "wrong"), ("alice", key.key.as_str())] {
            assert_eq!(
                auth.authenticate(&req(v, Some(user), Some(password.as_bytes())), now()),
                Err(ConnectRefusal::BadCredentials)
            );
        }
    }
}

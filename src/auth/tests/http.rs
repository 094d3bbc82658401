//! The HTTP `Authorization` header.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::fixtures::*;
use crate::auth::Authenticator;
use crate::http::{AuthFailure, HttpAuthenticator};
use crate::registry::Identity;

const SECRET: &str = "http-test-secret";

fn setup(allow_anonymous: bool) -> (Authenticator, String) {
    let (auth, key) = hs256_and_bob(SECRET, allow_anonymous);
    (auth, key.key)
}

fn check(auth: &Authenticator, header: Option<&str>) -> Result<Identity, AuthFailure> {
    HttpAuthenticator::authenticate(auth, header)
}

fn user_named(name: &str) -> Identity {
    Identity::User {
        name: name.into(),
        admin: false,
    }
}

#[test]
fn bearer_and_basic() {
    let (auth, key) = setup(false);
    let token = sign_hs256(SECRET.as_bytes(), None, &claims());
    assert_eq!(
        check(&auth, Some(&format!("Bearer {token}"))),
        Ok(user_named("alice"))
    );
    assert_eq!(
        check(&auth, Some(&format!("bearer  {token} "))),
        Ok(user_named("alice"))
    );
    let basic = STANDARD.encode(format!("bob:{key}"));
    assert_eq!(
        check(&auth, Some(&format!("Basic {basic}"))),
        Ok(user_named("bob"))
    );
}

#[test]
fn no_header() {
    let (auth, _) = setup(true);
    assert_eq!(check(&auth, None), Ok(Identity::Anonymous));
    let (auth, _) = setup(false);
    assert_eq!(check(&auth, None), Err(AuthFailure::Missing));
}

#[test]
fn refusals_say_why_without_the_secret() {
    let (auth, key) = setup(true);
    let wrong = STANDARD.encode(format!("bob:{}x", key));
    let cases = [
        (format!("Basic {wrong}"), "wrong API key for user `bob`"),
        ("Basic !!!".to_owned(), "not base64"),
        (
            format!("Basic {}", STANDARD.encode("bob")),
            "not `<user>:<api-key>`",
        ),
        ("Digest abc".to_owned(), "scheme `Digest` is not supported"),
        ("Bearer".to_owned(), "expected `Bearer` or `Basic`"),
        ("Bearer a.b.c".to_owned(), "malformed"),
    ];
    for (header, expected) in cases {
        match check(&auth, Some(&header)) {
            Err(AuthFailure::Invalid(why)) => {
                assert!(why.contains(expected), "{header}: {why}");
                assert!(!why.contains(&key), "{why}");
            }
            other => panic!("{header}: {other:?}"),
        }
    }
}

#[test]
fn an_admin_users_api_key_grants_the_admin_role_and_a_reload_can_take_it_away() {
    let key = crate::auth::generate_api_key().unwrap();
    let mut root = user("root", &[&key.hash]);
    root.admin = true;
    let auth = Authenticator::new(&auth_config(false, None), &[root.clone()]).unwrap();
    let basic = format!("Basic {}", STANDARD.encode(format!("root:{}", key.key)));
    assert_eq!(
        check(&auth, Some(&basic)),
        Ok(Identity::User {
            name: "root".into(),
            admin: true
        })
    );
    // A clone (as the shards and the HTTP server hold) sees the replacement.
    let seen_by_http = auth.clone();
    root.admin = false;
    auth.replace(&auth_config(false, None), &[root]).unwrap();
    assert_eq!(check(&seen_by_http, Some(&basic)), Ok(user_named("root")));
}

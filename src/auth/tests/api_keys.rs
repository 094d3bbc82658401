//! API keys through the authenticator: right key, wrong key, another user's key, unknown user,
//! malformed hashes in the configuration.

use super::fixtures::*;
use crate::auth::{check_config, generate_api_key, AuthError, AuthSetupError, Authenticator};
use crate::registry::Identity;

#[test]
fn api_keys_of_users() {
    let [a1, a2, b] = std::array::from_fn(|_| generate_api_key().unwrap());
    let users = [
        user("alice", &[&a1.hash, &a2.hash]),
        user("bob", &[&b.hash]),
        user("carol", &[]),
    ];
    let auth = Authenticator::new(&auth_config(false, None), &users).unwrap();
    for key in [&a1.key, &a2.key] {
        let ok = auth.authenticate_api_key("alice", key).unwrap();
        assert_eq!(
            ok.identity,
            Identity::User {
                name: "alice".into(),
                admin: false
            }
        );
        assert_eq!(ok.expires_at, None);
    }
    let wrong = AuthError::WrongApiKey {
        user: "alice".into(),
    };
    assert_eq!(
        auth.authenticate_api_key("alice", "nope"),
        Err(wrong.clone())
    );
    assert_eq!(auth.authenticate_api_key("alice", &b.key), Err(wrong));
    // The hash itself is not the key.
    assert!(auth.authenticate_api_key("alice", &a1.hash).is_err());
    assert_eq!(
        auth.authenticate_api_key("mallory", &a1.key),
        Err(AuthError::UnknownUser {
            user: "mallory".into()
        })
    );
    // A user without API keys cannot log in with one.
    assert!(matches!(
        auth.authenticate_api_key("carol", ""),
        Err(AuthError::WrongApiKey { .. })
    ));
}

#[test]
fn malformed_hash_stops_the_start_and_check_config() {
    let good = generate_api_key().unwrap();
    let users = [
        user("alice", &[&good.hash]),
        user("bob", &[&good.hash, &good.key]),
    ];
    let err = Authenticator::new(&auth_config(false, None), &users).unwrap_err();
    match &err {
        AuthSetupError::MalformedApiKey { key, user, .. } => {
            assert_eq!(key, "user[1].api_keys[1]");
            assert_eq!(user, "bob");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("mqtt-integration api-key bob"), "{text}");
    assert!(
        !text.contains(&good.key),
        "the pasted key is not echoed: {text}"
    );
    assert!(check_config(&auth_config(false, None), &users).is_err());
    assert!(check_config(&auth_config(false, None), &users[..1]).is_ok());
}

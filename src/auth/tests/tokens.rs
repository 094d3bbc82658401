//! Access tokens: every refusal reason of the security issue, and what a valid token yields.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::fixtures::*;
use crate::auth::{AuthError, AuthSetupError, Authenticated, Authenticator};
use crate::config::OAuthConfig;
use crate::registry::Identity;

/// An authenticator whose keys are a JWKS file with `keys`; the directory must outlive it.
fn with_jwks(
    keys: &[&KeyPair],
    tweak: impl FnOnce(&mut OAuthConfig),
) -> (Authenticator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(keys)).unwrap();
    let mut oauth = oauth();
    oauth.jwks_file = Some(path);
    tweak(&mut oauth);
    let auth = Authenticator::new(&auth_config(false, Some(oauth)), &[]).unwrap();
    (auth, dir)
}

fn both_keys() -> (Authenticator, tempfile::TempDir) {
    with_jwks(&[rsa(), ec()], |_| {})
}

/// `claims` signed with the RSA key `rsa1` of [`both_keys`], checked now.
fn rsa_check(auth: &Authenticator, claims: &Value) -> Result<Authenticated, AuthError> {
    auth.authenticate_token(&sign(rsa(), Some("rsa1"), claims), now())
}

/// The identity `claims` signed with the RSA key `rsa1` of [`both_keys`] yield.
fn rsa_identity(auth: &Authenticator, claims: &Value) -> Identity {
    rsa_check(auth, claims).unwrap().identity
}

/// `claims` without `claim`.
fn without(mut claims: Value, claim: &str) -> Value {
    claims.as_object_mut().unwrap().remove(claim);
    claims
}

fn user(name: &str, admin: bool) -> Identity {
    Identity::User {
        name: name.into(),
        admin,
    }
}

fn alice() -> Identity {
    user("alice", false)
}

#[test]
fn valid_rs256_token_from_a_jwks_file() {
    let (auth, _dir) = both_keys();
    let claims = claims();
    let ok = auth
        .authenticate_token(&sign(rsa(), Some("rsa1"), &claims), now())
        .unwrap();
    assert_eq!(ok.identity, alice());
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(
        ok.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(exp + 30)),
        "exp plus leeway"
    );
}

#[test]
fn valid_es256_token_from_a_jwks_file() {
    let (auth, _dir) = both_keys();
    let ok = auth
        .authenticate_token(&sign(ec(), Some("ec1"), &claims()), now())
        .unwrap();
    assert_eq!(ok.identity, alice());
}

#[test]
fn a_token_without_kid_uses_the_only_key() {
    let (auth, _dir) = with_jwks(&[ec()], |_| {});
    assert!(auth
        .authenticate_token(&sign(ec(), None, &claims()), now())
        .is_ok());
    let (auth, _dir) = both_keys();
    assert_eq!(
        auth.authenticate_token(&sign(ec(), None, &claims()), now()),
        Err(AuthError::MissingKid)
    );
}

#[test]
fn expired_token() {
    let (auth, _dir) = both_keys();
    let mut c = claims();
    let exp = secs(now()) - 31;
    c["exp"] = json!(exp);
    assert_eq!(
        rsa_check(&auth, &c),
        Err(AuthError::Expired { expired_at: exp })
    );
    // Within the leeway it still passes...
    c["exp"] = json!(secs(now()) - 5);
    let token = sign(rsa(), Some("rsa1"), &c);
    assert!(auth.authenticate_token(&token, now()).is_ok());
    // ...and the clock is the caller's: later, the same token is refused.
    assert!(matches!(
        auth.authenticate_token(&token, now() + Duration::from_secs(60)),
        Err(AuthError::Expired { .. })
    ));
}

/// Claims missing, not yet valid or from elsewhere: (claim, its new value or none, the refusal).
#[test]
fn refused_claims() {
    let (auth, _dir) = both_keys();
    let nbf = secs(now()) + 600;
    let other = "https://sso.example.com/realms/other";
    for (claim, value, error) in [
        (
            "exp",
            None,
            AuthError::MissingClaim {
                claim: "exp".into(),
            },
        ),
        (
            "nbf",
            Some(json!(nbf)),
            AuthError::NotYetValid { not_before: nbf },
        ),
        (
            "iss",
            Some(json!(other)),
            AuthError::WrongIssuer {
                found: other.into(),
            },
        ),
        (
            "iss",
            None,
            AuthError::MissingClaim {
                claim: "iss".into(),
            },
        ),
    ] {
        let mut c = claims();
        match &value {
            Some(v) => c[claim] = v.clone(),
            None => c = without(c, claim),
        }
        assert_eq!(rsa_check(&auth, &c), Err(error), "{claim}: {value:?}");
    }
}

#[test]
fn wrong_audience() {
    let (auth, _dir) = with_jwks(&[rsa()], |o| o.audience = Some("mqtt".into()));
    let mut c = claims();
    assert_eq!(rsa_check(&auth, &c), Err(AuthError::WrongAudience));
    c = without(c, "aud");
    assert_eq!(rsa_check(&auth, &c), Err(AuthError::WrongAudience));
    c["aud"] = json!(["account", "mqtt"]);
    assert!(auth
        .authenticate_token(&sign(rsa(), Some("rsa1"), &c), now())
        .is_ok());
    // Without a configured audience, `aud` is not checked.
    let (auth, _dir) = both_keys();
    assert!(auth
        .authenticate_token(&sign(rsa(), Some("rsa1"), &claims()), now())
        .is_ok());
}

#[test]
fn bad_signature() {
    let (auth, _dir) = both_keys();
    assert_eq!(
        auth.authenticate_token(&sign(rsa_impostor(), Some("rsa1"), &claims()), now()),
        Err(AuthError::BadSignature)
    );
    // A valid token whose claims were changed afterwards.
    let token = sign(ec(), Some("ec1"), &claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c = claims();
    c["preferred_username"] = json!("mallory");
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        c.to_string(),
    );
    assert_eq!(
        auth.authenticate_token(&parts.join("."), now()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn alg_none() {
    let (auth, _dir) = both_keys();
    assert_eq!(
        auth.authenticate_token(&unsigned("rsa1", &claims()), now()),
        Err(AuthError::AlgNone)
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let (auth, _dir) = both_keys();
    let token = sign_hs256(&rsa().public_pem, Some("rsa1"), &claims());
    assert_eq!(
        auth.authenticate_token(&token, now()),
        Err(AuthError::AlgorithmNotAllowed {
            alg: "HS256".into(),
            allowed: "RS256".into()
        })
    );
    // Nor may an EC key's token claim RS256, or the reverse.
    let token = sign(rsa(), Some("ec1"), &claims());
    assert!(matches!(
        auth.authenticate_token(&token, now()),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
}

#[test]
fn unknown_kid() {
    let (auth, _dir) = both_keys();
    assert_eq!(
        auth.authenticate_token(&sign(rsa(), Some("rotated"), &claims()), now()),
        Err(AuthError::UnknownKid {
            kid: "rotated".into()
        })
    );
}

#[test]
fn malformed_tokens() {
    let (auth, _dir) = both_keys();
    for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.", "e30.e30.sig"] {
        assert!(
            matches!(
                auth.authenticate_token(token, now()),
                Err(AuthError::Malformed(_))
            ),
            "{token}"
        );
    }
}

#[test]
fn username_claim_is_configurable() {
    let (auth, _dir) = with_jwks(&[rsa()], |o| o.username_claim = "email".into());
    let mut c = claims();
    c["email"] = json!("bob@example.com");
    assert_eq!(rsa_identity(&auth, &c), user("bob@example.com", false));
    assert_eq!(
        rsa_check(&auth, &without(c, "email")),
        Err(AuthError::NoUsername {
            claim: "email".into()
        })
    );
}

#[test]
fn admin_role_from_realm_access() {
    let (auth, _dir) = both_keys();
    let mut c = claims();
    c["realm_access"] = json!({"roles": ["offline_access", ADMIN_ROLE]});
    assert_eq!(rsa_identity(&auth, &c), user("alice", true));
    // The role elsewhere (a client role, a top-level claim) does not count.
    c["realm_access"] = json!({"roles": []});
    c["resource_access"] = json!({"drogue": {"roles": [ADMIN_ROLE]}});
    c["roles"] = json!([ADMIN_ROLE]);
    assert_eq!(rsa_identity(&auth, &c), alice());
}

#[test]
fn hs256_secret() {
    let mut o = oauth();
    o.hs256_secret = Some("test-secret".into());
    let auth = Authenticator::new(&auth_config(false, Some(o)), &[]).unwrap();
    assert!(auth
        .authenticate_token(&sign_hs256(b"test-secret", None, &claims()), now())
        .is_ok());
    assert_eq!(
        auth.authenticate_token(&sign_hs256(b"other", None, &claims()), now()),
        Err(AuthError::BadSignature)
    );
    // An RS256 token cannot pass where the key is the HS256 secret.
    assert!(matches!(
        auth.authenticate_token(&sign(rsa(), Some("rsa1"), &claims()), now()),
        Err(AuthError::AlgorithmNotAllowed { .. })
    ));
}

#[test]
fn tokens_without_oauth_config() {
    let auth = Authenticator::new(&auth_config(true, None), &[]).unwrap();
    assert_eq!(
        auth.authenticate_token(&sign(rsa(), Some("rsa1"), &claims()), now()),
        Err(AuthError::TokensNotConfigured)
    );
}

#[test]
fn jwks_file_problems_stop_the_start() {
    let mut o = oauth();
    o.jwks_file = Some(PathBuf::from("/nonexistent/jwks.json"));
    let err = Authenticator::new(&auth_config(false, Some(o.clone())), &[]).unwrap_err();
    assert!(
        matches!(err, AuthSetupError::JwksFileUnreadable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/jwks.json"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, "{\"keys\": 5}").unwrap();
    o.jwks_file = Some(path);
    let err = Authenticator::new(&auth_config(false, Some(o)), &[]).unwrap_err();
    assert!(matches!(err, AuthSetupError::InvalidJwks { .. }), "{err}");
    assert_eq!(err.config_key(), "auth.oauth.jwks_file");
}

#[test]
fn insecure_jwks_url_stops_the_start() {
    let mut o = oauth();
    o.jwks_url = Some("http://sso.example.com/certs".into());
    let err = Authenticator::new(&auth_config(false, Some(o)), &[]).unwrap_err();
    assert!(
        matches!(err, AuthSetupError::InsecureJwksUrl { .. }),
        "{err}"
    );
}

#[test]
fn refusal_messages_do_not_carry_the_token() {
    let (auth, _dir) = both_keys();
    let token = sign(rsa_impostor(), Some("rsa1"), &claims());
    let err = auth.authenticate_token(&token, now()).unwrap_err();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!err.to_string().contains(signature));
}

//! Test keys and tokens: RSA and EC P-256 key pairs made with the `openssl` command at test
//! time (no keys in the repository, no network), their JWKS, and signed tokens.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::auth::{generate_api_key, Authenticator, NewApiKey};
use crate::config::{AuthConfig, OAuthConfig, UserConfig};

pub const ISSUER: &str = "https://sso.example.com/realms/drogue";
pub const ADMIN_ROLE: &str = "drogue-admin";

/// A key pair: the private key (PKCS#8 PEM), the public key (SPKI PEM) and its JWK.
pub struct KeyPair {
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub jwk: Value,
    pub alg: Algorithm,
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the `openssl` command is needed by these tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A private key of `algorithm` made with `option`, in `k.pem` in `dir`.
fn genpkey(dir: &Path, algorithm: &str, option: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            algorithm,
            "-pkeyopt",
            option,
            "-out",
            "k.pem",
        ],
    );
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn make_rsa(kid: &str) -> KeyPair {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    genpkey(d, "RSA", "rsa_keygen_bits:2048");
    let public_pem = openssl(d, &["pkey", "-in", "k.pem", "-pubout"]);
    let modulus =
        String::from_utf8(openssl(d, &["rsa", "-in", "k.pem", "-noout", "-modulus"])).unwrap();
    let modulus = modulus.trim().strip_prefix("Modulus=").unwrap();
    KeyPair {
        private_pem: std::fs::read(d.join("k.pem")).unwrap(),
        public_pem,
        // genpkey's default public exponent is 65537 = AQAB.
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&hex(modulus)), "e": "AQAB"}),
        alg: Algorithm::RS256,
    }
}

pub fn make_ec(kid: &str) -> KeyPair {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    genpkey(d, "EC", "ec_paramgen_curve:P-256");
    let public_pem = openssl(d, &["pkey", "-in", "k.pem", "-pubout"]);
    let der = openssl(d, &["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"]);
    // The SPKI of a P-256 key ends with the uncompressed point 04 || X || Y.
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4);
    KeyPair {
        private_pem: std::fs::read(d.join("k.pem")).unwrap(),
        public_pem,
        jwk: json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}),
        alg: Algorithm::ES256,
    }
}

/// The RSA key `rsa1`, made once per test run (RSA key generation is slow).
pub fn rsa() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| make_rsa("rsa1"))
}

/// Another RSA key, also named `rsa1`: its tokens carry a known kid but a wrong signature.
pub fn rsa_impostor() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| make_rsa("rsa1"))
}

/// The EC key `ec1`.
pub fn ec() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| make_ec("ec1"))
}

pub fn jwks(keys: &[&KeyPair]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

pub fn now() -> SystemTime {
    SystemTime::now()
}

pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims of a valid token for `alice`, valid for an hour.
pub fn claims() -> Value {
    let now = secs(now());
    json!({
        "iss": ISSUER,
        "aud": "drogue",
        "exp": now + 3600,
        "iat": now,
        "preferred_username": "alice",
        "realm_access": {"roles": ["offline_access"]},
    })
}

pub fn sign(key: &KeyPair, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = kid.map(str::to_owned);
    let encoding = match key.alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&key.private_pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&key.private_pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

pub fn sign_hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// An unsigned token (`alg: none`, empty signature).
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

pub fn oauth() -> OAuthConfig {
    OAuthConfig {
        issuer: ISSUER.to_owned(),
        audience: None,
        jwks_url: None,
        jwks_file: None,
        hs256_secret: None,
        username_claim: "preferred_username".to_owned(),
        admin_role: ADMIN_ROLE.to_owned(),
        leeway: Duration::from_secs(30),
    }
}

pub fn auth_config(allow_anonymous: bool, oauth: Option<OAuthConfig>) -> AuthConfig {
    AuthConfig {
        allow_anonymous,
        oauth,
        ..AuthConfig::default()
    }
}

pub fn user(name: &str, api_keys: &[&str]) -> UserConfig {
    UserConfig {
        name: name.to_owned(),
        api_keys: api_keys.iter().map(|s| (*s).to_owned()).collect(),
        admin: false,
    }
}

/// An authenticator that takes HS256 tokens signed with `secret` and the user `bob` with one
/// API key, which is returned too.
pub fn hs256_and_bob(secret: &str, allow_anonymous: bool) -> (Authenticator, NewApiKey) {
    let key = generate_api_key().unwrap();
    let mut o = oauth();
    o.hs256_secret = Some(secret.into());
    let auth = Authenticator::new(
        &auth_config(allow_anonymous, Some(o)),
        &[user("bob", &[&key.hash])],
    )
    .unwrap();
    (auth, key)
}

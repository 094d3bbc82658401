//! Authentication end to end (spec 2.6, 3, 5): the real binary with `allow_anonymous = false`,
//! a `[[user]]` whose API key comes from the binary's own `api-key` command, and HS256 tokens.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "integration-test-secret";
const ISSUER: &str = "https://sso.example.com/realms/test";
const T: Duration = Duration::from_secs(5);

/// An API key made by `mqtt-integration api-key USER`: (key, hash).
fn api_key(user: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
        .args(["api-key", user])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "two lines: {text}");
    (lines[0].to_owned(), lines[1].to_owned())
}

fn token(user: &str, exp_from_now: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": ISSUER,
        "exp": now + exp_from_now,
        "preferred_username": user,
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The service, and alice's API key (alice owns `private`; bob has no role on it).
fn start() -> (Service, String) {
    let (alice_key, alice_hash) = api_key("alice");
    let (_, bob_hash) = api_key("bob");
    let auth = format!(
        "[auth]\nallow_anonymous = false\n[auth.oauth]\nissuer = \"{ISSUER}\"\nhs256_secret = \"{SECRET}\"\nleeway = \"0s\"\n"
    );
    let apps = format!(
        r#"
[[user]]
name = "alice"
api_keys = ["{alice_hash}"]

[[user]]
name = "bob"
api_keys = ["{bob_hash}"]

[[app]]
name = "private"
owner = "alice"
devices = [ {{ name = "device1" }} ]
"#
    );
    (Service::start_with(&auth, &apps, &[]), alice_key)
}

/// CONNECT with optional credentials over a raw socket; returns the CONNACK code.
fn connack_code(svc: &Service, level: u8, user: Option<&str>, password: Option<&str>) -> u8 {
    connect_raw(svc, level, user, password).1
}

/// CONNECT with optional credentials over a raw socket; returns the socket and CONNACK code.
fn connect_raw(
    svc: &Service,
    level: u8,
    user: Option<&str>,
    password: Option<&str>,
) -> (TcpStream, u8) {
    let mut body = Vec::new();
    mqtt_str(b"MQTT", &mut body);
    body.push(level);
    let flags =
        0x02 | if user.is_some() { 0x80 } else { 0 } | if password.is_some() { 0x40 } else { 0 };
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes());
    if level == 5 {
        body.push(0);
    }
    mqtt_str(b"raw-auth", &mut body);
    if let Some(u) = user {
        mqtt_str(u.as_bytes(), &mut body);
    }
    if let Some(p) = password {
        mqtt_str(p.as_bytes(), &mut body);
    }
    let mut s: TcpStream = svc.raw();
    s.write_all(&packet(0x10, &body)).unwrap();
    let (h, body) = read_packet(&mut s, T).expect("no CONNACK");
    assert_eq!(h, 0x20, "not a CONNACK: {h:#x}");
    (s, body[1])
}

/// SUBSCRIBE (v5) to `filter`; returns the SUBACK reason code.
fn suback_code(s: &mut TcpStream, filter: &str) -> u8 {
    s.write_all(&subscribe_packet(5, 1, filter, 1)).unwrap();
    let (h, suback) = read_packet(s, T).expect("no SUBACK");
    assert_eq!(h, 0x90, "not a SUBACK: {h:#x}");
    *suback.last().unwrap()
}

#[test]
fn api_key_users_connect_and_receive_their_events() {
    let (svc, key) = start();
    let mut o = v5_options(svc.mqtt, "alice-v5");
    o.set_credentials("alice", key.as_str());
    let v5 = V5::connect(o);
    assert_eq!(
        v5.connack.as_ref().unwrap().code,
        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
    );
    let mut o = v3_options(svc.mqtt, "alice-v3");
    o.set_credentials("alice", key.as_str());
    let v3 = V3::connect(o);
    v5.subscribe(
        "app/private",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        None,
    );
    v3.subscribe("app/private", rumqttc::QoS::AtLeastOnce);

    let basic = format!("Basic {}", STANDARD.encode(format!("alice:{key}")));
    assert_eq!(post(&svc, Some(&basic)), 202);
    let p = v5.next_publish(T).expect("v5 event");
    assert_eq!(cloudevent(&p.payload)["data"]["n"], 1);
    let p = v3.next_publish(T).expect("v3 event");
    assert_eq!(cloudevent(&p.payload)["data"]["n"], 1);
}

#[test]
fn wrong_credentials_are_refused() {
    let (svc, key) = start();
    assert_eq!(connack_code(&svc, 5, Some("alice"), Some("wrong")), 0x86);
    assert_eq!(connack_code(&svc, 4, Some("alice"), Some("wrong")), 4);
    assert_eq!(
        connack_code(&svc, 5, Some("bob"), Some(&key)),
        0x86,
        "alice's key for bob"
    );
    assert_eq!(connack_code(&svc, 5, Some("nobody"), Some(&key)), 0x86);
    // No credentials, anonymous off: not authorized.
    assert_eq!(connack_code(&svc, 5, None, None), 0x87);
    assert_eq!(connack_code(&svc, 4, None, None), 5);
    assert_eq!(connack_code(&svc, 5, Some("alice"), Some(&key)), 0);
    let log = svc.log();
    assert!(log.contains("wrong API key for user `alice`"), "{log}");
    assert!(!log.contains(&key), "the key is never logged");
}

#[test]
fn tokens_as_username_or_v5_password() {
    let (svc, _) = start();
    let t = token("alice", 600);
    assert_eq!(connack_code(&svc, 4, Some(&t), None), 0);
    assert_eq!(connack_code(&svc, 5, Some(&t), None), 0);
    assert_eq!(connack_code(&svc, 5, None, Some(&t)), 0);
    let expired = token("alice", -60);
    assert_eq!(connack_code(&svc, 5, None, Some(&expired)), 0x86);
    assert_eq!(connack_code(&svc, 5, Some(&expired), None), 0x86);
    assert_eq!(connack_code(&svc, 4, Some(&expired), None), 4);
    assert!(svc.log().contains("the token expired"), "{}", svc.log());

    // A token user needs no [[user]] entry: `private`'s owner is reached by the token's name.
    let (mut s, code) = connect_raw(&svc, 5, None, Some(&t));
    assert_eq!(code, 0);
    assert_eq!(suback_code(&mut s, "app/private"), 1, "granted QoS 1");
}

#[test]
fn user_without_role_is_not_authorized_to_subscribe() {
    let (svc, _) = start();
    let (mut s, code) = connect_raw(&svc, 5, Some(&token("bob", 600)), None);
    assert_eq!(code, 0);
    assert_eq!(suback_code(&mut s, "app/private"), 0x87);
}

/// Posts `{"n": 1}` to `private/device1`; returns the status.
fn post(svc: &Service, authorization: Option<&str>) -> u16 {
    post_body(svc, authorization).0
}

fn post_body(svc: &Service, authorization: Option<&str>) -> (u16, String) {
    let url = format!(
        "http://{}/api/v1/apps/private/devices/device1/events/test",
        svc.http
    );
    let mut r = ureq::post(&url).set("Content-Type", "application/json");
    if let Some(a) = authorization {
        r = r.set("Authorization", a);
    }
    match r.send_string("{\"n\":1}") {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn http_ingest_with_bearer_and_basic() {
    let (svc, key) = start();
    assert_eq!(
        post(&svc, Some(&format!("Bearer {}", token("alice", 600)))),
        202
    );
    let basic = format!("Basic {}", STANDARD.encode(format!("alice:{key}")));
    assert_eq!(post(&svc, Some(&basic)), 202);

    let (status, body) = post_body(&svc, Some(&format!("Bearer {}", token("alice", -60))));
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");
    let wrong = format!("Basic {}", STANDARD.encode("alice:nope"));
    let (status, body) = post_body(&svc, Some(&wrong));
    assert_eq!(status, 401);
    assert!(body.contains("wrong API key"), "{body}");
    assert!(!body.contains("nope"), "{body}");
    assert_eq!(post(&svc, None), 401, "no credentials, anonymous off");
    // Authenticated, but no permission on the application.
    assert_eq!(
        post(&svc, Some(&format!("Bearer {}", token("bob", 600)))),
        403
    );
}

#[test]
fn malformed_api_key_hash_stops_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!(
            "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:{}\"\n[http]\nbind = \"127.0.0.1:{}\"\n[[user]]\nname = \"alice\"\napi_keys = [\"not-a-hash\"]\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_mqtt-integration");
    let out = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("user[0].api_keys[0]"), "{err}");
    let out = Command::new(bin)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("user[0].api_keys[0]"));
}

/// v5 CONNECT as `client_id` with the token as password, or (with `method`) as the
/// Authentication Data of Authentication Method `oauth2`; returns the socket and the CONNACK.
fn connect_v5_token(
    svc: &Service,
    client_id: &str,
    token: &str,
    method: bool,
) -> (TcpStream, Vec<u8>) {
    use mqtt_integration::protocol::{Connect, Packet, Properties, Version};
    let mut properties = Properties::default();
    let mut password = Some(token.as_bytes());
    if method {
        properties.authentication_method = Some("oauth2");
        properties.authentication_data = Some(token.as_bytes());
        password = None;
    }
    let connect = Packet::Connect(Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 0,
        client_id,
        will: None,
        username: None,
        password,
        properties,
    });
    let mut out = bytes::BytesMut::new();
    connect.encode(Version::V5, &mut out).unwrap();
    let mut s = svc.raw();
    s.write_all(&out).unwrap();
    let (h, body) = read_packet(&mut s, T).expect("no CONNACK");
    assert_eq!(h, 0x20, "not a CONNACK");
    (s, body)
}

/// A v5 AUTH re-authenticating with `token`.
fn auth_packet(token: &str) -> Vec<u8> {
    use mqtt_integration::protocol::{Auth, Packet, Properties, ReasonCode};
    let auth = Packet::Auth(Auth {
        code: ReasonCode::RE_AUTHENTICATE,
        properties: Properties {
            authentication_method: Some("oauth2"),
            authentication_data: Some(token.as_bytes()),
            ..Properties::default()
        },
    });
    let mut out = bytes::BytesMut::new();
    auth.encode(mqtt_integration::protocol::Version::V5, &mut out)
        .unwrap();
    out.to_vec()
}

#[test]
fn an_expiring_token_ends_the_connection_unless_renewed_with_auth() {
    let (svc, _) = start();
    let (mut lapsing, connack) = connect_v5_token(&svc, "lapsing", &token("alice", 2), false);
    assert_eq!(connack[1], 0);
    let (mut renewing, connack) = connect_v5_token(&svc, "renewing", &token("alice", 2), true);
    assert_eq!(connack[1], 0);
    assert!(
        connack.windows(9).any(|w| w == b"\x15\x00\x06oauth2"),
        "CONNACK names the authentication method: {connack:?}"
    );
    let (mut switching, _) = connect_v5_token(&svc, "switching", &token("alice", 60), false);

    // Renew alice's token with a fresh one of alice's: AUTH Success.
    renewing
        .write_all(&auth_packet(&token("alice", 60)))
        .unwrap();
    let (h, body) = read_packet(&mut renewing, T).expect("AUTH answer");
    assert_eq!((h, body[0]), (0xF0, 0x00), "AUTH Success");
    // A token of another user does not renew: DISCONNECT Not authorized.
    switching
        .write_all(&auth_packet(&token("bob", 60)))
        .unwrap();
    assert_eq!(expect_disconnect(&mut switching, T), Some(0x87));

    // The unrenewed token expires: DISCONNECT 0xA0 (Maximum connect time), then close.
    assert_eq!(
        expect_disconnect(&mut lapsing, Duration::from_secs(6)),
        Some(0xA0)
    );
    assert!(
        eventually(T, || svc.log().contains("TokenExpired")),
        "the expiry is logged:\n{}",
        svc.log()
    );
    // The renewed connection outlives the first token.
    renewing.write_all(&[0xC0, 0x00]).unwrap();
    assert_eq!(
        read_packet(&mut renewing, T).map(|p| p.0),
        Some(0xD0),
        "still connected"
    );
}

//! Identities for the ownership tests (issue #17): users alice and bob with API keys, anonymous
//! clients, and raw CONNECT/SUBSCRIBE with credentials so that refusal codes can be read exactly.
//! Included with `#[path = "common/owners.rs"] mod owners;` beside `mod common;`.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use super::common::*;

/// An API key made by `mqtt-integration api-key USER`: (key, hash).
pub fn api_key(user: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
        .args(["api-key", user])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    (lines[0].to_owned(), lines[1].to_owned())
}

/// The keys of alice and bob, and the `[[user]]`s and `[[app]]` `app` (devices
/// `device1`..`device4`) that everyone, anonymous included, may read and write.
pub struct Users {
    pub alice: String,
    pub bob: String,
    pub toml: String,
}

pub fn users(app: &str) -> Users {
    let (alice, alice_hash) = api_key("alice");
    let (bob, bob_hash) = api_key("bob");
    let toml = format!(
        r#"
[[user]]
name = "alice"
api_keys = ["{alice_hash}"]

[[user]]
name = "bob"
api_keys = ["{bob_hash}"]

[[app]]
name = "{app}"
members = {{ anonymous = "manager", alice = "manager", bob = "manager" }}
devices = [ {{ name = "device1" }}, {{ name = "device2" }}, {{ name = "device3" }}, {{ name = "device4" }} ]
"#
    );
    Users { alice, bob, toml }
}

/// A raw CONNECT (clean start) as `client_id`, with `(user, key)`, `(token, "")` or anonymous;
/// returns the
/// socket and the CONNACK's code (v5 reason code, v3.1.1 return code).
pub fn connect_as(
    svc: &Service,
    level: u8,
    client_id: &str,
    creds: Option<(&str, &str)>,
) -> (TcpStream, u8) {
    let mut body = Vec::new();
    mqtt_str(b"MQTT", &mut body);
    body.push(level);
    // A token goes as the user name alone (empty key: no password).
    let flags = match creds {
        None => 0,
        Some((_, "")) => 0x80,
        Some(_) => 0xC0,
    };
    body.push(0x02 | flags);
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    mqtt_str(client_id.as_bytes(), &mut body);
    if let Some((user, key)) = creds {
        mqtt_str(user.as_bytes(), &mut body);
        if !key.is_empty() {
            mqtt_str(key.as_bytes(), &mut body);
        }
    }
    let mut s = svc.raw();
    s.write_all(&packet(0x10, &body)).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no CONNACK");
    assert_eq!(h, 0x20, "not a CONNACK: {h:#x} {body:?}");
    (s, body[1])
}

/// Subscribes `filter` at QoS 1 on a raw connection; returns the SUBACK's code.
pub fn suback_code(s: &mut TcpStream, level: u8, filter: &str) -> u8 {
    suback(s, level, filter).0
}

/// Subscribes `filter` at QoS 1 on a raw connection; returns the SUBACK's code and (v5) the
/// text of its properties (where a Reason String would be).
pub fn suback(s: &mut TcpStream, level: u8, filter: &str) -> (u8, String) {
    s.write_all(&subscribe_packet(level, 7, filter, 1)).unwrap();
    loop {
        let (h, body) = read_packet(s, Duration::from_secs(20)).expect("no SUBACK");
        if h != 0x90 {
            continue; // an event that came first
        }
        let mut at = 2;
        let mut props = String::new();
        if level == 5 {
            // Properties (a Reason String, perhaps): a variable byte integer length.
            let (mut len, mut mult) = (0usize, 1usize);
            loop {
                let b = body[at];
                at += 1;
                len += (b & 0x7f) as usize * mult;
                mult *= 128;
                if b & 0x80 == 0 {
                    break;
                }
            }
            props = String::from_utf8_lossy(&body[at..at + len]).into_owned();
            at += len;
        }
        return (body[at], props);
    }
}

/// Reads QoS 1 events on a raw v3.1.1 connection, acknowledging each, until `n` arrived or
/// `timeout` passed; returns their `data.seq`s.
pub fn read_seqs(s: &mut TcpStream, n: usize, timeout: Duration) -> Vec<u64> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let Some((h, body)) = read_packet(s, left) else {
            break;
        };
        if h & 0xF0 != 0x30 {
            continue;
        }
        let (_, pkid, seq) = raw_publish(h, &body);
        s.write_all(&packet(0x40, &pkid.to_be_bytes())).unwrap();
        got.push(seq);
    }
    got
}

/// A steady rumqttc v5 subscriber of `app/<app>` at QoS 1 (empty client id: an ephemeral reader
/// of its own, which no one else can join).
pub fn steady(svc: &Service, app: &str) -> V5 {
    let v = V5::connect(v5_options(svc.mqtt, ""));
    v.subscribe(
        &format!("app/{app}"),
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        None,
    );
    v
}

/// Collects `n` events' `data.seq` from a rumqttc v5 client (None if fewer came).
pub fn collect_seqs(v: &V5, n: usize, timeout: Duration) -> Vec<u64> {
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match v.next_publish(left) {
            Some(p) => got.push(seq_of(&p.payload)),
            None => break,
        }
    }
    got
}

/// `[auth.oauth]` accepting [`token`]s (HS256).
pub const OAUTH: &str = "[auth.oauth]\nissuer = \"https://sso.example.com/realms/owners\"\nhs256_secret = \"owners-test-secret\"\n";

/// An access token for `user`, valid for 10 minutes; `admin` adds `auth.oauth.admin_role`.
pub fn token(user: &str, admin: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let roles: Vec<&str> = if admin { vec!["drogue-admin"] } else { vec![] };
    let claims = serde_json::json!({
        "iss": "https://sso.example.com/realms/owners",
        "exp": now + 600,
        "preferred_username": user,
        "realm_access": { "roles": roles },
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"owners-test-secret"),
    )
    .unwrap()
}

/// The value of the unlabelled gauge `name` in `/metrics`.
pub fn gauge(svc: &Service, name: &str) -> Option<i64> {
    svc.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

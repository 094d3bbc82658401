//! Issue #16: the status page `GET /` and its JSON `GET /api/v1/status` on the real binary: who
//! may see them (`http.status_page`, the admin role of a token), and that the JSON shows the
//! figures `/metrics` shows.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{eventually, v5_options, Service, V5};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.test/realms/status";
const SECRET: &str = "status-page-test-secret";

/// An HS256 token for `user`, with the admin role when `admin`.
fn token(user: &str, admin: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let roles = if admin { vec!["drogue-admin"] } else { vec![] };
    let claims = json!({
        "iss": ISSUER,
        "exp": now + 600,
        "preferred_username": user,
        "realm_access": { "roles": roles },
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// An API key made by `mqtt-integration api-key USER`: (key, hash).
fn api_key(user: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
        .args(["api-key", user])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (key, hash) = text.trim().split_once('\n').expect("two lines");
    (key.to_owned(), hash.to_owned())
}

/// Tokens (HS256) and anonymous access allowed; `ops` connects with an API key, and so does
/// `root`, an admin user (`admin = true`).
fn with_tokens(env: &[(&str, &str)], ops_hash: &str, root_hash: &str) -> Service {
    let auth = format!(
        "[auth]\nallow_anonymous = true\n[auth.oauth]\nissuer = \"{ISSUER}\"\nhs256_secret = \"{SECRET}\"\n"
    );
    let apps = format!(
        "[[user]]\nname = \"ops\"\napi_keys = [\"{ops_hash}\"]\n\n[[user]]\nname = \"root\"\napi_keys = [\"{root_hash}\"]\nadmin = true\n\n{}",
        common::APPS
    );
    Service::start_with(&auth, &apps, env)
}

/// (status, the `WWW-Authenticate` challenges joined by `; `, content type, body) of `GET path`.
fn get(svc: &Service, path: &str, authorization: Option<&str>) -> (u16, String, String, String) {
    let mut request = ureq::get(&format!("http://{}{path}", svc.http));
    if let Some(value) = authorization {
        request = request.set("Authorization", value);
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let www = response.all("WWW-Authenticate").join("; ");
    let content_type = response.content_type().to_owned();
    (
        response.status(),
        www,
        content_type,
        response.into_string().unwrap(),
    )
}

fn status_json(svc: &Service) -> Value {
    let (code, _, _, body) = get(svc, "/api/v1/status", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of the one sample `series` (name and labels, exactly as rendered) in `/metrics`.
fn sample(metrics: &str, series: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in /metrics:\n{metrics}"))
        .parse()
        .unwrap()
}

/// The sum of every sample of the family `name`.
fn family_sum(metrics: &str, name: &str) -> i64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
        .sum()
}

#[test]
fn admin_mode_needs_the_admin_role_of_a_token_or_an_admin_user() {
    let (key, hash) = api_key("ops");
    let (root_key, root_hash) = api_key("root");
    let svc = with_tokens(&[], &hash, &root_hash);
    let admin = format!("Bearer {}", token("root", true));
    let plain = format!("Bearer {}", token("alice", false));
    // A valid API key, but `ops` is a plain user.
    let basic = format!("Basic {}", STANDARD.encode(format!("ops:{key}")));
    // What a browser sends once its user typed an admin user's name and API key.
    let admin_basic = format!("Basic {}", STANDARD.encode(format!("root:{root_key}")));
    assert_eq!(
        svc.ingest("demo", "device1", "t", "text/plain", b"x"),
        202,
        "the key works"
    );
    for path in ["/", "/api/v1/status"] {
        // Anonymous access is allowed for MQTT and ingest here, but not for the status page.
        for authorization in [
            None,
            Some(plain.as_str()),
            Some(basic.as_str()),
            Some("Bearer not-a-token"),
        ] {
            let (code, www, _, body) = get(&svc, path, authorization);
            assert_eq!(code, 401, "{path} with {authorization:?}: {body}");
            // Basic first: a browser answers it with a login prompt.
            assert!(
                www.starts_with("Basic realm=") && www.contains("; Bearer realm="),
                "{path}: WWW-Authenticate {www:?}"
            );
            let error: Value = serde_json::from_str(&body).unwrap();
            assert!(error["error"].as_str().is_some(), "{body}");
        }
        let (code, _, _, body) = get(&svc, path, Some(&admin_basic));
        assert_eq!(code, 200, "{path} as an admin user: {body}");
        let (code, _, content_type, body) = get(&svc, path, Some(&admin));
        assert_eq!(code, 200, "{path} as admin: {body}");
        if path == "/" {
            assert_eq!(content_type, "text/html");
            assert!(body.contains("api/v1/status"), "the page polls the JSON");
        } else {
            assert_eq!(content_type, "application/json");
        }
    }
    // The refusals were answered by the routes, so they are counted by code.
    assert!(
        sample(
            &svc.metrics(),
            "mqtt_integration_http_responses_total{code=\"401\"}"
        ) >= 8
    );
}

#[test]
fn public_mode_shows_the_figures_of_metrics() {
    let svc = Service::start_with(
        "",
        common::APPS,
        &[("MQTT_INTEGRATION__HTTP__STATUS_PAGE", "public")],
    );
    let s = status_json(&svc);
    for field in [
        "time_ms",
        "version",
        "connections",
        "connections_total",
        "max_connections",
        "subscriptions",
        "events",
        "groups",
        "groups_known",
        "backend",
        "listeners_ready",
    ] {
        assert!(s.get(field).is_some(), "field {field} in {s}");
    }
    for field in [
        "in",
        "out",
        "acked",
        "skipped",
        "in_per_second",
        "out_per_second",
        "rate_seconds",
    ] {
        assert!(
            s["events"][field].as_f64().is_some_and(|v| v >= 0.0),
            "events.{field} in {s}"
        );
    }
    assert_eq!(s["backend"]["kind"], "embedded");
    assert_eq!(s["backend"]["ready"], true);
    assert_eq!(s["max_connections"], 100_000);

    // A durable subscriber (its group has a lag series) and some ingested events.
    let client = V5::connect(v5_options(svc.mqtt, "status-reader"));
    client.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    for i in 0..5 {
        let code = svc.ingest(
            "demo",
            "device1",
            "temp",
            "application/json",
            format!("{{\"n\":{i}}}").as_bytes(),
        );
        assert_eq!(code, 202);
    }
    for _ in 0..5 {
        assert!(client.next_publish(Duration::from_secs(5)).is_some());
    }
    // Wait until the figures are still: the acknowledgements reached the group and its
    // commits caught up (lag 0), so that the JSON and /metrics below read the same values.
    assert!(eventually(Duration::from_secs(5), || {
        let s = status_json(&svc);
        s["events"]["acked"] == 5
            && s["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["group"] == "demo.status-reader" && g["lag"] == 0)
    }));

    let s = status_json(&svc);
    let m = svc.metrics();
    for protocol in ["mqtt", "mqtts", "ws", "wss"] {
        assert_eq!(
            s["connections"][protocol].as_i64().unwrap(),
            sample(
                &m,
                &format!("mqtt_integration_connections{{protocol=\"{protocol}\"}}")
            ),
            "{protocol}"
        );
    }
    assert_eq!(s["connections"]["mqtt"], 1);
    assert_eq!(s["connections_total"], 1);
    assert_eq!(
        s["subscriptions"].as_i64().unwrap(),
        sample(&m, "mqtt_integration_subscriptions")
    );
    assert_eq!(s["subscriptions"], 1);
    assert_eq!(
        s["events"]["in"].as_i64().unwrap(),
        sample(&m, "mqtt_integration_ingested_events_total")
    );
    assert_eq!(s["events"]["in"], 5);
    assert_eq!(
        s["events"]["out"].as_i64().unwrap(),
        family_sum(&m, "mqtt_integration_events_delivered_total")
    );
    assert_eq!(s["events"]["out"], 5);
    // The rates come from readings of the same counters, a second or more apart.
    std::thread::sleep(Duration::from_millis(1100));
    let later = status_json(&svc);
    assert!(
        later["events"]["rate_seconds"].as_f64().unwrap() >= 1.0,
        "{later}"
    );
    assert!(
        later["events"]["in_per_second"].as_f64().unwrap() > 0.0,
        "{later}"
    );
    assert_eq!(
        s["events"]["skipped"].as_i64().unwrap(),
        sample(&m, "mqtt_integration_records_skipped_total")
    );
    assert_eq!(
        s["max_connections"].as_i64().unwrap(),
        sample(&m, "mqtt_integration_max_connections")
    );
    assert_eq!(
        s["groups_known"].as_i64().unwrap(),
        sample(&m, "mqtt_integration_groups")
    );
    let groups = s["groups"].as_array().unwrap();
    let reader = groups
        .iter()
        .find(|g| g["group"] == "demo.status-reader")
        .unwrap_or_else(|| panic!("the reader's group in {s}"));
    assert_eq!(
        reader["lag"].as_i64().unwrap(),
        sample(
            &m,
            "mqtt_integration_group_lag{group=\"demo.status-reader\"}"
        )
    );
    // Public mode needs no credentials for the page either.
    let (code, _, content_type, _) = get(&svc, "/", None);
    assert_eq!((code, content_type.as_str()), (200, "text/html"));
}

#[test]
fn an_unknown_status_page_value_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[http]\nstatus_page = \"everyone\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http.status_page"), "{stderr}");
}

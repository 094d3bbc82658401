//! The HTTP server end to end: a real [`HttpServer`] on 127.0.0.1:0, a real HTTP client, and a
//! recording test double of the backend's [`Producer`].

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::*;
use crate::cloudevents::{Event, ExtensionValue};
use crate::config::Config;
use crate::registry::{Identity, Registry};
use crate::seam::{BackendError, Completion};

/// How the test backend answers.
#[derive(Clone)]
enum Answer {
    Accept,
    Fail(BackendError),
    /// Drops the completion without calling it.
    Drop,
}

/// Records what is published and answers from another thread, as a real backend would.
struct RecordingProducer {
    events: Mutex<Vec<(String, Event)>>,
    answer: Mutex<Answer>,
    ready: AtomicBool,
}

impl RecordingProducer {
    fn events(&self) -> Vec<(String, Event)> {
        self.events.lock().unwrap().clone()
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Producer for RecordingProducer {
    fn publish_event(&self, app: &str, event: Event, done: Completion) {
        let answer = self.answer.lock().unwrap().clone();
        match answer {
            Answer::Accept => {
                self.events.lock().unwrap().push((app.to_owned(), event));
                std::thread::spawn(move || done(Ok(())));
            }
            Answer::Fail(e) => {
                std::thread::spawn(move || done(Err(e)));
            }
            Answer::Drop => drop(done),
        }
    }

    fn send_command(&self, _app: &str, _device: &str, _event: Event, done: Completion) {
        done(Err(BackendError::Unavailable(
            "commands are not used here".into(),
        )));
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Bearer tokens are user names here; `admin` is an admin; no header is anonymous.
struct NamesAsTokens;

impl HttpAuthenticator for NamesAsTokens {
    fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, AuthFailure> {
        match authorization.map(|h| h.strip_prefix("Bearer ")) {
            None => Ok(Identity::Anonymous),
            Some(Some(name)) => Ok(Identity::User {
                name: name.to_owned(),
                admin: name == "admin",
            }),
            Some(None) => Err(AuthFailure::Invalid("not a bearer token".into())),
        }
    }
}

/// The applications of every test, built from configuration as the service builds them.
fn registry() -> Registry {
    const APPS: &str = r#"
[[app]]
name = "demo"
members = { anonymous = "manager" }
devices = [ { name = "device1" }, { name = "device2", enabled = false }, { name = "dev:ice 3" } ]

[[app]]
name = "readonly"
members = { anonymous = "reader" }
devices = [ { name = "device1" } ]

[[app]]
name = "owned"
owner = "alice"
members = { bob = "reader", carol = "manager" }
devices = [ { name = "d" } ]
"#;
    let config = Config::from_toml_str(APPS, "http test", Vec::new()).expect("test config");
    Registry::from_config(&config)
}

pub(super) struct Harness {
    pub(super) server: Option<HttpServer>,
    producer: Arc<RecordingProducer>,
    metrics: Arc<Metrics>,
    listeners_ready: Arc<AtomicBool>,
    base: String,
}

impl Harness {
    fn start(auth: Arc<dyn HttpAuthenticator>, max_body_size: usize) -> Harness {
        Harness::start_with(
            auth,
            max_body_size,
            HttpLimits {
                max_connections: 64,
                ..HttpLimits::default()
            },
        )
    }

    pub(super) fn start_with(
        auth: Arc<dyn HttpAuthenticator>,
        max_body_size: usize,
        limits: HttpLimits,
    ) -> Harness {
        let producer = Arc::new(RecordingProducer {
            events: Mutex::new(Vec::new()),
            answer: Mutex::new(Answer::Accept),
            ready: AtomicBool::new(true),
        });
        let metrics = Arc::new(Metrics::default());
        let listeners_ready = Arc::new(AtomicBool::new(false));
        let state = HttpState {
            registry: Arc::new(registry().into()),
            producer: producer.clone(),
            metrics: metrics.clone(),
            auth,
            listeners_ready: listeners_ready.clone(),
            instance: "test-instance".into(),
            max_body_size,
            status: Default::default(),
            inbox: Arc::new(crate::inbox::Inbox::new(crate::inbox::Keep::OnlyWaiting)),
            max_command_wait: std::time::Duration::from_secs(60),
        };
        let server = HttpServer::start("127.0.0.1:0".parse().unwrap(), state, limits).unwrap();
        let base = format!("http://{}", server.local_addr());
        Harness {
            server: Some(server),
            producer,
            metrics,
            listeners_ready,
            base,
        }
    }

    pub(super) fn new() -> Harness {
        Harness::start(Arc::new(NamesAsTokens), DEFAULT_MAX_BODY_SIZE)
    }

    pub(super) fn limited(limits: HttpLimits) -> Harness {
        Harness::start_with(Arc::new(NamesAsTokens), DEFAULT_MAX_BODY_SIZE, limits)
    }

    pub(super) fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().expect("running").local_addr()
    }

    pub(super) fn stored(&self) -> usize {
        self.producer.events().len()
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> ureq::Request {
        let mut request = ureq::request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        request
    }

    fn get(&self, path: &str) -> Resp {
        Resp::from(self.request("GET", path, &[]).call())
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        Resp::from(self.request("POST", path, headers).send_bytes(body))
    }

    fn batch(&self, app: &str, body: &str) -> Resp {
        let headers = [("Content-Type", "application/cloudevents-batch+json")];
        self.post(
            &format!("/api/v1/apps/{app}/events"),
            &headers,
            body.as_bytes(),
        )
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

struct Resp {
    status: u16,
    content_type: Option<String>,
    allow: Option<String>,
    www_authenticate: Option<String>,
    body: String,
}

impl Resp {
    fn from(result: Result<ureq::Response, ureq::Error>) -> Resp {
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("HTTP transport error: {e}"),
        };
        let header = |name: &str| response.header(name).map(str::to_owned);
        Resp {
            status: response.status(),
            content_type: header("Content-Type"),
            allow: header("Allow"),
            www_authenticate: header("WWW-Authenticate"),
            body: response.into_string().unwrap(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn error(&self) -> String {
        let json = self.json();
        json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text: {}", self.body))
            .to_owned()
    }
}

fn ext(event: &Event, name: &str) -> Option<String> {
    match event.extension(name)? {
        ExtensionValue::String(s) => Some(s.to_string()),
        other => panic!("extension {name} is not a string: {other:?}"),
    }
}

#[test]
fn single_event_is_accepted_with_the_attributes_of_spec_2_3() {
    let h = Harness::new();
    let data = br#"{"temp": 21.5}"#;
    let r = h.post(
        "/api/v1/apps/demo/devices/dev%3Aice%203/events/room/1",
        &[("Content-Type", "application/json")],
        data,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.json(), serde_json::json!({ "accepted": 1 }));

    let events = h.producer.events();
    assert_eq!(events.len(), 1);
    let (app, event) = &events[0];
    assert_eq!(app, "demo");
    assert!(uuid::Uuid::parse_str(&event.id).is_ok(), "{}", event.id);
    assert_eq!(event.ty, "io.drogue.event.v1");
    assert_eq!(event.source, "drogue://demo/dev%3Aice%203");
    assert_eq!(event.subject.as_deref(), Some("room/1"));
    let time = event.time.as_deref().unwrap();
    assert!(time.ends_with('Z'), "{time}");
    assert!(humantime::parse_rfc3339_weak(time).is_ok(), "{time}");
    assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(ext(event, "application").as_deref(), Some("demo"));
    assert_eq!(ext(event, "device").as_deref(), Some("dev:ice 3"));
    assert_eq!(ext(event, "sender").as_deref(), Some("dev:ice 3"));
    assert_eq!(
        ext(event, "partitionkey").as_deref(),
        Some("demo/dev:ice 3")
    );
    assert_eq!(ext(event, "instance").as_deref(), Some("test-instance"));
    assert_eq!(&event.data[..], data);
    assert!(h
        .metrics
        .render()
        .contains("mqtt_integration_ingested_events_total 1"));
}

#[test]
fn binary_data_without_content_type_is_octet_stream_and_byte_exact() {
    let h = Harness::new();
    let data: Vec<u8> = (0..=255u8).rev().collect();
    let r = h.post("/api/v1/apps/demo/devices/device1/events/raw", &[], &data);
    assert_eq!(r.status, 202, "{}", r.body);
    let events = h.producer.events();
    let event = &events[0].1;
    assert_eq!(
        event.datacontenttype.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(&event.data[..], &data[..]);
    assert_eq!(event.subject.as_deref(), Some("raw"));
}

#[test]
fn unknown_application_is_404() {
    let h = Harness::new();
    let r = h.post("/api/v1/apps/nope/devices/device1/events/c", &[], b"x");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("`nope`"), "{}", r.body);
    let r = h.batch("nope", "[]");
    assert_eq!(r.status, 404);
    assert!(h.producer.events().is_empty());
}

#[test]
fn disabled_unknown_device_and_missing_permission_are_403_saying_which() {
    let h = Harness::new();
    let cases = [
        ("/api/v1/apps/demo/devices/device2/events/c", "disabled"),
        ("/api/v1/apps/demo/devices/ghost/events/c", "does not exist"),
        (
            "/api/v1/apps/readonly/devices/device1/events/c",
            "may not write",
        ),
    ];
    for (path, needle) in cases {
        let r = h.post(path, &[], b"x");
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.error().contains(needle), "{path}: {}", r.body);
    }
    let r = h.batch("readonly", r#"[{"device":"device1"}]"#);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(h.producer.events().is_empty());
}

#[test]
fn write_permission_follows_owner_and_roles() {
    let h = Harness::new();
    let path = "/api/v1/apps/owned/devices/d/events/c";
    for (who, status) in [
        ("bob", 403),
        ("mallory", 403),
        ("alice", 202),
        ("carol", 202),
        ("admin", 202),
    ] {
        let token = format!("Bearer {who}");
        let r = h.post(path, &[("Authorization", &token)], b"x");
        assert_eq!(r.status, status, "{who}: {}", r.body);
    }
    // Anonymous is no member of `owned`.
    assert_eq!(h.post(path, &[], b"x").status, 403);
    assert_eq!(h.producer.events().len(), 3);
}

#[test]
fn oversized_bodies_are_413_with_or_without_content_length() {
    let h = Harness::start(Arc::new(NamesAsTokens), 1024);
    let path = "/api/v1/apps/demo/devices/device1/events/c";
    let r = h.post(path, &[], &[7u8; 4096]);
    assert_eq!(r.status, 413);
    assert!(r.error().contains("1024"), "{}", r.body);

    // Chunked: no Content-Length, so the limit is found while reading.
    let chunked = h
        .request("POST", path, &[])
        .send(Cursor::new(vec![7u8; 4096]));
    assert_eq!(Resp::from(chunked).status, 413);

    let r = h.batch("demo", &format!("[{}]", " ".repeat(2000)));
    assert_eq!(r.status, 413);

    // Far beyond the limit: answered without the server keeping the body.
    let h_default = Harness::new();
    let r = h_default.post(path, &[], &vec![7u8; 3 * DEFAULT_MAX_BODY_SIZE]);
    assert_eq!(r.status, 413);
    let chunked = h_default
        .request("POST", path, &[])
        .send(Cursor::new(vec![7u8; 3 * DEFAULT_MAX_BODY_SIZE]));
    assert_eq!(Resp::from(chunked).status, 413);

    assert_eq!(h.post(path, &[], &[7u8; 1024]).status, 202);
    let chunked = h
        .request("POST", path, &[])
        .send(Cursor::new(vec![7u8; 1024]));
    assert_eq!(Resp::from(chunked).status, 202);
    assert_eq!(h.producer.events().len(), 2);
}

#[test]
fn batch_needs_the_batch_content_type() {
    let h = Harness::new();
    let body = br#"[{"device":"device1"}]"#;
    for headers in [&[("Content-Type", "application/json")][..], &[]] {
        let r = h.post("/api/v1/apps/demo/events", headers, body);
        assert_eq!(r.status, 415, "{}", r.body);
        assert!(
            r.error().contains("application/cloudevents-batch+json"),
            "{}",
            r.body
        );
    }
    let headers = [(
        "Content-Type",
        "Application/CloudEvents-Batch+JSON; charset=utf-8",
    )];
    assert_eq!(
        h.post("/api/v1/apps/demo/events", &headers, body).status,
        202
    );
}

#[test]
fn batch_is_all_or_nothing_and_names_the_first_bad_index() {
    let h = Harness::new();
    let cases = [
        (
            r#"[{"device":"device1"},{"device":"ghost"},{"device":"device2"}]"#,
            1,
            "ghost",
        ),
        (
            r#"[{"device":"device1"},{"device":"device1"},{"device":"device2"}]"#,
            2,
            "disabled",
        ),
        (r#"[{"device":"device1"},{"data":1}]"#, 1, "`device`"),
        (
            r#"[{"device":"device1","specversion":"0.3"}]"#,
            0,
            "specversion",
        ),
        (r#"[{"device":"device1"}, "x"]"#, 1, "JSON object"),
    ];
    for (body, index, needle) in cases {
        let r = h.batch("demo", body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["index"], index, "{body}: {}", r.body);
        let error = r.error();
        assert!(error.starts_with(&format!("event {index}: ")), "{error}");
        assert!(error.contains(needle), "{body}: {error}");
    }
    let r = h.batch("demo", r#"{"device":"device1"}"#);
    assert_eq!(r.status, 400);
    assert!(r.json().get("index").is_none(), "{}", r.body);
    assert!(
        h.producer.events().is_empty(),
        "nothing of a bad batch may be published"
    );
    assert!(h
        .metrics
        .render()
        .contains("mqtt_integration_ingested_events_total 0"));
}

#[test]
fn batch_is_accepted_in_order_with_missing_attributes_filled() {
    let h = Harness::new();
    let body = r#"[
        {"device":"device1","subject":"a","datacontenttype":"application/json","data":{"a":[2],"z":1}},
        {"device":"dev:ice 3","id":"given-id","source":"ignored","partitionkey":"ignored","data":"text"},
        {"device":"device1","type":"custom.type","data_base64":"AAEC"}
    ]"#;
    let r = h.batch("demo", body);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({ "accepted": 3 }));
    let events = h.producer.events();
    assert_eq!(events.len(), 3);
    let [(_, first), (_, second), (_, third)] = &events[..] else {
        unreachable!()
    };
    assert!(uuid::Uuid::parse_str(&first.id).is_ok(), "{}", first.id);
    assert!(uuid::Uuid::parse_str(&third.id).is_ok(), "{}", third.id);
    assert_ne!(first.id, third.id);
    assert_eq!(second.id, "given-id");
    assert_eq!(first.ty, "io.drogue.event.v1");
    assert_eq!(third.ty, "custom.type");
    assert!(humantime::parse_rfc3339_weak(first.time.as_deref().unwrap()).is_ok());
    // Sorted keys: how JSON data is kept is the parser's business (the stand-in re-serializes).
    assert_eq!(&first.data[..], br#"{"a":[2],"z":1}"#);
    assert_eq!(&third.data[..], &[0u8, 1, 2]);
    assert_eq!(first.subject.as_deref(), Some("a"));
    assert_eq!(second.source, "drogue://demo/dev%3Aice%203");
    assert_eq!(
        ext(second, "partitionkey").as_deref(),
        Some("demo/dev:ice 3")
    );
    for (app, event) in &events {
        assert_eq!(app, "demo");
        assert_eq!(ext(event, "application").as_deref(), Some("demo"));
    }
    assert!(h
        .metrics
        .render()
        .contains("mqtt_integration_ingested_events_total 3"));
}

#[test]
fn backend_failures_are_503() {
    let h = Harness::new();
    let path = "/api/v1/apps/demo/devices/device1/events/c";
    h.producer.answer(Answer::Fail(BackendError::Unavailable(
        "broker down".into(),
    )));
    let r = h.post(path, &[], b"x");
    assert_eq!(r.status, 503);
    assert!(r.error().contains("broker down"), "{}", r.body);

    h.producer
        .answer(Answer::Fail(BackendError::QuotaExceeded("log full".into())));
    let r = h.batch("demo", r#"[{"device":"device1"},{"device":"device1"}]"#);
    assert_eq!(r.status, 503);
    assert!(r.error().contains("log full"), "{}", r.body);

    h.producer.answer(Answer::Drop);
    let r = h.post(path, &[], b"x");
    assert_eq!(r.status, 503);
    assert!(r.error().contains("without an answer"), "{}", r.body);
    assert!(h
        .metrics
        .render()
        .contains("mqtt_integration_ingested_events_total 0"));
}

#[test]
fn healthz_and_readyz() {
    let h = Harness::new();
    let r = h.get("/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    let r = h.get("/readyz");
    assert_eq!(r.status, 503);
    assert!(r.error().contains("listeners"), "{}", r.body);
    h.listeners_ready.store(true, Ordering::SeqCst);
    let r = h.get("/readyz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    h.producer.ready.store(false, Ordering::SeqCst);
    let r = h.get("/readyz");
    assert_eq!(r.status, 503);
    let error = r.error();
    assert!(
        error.contains("backend") && !error.contains("listeners"),
        "{error}"
    );
}

#[test]
fn metrics_are_prometheus_text() {
    let h = Harness::new();
    let r = h.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("text/plain; version=0.0.4"));
    assert!(
        r.body.contains("mqtt_integration_ingested_events_total"),
        "{}",
        r.body
    );
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let h = Harness::new();
    for path in [
        "/index.html",
        "/nope",
        "/api/v1/apps/demo/devices/device1/events/",
        "/api/v1/apps/demo",
    ] {
        let r = h.post(path, &[], b"");
        assert_eq!(r.status, 404, "{path}");
        assert!(r.error().contains("routes are"), "{}", r.body);
    }
    let r = h.get("/api/v1/apps/demo/devices/device1/events/c");
    assert_eq!(r.status, 405);
    assert_eq!(r.allow.as_deref(), Some("POST"));
    assert!(r.error().contains("POST"), "{}", r.body);
    let r = h.post("/metrics", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.allow.as_deref(), Some("GET, HEAD"));
}

#[test]
fn credentials_refused_are_401_with_www_authenticate() {
    let h = Harness::start(
        Arc::new(AnonymousOnly {
            allow_anonymous: true,
        }),
        DEFAULT_MAX_BODY_SIZE,
    );
    let path = "/api/v1/apps/demo/devices/device1/events/c";
    let r = h.post(path, &[("Authorization", "Basic YWxpY2U6a2V5")], b"x");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.www_authenticate.as_deref(),
        Some("Basic realm=\"mqtt-integration\", Bearer")
    );
    assert!(
        r.error().contains("not available in this build"),
        "{}",
        r.body
    );
    assert_eq!(h.post(path, &[], b"x").status, 202);

    let h = Harness::start(
        Arc::new(AnonymousOnly {
            allow_anonymous: false,
        }),
        DEFAULT_MAX_BODY_SIZE,
    );
    let r = h.batch("demo", "[]");
    assert_eq!(r.status, 401);
    assert!(r.www_authenticate.is_some());
    assert!(r.error().contains("credentials are required"), "{}", r.body);
    assert!(h.producer.events().is_empty());
}

#[test]
fn binds_a_free_port_and_shuts_down() {
    let mut h = Harness::new();
    let server = h.server.take().unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(h.get("/healthz").status, 200);
    server.shutdown();
    // The listening socket closes with the accept thread, which shutdown() joined.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listening after shutdown"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

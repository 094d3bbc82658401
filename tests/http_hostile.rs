//! Issue #17 on the HTTP and WebSocket side, as a hostile or careless client would do it, with
//! the real binary: poison channels refused at ingest, the operations routes answered beside
//! hundreds of idle sockets or with every place held by a request in progress, a trickled head
//! cut at its deadline, and the smaller protocol points (`Content-Length: +2`, an oversized
//! `Content-Length`, the 16 KiB head limit, WebSocket upgrades that are not right). Each runs
//! beside a steady QoS 1 subscriber that must miss nothing and never lose its connection.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rumqttc::v5::mqttbytes::QoS;

/// One HTTP response: (status, head, body).
fn response(s: &mut TcpStream) -> (u16, String, String) {
    http_response(s, Duration::from_secs(15))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One request on a fresh connection: (status, head, body).
fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    response(&mut s)
}

fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Ingests `{"seq": n}` for device1 on channel `seq` on a connection of its own (so that no
/// pooled connection can have been closed to make room); asserts `202`.
fn ingest_seq(svc: &Service, n: u64) {
    let request = post(
        "/api/v1/apps/demo/devices/device1/events/seq",
        "application/json",
        &format!("{{\"seq\":{n}}}"),
    );
    let (status, _, body) = exchange(svc.http, &request);
    assert_eq!(status, 202, "ingest of seq {n}: {body}");
}

/// A steady QoS 1 subscriber: it must receive `0..n` in order and still be connected (its
/// pump panics in `wait` if the connection ended: rumqttc would reconnect, the helper does not).
struct Steady(V5);

impl Steady {
    fn new(svc: &Service, id: &str, filter: &str) -> Steady {
        let c = V5::connect(v5_options(svc.mqtt, id));
        c.subscribe(filter, QoS::AtLeastOnce, None);
        Steady(c)
    }

    fn expect_seqs(&self, n: u64) {
        let mut next = 0;
        while next < n {
            let p = self
                .0
                .next_publish(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("the subscriber got {next} of {n} events"));
            let ce = cloudevent(&p.payload);
            if ce["subject"] != "seq" {
                continue;
            }
            assert_eq!(seq_of(&p.payload), next, "out of order or lost");
            assert!(!p.topic.contains(&0), "{:?}", p.topic);
            next += 1;
        }
        assert!(
            self.0.wait_end(Duration::from_millis(300)).is_none(),
            "the subscriber's connection ended"
        );
    }
}

#[test]
fn poison_channels_are_refused_and_subscribers_keep_their_events() {
    let svc = Service::start("");
    let filtered = Steady::new(&svc, "poison-filtered", "app/demo/device1/#");
    let whole = Steady::new(&svc, "poison-whole", "app/demo");
    let channels = [
        ("a%00b", "U+0000"),
        ("%2B", "wildcard `+`"),
        ("%23", "wildcard `#`"),
        ("a/%23", "wildcard `#`"),
        ("a%01b", "control character U+0001"),
        ("a%7Fb", "control character U+007F"),
        ("a%C2%85", "control character U+0085"),
        ("a%EF%BF%BE", "non-character U+FFFE"),
        ("a//b", "empty topic level"),
        ("a/", "empty topic level"),
    ];
    let mut n = 0;
    for (channel, why) in channels {
        ingest_seq(&svc, n);
        n += 1;
        let request = post(
            &format!("/api/v1/apps/demo/devices/device1/events/{channel}"),
            "application/json",
            "{\"poison\":true}",
        );
        let (status, _, body) = exchange(svc.http, &request);
        assert_eq!(status, 400, "{channel}: {body}");
        assert!(
            body.contains("channel") && body.contains(why),
            "{channel}: {body}"
        );
    }
    // A device name that is not one valid level: 400 naming the device, not 403/404.
    let request = post(
        "/api/v1/apps/demo/devices/dev%2Bice/events/c",
        "application/json",
        "{}",
    );
    let (status, _, body) = exchange(svc.http, &request);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("device name"), "{body}");
    // A batch with one bad subject: 400 naming the event, and its good events are not stored.
    for subject in ["a\\u0000b", "#", "x/+/y", "a\\u0007"] {
        let batch = format!(
            r#"[{{"device":"device1","subject":"seq","data":{{"seq":999}}}},{{"device":"device1","subject":"{subject}","data":{{"poison":true}}}}]"#
        );
        let (status, _, body) = exchange(
            svc.http,
            &post(
                "/api/v1/apps/demo/events",
                "application/cloudevents-batch+json",
                &batch,
            ),
        );
        assert_eq!(status, 400, "{subject}: {body}");
        assert!(
            body.contains("event 1") && body.contains("subject"),
            "{subject}: {body}"
        );
        ingest_seq(&svc, n);
        n += 1;
    }
    filtered.expect_seqs(n);
    whole.expect_seqs(n);
    // Nothing poisoned was delivered after the good events either.
    for sub in [&filtered, &whole] {
        if let Some(p) = sub.0.next_publish(Duration::from_millis(500)) {
            panic!("unexpected event: {}", cloudevent(&p.payload));
        }
    }
}

#[test]
fn readyz_is_answered_beside_300_idle_sockets() {
    let svc = Service::start("");
    let sub = Steady::new(&svc, "idle-sockets-sub", "app/demo");
    let mut n = 0;
    ingest_seq(&svc, n);
    n += 1;
    let idle: Vec<TcpStream> = (0..300).map(|_| connect(svc.http)).collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _, body) = exchange(svc.http, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
        let took = started.elapsed();
        assert_eq!(status, 200, "{body}");
        assert!(took < Duration::from_secs(1), "/readyz took {took:?}");
        // Ingest gets in too: an idle connection gives way.
        ingest_seq(&svc, n);
        n += 1;
        let metrics = exchange(svc.http, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(metrics.0, 200);
    }
    sub.expect_seqs(n);
    drop(idle);
}

#[test]
fn readyz_is_answered_when_every_place_is_held_by_a_request_in_progress() {
    // Heads left unfinished hold their places for the head deadline (30 s here). 256 places,
    // as the server had before #15 (its default is 100,000 now).
    let svc = Service::start_with(
        "",
        APPS,
        &[
            ("MQTT_INTEGRATION__HTTP__HEAD_TIMEOUT", "30s"),
            ("MQTT_INTEGRATION__HTTP__MAX_CONNECTIONS", "256"),
        ],
    );
    let sub = Steady::new(&svc, "busy-places-sub", "app/demo");
    ingest_seq(&svc, 0);
    // The server's 256 places (and then some) in the middle of a head.
    let mut busy: Vec<TcpStream> = Vec::new();
    for _ in 0..280 {
        let mut s = connect(svc.http);
        let _ = s.write_all(b"POST /api/v1/apps/demo/devices/device1/ev");
        busy.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        for path in ["/readyz", "/healthz"] {
            let started = Instant::now();
            let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
            let (status, head, body) = exchange(svc.http, request.as_bytes());
            let took = started.elapsed();
            assert_eq!(status, 200, "{path}: {body}");
            assert!(took < Duration::from_secs(1), "{path} took {took:?}");
            assert!(head.to_ascii_lowercase().contains("connection: close"));
        }
    }
    // Ingest waits for a place: 503 now, saying why.
    let request = post(
        "/api/v1/apps/demo/devices/device1/events/seq",
        "application/json",
        "{\"seq\":1}",
    );
    let (status, _, body) = exchange(svc.http, &request);
    assert_eq!(status, 503, "{body}");
    // The requests in progress complete and are served.
    for s in busy.iter_mut().take(3) {
        s.write_all(b"ents/x HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .unwrap();
    }
    for s in busy.iter_mut().take(3) {
        assert_eq!(response(s).0, 202);
    }
    drop(busy);
    assert!(eventually(Duration::from_secs(5), || {
        let request = post(
            "/api/v1/apps/demo/devices/device1/events/seq",
            "application/json",
            "{\"seq\":1}",
        );
        exchange(svc.http, &request).0 == 202
    }));
    // seq 0, three `x` events from the finished heads, then seq 1.
    let mut seqs = Vec::new();
    let mut xs = 0;
    while seqs.len() < 2 || xs < 3 {
        let p = sub
            .0
            .next_publish(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("missing events: {seqs:?}, {xs} x"));
        let ce = cloudevent(&p.payload);
        if ce["subject"] == "x" {
            xs += 1;
        } else {
            seqs.push(seq_of(&p.payload));
        }
    }
    assert_eq!(seqs, [0, 1]);
    assert!(sub.0.wait_end(Duration::from_millis(300)).is_none());
}

#[test]
fn a_trickled_head_is_cut_at_the_deadline_while_others_are_served() {
    let svc = Service::start_with("", APPS, &[("MQTT_INTEGRATION__HTTP__HEAD_TIMEOUT", "3s")]);
    let sub = Steady::new(&svc, "trickle-sub", "app/demo");
    let mut slow = connect(svc.http);
    let started = Instant::now();
    let cut = std::thread::spawn(move || {
        let head = b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        // A byte a second, until the server answers (a peek that waits the second).
        slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        for b in head {
            if slow.write_all(&[*b]).is_err() || slow.peek(&mut [0u8; 1]).is_ok() {
                break;
            }
        }
        let answer = response(&mut slow);
        (answer, started.elapsed())
    });
    let mut n = 0;
    while !cut.is_finished() {
        ingest_seq(&svc, n);
        n += 1;
        let (status, _, _) = exchange(svc.http, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let ((status, _, body), after) = cut.join().unwrap();
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("within 3.0 s"), "{body}");
    assert!(after >= Duration::from_millis(2900), "cut after {after:?}");
    assert!(n > 3, "others were served meanwhile");
    sub.expect_seqs(n);
}

#[test]
fn content_length_and_head_size_limits() {
    let svc = Service::start("");
    let sub = Steady::new(&svc, "limits-sub", "app/demo");
    let path = "/api/v1/apps/demo/devices/device1/events/c";
    // A sign, spaces, hex: 400, nothing stored.
    for length in ["+2", "-2", " 2 2", "0x2", "2.0"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}"
        );
        let (status, _, body) = exchange(svc.http, request.as_bytes());
        assert_eq!(status, 400, "{length}: {body}");
        assert!(body.contains("Content-Length"), "{body}");
    }
    // The same for a chunk size (`1*HEXDIG`).
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\n{{}}\r\n0\r\n\r\n"
    );
    let (status, _, body) = exchange(svc.http, request.as_bytes());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("chunk size"), "{body}");
    ingest_seq(&svc, 0);
    // An oversized Content-Length with no body sent: 413 at once (it came after 30 s).
    let started = Instant::now();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    );
    let mut s = connect(svc.http);
    s.write_all(request.as_bytes()).unwrap();
    let (status, _, body) = response(&mut s);
    assert_eq!(status, 413, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(closed, "the connection closes after the 413");
    // The head limit is 16 KiB (16,384 bytes), as the README says, at the byte.
    let sized = |len: usize| {
        let fixed = "GET /healthz HTTP/1.1\r\nX-Pad: \r\n\r\n".len();
        format!(
            "GET /healthz HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(len - fixed)
        )
    };
    assert_eq!(sized(16_384).len(), 16_384);
    assert_eq!(exchange(svc.http, sized(16_384).as_bytes()).0, 200);
    let (status, _, body) = exchange(svc.http, sized(16_385).as_bytes());
    assert_eq!(status, 431, "{body}");
    assert!(body.contains("16384"), "{body}");
    ingest_seq(&svc, 1);
    sub.expect_seqs(2);
}

#[test]
fn websocket_upgrades_that_are_not_right_get_an_http_answer() {
    let ws: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let svc = Service::start(&format!("[[listener]]\nkind = \"ws\"\nbind = \"{ws}\"\n"));
    let sub = Steady::new(&svc, "ws-sub", "app/demo");
    let upgrade = |headers: &str| {
        format!("GET /mqtt HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{headers}\r\n")
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        (
            "wrong version",
            upgrade(&format!("Sec-WebSocket-Version: 8\r\n{key}")),
            426,
            "13",
        ),
        ("no version", upgrade(key), 426, "13"),
        (
            "plain GET",
            "GET /mqtt HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
            400,
            "MQTT-over-WebSocket endpoint",
        ),
        (
            "empty key",
            upgrade("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: \r\n"),
            400,
            "Sec-WebSocket-Key",
        ),
        (
            "key not base64",
            upgrade("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: not*base64*at*all*******\r\n"),
            400,
            "Sec-WebSocket-Key",
        ),
        (
            "key of 8 bytes",
            upgrade("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAA=\r\n"),
            400,
            "Sec-WebSocket-Key",
        ),
    ];
    let count = cases.len() as u64;
    for (n, (what, request, expected, mention)) in cases.into_iter().enumerate() {
        ingest_seq(&svc, n as u64);
        let (status, head, body) = exchange(ws, request.as_bytes());
        assert_eq!(status, expected, "{what}: {head}{body}");
        assert!(body.contains(mention), "{what}: {body}");
        if expected == 426 {
            assert!(
                head.contains("\r\nSec-WebSocket-Version: 13\r\n"),
                "{what}: {head}"
            );
        }
    }
    // A right upgrade still opens (101) and carries MQTT.
    let (status, head, _) = exchange(
        ws,
        upgrade(&format!(
            "Sec-WebSocket-Version: 13\r\n{key}Sec-WebSocket-Protocol: mqtt\r\n"
        ))
        .as_bytes(),
    );
    assert_eq!(status, 101, "{head}");
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    sub.expect_seqs(count);
}

#[test]
fn config_names_that_cannot_form_a_topic_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (apps, key) in [
        (
            "[[app]]\nname = \"demo\"\ndevices = [ { name = \"d\\u0001\" } ]\n",
            "app[0].devices[0].name",
        ),
        ("[[app]]\nname = \"de\\uFFFEmo\"\n", "app[0].name"),
        ("[[app]]\nname = \"a/b\"\n", "app[0].name"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, apps).unwrap();
        for args in [vec!["check-config"], vec!["--config"]] {
            let out = Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
                .args(&args)
                .arg(&path)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {apps}: {err}");
            assert!(err.contains(key), "{args:?}: {err}");
        }
    }
}

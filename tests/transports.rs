//! TLS and WebSocket listeners at the edge: what arrives instead of a TLS ClientHello or an
//! HTTP upgrade, and clients that never finish either. Certificates are generated at test time
//! with the `openssl` CLI; the TLS client is rustls and the WebSocket client tungstenite (both
//! dependencies of the service).

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pki::Pki;

// ---------------------------------------------------------------------------------------------
// Certificates (`common/pki.rs`) as this file uses them

impl Pki {
    /// A `[[listener]]` table of a TLS kind with this server certificate.
    fn listener(&self, kind: &str, addr: SocketAddr) -> String {
        format!(
            "[[listener]]\nkind = \"{kind}\"\nbind = \"{addr}\"\ncert = \"{}\"\nkey = \"{}\"\n\n",
            self.path("server.crt").display(),
            self.path("server.key").display()
        )
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let mut pem = BufReader::new(std::fs::File::open(self.path("ca.crt")).unwrap());
        for cert in rustls_pemfile::certs(&mut pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(config)
    }
}

fn plain_listener(kind: &str, addr: SocketAddr) -> String {
    format!("[[listener]]\nkind = \"{kind}\"\nbind = \"{addr}\"\n\n")
}

fn local(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` with the handshake completed.
fn tls(pki: &Pki, addr: SocketAddr) -> Tls {
    let mut sock = tcp(addr);
    let mut conn =
        rustls::ClientConnection::new(pki.client_config(), "localhost".try_into().unwrap())
            .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake failed");
    }
    rustls::StreamOwned::new(conn, sock)
}

/// Reads one MQTT packet (first byte, body) from any stream; None on EOF, error or timeout.
fn read_mqtt(s: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first).ok()?;
    let (mut len, mut mult) = (0usize, 1usize);
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).ok()?;
        len += (b[0] & 0x7f) as usize * mult;
        mult *= 128;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((first[0], body))
}

/// True if the peer ends the stream (EOF or error other than a timeout) within `timeout`;
/// whatever it sends meanwhile is collected into `seen`.
fn ends_within(s: &mut impl Read, timeout: Duration, seen: &mut Vec<u8>) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// MQTT over TLS: CONNECT and a successful CONNACK.
fn assert_tls_mqtt_works(pki: &Pki, addr: SocketAddr) {
    let mut s = tls(pki, addr);
    s.write_all(&connect_packet(4, &unique("tls-ok"), 30))
        .unwrap();
    let (h, body) = read_mqtt(&mut s).expect("no CONNACK over TLS");
    assert_eq!((h, body[1]), (0x20, 0), "CONNACK over TLS: {body:?}");
}

type Ws<S> = tungstenite::WebSocket<S>;

/// A WebSocket client (subprotocol `mqtt`) on `stream`, upgraded at `path`.
fn ws_client<S: Read + Write>(stream: S, addr: SocketAddr, scheme: &str, path: &str) -> Ws<S> {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("{scheme}://{addr}{path}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("mqtt"),
    );
    let (ws, resp) = tungstenite::client(req, stream)
        .unwrap_or_else(|e| panic!("WebSocket upgrade at {addr}{path} failed: {e}"));
    assert_eq!(resp.status(), 101);
    ws
}

/// MQTT over a WebSocket: CONNECT in a binary message, CONNACK back.
fn assert_ws_mqtt_works<S: Read + Write>(ws: &mut Ws<S>) {
    ws.send(tungstenite::Message::Binary(
        connect_packet(5, &unique("ws-ok"), 30).into(),
    ))
    .unwrap();
    let mut bytes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while bytes.len() < 2 || bytes.len() < 2 + bytes[1] as usize {
        assert!(Instant::now() < deadline, "no CONNACK over WebSocket");
        match ws.read().expect("WebSocket read") {
            tungstenite::Message::Binary(b) => bytes.extend_from_slice(&b),
            other => panic!("unexpected message {other:?}"),
        }
    }
    assert_eq!(bytes[0], 0x20, "not a CONNACK: {bytes:?}");
    assert_eq!(bytes[3], 0, "CONNACK refused: {bytes:?}");
}

fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn log_mentions(svc: &Service, what: &str) -> bool {
    svc.log().contains(what)
}

// ---------------------------------------------------------------------------------------------
// Tests

/// A TLS listener sent something other than a ClientHello closes that connection (at most a
/// TLS alert goes back) and keeps serving: the plain MQTT subscriber still gets events and
/// new TLS clients still connect.
#[test]
fn tls_garbage_first_record_closes_connection_and_service_keeps_serving() {
    let pki = Pki::new();
    let mqtts = local(free_port());
    let svc = Service::start(&pki.listener("mqtts", mqtts));

    let sub = V3::connect(v3_options(svc.mqtt, &unique("plain-sub")));
    assert_eq!(
        sub.subscribe("app/demo", rumqttc::QoS::AtLeastOnce),
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );

    let garbage: [(&str, Vec<u8>); 4] = [
        ("text", b"hello, this is not TLS\r\n\r\n".to_vec()),
        ("mqtt CONNECT in clear", connect_packet(4, "clear", 30)),
        // A handshake record holding a ServerHello-typed message of nonsense.
        (
            "handshake record, not a ClientHello",
            vec![
                0x16, 0x03, 0x01, 0x00, 0x08, 0x02, 0x00, 0x00, 0x04, 1, 2, 3, 4,
            ],
        ),
        (
            "alert-typed junk",
            vec![0x15, 0x03, 0x03, 0x00, 0x02, 0xff, 0xff],
        ),
    ];
    for (what, bytes) in garbage {
        let mut s = tcp(mqtts);
        s.write_all(&bytes).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut seen = Vec::new();
        assert!(
            ends_within(&mut s, Duration::from_secs(5), &mut seen),
            "{what}: the TLS listener kept the connection open"
        );
        assert!(
            seen.is_empty() || seen[0] == 0x15,
            "{what}: only a TLS alert may come back, got {seen:?}"
        );
    }

    // Still serving: the subscriber on the plain listener...
    assert_eq!(
        svc.ingest("demo", "device1", "t", "application/json", b"{\"after\":1}"),
        202
    );
    let p = sub
        .next_publish(Duration::from_secs(5))
        .expect("the plain subscriber no longer gets events");
    assert_eq!(cloudevent(&p.payload)["data"]["after"], 1);
    // ...and new TLS clients.
    assert_tls_mqtt_works(&pki, mqtts);
}

/// A WebSocket listener sent a first line that is not an HTTP request (or a request that is
/// not an upgrade) closes that connection and keeps serving.
#[test]
fn ws_non_http_first_line_closes_connection() {
    let ws_addr = local(free_port());
    let svc = Service::start(&plain_listener("ws", ws_addr));

    let cases: [(&str, Vec<u8>); 4] = [
        ("not HTTP", b"HELLO WORLD\r\n\r\n".to_vec()),
        ("MQTT CONNECT without upgrade", connect_packet(4, "raw", 30)),
        (
            "binary junk",
            vec![0u8, 1, 2, 3, 0xff, 0xfe, b'\r', b'\n', b'\r', b'\n'],
        ),
        (
            "HTTP GET without upgrade headers",
            b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let mut s = tcp(ws_addr);
        s.write_all(&bytes).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut seen = Vec::new();
        assert!(
            ends_within(&mut s, Duration::from_secs(5), &mut seen),
            "{what}: the WebSocket listener kept the connection open"
        );
        assert!(
            seen.is_empty() || seen.starts_with(b"HTTP/1.1 4"),
            "{what}: nothing or an HTTP 4xx may come back, got {:?}",
            String::from_utf8_lossy(&seen)
        );
    }

    let mut ws = ws_client(tcp(ws_addr), ws_addr, "ws", "/mqtt");
    assert_ws_mqtt_works(&mut ws);
    assert!(svc.log().contains("mqtt-integration is ready"));
}

/// Clients that never finish the WebSocket upgrade (or the TLS handshake, or never send
/// CONNECT after them) are closed after `server.connect_timeout`, not earlier; a client that
/// finished in time is not affected.
#[test]
fn slow_handshakes_are_closed_by_connect_timeout() {
    let pki = Pki::new();
    let ws_addr = local(free_port());
    let wss_addr = local(free_port());
    let mqtts = local(free_port());
    let extra = format!(
        "connect_timeout = \"1s\"\n\n{}{}{}",
        plain_listener("ws", ws_addr),
        pki.listener("wss", wss_addr),
        pki.listener("mqtts", mqtts)
    );
    let svc = Service::start(&extra);

    let started = Instant::now();
    // A WebSocket upgrade request that never ends (no blank line).
    let mut slow_ws = tcp(ws_addr);
    slow_ws
        .write_all(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
        .unwrap();
    // A TLS client that says nothing at all.
    let mut silent_tls = tcp(mqtts);
    // A TLS client that sends half a ClientHello header.
    let mut half_hello = tcp(mqtts);
    half_hello.write_all(&[0x16, 0x03, 0x01]).unwrap();
    // wss: TLS done, then a partial upgrade request.
    let mut slow_wss = tls(&pki, wss_addr);
    slow_wss.write_all(b"GET /mqtt HTTP/1.1\r\n").unwrap();
    slow_wss.flush().unwrap();
    // ws: upgraded, but no CONNECT.
    let mut idle_ws = ws_client(tcp(ws_addr), ws_addr, "ws", "/mqtt");
    // A client that completed everything in time.
    let mut good = ws_client(tcp(ws_addr), ws_addr, "ws", "/mqtt");
    assert_ws_mqtt_works(&mut good);

    for s in [&slow_ws, &silent_tls, &half_hello] {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    }
    slow_wss
        .sock
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    idle_ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();

    // Not before the timeout (with slack for the 2-core CI: 0.6 s of the 1 s).
    let mut seen = Vec::new();
    let early = Duration::from_millis(600).saturating_sub(started.elapsed());
    for (what, closed) in [
        ("slow ws", ends_within(&mut slow_ws, early / 4, &mut seen)),
        (
            "silent tls",
            ends_within(&mut silent_tls, early / 4, &mut seen),
        ),
        (
            "half hello",
            ends_within(&mut half_hello, early / 4, &mut seen),
        ),
        ("slow wss", ends_within(&mut slow_wss, early / 4, &mut seen)),
    ] {
        assert!(!closed, "{what}: closed before server.connect_timeout");
    }

    let limit = Duration::from_secs(5);
    let ended = |what: &str, closed: bool| {
        assert!(
            closed,
            "{what}: still open {limit:?} after connecting (connect_timeout 1s)"
        );
        let at = started.elapsed();
        assert!(
            at >= Duration::from_millis(900),
            "{what}: closed after only {at:?}"
        );
    };
    ended(
        "slow ws upgrade",
        ends_within(&mut slow_ws, limit, &mut seen),
    );
    ended(
        "silent TLS client",
        ends_within(&mut silent_tls, limit, &mut seen),
    );
    ended(
        "half ClientHello",
        ends_within(&mut half_hello, limit, &mut seen),
    );
    ended(
        "slow wss upgrade",
        ends_within(&mut slow_wss, limit, &mut seen),
    );
    let deadline = Instant::now() + limit;
    let idle_closed = loop {
        match idle_ws.read() {
            Ok(tungstenite::Message::Close(_)) => {}
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() > deadline {
                    break false;
                }
            }
            Err(_) => break true,
        }
    };
    ended("upgraded ws without CONNECT", idle_closed);

    // The client that connected in time is still there.
    good.send(tungstenite::Message::Binary(
        subscribe_packet(5, 1, "app/demo", 0).into(),
    ))
    .unwrap();
    good.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    match good.read() {
        Ok(tungstenite::Message::Binary(b)) => assert_eq!(b[0], 0x90, "not a SUBACK: {b:?}"),
        other => panic!("the connected WebSocket client lost its connection: {other:?}"),
    }
    assert!(!log_mentions(&svc, "panicked"), "{}", svc.log());
}

/// Sanity check of the certificate helper (the other tests depend on it).
#[test]
fn generated_certificates_are_accepted_by_the_tls_listener() {
    let pki = Pki::new();
    let mqtts = local(free_port());
    let _svc = Service::start(&pki.listener("mqtts", mqtts));
    assert_tls_mqtt_works(&pki, mqtts);
    assert!(Path::new(&pki.path("server.crt")).exists());
}

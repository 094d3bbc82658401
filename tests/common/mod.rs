//! Shared harness of the integration tests: the real `mqtt-integration` binary, started on free
//! loopback ports with a configuration written for the test, and stopped (SIGTERM) on drop.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running service process.
pub struct Service {
    pub child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

/// Applications and devices every test configuration has (`tests/fixtures/apps.toml`, shared
/// with the Python tests), and alice, who owns `private`.
pub const APPS: &str = concat!(
    "[[user]]\nname = \"alice\"\napi_keys = []\n\n",
    include_str!("../fixtures/apps.toml")
);

/// A free port on 127.0.0.1 (bound and released: the kernel will not hand it out again soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Service {
    /// Starts the service with the common apps and `extra` TOML (sections not in the base).
    pub fn start(extra: &str) -> Service {
        Service::start_with(extra, APPS, &[])
    }

    pub fn start_with(extra: &str, apps: &str, env: &[(&str, &str)]) -> Service {
        // A port `free_port` found free can be taken by a parallel test before the service binds
        // it: start again on other ports then (the service names the port it could not bind).
        for _ in 0..2 {
            match Service::try_start(extra, apps, env) {
                Ok(s) => return s,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("service exited during start-up:\n{log}"),
            }
        }
        Service::try_start(extra, apps, env)
            .unwrap_or_else(|log| panic!("service exited during start-up:\n{log}"))
    }

    fn try_start(extra: &str, apps: &str, env: &[(&str, &str)]) -> Result<Service, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mqtt: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // `extra` lines before its first table header are [server] keys; they replace the
        // defaults of the same name.
        let server_keys: Vec<&str> = extra
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .filter_map(|l| l.split('=').next().map(str::trim))
            .filter(|k| !k.is_empty())
            .collect();
        let mut server = String::from("[server]\n");
        for (k, v) in [
            ("threads", "2"),
            ("connect_timeout", "\"2s\""),
            ("shutdown_timeout", "\"5s\""),
        ] {
            if !server_keys.contains(&k) {
                server.push_str(&format!("{k} = {v}\n"));
            }
        }
        let config = format!(
            "{server}{extra}\n\n[[listener]]\nkind = \"mqtt\"\nbind = \"{mqtt}\"\n\n[http]\nbind = \"{http}\"\n{apps}"
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.path().join("service.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
            .arg("--config")
            .arg(&path)
            // The log in memory unless a test asks for the disk (issue #14): fast, and no
            // test writes into ./data or waits for another's lock. `env` overrides it.
            .env("MQTT_INTEGRATION__BACKEND__EMBEDDED__STORAGE", "memory")
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("cannot start mqtt-integration");
        let mut s = Service {
            child,
            mqtt,
            http,
            dir,
            log,
        };
        s.wait_ready()?;
        Ok(s)
    }

    /// Waits for `/readyz`; the service's log if it exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("({status}) {}", self.log()));
            }
            if let Ok(r) = ureq::get(&format!("http://{}/readyz", self.http)).call() {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < deadline,
                "service not ready in 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Posts one event through the ingest route; returns the HTTP status.
    pub fn ingest(
        &self,
        app: &str,
        device: &str,
        channel: &str,
        content_type: &str,
        body: &[u8],
    ) -> u16 {
        let url = format!(
            "http://{}/api/v1/apps/{app}/devices/{device}/events/{channel}",
            self.http
        );
        match ureq::post(&url)
            .set("Content-Type", content_type)
            .send_bytes(body)
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("ingest failed: {e}"),
        }
    }

    pub fn metrics(&self) -> String {
        ureq::get(&format!("http://{}/metrics", self.http))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// A raw TCP connection to the MQTT listener.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(self.mqtt).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "service did not stop within 15 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Stops `child` as an operator would (SIGTERM, up to 10 s to shut down), then kills it.
pub fn terminate(child: &mut std::process::Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Reads from a raw socket until EOF or timeout; returns the bytes.
pub fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

// ---------------------------------------------------------------------------------------------
// MQTT clients (rumqttc, sync API pumped by a thread) and raw MQTT packets.
// ---------------------------------------------------------------------------------------------

use std::io::Write;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};

/// What a pump thread saw: an event of the client, or the error that ended the connection.
pub enum Seen<E> {
    Event(E),
    Ended(String),
}

/// An rumqttc MQTT 5 client whose connection is driven by a background thread.
pub struct V5 {
    pub client: rumqttc::v5::Client,
    pub rx: Receiver<Seen<rumqttc::v5::Event>>,
    /// The CONNACK of the connection (set by `connect`).
    pub connack: Option<rumqttc::v5::mqttbytes::v5::ConnAck>,
}

/// An rumqttc MQTT 3.1.1 client whose connection is driven by a background thread.
pub struct V3 {
    pub client: rumqttc::Client,
    pub rx: Receiver<Seen<rumqttc::Event>>,
}

pub fn v5_options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

pub fn v3_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl V5 {
    /// Connects and waits for a successful CONNACK.
    pub fn connect(options: rumqttc::v5::MqttOptions) -> V5 {
        let (client, mut conn) = rumqttc::v5::Client::new(options, 256);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for e in conn.iter() {
                match e {
                    Ok(e) => {
                        if tx.send(Seen::Event(e)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Seen::Ended(format!("{e:?}")));
                        return;
                    }
                }
            }
        });
        let mut v = V5 {
            client,
            rx,
            connack: None,
        };
        match v.wait(Duration::from_secs(5), |e| {
            matches!(
                e,
                rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(_))
            )
        }) {
            Some(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::ConnAck(c))) => {
                v.connack = Some(c)
            }
            _ => panic!("no CONNACK"),
        }
        v
    }

    /// Waits for an event matching `f` (other events are dropped); None on timeout or end.
    pub fn wait(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&rumqttc::v5::Event) -> bool,
    ) -> Option<rumqttc::v5::Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Event(e)) if f(&e) => return Some(e),
                Ok(Seen::Event(_)) => {}
                Ok(Seen::Ended(e)) => panic!("connection ended: {e}"),
                Err(_) => return None,
            }
        }
    }

    /// Waits for the connection to end; returns the error text (None on timeout).
    pub fn wait_end(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Event(_)) => {}
                Ok(Seen::Ended(e)) => return Some(e),
                Err(RecvTimeoutError::Disconnected) => return Some("pump gone".into()),
                Err(RecvTimeoutError::Timeout) => return None,
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub fn subscribe(
        &self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
        id: Option<usize>,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        match id {
            Some(id) => {
                let props = rumqttc::v5::mqttbytes::v5::SubscribeProperties {
                    id: Some(id),
                    user_properties: vec![],
                };
                self.client
                    .subscribe_with_properties(filter, qos, props)
                    .unwrap()
            }
            None => self.client.subscribe(filter, qos).unwrap(),
        }
        match self.wait(Duration::from_secs(5), |e| {
            matches!(
                e,
                rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::SubAck(_))
            )
        }) {
            Some(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::SubAck(s))) => s.return_codes,
            _ => panic!("no SUBACK for {filter}"),
        }
    }

    /// Publishes `payload` to `topic` at QoS 1 (with a Content Type if given) and waits up to
    /// `timeout` for the PUBACK; returns its reason (panics without one).
    pub fn publish_acked(
        &self,
        topic: &str,
        payload: &[u8],
        content_type: Option<&str>,
        timeout: Duration,
    ) -> rumqttc::v5::mqttbytes::v5::PubAckReason {
        let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
            content_type: content_type.map(str::to_owned),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                payload.to_vec(),
                props,
            )
            .unwrap();
        match self.wait(timeout, |e| {
            matches!(
                e,
                rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::PubAck(_))
            )
        }) {
            Some(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::PubAck(a))) => a.reason,
            other => panic!("no PUBACK for {topic}: {other:?}"),
        }
    }

    /// The next incoming PUBLISH within `timeout`.
    pub fn next_publish(&self, timeout: Duration) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
        match self.wait(timeout, |e| {
            matches!(
                e,
                rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::Publish(_))
            )
        }) {
            Some(rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::Publish(p))) => Some(p),
            _ => None,
        }
    }
}

impl V3 {
    pub fn connect(options: rumqttc::MqttOptions) -> V3 {
        let (client, mut conn) = rumqttc::Client::new(options, 256);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for e in conn.iter() {
                match e {
                    Ok(e) => {
                        if tx.send(Seen::Event(e)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Seen::Ended(format!("{e:?}")));
                        return;
                    }
                }
            }
        });
        let v = V3 { client, rx };
        let ok = v.wait(Duration::from_secs(5), |e| {
            matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))
        });
        assert!(ok.is_some(), "no CONNACK");
        v
    }

    pub fn wait(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&rumqttc::Event) -> bool,
    ) -> Option<rumqttc::Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Event(e)) if f(&e) => return Some(e),
                Ok(Seen::Event(_)) => {}
                Ok(Seen::Ended(e)) => panic!("connection ended: {e}"),
                Err(_) => return None,
            }
        }
    }

    pub fn wait_end(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Event(_)) => {}
                Ok(Seen::Ended(e)) => return Some(e),
                Err(RecvTimeoutError::Disconnected) => return Some("pump gone".into()),
                Err(RecvTimeoutError::Timeout) => return None,
            }
        }
    }

    pub fn subscribe(&self, filter: &str, qos: rumqttc::QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).unwrap();
        match self.wait(Duration::from_secs(5), |e| {
            matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))
        }) {
            Some(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s))) => s.return_codes,
            _ => panic!("no SUBACK for {filter}"),
        }
    }

    pub fn next_publish(&self, timeout: Duration) -> Option<rumqttc::Publish> {
        match self.wait(timeout, |e| {
            matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)))
        }) {
            Some(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Some(p),
            _ => None,
        }
    }
}

/// The structured CloudEvent of a delivered payload.
pub fn cloudevent(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(payload)))
}

/// `data.seq` of a structured CloudEvent payload (events ingested with `{"seq": N}`).
pub fn seq_of(payload: &[u8]) -> u64 {
    let ce = cloudevent(payload);
    ce["data"]["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no data.seq in {ce}"))
}

impl Service {
    /// Ingests `{"seq": n}` for `device` of app `demo` on channel `seq`; asserts 202.
    pub fn ingest_seq(&self, device: &str, n: u64) {
        let status = self.ingest(
            "demo",
            device,
            "seq",
            "application/json",
            format!("{{\"seq\":{n}}}").as_bytes(),
        );
        assert_eq!(status, 202, "ingest of seq {n} failed");
    }
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

// --- raw packets ---

pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

pub fn mqtt_str(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A packet: first byte, then remaining length, then `body`.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// CONNECT with protocol `level` (4 = 3.1.1, 5 = 5), clean start, no credentials.
pub fn connect_packet(level: u8, client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut b = Vec::new();
    mqtt_str(b"MQTT", &mut b);
    b.push(level);
    b.push(0x02);
    b.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        b.push(0); // no properties
    }
    mqtt_str(client_id.as_bytes(), &mut b);
    packet(0x10, &b)
}

/// SUBSCRIBE (flags 0010) of one filter.
pub fn subscribe_packet(level: u8, pkid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut b = pkid.to_be_bytes().to_vec();
    if level == 5 {
        b.push(0);
    }
    mqtt_str(filter.as_bytes(), &mut b);
    b.push(qos);
    packet(0x82, &b)
}

/// A Variable Byte Integer at the start of `bytes` (MQTT 1.5.5): (value, bytes it took).
pub fn var_int(bytes: &[u8]) -> (usize, usize) {
    let mut value = 0usize;
    for (i, b) in bytes.iter().take(4).enumerate() {
        value += ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("malformed variable byte integer: {bytes:x?}")
}

/// Reads one whole packet (first byte, body); None on timeout, EOF or error.
pub fn read_packet(s: &mut TcpStream, timeout: Duration) -> Option<(u8, Vec<u8>)> {
    s.set_read_timeout(Some(timeout)).unwrap();
    read_packet_from(s).ok()
}

/// Reads one whole packet (first byte, body) from any reader.
pub fn read_packet_from(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    r.read_exact(&mut first)?;
    let mut len = 0usize;
    let mut mult = 1usize;
    for _ in 0..4 {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        len += (b[0] & 0x7f) as usize * mult;
        mult *= 128;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((first[0], body))
}

/// Connects raw, sends CONNECT, asserts a successful CONNACK.
pub fn raw_connect(svc: &Service, level: u8, client_id: &str, keep_alive: u16) -> TcpStream {
    let mut s = svc.raw();
    s.write_all(&connect_packet(level, client_id, keep_alive))
        .unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no CONNACK");
    assert_eq!(h, 0x20, "not a CONNACK: {h:#x} {body:?}");
    assert_eq!(body[1], 0, "CONNACK refused: {body:?}");
    s
}

/// A raw MQTT 3.1.1 subscriber: connects as `client_id`, subscribes to `filter` at QoS 1 and
/// waits (up to `timeout`) for the SUBACK.
pub fn raw_subscriber(
    svc: &Service,
    client_id: &str,
    filter: &str,
    timeout: Duration,
) -> TcpStream {
    let mut s = raw_connect(svc, 4, client_id, 60);
    s.write_all(&subscribe_packet(4, 1, filter, 1)).unwrap();
    let (h, body) = read_packet(&mut s, timeout).expect("no SUBACK");
    assert_eq!(h, 0x90, "not a SUBACK: {body:?}");
    s
}

/// A v3.1.1 QoS 1 PUBLISH read raw: (DUP flag, packet id, `data.seq` of its event).
pub fn raw_publish(first: u8, body: &[u8]) -> (bool, u16, u64) {
    assert_eq!(first & 0xf6, 0x32, "not a QoS 1 PUBLISH: {first:#x}");
    let at = 2 + u16::from_be_bytes([body[0], body[1]]) as usize;
    let pkid = u16::from_be_bytes([body[at], body[at + 1]]);
    (first & 0x08 != 0, pkid, seq_of(&body[at + 2..]))
}

/// After a v5 DISCONNECT from the server: its reason code (0 when the body is empty).
pub fn disconnect_reason(body: &[u8]) -> u8 {
    body.first().copied().unwrap_or(0)
}

/// Reads packets until a DISCONNECT (returns its reason), EOF (None) or timeout (panics).
pub fn expect_disconnect(s: &mut TcpStream, timeout: Duration) -> Option<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "neither DISCONNECT nor close within {timeout:?}"
        );
        s.set_read_timeout(Some(left)).unwrap();
        let mut first = [0u8; 1];
        match s.read(&mut first) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("neither DISCONNECT nor close within {timeout:?}")
            }
            Err(_) => return None,
        }
        let mut len = 0usize;
        let mut mult = 1usize;
        for _ in 0..4 {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).is_err() {
                return None;
            }
            len += (b[0] & 0x7f) as usize * mult;
            mult *= 128;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        if s.read_exact(&mut body).is_err() {
            return None;
        }
        if first[0] == 0xE0 {
            return Some(disconnect_reason(&body));
        }
    }
}

/// Reads one HTTP response (head and `Content-Length` body) within `timeout`: (status, head,
/// body). Panics on a head that does not complete.
pub fn http_response(s: &mut TcpStream, timeout: Duration) -> (u16, String, String) {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut wire = Vec::new();
    let mut byte = [0u8; 1];
    while !wire.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => wire.push(byte[0]),
            other => panic!(
                "no complete response head ({other:?}): {:?}",
                String::from_utf8_lossy(&wire)
            ),
        }
    }
    let head = String::from_utf8(wire).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// True when the peer has closed the socket (EOF or reset) within `timeout`; data is skipped.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    read_until_closed(s, timeout).1
}

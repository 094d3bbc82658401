//! Kafka side of the integration tests: the broker `scripts/test` started (`KAFKA_BOOTSTRAP`),
//! topics, producing Drogue-style records and reading topics back with rdkafka.
//!
//! A test that needs Kafka FAILS when `KAFKA_BOOTSTRAP` is missing or unreachable: run the
//! suite with `scripts/test`, or start a broker with `scripts/kafka start --dir target/kafka-dev`
//! and export `KAFKA_BOOTSTRAP`.
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpStream;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// `KAFKA_BOOTSTRAP`, checked to answer a TCP connect. Panics (never skips) otherwise.
pub fn bootstrap() -> String {
    let b = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BOOTSTRAP is not set: the Kafka tests need a broker. Run scripts/test, or \
             `scripts/kafka start --dir target/kafka-dev` and export KAFKA_BOOTSTRAP=127.0.0.1:<port>"
        )
    });
    let addr = b.split(',').next().unwrap_or_default().to_owned();
    let sock = addr
        .parse()
        .unwrap_or_else(|e| panic!("KAFKA_BOOTSTRAP={b}: not host:port ({e})"));
    TcpStream::connect_timeout(&sock, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("Kafka broker KAFKA_BOOTSTRAP={b} is unreachable: {e}"));
    b
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// The `[backend]` section of a service using Kafka.
pub fn backend_toml(bootstrap: &str, command_topic: &str) -> String {
    format!(
        "[backend]\nkind = \"kafka\"\n\n[backend.kafka]\nbootstrap_servers = \"{bootstrap}\"\ncommand_topic = \"{command_topic}\"\n"
    )
}

/// One application `app`, anonymous managers, devices `device1`..`device4`.
pub fn apps_toml(app: &str) -> String {
    format!(
        "\n[[app]]\nname = \"{app}\"\nmembers = {{ anonymous = \"manager\" }}\ndevices = [ {{ name = \"device1\" }}, {{ name = \"device2\" }}, {{ name = \"device3\" }}, {{ name = \"device4\" }} ]\n"
    )
}

struct ThreadWaker(std::thread::Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(bootstrap, &[], topic, partitions)
}

/// A client configuration for `bootstrap` with extra librdkafka `props` (security settings).
pub fn client_config(bootstrap: &str, props: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in props {
        c.set(*k, *v);
    }
    c
}

/// [`create_topic`] through a client with extra librdkafka `props`.
pub fn create_topic_with(bootstrap: &str, props: &[(&str, &str)], topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap, props)
        .create()
        .expect("admin client");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let r = block_on(admin.create_topics([&t], &AdminOptions::new())).expect("create_topics");
    for x in r {
        x.unwrap_or_else(|(n, e)| panic!("cannot create topic {n}: {e}"));
    }
    // Wait until the metadata shows every partition with a leader.
    let p = producer_with(bootstrap, props);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(md) = p
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(2))
        {
            if md.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            }) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} has no metadata after 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn producer(bootstrap: &str) -> BaseProducer {
    producer_with(bootstrap, &[])
}

/// [`producer`] with extra librdkafka `props`.
pub fn producer_with(bootstrap: &str, props: &[(&str, &str)]) -> BaseProducer {
    client_config(bootstrap, props)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// The headers of a Drogue Cloud binary-mode event record.
pub fn drogue_headers(app: &str, device: &str, id: &str, content_type: &str) -> OwnedHeaders {
    let h = |hs: OwnedHeaders, k: &str, v: &str| {
        hs.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    };
    let mut hs = OwnedHeaders::new();
    hs = h(hs, "ce_specversion", "1.0");
    hs = h(hs, "ce_id", id);
    hs = h(hs, "ce_source", &format!("drogue://{app}/{device}"));
    hs = h(hs, "ce_type", "io.drogue.event.v1");
    hs = h(hs, "ce_subject", "telemetry");
    hs = h(hs, "ce_time", "2024-01-02T03:04:05.678Z");
    hs = h(hs, "content-type", content_type);
    hs = h(hs, "ce_application", app);
    hs = h(hs, "ce_device", device);
    hs = h(hs, "ce_partitionkey", &format!("{app}/{device}"));
    hs
}

/// Produces a binary-mode record `{"seq": n}` for `device` (key = device); blocks until acked.
pub fn produce_binary(p: &BaseProducer, topic: &str, app: &str, device: &str, seq: u64) {
    let body = format!("{{\"seq\":{seq}}}");
    let id = format!("id-{seq}");
    send(
        p,
        topic,
        device,
        body.as_bytes(),
        drogue_headers(app, device, &id, "application/json"),
    );
}

/// Produces a structured-mode record (`application/cloudevents+json`) with data `{"seq": n}`.
pub fn produce_structured(p: &BaseProducer, topic: &str, app: &str, device: &str, seq: u64) {
    let body = serde_json::json!({
        "specversion": "1.0",
        "id": format!("sid-{seq}"),
        "source": format!("drogue://{app}/{device}"),
        "type": "io.drogue.event.v1",
        "subject": "telemetry",
        "time": "2024-01-02T03:04:05.678Z",
        "datacontenttype": "application/json",
        "application": app,
        "device": device,
        "data": {"seq": seq},
    })
    .to_string();
    let hs = OwnedHeaders::new().insert(Header {
        key: "content-type",
        value: Some("application/cloudevents+json; charset=utf-8".as_bytes()),
    });
    send(p, topic, device, body.as_bytes(), hs);
}

pub fn send(p: &BaseProducer, topic: &str, key: &str, payload: &[u8], headers: OwnedHeaders) {
    let mut record = BaseRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers);
    loop {
        match p.send(record) {
            Ok(()) => break,
            Err((e, r)) => {
                record = r;
                eprintln!("produce to {topic} refused ({e}), retrying");
                p.poll(Duration::from_millis(100));
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// Produces `{"seq":N,"pad":"x…"}` records (binary mode, key = device `dev-<N % devices>`,
/// `pad` bytes of padding) for `seqs`, batched; returns the bytes produced (payload and
/// headers, roughly).
pub fn produce_padded(
    bootstrap: &str,
    topic: &str,
    app: &str,
    seqs: std::ops::Range<u64>,
    pad: usize,
    devices: u64,
) -> u64 {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let pad = "x".repeat(pad);
    let mut bytes = 0u64;
    for seq in seqs {
        let device = format!("dev-{}", seq % devices);
        let body = format!("{{\"seq\":{seq},\"pad\":\"{pad}\"}}");
        let headers = drogue_headers(app, &device, &format!("id-{seq}"), "application/json");
        bytes += (body.len() + 300) as u64;
        let mut record = BaseRecord::to(topic)
            .key(&device)
            .payload(&body)
            .headers(headers);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    bytes
}

/// Reads `topic` from the beginning until `n` records arrived or `timeout` passed.
pub fn read_topic(bootstrap: &str, topic: &str, n: usize, timeout: Duration) -> Vec<OwnedMessage> {
    read_topic_with(bootstrap, &[], topic, n, timeout)
}

/// [`read_topic`] through a consumer with extra librdkafka `props`.
pub fn read_topic_with(
    bootstrap: &str,
    props: &[(&str, &str)],
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let c: BaseConsumer = client_config(bootstrap, props)
        .set("enable.partition.eof", "false")
        .set("group.id", unique("reader"))
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata");
    let parts = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out
}

/// A header of an owned record as text.
pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    let hs = m.headers()?;
    (0..hs.count())
        .filter_map(|i| hs.try_get(i))
        .find(|h| h.key == key)
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
}

/// A service process that is not waited for (its backend may be unreachable on purpose).
pub struct Unready {
    pub child: std::process::Child,
    pub http: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl Unready {
    /// What the service logged (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Unready {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the service with `extra` and `apps`; returns once its HTTP port answers at all.
pub fn start_unready(extra: &str, apps: &str) -> Unready {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = super::free_port();
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", super::free_port()).parse().unwrap();
    let config = format!(
        "[server]\nthreads = 1\n{extra}\n[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:{mqtt}\"\n\n[http]\nbind = \"{http}\"\n{apps}"
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("service.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let u = Unready {
        child,
        http,
        _dir: dir,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(http).is_err() {
        assert!(
            Instant::now() < deadline,
            "service HTTP port not open in 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    u
}

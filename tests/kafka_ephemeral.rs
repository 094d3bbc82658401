//! Kafka backend: the ephemeral readers (empty client id) of an application share one librdkafka
//! consumer, the tail; one that cannot keep up gets a consumer of its own and loses nothing, and
//! does not slow the others.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// `mqtt_integration_backend_consumers`: librdkafka consumers alive in the service.
fn consumers(svc: &Service) -> i64 {
    let m = svc.metrics();
    m.lines()
        .find_map(|l| l.strip_prefix("mqtt_integration_backend_consumers "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no consumer gauge in the metrics:\n{m}"))
}

/// Threads of the service process.
fn threads(svc: &Service) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", svc.child.id()))
        .expect("the service's /proc entry")
        .count()
}

/// An MQTT 3.1.1 ephemeral reader (empty client id, clean session) of `app/<app>` at `qos`.
fn ephemeral(svc: &Service, app: &str, qos: u8) -> TcpStream {
    let mut s = raw_connect(svc, 4, "", 0);
    s.write_all(&subscribe_packet(4, 1, &format!("app/{app}"), qos))
        .unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(30)).expect("no SUBACK");
    assert_eq!((h, body.last()), (0x90, Some(&qos)), "SUBACK: {body:?}");
    s
}

/// `data.seq` of a QoS 0 PUBLISH (v3.1.1) read raw; None for another packet.
fn qos0_seq(first: u8, body: &[u8]) -> Option<u64> {
    if first & 0xF0 != 0x30 {
        return None;
    }
    assert_eq!(first & 0x06, 0, "not QoS 0: {first:#x}");
    let at = 2 + u16::from_be_bytes([body[0], body[1]]) as usize;
    Some(seq_of(&body[at..]))
}

/// Reads QoS 0 events until `n` arrived (panics after `timeout`); the seqs in arrival order.
fn read_seqs(s: &TcpStream, n: usize, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s.try_clone().unwrap());
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events within {timeout:?}",
            seqs.len()
        );
        let (h, body) = read_packet_from(&mut r)
            .unwrap_or_else(|e| panic!("read failed after {} of {n} events: {e}", seqs.len()));
        seqs.extend(qos0_seq(h, &body));
    }
    seqs
}

/// Every seq of `0..n` exactly once, in order per device (`dev-<seq % devices>`).
fn assert_complete(seqs: &[u64], n: u64, devices: u64, who: &str) {
    let mut last = vec![None::<u64>; devices as usize];
    for &s in seqs {
        let d = (s % devices) as usize;
        if let Some(l) = last[d] {
            assert!(
                s > l,
                "{who}: dev-{d} got {s} after {l} (duplicate or reordering)"
            );
        }
        last[d] = Some(s);
    }
    let got: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(got.len(), seqs.len(), "{who}: duplicates");
    let missing: Vec<u64> = (0..n).filter(|s| !got.contains(s)).take(10).collect();
    assert!(missing.is_empty(), "{who}: missing (first 10) {missing:?}");
}

/// A topic `events-<app>` with 4 partitions and a service reading it with `workers` consumer
/// threads and `queued` bytes of credit per connection (the default when None).
struct Setup {
    bootstrap: String,
    app: String,
    topic: String,
    svc: Service,
}

impl Setup {
    fn new(prefix: &str, workers: usize, queued: Option<usize>) -> Setup {
        let bootstrap = kafka::bootstrap();
        let app = kafka::unique(prefix);
        let topic = format!("events-{app}");
        kafka::create_topic(&bootstrap, &topic, 4);
        let mqtt = queued.map_or(String::new(), |q| {
            format!("\n[mqtt]\nmax_queued_bytes = {q}\n")
        });
        let svc = Service::start_with(
            &format!(
                "{}consumer_threads = {workers}\n{mqtt}",
                kafka::backend_toml(&bootstrap, &kafka::unique("cmd"))
            ),
            &kafka::apps_toml(&app),
            &[],
        );
        Setup {
            bootstrap,
            app,
            topic,
            svc,
        }
    }

    fn produce(&self, seqs: std::ops::Range<u64>, pad: usize, devices: u64) {
        kafka::produce_padded(&self.bootstrap, &self.topic, &self.app, seqs, pad, devices);
    }
}

#[test]
fn ephemeral_readers_share_one_consumer() {
    const READERS: usize = 20;
    const EVENTS: u64 = 40;
    // Two workers: the readers would be spread over both if they were not routed by application.
    let setup = Setup::new("tail", 2, None);
    let (svc, app) = (&setup.svc, &setup.app);
    let first = ephemeral(svc, app, 0);
    assert!(
        eventually(Duration::from_secs(10), || consumers(svc) == 1),
        "one reader, one consumer: {}",
        consumers(svc)
    );
    let threads_one = threads(svc);
    let mut readers = vec![first];
    readers.extend((1..READERS).map(|_| ephemeral(svc, app, 0)));
    assert_eq!(consumers(svc), 1, "{READERS} readers, still one consumer");
    // A consumer is four threads (each ephemeral reader had its own before the tail).
    let added = threads(svc).saturating_sub(threads_one);
    assert!(
        added < 4,
        "{added} threads more for {} readers",
        READERS - 1
    );

    setup.produce(0..EVENTS, 16, 4);
    for (i, r) in readers.iter().enumerate() {
        let seqs = read_seqs(r, EVENTS as usize, Duration::from_secs(30));
        assert_complete(&seqs, EVENTS, 4, &format!("reader {i}"));
    }

    drop(readers);
    assert!(
        eventually(Duration::from_secs(10), || consumers(svc) == 0),
        "the tail is retired with its last reader: {} consumers",
        consumers(svc)
    );
    assert!(
        !svc.log().contains("ERROR"),
        "errors in the log:\n{}",
        svc.log()
    );
}

/// One reader stops reading; its connection fills up (64 KiB queued at most) and the records the
/// tail held back for it reach the same again: it gets a consumer of its own. The other reader
/// gets everything meanwhile, and so does the slow one once it reads again; caught up, it goes
/// back to the tail.
#[test]
fn a_slow_ephemeral_reader_gets_its_own_consumer_and_loses_nothing() {
    // ~30 MB of structured events: more than loopback's socket buffers hold for a reader that
    // does not read.
    const EVENTS: u64 = 20_000;
    const DEVICES: u64 = 8;
    let setup = Setup::new("slowtail", 1, Some(65536));
    let (svc, app) = (&setup.svc, &setup.app);
    let slow = ephemeral(svc, app, 0);
    let fast = ephemeral(svc, app, 0);
    assert_eq!(consumers(svc), 1);

    let fast_reader = std::thread::spawn(move || {
        let seqs = read_seqs(&fast, EVENTS as usize, Duration::from_secs(120));
        (seqs, fast)
    });
    setup.produce(0..EVENTS, 1000, DEVICES);
    let (fast_seqs, fast) = fast_reader.join().expect("fast reader");
    assert_complete(&fast_seqs, EVENTS, DEVICES, "fast reader");
    assert!(
        eventually(Duration::from_secs(10), || consumers(svc) == 2),
        "the slow reader was not given a consumer of its own: {} consumers\n{}",
        consumers(svc),
        svc.log()
    );

    let slow_seqs = read_seqs(&slow, EVENTS as usize, Duration::from_secs(120));
    assert_complete(&slow_seqs, EVENTS, DEVICES, "slow reader");

    // Caught up, it goes back to the tail: one consumer again, and what comes next reaches
    // both readers once.
    assert!(
        eventually(Duration::from_secs(10), || consumers(svc) == 1),
        "the slow reader did not go back to the tail: {} consumers",
        consumers(svc)
    );
    const MORE: u64 = 200;
    setup.produce(EVENTS..EVENTS + MORE, 10, DEVICES);
    for (who, s) in [("fast reader", &fast), ("slow reader", &slow)] {
        let seqs = read_seqs(s, MORE as usize, Duration::from_secs(30));
        let want: BTreeSet<u64> = (EVENTS..EVENTS + MORE).collect();
        assert_eq!(
            seqs.iter().copied().collect::<BTreeSet<_>>(),
            want,
            "{who} after the rejoin"
        );
        assert_eq!(
            seqs.len(),
            MORE as usize,
            "{who}: duplicates after the rejoin"
        );
        assert_quiet(s);
    }
}

/// Nothing more arrives (no duplicates after the last event).
fn assert_quiet(s: &TcpStream) {
    let mut s = s.try_clone().unwrap();
    if let Some((h, body)) = read_packet(&mut s, Duration::from_millis(500)) {
        panic!(
            "unexpected packet {h:#x} after the last event: {:?}",
            qos0_seq(h, &body)
        );
    }
}

/// A reader alone on its tail that stops reading is not given a consumer of its own (nobody
/// else is slowed): the tail stops reading until it has room, and it loses nothing.
#[test]
fn a_lone_slow_reader_keeps_the_tail() {
    const EVENTS: u64 = 20_000;
    const DEVICES: u64 = 8;
    let setup = Setup::new("lonetail", 1, Some(65536));
    let (svc, app) = (&setup.svc, &setup.app);
    let slow = ephemeral(svc, app, 0);
    setup.produce(0..EVENTS, 1000, DEVICES);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        consumers(svc),
        1,
        "a lone slow reader got a consumer of its own"
    );
    let seqs = read_seqs(&slow, EVENTS as usize, Duration::from_secs(120));
    assert_complete(&seqs, EVENTS, DEVICES, "lone slow reader");
    assert_quiet(&slow);
    assert_eq!(consumers(svc), 1);
}

/// A reader given a consumer of its own disconnects before it caught up: its consumer goes with
/// it, the tail stays for the other.
#[test]
fn a_detached_reader_that_leaves_takes_its_consumer_along() {
    const EVENTS: u64 = 20_000;
    let setup = Setup::new("leavetail", 1, Some(65536));
    let (svc, app) = (&setup.svc, &setup.app);
    let slow = ephemeral(svc, app, 0);
    let fast = ephemeral(svc, app, 0);
    let fast_reader = std::thread::spawn(move || {
        let seqs = read_seqs(&fast, EVENTS as usize, Duration::from_secs(120));
        (seqs, fast)
    });
    setup.produce(0..EVENTS, 1000, 8);
    let (seqs, _fast) = fast_reader.join().expect("fast reader");
    assert_complete(&seqs, EVENTS, 8, "fast reader");
    assert!(
        eventually(Duration::from_secs(10), || consumers(svc) == 2),
        "the slow reader was not given a consumer of its own: {}",
        consumers(svc)
    );
    drop(slow);
    assert!(
        eventually(Duration::from_secs(10), || consumers(svc) == 1),
        "the slow reader's consumer outlived it: {} consumers",
        consumers(svc)
    );
}

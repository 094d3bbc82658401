//! Kafka backend under backpressure (issue #3 acceptance): a slow QoS 1 subscriber (acks one
//! PUBLISH per 10 ms) in one group does not lower the delivery rate of a fast subscriber in
//! another group — both groups on the SAME worker thread — the service's RSS does not grow with
//! the slow group's backlog (its partitions are paused, nothing is buffered without bound), and
//! the slow group loses nothing.
//!
//! Rates are only compared within one run (timings on shared machines are noisy); every phase
//! is bounded in time.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// Events per fast backlog (each fast group reads 0..N).
const N: u64 = 10_000;
/// Events the RSS phase adds to the slow group's backlog (~100 MB of records).
const RSS_EVENTS: u64 = 24_000;
/// Bytes of padding per event (the record is about 4.3 KB with its headers).
const PAD: usize = 4000;
/// Measurements per condition (alone / with the slow group), interleaved.
const ROUNDS: usize = 5;
/// Devices (record keys): the per-device order is what Kafka (one partition per key) keeps.
const DEVICES: u64 = 16;
const PARTITIONS: i32 = 4;
/// The slow subscriber's Receive Maximum, and its pace: one PUBACK per tick, never more.
const SLOW_WINDOW: u16 = 8;
const SLOW_TICK: Duration = Duration::from_millis(10);
/// `mqtt.max_queued_bytes` (the default, explicit).
const LIMIT: usize = 1024 * 1024;
/// How much the RSS may grow while the slow group's backlog grows by `RSS_EVENTS` events.
const RSS_GROWTH_BOUND_KB: u64 = 32 * 1024;

/// A v5 PUBLISH: its packet id and the `seq` of its event (`"seq":N` in the payload: the
/// record's JSON data, or a structured CloudEvent embedding it).
fn parse_publish(h: u8, body: &[u8]) -> (u16, u64) {
    assert_eq!(h & 0xF0, 0x30, "not a PUBLISH: {h:#x}");
    assert_eq!((h >> 1) & 3, 1, "not QoS 1: {h:#x}");
    let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut i = 2 + topic_len;
    let pkid = u16::from_be_bytes([body[i], body[i + 1]]);
    i += 2;
    let mut props = 0usize;
    let mut mult = 1usize;
    loop {
        let b = body[i];
        i += 1;
        props += (b & 0x7f) as usize * mult;
        mult *= 128;
        if b & 0x80 == 0 {
            break;
        }
    }
    let payload = &body[i + props..];
    let key = b"\"seq\":";
    let at = payload
        .windows(key.len())
        .position(|w| w == key)
        .unwrap_or_else(|| panic!("no seq in {}", String::from_utf8_lossy(payload)))
        + key.len();
    let seq = payload[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    (pkid, seq)
}

fn puback(pkid: u16) -> [u8; 4] {
    let [hi, lo] = pkid.to_be_bytes();
    [0x40, 2, hi, lo]
}

/// Connects a raw MQTT 5 client (optionally with a Receive Maximum) and subscribes to
/// `app/<app>` at QoS 1 (structured CloudEvents, the default). The client id names the durable
/// group `<app>.<client id>`.
fn subscriber(svc: &Service, app: &str, client_id: &str, receive_max: Option<u16>) -> TcpStream {
    subscriber_in(svc, app, client_id, receive_max, false)
}

/// [`subscriber`], with binary content mode (user property `content-mode = binary`) if asked.
fn subscriber_in(
    svc: &Service,
    app: &str,
    client_id: &str,
    receive_max: Option<u16>,
    binary: bool,
) -> TcpStream {
    let mut b = Vec::new();
    mqtt_str(b"MQTT", &mut b);
    b.push(5);
    b.push(0x02);
    b.extend_from_slice(&0u16.to_be_bytes()); // no keep-alive
    let mut props = Vec::new();
    if let Some(r) = receive_max {
        props.push(0x21);
        props.extend_from_slice(&r.to_be_bytes());
    }
    varint(props.len(), &mut b);
    b.extend_from_slice(&props);
    mqtt_str(client_id.as_bytes(), &mut b);
    let mut s = svc.raw();
    s.write_all(&packet(0x10, &b)).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no CONNACK");
    assert_eq!((h, body[1]), (0x20, 0), "CONNACK: {body:?}");
    let mut sub = 1u16.to_be_bytes().to_vec();
    let mut props = Vec::new();
    if binary {
        props.push(0x26);
        mqtt_str(b"content-mode", &mut props);
        mqtt_str(b"binary", &mut props);
    }
    varint(props.len(), &mut sub);
    sub.extend_from_slice(&props);
    mqtt_str(format!("app/{app}").as_bytes(), &mut sub);
    sub.push(1);
    s.write_all(&packet(0x82, &sub)).unwrap();
    // A group's first join fixes its start position (a few Kafka round trips) before SUBACK.
    let (h, body) = read_packet(&mut s, Duration::from_secs(30)).expect("no SUBACK");
    assert_eq!(h, 0x90, "not a SUBACK: {body:?}");
    assert_eq!(body.last(), Some(&1), "SUBACK must grant QoS 1: {body:?}");
    s
}

/// Ends a raw v5 connection normally (DISCONNECT 0x00) after everything written before it.
fn disconnect(mut s: TcpStream) {
    let _ = s.write_all(&[0xE0, 0]);
    let _ = s.shutdown(Shutdown::Write);
    let _ = read_until_closed(&mut s, Duration::from_secs(5));
}

/// A fast QoS 1 reader: acknowledges every PUBLISH at once (the acks of one read are written
/// together) until `want` says it has enough. Returns the seqs in arrival order and the time
/// from the first PUBLISH to the last (the group's join is not part of its rate).
fn fast_read(
    s: TcpStream,
    timeout: Duration,
    mut want: impl FnMut(&[u64]) -> bool,
) -> (Vec<u64>, Duration) {
    let deadline = Instant::now() + timeout;
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut seqs = Vec::new();
    let mut acks = Vec::with_capacity(4096);
    let mut first = None;
    let mut last = Instant::now();
    while !want(&seqs) {
        assert!(
            Instant::now() < deadline,
            "fast reader: only {} events within {timeout:?}",
            seqs.len()
        );
        let (h, body) = read_packet_from(&mut r).unwrap_or_else(|e| {
            panic!("fast reader: read failed after {} events: {e}", seqs.len())
        });
        if h & 0xF0 != 0x30 {
            continue;
        }
        last = Instant::now();
        first.get_or_insert(last);
        let (pkid, seq) = parse_publish(h, &body);
        seqs.push(seq);
        acks.extend_from_slice(&puback(pkid));
        if r.buffer().is_empty() {
            w.write_all(&acks).unwrap();
            acks.clear();
        }
    }
    w.write_all(&acks).unwrap();
    disconnect(r.into_inner());
    (seqs, last - first.unwrap_or(last))
}

/// What one session of the slow subscriber did.
struct SlowLog {
    /// Seqs in the order they were acknowledged (= the order they arrived).
    acked: Vec<u64>,
    elapsed: Duration,
}

/// A running slow subscriber.
struct Slow {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicUsize>,
    thread: JoinHandle<SlowLog>,
}

impl Slow {
    /// Connects the slow subscriber (client id `slow`, Receive Maximum `SLOW_WINDOW`): a reader
    /// thread hands PUBLISHes over, this one acknowledges one per `SLOW_TICK`, oldest first,
    /// never more. The service holds everything beyond the window back and the connection's
    /// byte credit fills up: the group's partitions are paused.
    fn start(svc: &Service, app: &str) -> Slow {
        let s = subscriber(svc, app, "slow", Some(SLOW_WINDOW));
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || slow_session(s, &stop, &received))
        };
        Slow {
            stop,
            received,
            thread,
        }
    }

    /// Waits until the window is full and the byte credit had time to fill up behind it (the
    /// worker dispatches far faster than 1 MB a second).
    fn wait_stuck(&self) {
        assert!(
            eventually(Duration::from_secs(30), || self
                .received
                .load(Ordering::Acquire)
                >= usize::from(SLOW_WINDOW)),
            "the slow subscriber got only {} events",
            self.received.load(Ordering::Acquire)
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    /// Disconnects (normally); returns what it acknowledged.
    fn stop(self) -> SlowLog {
        self.stop.store(true, Ordering::Release);
        self.thread.join().unwrap()
    }
}

fn slow_session(s: TcpStream, stop: &AtomicBool, received: &AtomicUsize) -> SlowLog {
    let start = Instant::now();
    s.set_read_timeout(None).unwrap();
    let mut w = s.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = {
        let s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut r = BufReader::new(s);
            while let Ok((h, body)) = read_packet_from(&mut r) {
                if h & 0xF0 == 0x30 && tx.send(parse_publish(h, &body)).is_err() {
                    return;
                }
            }
        })
    };
    let mut queue = std::collections::VecDeque::new();
    let mut acked = Vec::new();
    let mut next_ack = Instant::now();
    while !stop.load(Ordering::Acquire) {
        while let Ok(p) = rx.try_recv() {
            received.fetch_add(1, Ordering::AcqRel);
            queue.push_back(p);
        }
        let now = Instant::now();
        if now >= next_ack {
            if let Some((pkid, seq)) = queue.pop_front() {
                if w.write_all(&puback(pkid)).is_err() {
                    break; // the service is gone; the test reports that
                }
                acked.push(seq);
                next_ack = now + SLOW_TICK;
                continue;
            }
        }
        let wait = next_ack
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        if let Ok(p) = rx.recv_timeout(wait) {
            received.fetch_add(1, Ordering::AcqRel);
            queue.push_back(p);
        }
    }
    let elapsed = start.elapsed();
    disconnect(s);
    let _ = reader.join();
    SlowLog { acked, elapsed }
}

/// VmRSS of `pid` in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn gauge(metrics: &str, name: &str) -> Option<i64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Asserts that every device's seqs in `seqs` are the device's first events, in order, once.
fn assert_gap_free_prefixes(seqs: &[u64], what: &str) {
    let mut next: Vec<u64> = (0..DEVICES).collect();
    for &s in seqs {
        let d = (s % DEVICES) as usize;
        assert_eq!(
            s, next[d],
            "{what}: device dev-{d} got seq {s}, expected {} (gap, duplicate or reordering)",
            next[d]
        );
        next[d] += DEVICES;
    }
}

/// The slow subscriber's acknowledged seqs over its sessions: within a session every device's
/// seqs follow each other without a gap; a new session goes on where the last one stopped (a
/// repeat of acknowledged events after a reconnect is at-least-once, a skip is a loss).
/// Returns the number of repeats and the distinct seqs.
fn check_slow_sessions(sessions: &[SlowLog]) -> (usize, BTreeSet<u64>) {
    let mut next: Vec<u64> = (0..DEVICES).collect();
    let mut repeats = 0;
    let mut all = BTreeSet::new();
    for (i, session) in sessions.iter().enumerate() {
        let mut last: Vec<Option<u64>> = vec![None; DEVICES as usize];
        for &s in &session.acked {
            let d = (s % DEVICES) as usize;
            match last[d] {
                Some(l) => assert_eq!(
                    s,
                    l + DEVICES,
                    "slow session {i}: dev-{d} got {s} after {l} (gap, duplicate or reordering)"
                ),
                None => assert!(
                    s <= next[d],
                    "slow session {i}: dev-{d} starts at {s}, but {} was never acknowledged",
                    next[d]
                ),
            }
            last[d] = Some(s);
            if s < next[d] {
                repeats += 1;
            } else {
                next[d] = s + DEVICES;
            }
            all.insert(s);
        }
    }
    (repeats, all)
}

#[test]
fn slow_qos1_group_does_not_slow_another_group_nor_grow_memory() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("kslow");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, PARTITIONS);
    // One consumer worker: both groups' consumers are polled by the same thread, the case
    // where a paused slow group could most easily hold a fast one back. (With the default, one
    // worker per core, two groups may or may not share a worker.)
    let svc = Service::start_with(
        &format!(
            "{}consumer_threads = 1\n\n[mqtt]\nmax_queued_bytes = {LIMIT}\n",
            kafka::backend_toml(&bootstrap, &kafka::unique("cmd"))
        ),
        &kafka::apps_toml(&app),
        &[],
    );
    let pid = svc.child.id();

    // Every group is created (start position = end of the topic) before anything is produced:
    // each fast group then reads exactly the same backlog, 0..N, and the slow one reads from 0.
    let alone_ids: Vec<String> = (0..ROUNDS).map(|i| format!("fast-alone-{i}")).collect();
    let with_ids: Vec<String> = (0..ROUNDS).map(|i| format!("fast-with-{i}")).collect();
    for id in alone_ids
        .iter()
        .chain(&with_ids)
        .map(String::as_str)
        .chain(["slow"])
    {
        disconnect(subscriber(&svc, &app, id, None));
    }
    let t = Instant::now();
    kafka::produce_padded(&bootstrap, &topic, &app, 0..N, PAD, DEVICES);
    eprintln!("produced {N} events in {:?}", t.elapsed());

    // Each fast group reads the whole backlog: its rate is events / (last − first arrival).
    // Structured mode (the default): the rate is bound by the service's shards. (In binary mode
    // the same backlog arrives either in ~0.15 s or in ~1.1 s, depending on librdkafka's fetch
    // timing: a bimodal rate.)
    let measure = |id: &str| -> f64 {
        let s = subscriber(&svc, &app, id, None);
        let (seqs, took) = fast_read(s, Duration::from_secs(60), |s| s.len() as u64 >= N);
        assert_gap_free_prefixes(&seqs, id);
        let rate = (N - 1) as f64 / took.as_secs_f64().max(1e-3);
        eprintln!("{id}: {N} events in {took:?}: {rate:.0} events/s");
        rate
    };
    // Interleaved rounds: alone (the slow subscriber disconnected, its group retired), then with
    // the slow subscriber connected and stuck (window full, byte credit full, partitions
    // paused). Single phases swing by 2x and more in both directions, with or without other
    // builds on the machine: a backlog of 3000 took 2.1, 3.0, 3.9 or 4.8 s, as if 0 to 3 stalls
    // of ~1 s hit it (librdkafka postpones a fetch by `fetch.queue.backoff.ms`, 1 s, when a
    // consumer's queue is over `queued.max.messages.kbytes`; lowering that backoff to 10 ms did
    // not make the phases steadier, and raised the RSS). What is compared is each condition's
    // rate over all its rounds (all events / all time, the harmonic mean of the phase rates),
    // which one outlier moves least.
    let mut alone = Vec::new();
    let mut with_slow = Vec::new();
    let mut sessions = Vec::new();
    let mut slow = None;
    for i in 0..ROUNDS {
        if let Some(s) = slow.take() {
            sessions.push(Slow::stop(s));
        }
        alone.push(measure(&alone_ids[i]));
        let s = Slow::start(&svc, &app);
        s.wait_stuck();
        with_slow.push(measure(&with_ids[i]));
        slow = Some(s);
    }
    let slow = slow.unwrap();
    let pooled = |r: &[f64]| r.len() as f64 / r.iter().map(|x| 1.0 / x).sum::<f64>();
    let ratio = pooled(&with_slow) / pooled(&alone);
    eprintln!(
        "fast alone {alone:.0?} events/s ({:.0} over all rounds), with the slow group \
         {with_slow:.0?} events/s ({:.0}): ratio {ratio:.3}",
        pooled(&alone),
        pooled(&with_slow)
    );

    // RSS while the slow group's backlog grows by RSS_EVENTS events (~100 MB of records): paused
    // partitions must not buffer it. Sampled before (steady state: credit full, librdkafka's
    // prefetch for the paused group at its bound) and during and after producing. (The check
    // does catch buffering: with `max_queued_bytes` at 64 MiB instead, the held-back deliveries
    // grew the RSS by 90 MB in this phase and it failed.)
    let lag = format!("mqtt_integration_group_lag{{group=\"{app}.slow\"}}");
    let rss_before = rss_kb(pid);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Acquire) {
                samples.push(rss_kb(pid));
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        })
    };
    let t = Instant::now();
    let added = kafka::produce_padded(&bootstrap, &topic, &app, N..N + RSS_EVENTS, PAD, DEVICES);
    eprintln!(
        "produced {RSS_EVENTS} more events ({} MB) in {:?}",
        added / 1_000_000,
        t.elapsed()
    );
    std::thread::sleep(Duration::from_secs(5));
    sampling.store(false, Ordering::Release);
    let samples = sampler.join().unwrap();
    let rss_peak = samples.iter().copied().max().unwrap_or(0).max(rss_kb(pid));
    eprintln!(
        "RSS before {rss_before} kB, peak {rss_peak} kB, samples (kB): {:?}",
        samples.iter().step_by(4).collect::<Vec<_>>()
    );
    assert!(
        added / 1024 >= 3 * RSS_GROWTH_BOUND_KB,
        "the added backlog must dwarf the bound for the RSS check to mean anything"
    );

    let behind = gauge(&svc.metrics(), &lag);
    eprintln!("slow group lag after producing: {behind:?}");
    assert!(
        eventually(Duration::from_secs(10), || gauge(&svc.metrics(), &lag)
            .is_some_and(|l| l as u64 >= RSS_EVENTS / 2)),
        "the slow group should be thousands of events behind (it acks 100 a second): {:?}",
        gauge(&svc.metrics(), &lag)
    );

    // The slow subscriber stops; what it acknowledged is, per device, the first events in
    // order (across its reconnects).
    sessions.push(slow.stop());
    let acked_n: usize = sessions.iter().map(|s| s.acked.len()).sum();
    let slow_time: Duration = sessions.iter().map(|s| s.elapsed).sum();
    let pace = acked_n as f64 / slow_time.as_secs_f64();
    let (repeats, acked) = check_slow_sessions(&sessions);
    eprintln!(
        "slow: {} sessions, acked {acked_n} ({pace:.0}/s over {slow_time:?}), {repeats} repeats",
        sessions.len()
    );

    // Nothing of the slow group's backlog was lost: read with its client id again, the group
    // delivers everything it did not acknowledge.
    let total = N + RSS_EVENTS;
    let left = total - acked.len() as u64;
    let mut got = BTreeSet::new();
    let (rest, drain_took) = fast_read(
        subscriber_in(&svc, &app, "slow", None, true),
        Duration::from_secs(90),
        |s| {
            if let Some(x) = s.last() {
                if !acked.contains(x) {
                    got.insert(*x);
                }
            }
            got.len() as u64 >= left
        },
    );
    let missing: Vec<u64> = (0..total)
        .filter(|s| !acked.contains(s) && !got.contains(s))
        .collect();
    let redelivered = rest.iter().filter(|s| acked.contains(s)).count();
    eprintln!(
        "slow group drained: {} events in {drain_took:?}, {redelivered} of them already acknowledged",
        rest.len()
    );
    assert!(
        missing.is_empty(),
        "{} events of the slow group lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );

    // The acceptance criterion: 10%. Since groups stop reading instead of pausing (no more
    // one-second refetch stalls), this ratio was 0.91-1.37 over seven runs (three with N =
    // 10,000: 0.99, 1.13, 1.02), and 0.953-1.010 over six runs on 2026-12-06: no effect of the
    // slow group to see. Pooling five rounds per condition keeps the machine's noise below it.
    assert!(
        ratio >= 0.9,
        "the fast group ran at {ratio:.3} of its rate alone (alone {alone:.0?}, with the slow \
         group {with_slow:.0?} events/s) while a slow group was stuck on its worker"
    );
    assert!(
        rss_peak.saturating_sub(rss_before) <= RSS_GROWTH_BOUND_KB,
        "RSS grew by {} kB (before {rss_before} kB, peak {rss_peak} kB) while the slow group's \
         backlog grew by {} MB",
        rss_peak.saturating_sub(rss_before),
        added / 1_000_000
    );
    // The slow subscriber was served at its own pace all along (paused, not starved): at least
    // a quarter of the 100/s it would take.
    assert!(
        pace >= 25.0,
        "the slow subscriber got only {pace:.0} events/s"
    );
}

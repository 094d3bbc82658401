//! `loadtest kafka`: the service's Kafka path against a bare rdkafka consumer, in one run.
//!
//! - Phase A (baseline): N CloudEvents binary-mode records are produced to `events-<app>`, then
//!   read back by a bare `BaseConsumer` (fresh group, assigned at the offsets the topic had before
//!   phase A, the same prefetch settings as the service's consumers) → bare events/s.
//! - Phase B (through the service): S MQTT subscribers (distinct client ids, so S durable groups,
//!   S librdkafka consumers in the service) subscribe to `app/<app>`; after their SUBACKs, N more
//!   records are produced (at `--rate`, or as fast as possible) → delivered events/s per
//!   subscriber, produce-to-MQTT latency (sampled from the data's `"t"`), gaps and duplicates
//!   (from the data's `"seq"`).
//!
//! With `--backlog`, phase B reads a backlog like the bare consumer does: the subscribers
//! subscribe (their groups commit the end of the topic), disconnect, the N records are produced,
//! and the subscribers come back with the same client ids and drain them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqtt_integration::backend::kafka::topic::events_topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::exit_with;
use crate::subscriber::{
    field, sent_at, Report, SeqReport, SeqTracker, Subscriber, SubscriberOptions,
};

/// Kafka scenario: events/s through the service vs a bare rdkafka consumer on the same topic,
/// and produce-to-MQTT latency.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Kafka bootstrap servers (host:port[,host:port…]); the service must use the same cluster.
    #[arg(long)]
    bootstrap: String,
    /// MQTT address of the service.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// Application: records go to its events topic (`events-<app>`), subscribers read
    /// `app/<app>`. Anonymous clients must be allowed to read it.
    #[arg(long, default_value = "bench")]
    app: String,
    /// Devices the records are spread over (`device1`..`deviceK`, record key = device; device i
    /// writes to partition i mod partitions, so each device keeps its order).
    #[arg(long, default_value_t = 8)]
    devices: usize,
    /// Partitions of the events topic when this run creates it (an existing topic is used as
    /// it is).
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Records per phase (phase A and phase B each produce this many).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Bytes of data per record (JSON `{"t":…,"seq":…,"pad":"…"}`, padding included).
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// MQTT subscribers in phase B, each with its own client id (its own consumer group).
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Subscription QoS (0 or 1).
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// CloudEvents content mode on MQTT: structured or binary (binary needs MQTT 5). The Kafka
    /// records are always binary mode.
    #[arg(long, default_value = "structured")]
    mode: String,
    /// MQTT version: 5 or 311.
    #[arg(long, default_value = "5")]
    mqtt_version: String,
    /// Phase B produce rate in events/s; as fast as possible when omitted. Phase A always
    /// produces as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// Phase B reads a backlog instead of live records: subscribe, disconnect, produce, then
    /// reconnect with the same client ids (what the bare consumer does in phase A).
    #[arg(long)]
    backlog: bool,
    /// The producer's linger.ms (librdkafka's batching delay; lower = less latency).
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Extra librdkafka settings for the bare consumer, KEY=VALUE, repeatable (defaults: the
    /// service's consumer settings fetch.wait.max.ms=100, queued.max.messages.kbytes=8192, fetch.queue.backoff.ms=10).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    consumer_properties: Vec<String>,
    /// Phase B (live only): a bare rdkafka consumer also reads the records while the service
    /// delivers them, for a produce-to-consume latency floor in the same run (costs CPU).
    #[arg(long)]
    bare_live: bool,
    /// Give up after this many seconds in each wait (produce, bare read, deliveries).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

pub fn run(args: Args) {
    let (v5, binary) = crate::mqtt_choice(&args.mqtt_version, &args.mode);
    if args.qos > 1 {
        exit_with("--qos must be 0 or 1");
    }
    if args.events == 0 || args.devices == 0 || args.subscribers == 0 {
        exit_with("--events, --devices and --subscribers must be at least 1");
    }
    if args.rate == Some(0) {
        exit_with("--rate must be at least 1");
    }
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let topic = events_topic(&args.app);
    let timeout = Duration::from_secs(args.timeout);

    let partitions = ensure_topic(&args, &topic);
    eprintln!(
        "kafka: topic {topic} ({partitions} partitions) on {}; {} events of {} bytes per phase",
        args.bootstrap, args.events, args.payload
    );
    let producer = Arc::new(make_producer(&args));
    let gen = Generator {
        app: args.app.clone(),
        topic: topic.clone(),
        run_id,
        devices: (1..=args.devices).map(|i| format!("device{i}")).collect(),
        partitions,
        payload: args.payload,
    };

    // Phase A: produce, then read back with a bare consumer.
    let start_offsets = high_watermarks(&args, &topic, partitions);
    eprintln!("phase A: producing {} records", args.events);
    let phase_a = produce(&producer, &gen, 0, args.events, None, timeout, None);
    eprintln!(
        "phase A: produced {} in {:.2} s; reading them back with a bare consumer",
        phase_a.sent, phase_a.secs
    );
    let bare_group = |phase: &str| format!("loadtest-bare-{run_id}-{phase}");
    let bare = bare_read(
        &args,
        &topic,
        &start_offsets,
        &bare_group("a"),
        0,
        false,
        timeout,
    );
    eprintln!(
        "phase A: bare consumer read {} in {:.2} s",
        bare.count, bare.secs
    );

    // Phase B: through the service.
    let options = |i: usize| SubscriberOptions {
        addr: args.mqtt.clone(),
        client_id: format!("loadtest-kafka-{run_id}-{i}"),
        filter: format!("app/{}", args.app),
        qos: args.qos,
        v5,
        binary,
        seqs: Some((args.events, args.events)),
    };
    let connect_all = || -> Vec<Subscriber> {
        (0..args.subscribers)
            .map(|i| match Subscriber::connect(options(i)) {
                Ok(s) => s,
                Err(e) => exit_with(&format!(
                    "subscriber {i} cannot connect to {} and subscribe to app/{}: {e}",
                    args.mqtt, args.app
                )),
            })
            .collect()
    };
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let expected = args.events * args.subscribers as u64;
    let mut bare_live = None;
    let (handles, producer_thread, phase_b_start) = if args.backlog {
        drop(connect_all());
        eprintln!(
            "phase B: {} subscribers subscribed and left; producing {} records",
            args.subscribers, args.events
        );
        // The last member leaving commits the group's offsets: give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        let stats = produce(
            &producer,
            &gen,
            args.events,
            args.events,
            args.rate,
            timeout,
            Some(&produced),
        );
        eprintln!(
            "phase B: produced {} in {:.2} s; reconnecting the subscribers",
            stats.sent, stats.secs
        );
        let subs = connect_all();
        let start = Instant::now();
        let handles: Vec<_> = subs
            .into_iter()
            .map(|s| s.spawn(received.clone(), stop.clone()))
            .collect();
        (handles, None, (start, Some(stats)))
    } else {
        let subs = connect_all();
        if args.bare_live {
            let offsets = high_watermarks(&args, &topic, partitions);
            let (args, topic, group) = (args.clone(), topic.clone(), bare_group("b"));
            let limit = timeout
                + Duration::from_secs_f64(
                    args.rate
                        .map(|r| args.events as f64 / r as f64)
                        .unwrap_or(0.0),
                );
            bare_live = Some(std::thread::spawn(move || {
                bare_read(&args, &topic, &offsets, &group, args.events, true, limit)
            }));
            // Let it fetch its assignment's start before records arrive.
            std::thread::sleep(Duration::from_millis(500));
        }
        let handles: Vec<_> = subs
            .into_iter()
            .map(|s| s.spawn(received.clone(), stop.clone()))
            .collect();
        eprintln!(
            "phase B: {} subscribers subscribed; producing {} records{}",
            args.subscribers,
            args.events,
            args.rate
                .map(|r| format!(" at {r} events/s"))
                .unwrap_or_default()
        );
        let start = Instant::now();
        let thread = {
            let (producer, gen, produced) = (producer.clone(), gen.clone(), produced.clone());
            let (n, rate) = (args.events, args.rate);
            std::thread::spawn(move || {
                produce(&producer, &gen, n, n, rate, timeout, Some(&produced))
            })
        };
        (handles, Some(thread), (start, None))
    };
    let (started, mut produce_b) = phase_b_start;
    // The deadline counts from the end of producing at the latest rate: a slow --rate is not
    // a timeout.
    let produce_secs = args
        .rate
        .map(|r| args.events as f64 / r as f64)
        .unwrap_or(0.0);
    let deadline = started + timeout + Duration::from_secs_f64(produce_secs);
    let mut last = 0;
    let mut next = started + Duration::from_secs(1);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += Duration::from_secs(1);
        let now = received.load(Ordering::Relaxed);
        eprintln!(
            "  {:>6.1}s  produced {}/{}  delivered {now}/{expected}  ({} events/s)",
            started.elapsed().as_secs_f64(),
            produced.load(Ordering::Relaxed),
            args.events,
            now - last
        );
        last = now;
    }
    let complete = received.load(Ordering::Relaxed) >= expected;
    if !complete {
        // Let the subscribers see a few more in flight before they stop; the report says what
        // was missing.
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = producer_thread {
        produce_b = t.join().ok();
    }
    let reports: Vec<Report> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    let produce_b = produce_b.unwrap_or_default();
    let bare_live = bare_live.and_then(|t| t.join().ok());
    report(
        &args,
        &topic,
        partitions,
        &phase_a,
        &bare,
        &produce_b,
        &reports,
        bare_live.as_ref(),
    );
    if !complete {
        let got = received.load(Ordering::Relaxed);
        eprintln!(
            "error: phase B: {} of {expected} deliveries did not arrive within {} s (plus {:.0} s of producing at --rate)",
            expected.saturating_sub(got),
            args.timeout,
            produce_secs
        );
        std::process::exit(1);
    }
}

/// Creates the events topic when it is missing; returns its partition count.
fn ensure_topic(args: &Args, topic: &str) -> i32 {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.bootstrap);
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .unwrap_or_else(|e| exit_with(&format!("Kafka admin client: {e}")));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut created = false;
    loop {
        match partitions_of(admin.inner(), topic) {
            Ok(Some(n)) => {
                if created {
                    eprintln!("kafka: created topic {topic} with {n} partitions");
                }
                return n;
            }
            Ok(None) if !created => {
                let new = NewTopic::new(topic, args.partitions, TopicReplication::Fixed(1));
                let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                match block_on(admin.create_topics([&new], &opts)) {
                    Ok(results) => {
                        for r in results {
                            if let Err((name, code)) = r {
                                if code != RDKafkaErrorCode::TopicAlreadyExists {
                                    exit_with(&format!("creating topic {name}: {code}"));
                                }
                            }
                        }
                    }
                    Err(e) => exit_with(&format!("creating topic {topic}: {e}")),
                }
                created = true;
            }
            Ok(None) => {}
            Err(e) => eprintln!("kafka: metadata of {topic}: {e} (retrying)"),
        }
        if Instant::now() > deadline {
            exit_with(&format!(
                "topic {topic} is not available on {} after {} s",
                args.bootstrap, args.timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The partition count of `topic` once every partition has a leader; None when it does not
/// exist (yet).
fn partitions_of<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<Option<i32>, KafkaError> {
    let md = client.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Ok(None);
    }
    if t.partitions()
        .iter()
        .any(|p| p.leader() < 0 || p.error().is_some())
    {
        return Ok(None);
    }
    Ok(Some(t.partitions().len() as i32))
}

/// The high watermark of every partition: phase A's records come after them.
fn high_watermarks(args: &Args, topic: &str, partitions: i32) -> Vec<i64> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.bootstrap);
    let consumer: BaseConsumer = config
        .create()
        .unwrap_or_else(|e| exit_with(&format!("Kafka consumer: {e}")));
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, high)| high)
                .unwrap_or_else(|e| exit_with(&format!("watermarks of {topic}/{p}: {e}")))
        })
        .collect()
}

/// Counts delivery reports.
struct Delivered {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("kafka: a record was not delivered: {e}");
                }
                0
            }
        };
    }
}

fn make_producer(args: &Args) -> BaseProducer<Delivered> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("client.id", "loadtest")
        .set("linger.ms", args.linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "true");
    config
        .create_with_context(Delivered {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
        .unwrap_or_else(|e| exit_with(&format!("Kafka producer: {e}")))
}

/// What records look like.
#[derive(Clone)]
struct Generator {
    app: String,
    topic: String,
    run_id: u128,
    devices: Vec<String>,
    partitions: i32,
    payload: usize,
}

#[derive(Default, Clone, Copy)]
struct ProduceStats {
    sent: u64,
    /// From the first send to the last delivery report.
    secs: f64,
}

/// Produces records `lo..lo + n` (`rate` events/s, or as fast as possible) and waits for their
/// delivery reports.
fn produce(
    producer: &BaseProducer<Delivered>,
    gen: &Generator,
    lo: u64,
    n: u64,
    rate: Option<u64>,
    timeout: Duration,
    progress: Option<&AtomicU64>,
) -> ProduceStats {
    let ok_before = producer.context().ok.load(Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started
        + timeout
        + Duration::from_secs_f64(rate.map(|r| n as f64 / r as f64).unwrap_or(0.0));
    let mut next_progress = started + Duration::from_secs(1);
    let pad = "x".repeat(gen.payload);
    let mut data = String::with_capacity(gen.payload + 64);
    let sources: Vec<String> = gen
        .devices
        .iter()
        .map(|d| format!("drogue://{}/{d}", gen.app))
        .collect();
    for i in 0..n {
        if let Some(r) = rate {
            // Send event i at started + i/r; sleep while ahead of the schedule.
            let due = started + Duration::from_secs_f64(i as f64 / r as f64);
            let now = Instant::now();
            if due > now {
                producer.poll(Duration::ZERO);
                std::thread::sleep(due - now);
            }
        }
        let seq = lo + i;
        let d = (seq % gen.devices.len() as u64) as usize;
        let device = &gen.devices[d];
        let id = format!("{}-{seq}", gen.run_id);
        let headers = OwnedHeaders::new_with_capacity(8)
            .insert(header("ce_specversion", "1.0"))
            .insert(header("ce_id", &id))
            .insert(header("ce_source", &sources[d]))
            .insert(header("ce_type", "io.drogue.event.v1"))
            .insert(header("ce_subject", "load"))
            .insert(header("ce_application", &gen.app))
            .insert(header("ce_device", device))
            .insert(header("content-type", "application/json"));
        data.clear();
        let t = now_us();
        data.push_str(&format!("{{\"t\":{t},\"seq\":{seq},\"pad\":\""));
        let fill = gen.payload.saturating_sub(data.len() + 2);
        data.push_str(&pad[..fill]);
        data.push_str("\"}");
        let mut record = BaseRecord::to(&gen.topic)
            .key(device.as_str())
            .payload(data.as_str())
            .partition(d as i32 % gen.partitions)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                    if Instant::now() > deadline {
                        exit_with("producing: the producer queue stayed full until --timeout");
                    }
                }
                Err((e, _)) => exit_with(&format!("producing to {}: {e}", gen.topic)),
            }
        }
        if i % 512 == 0 {
            producer.poll(Duration::ZERO);
            if let Some(p) = progress {
                p.store(i, Ordering::Relaxed);
            }
            if progress.is_none() && Instant::now() >= next_progress {
                next_progress += Duration::from_secs(1);
                eprintln!(
                    "  {:>6.1}s  produced {i}/{n}",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    if let Some(p) = progress {
        p.store(n, Ordering::Relaxed);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(e) = producer.flush(left.max(Duration::from_secs(1))) {
        exit_with(&format!("producing to {}: flush: {e}", gen.topic));
    }
    let secs = started.elapsed().as_secs_f64();
    let ok = producer.context().ok.load(Ordering::Relaxed) - ok_before;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 || ok < n {
        exit_with(&format!(
            "producing to {}: {ok} of {n} records delivered, {failed} failed",
            gen.topic
        ));
    }
    ProduceStats { sent: n, secs }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}

struct BareRead {
    count: u64,
    /// From the first record to the last one.
    secs: f64,
    seqs: SeqReport,
    /// Produce-to-consume latency samples (live reads only).
    latencies_us: Vec<u64>,
}

/// Reads the `--events` records of phase A with a plain `BaseConsumer`: a fresh group, assigned
/// (no rebalance) at `start` offsets, the service consumers' fetch and prefetch settings.
///
/// `live` (phase B, `--bare-live`): the records `lo..lo + n` are being produced meanwhile; every
/// 97th record's `"t"` gives a produce-to-consume latency sample, and a timeout returns what was
/// read instead of exiting.
fn bare_read(
    args: &Args,
    topic: &str,
    start: &[i64],
    group: &str,
    lo: u64,
    live: bool,
    timeout: Duration,
) -> BareRead {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.queue.backoff.ms", "10");
    for kv in &args.consumer_properties {
        let Some((k, v)) = kv.split_once('=') else {
            exit_with(&format!("--consumer-property `{kv}` is not KEY=VALUE"));
        };
        config.set(k, v);
    }
    let consumer: BaseConsumer = config
        .create()
        .unwrap_or_else(|e| exit_with(&format!("Kafka consumer: {e}")));
    let mut tpl = TopicPartitionList::new();
    for (p, offset) in start.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(*offset))
            .unwrap_or_else(|e| exit_with(&format!("assignment: {e}")));
    }
    consumer
        .assign(&tpl)
        .unwrap_or_else(|e| exit_with(&format!("assigning {topic}: {e}")));
    let n = args.events;
    let mut seqs = SeqTracker::new(lo, n);
    let mut latencies_us = Vec::new();
    let started = Instant::now();
    let deadline = started + timeout;
    let mut next_progress = started + Duration::from_secs(1);
    let (mut first, mut last) = (None, started);
    let mut count = 0u64;
    let mut bytes = 0u64;
    while count < n {
        let now = Instant::now();
        if now >= deadline && live {
            break;
        }
        if now >= deadline {
            exit_with(&format!(
                "phase A: the bare consumer read {count} of {n} records within {} s",
                args.timeout
            ));
        }
        if now >= next_progress && !live {
            next_progress += Duration::from_secs(1);
            eprintln!(
                "  {:>6.1}s  bare consumer read {count}/{n}",
                started.elapsed().as_secs_f64()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or(&[]);
                bytes += payload.len() as u64;
                if live && count % 97 == 1 {
                    if let Some(t) = sent_at(payload) {
                        latencies_us.push(now_us().saturating_sub(t));
                    }
                }
                seqs.record(field(payload, b"\"seq\":"));
                count += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            Some(Err(e)) => eprintln!("kafka: bare consumer: {e}"),
        }
    }
    std::hint::black_box(bytes);
    let secs = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    BareRead {
        count,
        secs,
        seqs: seqs.report(),
        latencies_us,
    }
}

/// Prints the table and the JSON line.
#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    topic: &str,
    partitions: i32,
    phase_a: &ProduceStats,
    bare: &BareRead,
    produce_b: &ProduceStats,
    reports: &[Report],
    bare_live: Option<&BareRead>,
) {
    let eps = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let bare_eps = eps(bare.count, bare.secs);
    struct Sub {
        count: u64,
        secs: f64,
        eps: f64,
        ratio: f64,
        seqs: SeqReport,
    }
    let subs: Vec<Sub> = reports
        .iter()
        .map(|r| {
            let secs = match (r.first, r.last) {
                (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
                _ => 0.0,
            };
            let e = eps(r.count, secs);
            Sub {
                count: r.count,
                secs,
                eps: e,
                ratio: if bare_eps > 0.0 { e / bare_eps } else { 0.0 },
                seqs: r.seqs.unwrap_or_default(),
            }
        })
        .collect();
    let total_count: u64 = subs.iter().map(|s| s.count).sum();
    let first = reports.iter().filter_map(|r| r.first).min();
    let last = reports.iter().filter_map(|r| r.last).max();
    let total_secs = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let total_eps = eps(total_count, total_secs);
    let ratios: Vec<f64> = subs.iter().map(|s| s.ratio).collect();
    let min_ratio = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let mean_ratio = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    let missing: u64 = subs.iter().map(|s| s.seqs.missing).sum();
    let duplicates: u64 = subs.iter().map(|s| s.seqs.duplicates).sum();
    let foreign: u64 = subs.iter().map(|s| s.seqs.foreign).sum();
    let mut lat: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let (p50, p90, p99, max) = (
        pct(0.5),
        pct(0.9),
        pct(0.99),
        lat.last().copied().unwrap_or(0),
    );
    let bare_lat = bare_live.map(|b| {
        let mut l = b.latencies_us.clone();
        l.sort_unstable();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        (
            l.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            l.last().copied().unwrap_or(0),
            b.count,
        )
    });

    println!(
        "kafka scenario: topic {topic} ({partitions} partitions), {} records × {} B per phase, \
         {} subscriber(s), QoS {}, {} mode, MQTT {}, phase B {}{}",
        args.events,
        args.payload,
        args.subscribers,
        args.qos,
        args.mode,
        args.mqtt_version,
        if args.backlog { "backlog" } else { "live" },
        args.rate
            .map(|r| format!(" at {r} events/s"))
            .unwrap_or_else(|| " as fast as possible".into())
    );
    println!(
        "{:<34} {:>9} {:>8} {:>11} {:>7}  missing/dup/foreign",
        "", "events", "secs", "events/s", "ratio"
    );
    println!(
        "{:<34} {:>9} {:>8.2} {:>11.0}",
        "A  produce (rdkafka)",
        phase_a.sent,
        phase_a.secs,
        eps(phase_a.sent, phase_a.secs)
    );
    println!(
        "{:<34} {:>9} {:>8.2} {:>11.0} {:>7}  {}/{}/{}",
        "A  bare BaseConsumer",
        bare.count,
        bare.secs,
        bare_eps,
        "1.00",
        bare.seqs.missing,
        bare.seqs.duplicates,
        bare.seqs.foreign
    );
    println!(
        "{:<34} {:>9} {:>8.2} {:>11.0}",
        "B  produce (rdkafka)",
        produce_b.sent,
        produce_b.secs,
        eps(produce_b.sent, produce_b.secs)
    );
    for (i, s) in subs.iter().enumerate() {
        println!(
            "{:<34} {:>9} {:>8.2} {:>11.0} {:>7.2}  {}/{}/{}",
            format!("B  service → MQTT subscriber {i}"),
            s.count,
            s.secs,
            s.eps,
            s.ratio,
            s.seqs.missing,
            s.seqs.duplicates,
            s.seqs.foreign
        );
    }
    if subs.len() > 1 {
        println!(
            "{:<34} {:>9} {:>8.2} {:>11.0}",
            "B  service → all subscribers", total_count, total_secs, total_eps
        );
    }
    println!(
        "ratio service/bare per subscriber: min {min_ratio:.2}, mean {mean_ratio:.2} (target ≥ 0.80)"
    );
    let produce_b_eps = eps(produce_b.sent, produce_b.secs);
    if !args.backlog && produce_b_eps > 0.0 && subs.iter().any(|s| s.eps >= 0.8 * produce_b_eps) {
        println!(
            "note: phase B was live: a subscriber cannot outrun the producer ({produce_b_eps:.0} events/s); \
             --backlog compares like for like"
        );
    }
    println!(
        "produce-to-MQTT latency (sampled, n={}): p50 {p50} µs, p90 {p90} µs, p99 {p99} µs, max {max} µs",
        lat.len()
    );
    if let Some((n, p50, p90, p99, max, count)) = bare_lat {
        println!(
            "produce-to-bare-consumer latency (same records, n={n}, read {count}): p50 {p50} µs, p90 {p90} µs, p99 {p99} µs, max {max} µs"
        );
    }
    let json = serde_json::json!({
        "scenario": "kafka",
        "topic": topic,
        "partitions": partitions,
        "events": args.events,
        "payload": args.payload,
        "subscribers": args.subscribers,
        "qos": args.qos,
        "mode": args.mode,
        "mqtt_version": args.mqtt_version,
        "rate": args.rate,
        "backlog": args.backlog,
        "produce_a_eps": eps(phase_a.sent, phase_a.secs).round(),
        "bare_eps": bare_eps.round(),
        "produce_b_eps": eps(produce_b.sent, produce_b.secs).round(),
        "service_eps_per_subscriber": subs.iter().map(|s| s.eps.round()).collect::<Vec<_>>(),
        "service_eps_total": total_eps.round(),
        "ratio_min": (min_ratio * 1000.0).round() / 1000.0,
        "ratio_mean": (mean_ratio * 1000.0).round() / 1000.0,
        "delivered": total_count,
        "expected": args.events * args.subscribers as u64,
        "missing": missing,
        "duplicates": duplicates,
        "foreign": foreign,
        "latency_us": { "samples": lat.len(), "p50": p50, "p90": p90, "p99": p99, "max": max },
        "bare_live_latency_us": bare_lat.map(|(n, p50, p90, p99, max, _)| serde_json::json!(
            { "samples": n, "p50": p50, "p90": p90, "p99": p99, "max": max })),
    });
    println!("{json}");
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Runs an rdkafka admin future to completion on this thread (librdkafka's own thread
/// completes it and wakes us).
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(100)),
        }
    }
}

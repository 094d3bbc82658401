//! Service metrics: a fixed set of atomic counters and gauges, rendered in the Prometheus text
//! format for `GET /metrics` (spec 5).
//!
//! Every family is known up front, so counting an event is one or two relaxed atomic adds: no
//! lock, no allocation, no label lookup. Only consumer-group lag has open-ended label values;
//! backend threads set it once per batch, so a small mutex-protected map is cheap enough there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

/// The transport a client connected over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

/// The CloudEvents content mode of a delivered event (the subscription's mode).
pub use crate::seam::Mode;

/// What became of a published command (spec 2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    Accepted,
    Unauthorized,
    InvalidTopic,
    BackendError,
    /// A failed QoS 0 command, which has no way to report the failure.
    Dropped,
}

/// The registry. Share it as `Arc<Metrics>`, or as a `static` (`new` is `const`).
#[derive(Debug, Default)]
pub struct Metrics {
    connections: [Gauge; Protocol::ALL.len()],
    subscriptions: Gauge,
    /// Indexed by `[mode][qos]`.
    delivered: [[Counter; 2]; 2],
    delivered_bytes: [Counter; 2],
    acked: Counter,
    commands: [Counter; CommandOutcome::ALL.len()],
    ingested: Counter,
    bytes_sent: Counter,
    bytes_received: Counter,
    records_skipped: Counter,
    queued_bytes: Gauge,
    backend_consumers: Gauge,
    /// Durable consumer groups known to this process (issue #17: they expire).
    groups: Gauge,
    /// Only groups with members or lag (the backends filter), so `/metrics` stays small when
    /// many groups exist.
    group_lag: Mutex<BTreeMap<String, i64>>,
    /// The embedded log on disk (issue #14): bytes of segments per application.
    log_bytes: Mutex<BTreeMap<String, i64>>,
    log_segments: Gauge,
    log_recovery_truncations: Counter,
    collector: Collector,
}

/// Reads figures that live elsewhere (a backend's group lag) just before rendering.
#[derive(Default)]
struct Collector(std::sync::OnceLock<CollectFn>);

type CollectFn = Box<dyn Fn(&Metrics) + Send + Sync>;

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Collector(set)"
        } else {
            "Collector(none)"
        })
    }
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            connections: [Gauge::new(), Gauge::new(), Gauge::new(), Gauge::new()],
            subscriptions: Gauge::new(),
            delivered: [
                [Counter::new(), Counter::new()],
                [Counter::new(), Counter::new()],
            ],
            delivered_bytes: [Counter::new(), Counter::new()],
            acked: Counter::new(),
            commands: [
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
            ],
            ingested: Counter::new(),
            bytes_sent: Counter::new(),
            bytes_received: Counter::new(),
            records_skipped: Counter::new(),
            queued_bytes: Gauge::new(),
            backend_consumers: Gauge::new(),
            groups: Gauge::new(),
            group_lag: Mutex::new(BTreeMap::new()),
            log_bytes: Mutex::new(BTreeMap::new()),
            log_segments: Gauge::new(),
            log_recovery_truncations: Counter::new(),
            collector: Collector(std::sync::OnceLock::new()),
        }
    }

    pub fn connection_opened(&self, protocol: Protocol) {
        self.connections[protocol as usize].add(1);
    }

    pub fn connection_closed(&self, protocol: Protocol) {
        self.connections[protocol as usize].add(-1);
    }

    /// Subscriptions added (positive) or removed (negative).
    pub fn add_subscriptions(&self, delta: i64) {
        self.subscriptions.add(delta);
    }

    /// One event delivered at `qos` (0, or 1 for anything higher: QoS 2 is granted as 1) with a
    /// payload of `payload_bytes`.
    pub fn delivered(&self, mode: Mode, qos: u8, payload_bytes: usize) {
        self.add_delivered(mode, qos, 1, payload_bytes as u64);
    }

    /// A batch of deliveries counted at once (a shard adds its sessions' counts per turn).
    pub fn add_delivered(&self, mode: Mode, qos: u8, events: u64, payload_bytes: u64) {
        if events > 0 {
            self.delivered[mode as usize][usize::from(qos > 0)].add(events);
            self.delivered_bytes[mode as usize].add(payload_bytes);
        }
    }

    pub fn acked(&self, n: u64) {
        self.acked.add(n);
    }

    pub fn command(&self, outcome: CommandOutcome) {
        self.commands[outcome as usize].add(1);
    }

    pub fn ingested(&self, n: u64) {
        self.ingested.add(n);
    }

    /// Bytes written to client sockets, protocol overhead included.
    pub fn bytes_sent(&self, n: usize) {
        self.bytes_sent.add(n as u64);
    }

    /// Bytes read from client sockets.
    pub fn bytes_received(&self, n: usize) {
        self.bytes_received.add(n as u64);
    }

    /// A backend record that could not be read as an event and was passed over.
    pub fn record_skipped(&self) {
        self.records_skipped.add(1);
    }

    /// Bytes queued for sending, added (positive) or drained (negative).
    pub fn add_queued_bytes(&self, delta: i64) {
        self.queued_bytes.add(delta);
    }

    /// Sets the lag (events not yet committed) of consumer group `group`.
    pub fn set_group_lag(&self, group: &str, lag: i64) {
        let mut lags = self.group_lag.lock();
        match lags.get_mut(group) {
            Some(value) => *value = lag,
            None => {
                lags.insert(group.to_owned(), lag);
            }
        }
    }

    /// Forgets a group that no longer has readers, so the series stops.
    pub fn remove_group(&self, group: &str) {
        self.group_lag.lock().remove(group);
    }

    /// Replaces every group's lag at once (for a backend that reports them all together).
    pub fn replace_group_lags(&self, lags: impl IntoIterator<Item = (String, i64)>) {
        *self.group_lag.lock() = lags.into_iter().collect();
    }

    /// Raises the skipped-records counter to `total` (for a backend that keeps its own count).
    pub fn raise_records_skipped(&self, total: u64) {
        let now = self.records_skipped.0.load(Relaxed);
        if total > now {
            self.records_skipped.add(total - now);
        }
    }

    /// Sets how many consumers (clients) the backend has open (for a backend that counts them).
    pub fn set_backend_consumers(&self, n: i64) {
        self.backend_consumers.0.store(n, Relaxed);
    }

    /// Sets how many durable consumer groups this process knows (for a backend that counts them).
    pub fn set_groups(&self, n: i64) {
        self.groups.0.store(n, Relaxed);
    }

    /// Sets the on-disk log's size: bytes of segments per application, and segments in all.
    pub fn set_log_size(&self, bytes: impl IntoIterator<Item = (String, i64)>, segments: i64) {
        *self.log_bytes.lock() = bytes.into_iter().collect();
        self.log_segments.0.store(segments, Relaxed);
    }

    /// Raises the recovery-truncations counter to `total` (counted by the log at start).
    pub fn raise_log_recovery_truncations(&self, total: u64) {
        let now = self.log_recovery_truncations.0.load(Relaxed);
        if total > now {
            self.log_recovery_truncations.add(total - now);
        }
    }

    /// Installs the function that refreshes figures kept elsewhere before each render.
    /// Only the first call has an effect.
    pub fn set_collector(&self, collect: impl Fn(&Metrics) + Send + Sync + 'static) {
        let _ = self.collector.0.set(Box::new(collect));
    }

    /// Every family in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        if let Some(collect) = self.collector.0.get() {
            collect(self);
        }
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, i128)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };

        let connections: Vec<_> = Protocol::ALL
            .iter()
            .map(|p| {
                (
                    format!("{{protocol=\"{}\"}}", p.label()),
                    self.connections[*p as usize].value(),
                )
            })
            .collect();
        family(
            "mqtt_integration_connections",
            "gauge",
            "Open client connections.",
            &connections,
        );
        family(
            "mqtt_integration_subscriptions",
            "gauge",
            "Active event subscriptions.",
            &[unlabelled(self.subscriptions.value())],
        );
        let mut delivered = Vec::new();
        let mut delivered_bytes = Vec::new();
        for mode in Mode::ALL {
            for qos in 0..2 {
                delivered.push((
                    format!("{{mode=\"{}\",qos=\"{qos}\"}}", mode.label()),
                    self.delivered[mode as usize][qos].value(),
                ));
            }
            delivered_bytes.push((
                format!("{{mode=\"{}\"}}", mode.label()),
                self.delivered_bytes[mode as usize].value(),
            ));
        }
        family(
            "mqtt_integration_events_delivered_total",
            "counter",
            "Events sent to subscribers.",
            &delivered,
        );
        family(
            "mqtt_integration_events_delivered_bytes_total",
            "counter",
            "Payload bytes of the events sent to subscribers.",
            &delivered_bytes,
        );
        family(
            "mqtt_integration_events_acked_total",
            "counter",
            "QoS 1 events acknowledged by subscribers.",
            &[unlabelled(self.acked.value())],
        );
        let commands: Vec<_> = CommandOutcome::ALL
            .iter()
            .map(|o| {
                (
                    format!("{{outcome=\"{}\"}}", o.label()),
                    self.commands[*o as usize].value(),
                )
            })
            .collect();
        family(
            "mqtt_integration_commands_total",
            "counter",
            "Commands published by clients, by outcome.",
            &commands,
        );
        family(
            "mqtt_integration_ingested_events_total",
            "counter",
            "Events accepted through HTTP ingest.",
            &[unlabelled(self.ingested.value())],
        );
        let lags: Vec<_> = self
            .group_lag
            .lock()
            .iter()
            .map(|(group, lag)| {
                (
                    format!("{{group=\"{}\"}}", escape_label(group)),
                    i128::from(*lag),
                )
            })
            .collect();
        family(
            "mqtt_integration_groups",
            "gauge",
            "Durable consumer groups known to this process (embedded: with members or idle within backend.group_retention; Kafka: open in this process).",
            &[unlabelled(self.groups.value())],
        );
        family(
            "mqtt_integration_group_lag",
            "gauge",
            "Events in the backend not yet committed by the consumer group.",
            &lags,
        );
        family(
            "mqtt_integration_bytes_sent_total",
            "counter",
            "Bytes written to client connections.",
            &[unlabelled(self.bytes_sent.value())],
        );
        family(
            "mqtt_integration_bytes_received_total",
            "counter",
            "Bytes read from client connections.",
            &[unlabelled(self.bytes_received.value())],
        );
        family(
            "mqtt_integration_records_skipped_total",
            "counter",
            "Backend records that were not valid events, or whose device or subject cannot form a topic (skipped for filter subscribers).",
            &[unlabelled(self.records_skipped.value())],
        );
        family(
            "mqtt_integration_queued_bytes",
            "gauge",
            "Bytes queued for sending to clients.",
            &[unlabelled(self.queued_bytes.value())],
        );
        family(
            "mqtt_integration_backend_consumers",
            "gauge",
            "Backend consumer clients open (Kafka: one per durable group, one per application for its ephemeral readers, one per ephemeral reader that could not keep up).",
            &[unlabelled(self.backend_consumers.value())],
        );
        let log_bytes: Vec<_> = self
            .log_bytes
            .lock()
            .iter()
            .map(|(app, bytes)| {
                (
                    format!("{{app=\"{}\"}}", escape_label(app)),
                    i128::from(*bytes),
                )
            })
            .collect();
        family(
            "mqtt_integration_log_bytes",
            "gauge",
            "Bytes of the embedded log's segment files on disk, by application (storage = \"disk\").",
            &log_bytes,
        );
        family(
            "mqtt_integration_log_segments",
            "gauge",
            "Segment files of the embedded log on disk.",
            &[unlabelled(self.log_segments.value())],
        );
        family(
            "mqtt_integration_log_recovery_truncations_total",
            "counter",
            "Segment files whose torn or damaged tail was cut off when the embedded log was opened.",
            &[unlabelled(self.log_recovery_truncations.value())],
        );
        LOG_FSYNC.render(
            &mut out,
            "mqtt_integration_log_fsync_seconds",
            "Time of one fdatasync of the embedded log on disk.",
        );
        out
    }
}

/// fdatasyncs of the on-disk log, timed where they happen (the store knows no [`Metrics`]):
/// process-wide, like the log itself.
static LOG_FSYNC: Histogram = Histogram::new();

/// Counts one fdatasync of the embedded log that took `took`.
pub fn observe_log_fsync(took: std::time::Duration) {
    LOG_FSYNC.observe(took);
}

/// A histogram with fixed buckets, in seconds.
struct Histogram {
    /// Observations at or below each bound of [`Histogram::BOUNDS`].
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const BOUNDS: [f64; 12] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ];

    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; 12],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = Self::BOUNDS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in Self::BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

fn unlabelled(value: i128) -> (String, i128) {
    (String::new(), value)
}

/// Label value escaping of the text format: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A monotonic counter on its own cache line, so that hot counters bumped by different shard
/// threads do not slow each other down by sharing one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    fn value(&self) -> i128 {
        i128::from(self.0.load(Relaxed))
    }
}

/// A gauge that goes up and down.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Gauge(AtomicI64);

impl Gauge {
    const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Relaxed);
    }

    fn value(&self) -> i128 {
        i128::from(self.0.load(Relaxed))
    }
}

impl Protocol {
    /// In discriminant order, which indexes the per-protocol arrays.
    pub const ALL: [Protocol; 4] = [Protocol::Mqtt, Protocol::Mqtts, Protocol::Ws, Protocol::Wss];

    pub fn label(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Mqtts => "mqtts",
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
        }
    }
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Structured, Mode::Binary];

    pub fn label(self) -> &'static str {
        match self {
            Mode::Structured => "structured",
            Mode::Binary => "binary",
        }
    }
}

impl CommandOutcome {
    pub const ALL: [CommandOutcome; 5] = [
        CommandOutcome::Accepted,
        CommandOutcome::Unauthorized,
        CommandOutcome::InvalidTopic,
        CommandOutcome::BackendError,
        CommandOutcome::Dropped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CommandOutcome::Accepted => "accepted",
            CommandOutcome::Unauthorized => "unauthorized",
            CommandOutcome::InvalidTopic => "invalid_topic",
            CommandOutcome::BackendError => "backend_error",
            CommandOutcome::Dropped => "dropped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The sample lines of `name` (with labels), as `"name{labels} value"`.
    fn samples(text: &str, name: &str) -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .map(str::to_owned)
            .collect()
    }

    fn assert_family(text: &str, name: &str, kind: &str) {
        assert!(text.contains(&format!("# HELP {name} ")), "HELP of {name}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "TYPE of {name}"
        );
    }

    #[test]
    fn every_family_has_help_and_type() {
        let text = Metrics::new().render();
        for (name, kind) in [
            ("mqtt_integration_connections", "gauge"),
            ("mqtt_integration_subscriptions", "gauge"),
            ("mqtt_integration_events_delivered_total", "counter"),
            ("mqtt_integration_events_delivered_bytes_total", "counter"),
            ("mqtt_integration_events_acked_total", "counter"),
            ("mqtt_integration_commands_total", "counter"),
            ("mqtt_integration_ingested_events_total", "counter"),
            ("mqtt_integration_groups", "gauge"),
            ("mqtt_integration_group_lag", "gauge"),
            ("mqtt_integration_bytes_sent_total", "counter"),
            ("mqtt_integration_bytes_received_total", "counter"),
            ("mqtt_integration_records_skipped_total", "counter"),
            ("mqtt_integration_queued_bytes", "gauge"),
            ("mqtt_integration_backend_consumers", "gauge"),
        ] {
            assert_family(&text, name, kind);
        }
    }

    #[test]
    fn connections_by_protocol() {
        let m = Metrics::new();
        m.connection_opened(Protocol::Mqtt);
        m.connection_opened(Protocol::Mqtt);
        m.connection_opened(Protocol::Wss);
        m.connection_closed(Protocol::Mqtt);
        assert_eq!(
            samples(&m.render(), "mqtt_integration_connections"),
            [
                "mqtt_integration_connections{protocol=\"mqtt\"} 1",
                "mqtt_integration_connections{protocol=\"mqtts\"} 0",
                "mqtt_integration_connections{protocol=\"ws\"} 0",
                "mqtt_integration_connections{protocol=\"wss\"} 1",
            ]
        );
    }

    #[test]
    fn delivered_by_mode_and_qos() {
        let m = Metrics::new();
        m.delivered(Mode::Structured, 0, 100);
        m.delivered(Mode::Structured, 1, 10);
        m.delivered(Mode::Binary, 2, 5);
        let text = m.render();
        assert_eq!(
            samples(&text, "mqtt_integration_events_delivered_total"),
            [
                "mqtt_integration_events_delivered_total{mode=\"structured\",qos=\"0\"} 1",
                "mqtt_integration_events_delivered_total{mode=\"structured\",qos=\"1\"} 1",
                "mqtt_integration_events_delivered_total{mode=\"binary\",qos=\"0\"} 0",
                "mqtt_integration_events_delivered_total{mode=\"binary\",qos=\"1\"} 1",
            ]
        );
        assert_eq!(
            samples(&text, "mqtt_integration_events_delivered_bytes_total"),
            [
                "mqtt_integration_events_delivered_bytes_total{mode=\"structured\"} 110",
                "mqtt_integration_events_delivered_bytes_total{mode=\"binary\"} 5",
            ]
        );
    }

    #[test]
    fn commands_by_outcome() {
        let m = Metrics::new();
        m.command(CommandOutcome::Accepted);
        m.command(CommandOutcome::Accepted);
        m.command(CommandOutcome::Dropped);
        assert_eq!(
            samples(&m.render(), "mqtt_integration_commands_total"),
            [
                "mqtt_integration_commands_total{outcome=\"accepted\"} 2",
                "mqtt_integration_commands_total{outcome=\"unauthorized\"} 0",
                "mqtt_integration_commands_total{outcome=\"invalid_topic\"} 0",
                "mqtt_integration_commands_total{outcome=\"backend_error\"} 0",
                "mqtt_integration_commands_total{outcome=\"dropped\"} 1",
            ]
        );
    }

    #[test]
    fn unlabelled_counters_and_gauges() {
        let m = Metrics::new();
        m.add_subscriptions(3);
        m.add_subscriptions(-1);
        m.acked(7);
        m.ingested(4);
        m.bytes_sent(1000);
        m.bytes_received(20);
        m.record_skipped();
        m.add_queued_bytes(500);
        m.add_queued_bytes(-200);
        let text = m.render();
        for (name, value) in [
            ("mqtt_integration_subscriptions", 2),
            ("mqtt_integration_events_acked_total", 7),
            ("mqtt_integration_ingested_events_total", 4),
            ("mqtt_integration_bytes_sent_total", 1000),
            ("mqtt_integration_bytes_received_total", 20),
            ("mqtt_integration_records_skipped_total", 1),
            ("mqtt_integration_queued_bytes", 300),
        ] {
            assert_eq!(samples(&text, name), [format!("{name} {value}")]);
        }
    }

    #[test]
    fn group_lag_by_group_with_escaping() {
        let m = Metrics::new();
        m.set_group_lag("demo.client", 5);
        m.set_group_lag("demo.client", 3);
        m.set_group_lag("odd\"group\\\n", 1);
        m.set_group_lag("gone", 9);
        m.remove_group("gone");
        assert_eq!(
            samples(&m.render(), "mqtt_integration_group_lag"),
            [
                "mqtt_integration_group_lag{group=\"demo.client\"} 3",
                "mqtt_integration_group_lag{group=\"odd\\\"group\\\\\\n\"} 1",
            ]
        );
    }

    #[test]
    fn shared_across_threads() {
        static GLOBAL: Metrics = Metrics::new();
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        m.delivered(Mode::Binary, 0, 1);
                        GLOBAL.acked(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(m
            .render()
            .contains("mqtt_integration_events_delivered_total{mode=\"binary\",qos=\"0\"} 4000\n"));
        assert!(GLOBAL
            .render()
            .contains("mqtt_integration_events_acked_total 4000\n"));
    }
}

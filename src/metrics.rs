//! Service metrics: a fixed set of atomic counters and gauges, rendered in the Prometheus text
//! format for `GET /metrics` (spec 5).
//!
//! Every family is known up front, so counting an event is one or two relaxed atomic adds: no
//! lock, no allocation, no label lookup. Only consumer-group lag has open-ended label values;
//! backend threads set it once per batch, so a small mutex-protected map is cheap enough there.
//!
//! Owns: the counters, gauges and their Prometheus rendering. Must not touch: sockets, sessions,
//! backends' internals or configuration; callers count, this module only stores and renders.

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
#[derive(Debug)]
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
    /// 1 while `/readyz` would answer 200 (set by whoever renders, see [`Metrics::set_ready`]).
    ready: Gauge,
    /// `server.max_connections`, so that alerts and the status page can compare against it.
    max_connections: Gauge,
    /// HTTP answers by status code (index `code - 100`); plain atomics, 4 KiB in all.
    http_responses: [AtomicU64; HTTP_CODES],
    collector: Collector,
}

/// Status codes 100 to 599.
const HTTP_CODES: usize = 500;

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
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
            ready: Gauge::new(),
            max_connections: Gauge::new(),
            http_responses: [const { AtomicU64::new(0) }; HTTP_CODES],
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

    /// Whether the service is ready (what `/readyz` reports), for `mqtt_integration_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.0.store(i64::from(ready), Relaxed);
    }

    /// Sets the configured connection limit (`server.max_connections`).
    pub fn set_max_connections(&self, n: u64) {
        self.max_connections
            .0
            .store(i64::try_from(n).unwrap_or(i64::MAX), Relaxed);
    }

    /// One HTTP answer with `status` (codes outside 100..=599 are not counted).
    pub fn http_response(&self, status: u16) {
        if let Some(slot) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| self.http_responses.get(i))
        {
            slot.fetch_add(1, Relaxed);
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
        family(
            "mqtt_integration_ready",
            "gauge",
            "1 while the service is ready (/readyz answers 200: listeners bound, backend reachable), else 0.",
            &[unlabelled(self.ready.value())],
        );
        family(
            "mqtt_integration_max_connections",
            "gauge",
            "The configured limit of open client connections (server.max_connections).",
            &[unlabelled(self.max_connections.value())],
        );
        let responses: Vec<_> = self
            .http_responses()
            .map(|(code, n)| (format!("{{code=\"{code}\"}}"), i128::from(n)))
            .collect();
        family(
            "mqtt_integration_http_responses_total",
            "counter",
            "HTTP requests answered by the routes, by status code (only codes answered so far).",
            &responses,
        );
        render_process(&mut out);
        out
    }

    /// The current figures, for the status page: the same counters `render` prints, read
    /// once (after the collector refreshed what lives elsewhere).
    pub fn snapshot(&self) -> Snapshot {
        if let Some(collect) = self.collector.0.get() {
            collect(self);
        }
        let sum = |counters: &[Counter]| counters.iter().map(|c| c.0.load(Relaxed)).sum::<u64>();
        Snapshot {
            connections: Protocol::ALL.map(|p| (p, self.connections[p as usize].0.load(Relaxed))),
            max_connections: self.max_connections.0.load(Relaxed),
            subscriptions: self.subscriptions.0.load(Relaxed),
            events_in: self.ingested.0.load(Relaxed),
            events_out: self.delivered.iter().map(|by_qos| sum(by_qos)).sum(),
            events_acked: self.acked.0.load(Relaxed),
            records_skipped: self.records_skipped.0.load(Relaxed),
            groups: self.groups.0.load(Relaxed),
            group_lag: self
                .group_lag
                .lock()
                .iter()
                .map(|(g, lag)| (g.clone(), *lag))
                .collect(),
            backend_consumers: self.backend_consumers.0.load(Relaxed),
        }
    }

    /// `(code, count)` of every status code answered at least once, in code order.
    fn http_responses(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.http_responses
            .iter()
            .enumerate()
            .map(|(i, n)| (i + 100, n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
    }
}

/// A reading of the figures the status page shows (see [`Metrics::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub connections: [(Protocol, i64); Protocol::ALL.len()],
    pub max_connections: i64,
    pub subscriptions: i64,
    /// Events accepted through HTTP ingest (`mqtt_integration_ingested_events_total`).
    pub events_in: u64,
    /// Events sent to subscribers, every mode and QoS (`…_events_delivered_total` summed).
    pub events_out: u64,
    pub events_acked: u64,
    pub records_skipped: u64,
    pub groups: i64,
    pub group_lag: Vec<(String, i64)>,
    pub backend_consumers: i64,
}

/// The process's CPU time and resident memory under the usual client-library names, read from
/// `/proc/self` (Linux; elsewhere the two families are left out).
fn render_process(out: &mut String) {
    // utime and stime (fields 14 and 15) count USER_HZ ticks, which Linux fixes at 100 for
    // `/proc` whatever the kernel's own tick rate. The command name (field 2) may hold spaces:
    // count fields after its closing parenthesis.
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace().skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        });
    let rss_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
            kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
        .map(|kb| kb * 1024);
    if let Some(seconds) = cpu_seconds {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {seconds}");
    }
    if let Some(bytes) = rss_bytes {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        );
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {bytes}");
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
            ("mqtt_integration_max_connections", "gauge"),
            ("mqtt_integration_ready", "gauge"),
            ("mqtt_integration_http_responses_total", "counter"),
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
    #[cfg(target_os = "linux")]
    fn process_cpu_and_memory() {
        let text = Metrics::new().render();
        assert_family(&text, "process_cpu_seconds_total", "counter");
        assert_family(&text, "process_resident_memory_bytes", "gauge");
        let rss = &samples(&text, "process_resident_memory_bytes")[0];
        let bytes: u64 = rss.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(bytes > 1024 * 1024, "{rss}");
    }

    #[test]
    fn http_responses_by_code_only_those_seen() {
        let m = Metrics::new();
        m.http_response(200);
        m.http_response(200);
        m.http_response(401);
        m.http_response(99);
        m.http_response(600);
        assert_eq!(
            samples(&m.render(), "mqtt_integration_http_responses_total"),
            [
                "mqtt_integration_http_responses_total{code=\"200\"} 2",
                "mqtt_integration_http_responses_total{code=\"401\"} 1",
            ]
        );
    }

    #[test]
    fn snapshot_reads_the_rendered_counters() {
        let m = Metrics::new();
        m.set_max_connections(100);
        m.connection_opened(Protocol::Ws);
        m.add_subscriptions(2);
        m.ingested(5);
        m.delivered(Mode::Structured, 0, 1);
        m.delivered(Mode::Binary, 1, 1);
        m.set_group_lag("demo.a", 4);
        let s = m.snapshot();
        assert_eq!(s.connections[Protocol::Ws as usize], (Protocol::Ws, 1));
        assert_eq!(s.max_connections, 100);
        assert_eq!((s.subscriptions, s.events_in, s.events_out), (2, 5, 2));
        assert_eq!(s.group_lag, [("demo.a".to_owned(), 4)]);
        assert!(m
            .render()
            .contains("mqtt_integration_max_connections 100\n"));
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

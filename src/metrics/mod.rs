//! Service metrics: a fixed set of atomic counters and gauges, rendered in the Prometheus text
//! format for `GET /metrics` (spec 5).
//!
//! Every family is known up front, so counting an event is one or two relaxed atomic adds: no
//! lock, no allocation, no label lookup. Only consumer-group lag has open-ended label values;
//! backend threads set it once per batch, so a small mutex-protected map is cheap enough there.
//!
//! Owns: the counters, gauges and their Prometheus rendering. Must not touch: sockets, sessions,
//! backends' internals or configuration; callers count, this module only stores and renders.

mod atomics;
mod render;

pub use atomics::observe_log_fsync;
use atomics::{Counter, Gauge};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Commands dropped because no device asked for them within `command_ttl`.
    commands_expired: Counter,
    /// Reloads (SIGHUP) by outcome: `[ok, failed]`.
    config_reloads: [Counter; 2],
    /// When the configuration in force was loaded, in seconds since the Unix epoch.
    config_loaded: Gauge,
    /// HTTP answers by status code (index `code - 100`); plain atomics, 4 KiB in all.
    http_responses: [AtomicU64; HTTP_CODES],
    /// The embedded log on disk (issue #14): bytes of segments per application.
    log_bytes: Mutex<BTreeMap<String, i64>>,
    log_segments: Gauge,
    log_recovery_truncations: Counter,
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
            commands_expired: Counter::new(),
            config_reloads: [Counter::new(), Counter::new()],
            config_loaded: Gauge::new(),
            http_responses: [const { AtomicU64::new(0) }; HTTP_CODES],
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
    /// Raises the count of commands dropped unclaimed to `total` (the inbox's own count).
    pub fn raise_commands_expired(&self, total: u64) {
        let now = self.commands_expired.0.load(Relaxed);
        if total > now {
            self.commands_expired.add(total - now);
        }
    }

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

    /// Counts a reload of the configuration file (SIGHUP), applied or refused.
    pub fn config_reloaded(&self, ok: bool) {
        self.config_reloads[usize::from(!ok)].add(1);
    }

    /// Records when the configuration now in force was loaded (at start, and by each reload).
    pub fn set_config_loaded(&self, at: std::time::SystemTime) {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.config_loaded.0.store(secs as i64, Relaxed);
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
mod tests;

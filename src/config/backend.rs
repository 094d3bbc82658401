//! `[backend]`: the event log that holds device events and commands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::server::resolve_threads;

config_names! {
    /// Which event log to use.
    #[derive(Default)]
    pub enum BackendKind {
        /// In-process partitioned log: one machine, tests and benchmarks.
        #[default]
        Embedded = "embedded",
        /// Apache Kafka through librdkafka: production.
        Kafka = "kafka",
    }
}

/// `backend.group_retention` by default: Kafka's own `offsets.retention.minutes` default.
pub const DEFAULT_GROUP_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// `[backend]`. Both sub-sections are always present (with defaults); only the one named by
/// `kind` is used, so switching backends is a one-line change.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// `embedded` or `kafka`. Use `kafka` when events must survive the process or come from
    /// other services.
    pub kind: BackendKind,
    /// Settings of the embedded log.
    pub embedded: EmbeddedConfig,
    /// Settings of the Kafka backend.
    pub kafka: KafkaConfig,
    /// A durable consumer group with no member for this long is forgotten, offsets and owner
    /// (issue #17: every client id and `$share` name leaves a group behind). Embedded: by the
    /// service; Kafka: by the brokers' `offsets.retention.minutes`, which this does not change
    /// (the service only forgets what it holds in memory about the group).
    #[serde(with = "humantime_serde")]
    pub group_retention: Duration,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            kind: BackendKind::default(),
            embedded: EmbeddedConfig::default(),
            kafka: KafkaConfig::default(),
            group_retention: DEFAULT_GROUP_RETENTION,
        }
    }
}

/// `[backend.embedded]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Partitions per application log; events of one device stay in one partition. More
    /// partitions let more shared subscribers of one group work in parallel. At least 1.
    pub partitions: u32,
    /// Events kept per application log before the oldest are dropped. Raise it to let
    /// subscribers fall further behind without losing events. In memory only: on disk,
    /// retention is by bytes and age.
    pub retention_events: u64,
    /// Memory kept per application log before the oldest events are dropped: each retained
    /// event counts its estimated footprint (`Record::footprint`), so this bounds memory. On
    /// disk: bytes of segment files per application, deleted by whole segments.
    pub retention_bytes: u64,
    /// Threads that read the log for consumer groups; 0 = one per core.
    pub consumer_threads: usize,
    /// Where the log lives: `disk` (a segment log per partition under `dir`, issue #14) or
    /// `memory` (lost on exit).
    pub storage: Storage,
    /// Directory of the on-disk log (`storage = "disk"`): `dir/<app>/<partition>/`.
    pub dir: PathBuf,
    /// When appended events reach the disk (`storage = "disk"`).
    pub fsync: Fsync,
    /// With `fsync = "interval"`: the longest time between two fdatasyncs of a partition.
    #[serde(with = "humantime_serde")]
    pub fsync_interval: Duration,
    /// With `storage = "disk"`: events older than this are dropped (by whole segments).
    #[serde(with = "humantime_serde")]
    pub retention_age: Duration,
    /// With `storage = "disk"`: committed offsets reach `dir/offsets` at most this long after
    /// they change (a crash delivers again at most this much of what was acknowledged).
    #[serde(with = "humantime_serde")]
    pub offsets_flush_interval: Duration,
    /// A command for a device that is not waiting for one over HTTP is kept this long for it
    /// to ask, then dropped (and counted): devices that poll every N seconds need N here.
    #[serde(with = "humantime_serde")]
    pub command_ttl: Duration,
    /// With `storage = "disk"`: bytes of decoded recent events kept in memory for the whole
    /// log (estimated like `retention_bytes` in memory), split evenly over every partition of
    /// every application, so that groups reading near the end share one decode of each event
    /// instead of each reading it from the files. 0 turns it off.
    pub read_cache_bytes: u64,
}

/// `backend.embedded.storage`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// In memory: events and offsets are lost when the process ends (tests, benchmarks).
    Memory,
    /// A segment log per partition on disk, with the committed offsets beside it.
    #[default]
    Disk,
}

/// `backend.embedded.fsync`: when an appended event is on the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before the `202` / PUBACK (group commit): survives a power loss.
    #[default]
    Always,
    /// At most `fsync_interval` after the append: a power loss loses the last interval.
    Interval,
    /// When the OS writes back: a process crash loses nothing, a power loss may.
    Never,
}

/// `backend.embedded.fsync_interval` by default.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(200);
/// `backend.embedded.retention_age` by default: 7 days.
pub const DEFAULT_RETENTION_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// `backend.embedded.command_ttl` by default.
pub const DEFAULT_COMMAND_TTL: Duration = Duration::from_secs(30);
/// `backend.embedded.read_cache_bytes` by default: 128 MiB (fan-out 1 → 10 at about 0.9× memory
/// in the rig; 32 MiB measured 0.5–0.9×, see docs/performance.md).
pub const DEFAULT_READ_CACHE_BYTES: u64 = 128 << 20;
/// `backend.embedded.offsets_flush_interval` by default.
pub const DEFAULT_OFFSETS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            partitions: 4,
            retention_events: 1_000_000,
            retention_bytes: 1024 * 1024 * 1024,
            consumer_threads: 0,
            storage: Storage::default(),
            dir: PathBuf::from("data"),
            fsync: Fsync::default(),
            fsync_interval: DEFAULT_FSYNC_INTERVAL,
            retention_age: DEFAULT_RETENTION_AGE,
            offsets_flush_interval: DEFAULT_OFFSETS_FLUSH_INTERVAL,
            command_ttl: DEFAULT_COMMAND_TTL,
            read_cache_bytes: DEFAULT_READ_CACHE_BYTES,
        }
    }
}

impl EmbeddedConfig {
    /// The number of consumer threads to start: `consumer_threads`, or one per core when 0.
    pub fn consumer_thread_count(&self) -> usize {
        resolve_threads(self.consumer_threads)
    }
}

/// `[backend.kafka]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of Kafka brokers to bootstrap from.
    pub bootstrap_servers: String,
    /// Topic commands are written to (key `<app>/<device>`). Change it to match the topic your
    /// command consumers read.
    pub command_topic: String,
    /// Extra librdkafka settings, passed as is (`security.protocol`, `sasl.*`,
    /// `fetch.wait.max.ms`, …). Use it for authentication and tuning.
    pub properties: BTreeMap<String, String>,
    /// Create missing event and command topics at start-up. Leave it off where topics are
    /// provisioned by an operator.
    pub create_topics: bool,
    /// Worker threads that own consumer groups (each group has one librdkafka consumer);
    /// 0 = one per core. Raise it when many groups are created at once (a new group's first
    /// join takes a few round trips on its worker).
    pub consumer_threads: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            command_topic: "iot-commands".to_owned(),
            properties: BTreeMap::new(),
            create_topics: false,
            consumer_threads: 0,
        }
    }
}

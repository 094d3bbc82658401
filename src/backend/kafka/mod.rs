//! The Apache Kafka backend (spec 4, `backend.kind = "kafka"`), through librdkafka (rdkafka).
//!
//! How it fits together:
//! - [`KafkaProducer`] (`producer`): the seam's writing side; completions run from delivery
//!   reports. A background thread keeps `ready()` current.
//! - Worker threads (`worker`), like the embedded ones, own the consumer groups that hash to
//!   them. Each group (`group`) has ONE librdkafka consumer in this process, whatever the number
//!   of its members (connections): Kafka assigns partitions to the process, the group spreads
//!   them over its local members. The ephemeral readers (empty client id) of an application
//!   share one consumer without a group id, assigned at the end offsets (`tail`); one that
//!   falls behind gets a consumer of its own until it has caught up.
//! - Rebalances, commit results and lag statistics arrive through the consumer's context
//!   (`context`). Records are decoded by `codec` (CloudEvents Kafka binding); binary-mode data
//!   is a zero-copy view of the librdkafka message (`payload`, the crate's only `unsafe`).
//! - Retired consumers go to a reaper thread: it makes a group's last commit (synchronous, so
//!   not on a worker), leaves the Kafka group, and drops the consumer once none of its records
//!   is alive.
//! - Topic names: `topic`.
//! - A durable group's owner (`crate::seam::Owner`) travels as the metadata of every offset
//!   commit (`context::GroupContext::tag`) and is read back when a group is opened (`worker`), so
//!   processes sharing a broker agree on it; it expires with the offsets.

mod bell;
mod clients;
pub mod codec;
pub(crate) mod command_reader;
mod context;
mod group;
mod open;
mod payload;
mod producer;
mod reaper;
mod tail;
pub mod topic;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

pub use codec::{encode_headers, DecodeError};
pub use producer::KafkaProducer;
pub use topic::events_topic;

use crate::backend::Backend;
use crate::config::KafkaConfig;
use crate::seam::ToBackend;

/// Counters of the Kafka backend, for metrics and tests.
#[derive(Default)]
pub struct KafkaStats {
    /// Records that were not valid CloudEvents (skipped, logged).
    pub skipped: AtomicU64,
    /// Records whose data reached the service as a view of the librdkafka message (no copy).
    pub zero_copy: AtomicU64,
    /// Lag (high watermark − committed offset, summed over partitions) per durable group, from
    /// librdkafka statistics (every 5 s).
    pub lags: Mutex<HashMap<String, i64>>,
    /// librdkafka consumers alive (retired ones until the reaper destroys them).
    pub consumers: AtomicI64,
    /// Durable groups open in this process (`mqtt_integration_groups`).
    pub groups: AtomicI64,
}

/// Why the Kafka backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("kafka backend: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka backend: cannot start a thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// Starts the Kafka backend with `threads` consumer workers (0 = available parallelism).
/// With `create_topics`, the events topics of `apps` and the command topic are created now
/// (those of other applications when a group first reads them).
pub fn start<I, S>(
    config: &KafkaConfig,
    apps: I,
    threads: usize,
    group_retention: std::time::Duration,
) -> Result<(Backend, Arc<KafkaStats>), StartError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let config = Arc::new(config.clone());
    if config.create_topics {
        let mut topics: Vec<String> = apps.into_iter().map(|a| events_topic(a.as_ref())).collect();
        topics.push(config.command_topic.clone());
        for t in topics {
            if let Err(e) = clients::create_topic(&config, &t) {
                tracing::warn!(topic = %t, error = %e, "cannot create topic at start-up");
            }
        }
    }
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(usize::from(u16::MAX));
    let stats = Arc::new(KafkaStats::default());
    let producer = Arc::new(KafkaProducer::new(&config)?);
    let (reaper_tx, reaper_rx) = crossbeam_channel::unbounded();
    let mut handles = vec![std::thread::Builder::new()
        .name("kafka-reaper".into())
        .spawn(move || reaper::reaper(reaper_rx))?];
    let mut senders: Vec<Sender<ToBackend>> = Vec::with_capacity(threads);
    for id in 0..threads {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (opened_tx, opened_rx) = crossbeam_channel::unbounded();
        let w = worker::Worker {
            id: id as u16,
            rx,
            setup: open::ConsumerSetup {
                config: config.clone(),
                stats: stats.clone(),
                bell: Arc::new(bell::Bell::new(tx.clone())),
            },
            reaper: reaper_tx.clone(),
            groups: Default::default(),
            epochs: Default::default(),
            outbox: Default::default(),
            next_commit: std::time::Instant::now(),
            opening: HashMap::new(),
            open_queue: Default::default(),
            opened_tx,
            opened_rx,
            handed_out: HashMap::new(),
            group_retention,
            tails: HashMap::new(),
            tail_opening: HashMap::new(),
        };
        match std::thread::Builder::new()
            .name(format!("kafka-worker-{id}"))
            .spawn(move || w.run())
        {
            Ok(h) => handles.push(h),
            Err(e) => {
                let (t, _r) = crossbeam_channel::unbounded();
                for s in &senders {
                    let _ = s.send(ToBackend::Shutdown(t.clone()));
                }
                return Err(e.into());
            }
        }
        senders.push(tx);
    }
    Ok((
        Backend::new(producer, senders, handles).ephemeral_readers_by_app(),
        stats,
    ))
}

//! The librdkafka context of one group's consumer: rebalance callbacks, commit results,
//! statistics (lag), and the doorbell that wakes the owning worker.
//!
//! Callbacks run on the worker thread, inside `poll`. On revoke, the acknowledged prefix of the
//! revoked partitions is committed synchronously (the positions are mirrored here by the group
//! before each poll), then the revoke is queued for the group, which drops the in-flight state
//! of those partitions: nothing past the acknowledged prefix is ever committed, and acks of the
//! old owner are ignored (new epoch when the partition comes back).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaStats;
use crate::seam::Owner;

pub(crate) enum RebalanceEvent {
    Assign(Vec<i32>),
    Revoke(Vec<i32>),
}

#[derive(Default)]
pub(crate) struct Shared {
    pub events: Vec<RebalanceEvent>,
    /// Per partition: the offset up to which everything is acknowledged (next to read).
    pub acked: HashMap<i32, i64>,
}

pub(crate) struct GroupContext {
    /// Durable group name; None for an ephemeral reader (no metrics, no commits).
    pub name: Option<Arc<str>>,
    pub topic: Arc<str>,
    pub shared: Mutex<Shared>,
    /// Set when an asynchronous commit failed: the group commits everything again.
    pub commit_failed: AtomicBool,
    pub stats: Arc<KafkaStats>,
    /// A durable group's owner (issue #17), set once the group is open. Every commit carries it
    /// as the offsets' metadata ([`GroupContext::tag`]), so that any process reads it back.
    pub owner: std::sync::OnceLock<Owner>,
}

impl GroupContext {
    /// A consumer's context; counted in [`KafkaStats::consumers`] for as long as it lives (the
    /// consumer owns it).
    pub(crate) fn new(name: Option<Arc<str>>, topic: Arc<str>, stats: Arc<KafkaStats>) -> Self {
        stats.consumers.fetch_add(1, Ordering::Relaxed);
        GroupContext {
            name,
            topic,
            shared: Default::default(),
            commit_failed: AtomicBool::new(false),
            stats,
            owner: std::sync::OnceLock::new(),
        }
    }

    /// Writes the owner record into every offset of `tpl` about to be committed: Kafka keeps
    /// one metadata string per committed offset, so a commit without it would erase it.
    pub(crate) fn tag(&self, tpl: &TopicPartitionList) {
        if let Some(owner) = self.owner.get() {
            tag(tpl, &owner.encode());
        }
    }
}

/// Sets `metadata` on every element of `tpl`.
pub(crate) fn tag(tpl: &TopicPartitionList, metadata: &str) {
    for mut e in tpl.elements() {
        e.set_metadata(metadata);
    }
}

impl Drop for GroupContext {
    fn drop(&mut self) {
        self.stats.consumers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: Statistics) {
        let Some(name) = &self.name else {
            return;
        };
        let lag: i64 = statistics
            .topics
            .get(&*self.topic)
            .map(|t| {
                t.partitions
                    .values()
                    .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                    .map(|p| p.consumer_lag)
                    .sum()
            })
            .unwrap_or(0);
        self.stats.lags.lock().insert(name.to_string(), lag);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let mut shared = self.shared.lock();
        if !consumer.assignment_lost() {
            let mut commit = TopicPartitionList::new();
            for p in &revoked {
                if let Some(&at) = shared.acked.get(p) {
                    let _ = commit.add_partition_offset(&self.topic, *p, Offset::Offset(at));
                }
            }
            if commit.count() > 0 {
                self.tag(&commit);
                if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                    tracing::warn!(group = ?self.name, error = %e, "commit on revoke failed");
                }
            }
        }
        for p in &revoked {
            shared.acked.remove(p);
        }
        tracing::info!(group = ?self.name, topic = %self.topic, partitions = ?revoked, "partitions revoked");
        shared.events.push(RebalanceEvent::Revoke(revoked));
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(group = ?self.name, topic = %self.topic, partitions = ?assigned, "partitions assigned");
                self.shared
                    .lock()
                    .events
                    .push(RebalanceEvent::Assign(assigned));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(group = ?self.name, error = %e, "rebalance error")
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(group = ?self.name, error = %e, "offset commit failed; will retry");
            self.commit_failed.store(true, Ordering::Release);
        }
    }
}

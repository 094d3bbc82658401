//! The seam: the contract between shards and event backends.
//!
//! Owns the types both sides speak and nothing else: connection identity ([`ConnId`]), the
//! messages each way ([`ToShard`], [`ToBackend`], with [`Join`], [`Delivery`], [`AckToken`]),
//! the producing side ([`Producer`], [`Completion`], [`BackendError`]), per-connection byte
//! credit ([`ConnFlow`]), consumer group names ([`GroupKey`]) and owners ([`Owner`], [`Claim`]),
//! a member's filters ([`MemberFilter`]) and the shared [`Record`].
//!
//! Must not touch: sockets, threads, MQTT sessions or any backend's internals. The session,
//! the shards, HTTP and the backends all import this module; it imports none of them (only the
//! codec's `protocol`, `cloudevents` and `registry::Identity`), so it stays at the bottom of the
//! import graph.
//!
//! Shards (the MQTT event loops) and backends talk only through messages:
//! - shard → backend: [`ToBackend`] (join/leave a consumer group, acknowledgements, resume),
//!   sent to the backend *worker* thread that owns the group;
//! - backend → shard: [`ToShard`] (subscription results, batches of [`Delivery`], command results),
//!   sent on the shard's channel and followed by one [`Notify::notify`] per batch.
//!
//! The seam is shaped for Kafka's realities even though the embedded log is simpler: a group's
//! start position is fixed before the join is answered (so SUBACK comes after it), partitions can
//! move between members (rebalances: deliveries carry an epoch, stale acks are ignored), a group can
//! be paused and resumed (per-connection byte credit in [`ConnFlow`]), and commits are asynchronous
//! (acks are batched back to the worker, which commits the contiguous acknowledged prefix).
//!
//! Producing (HTTP ingest, MQTT commands) goes through [`Producer`], which completes
//! asynchronously once the backend has durably accepted the event.
//!
//! A durable group has an [`Owner`] (its kind and the identity that created it); every
//! [`Join`] carries a [`Claim`] that both backends check with the one rule in `owner`, and a
//! refusal is [`BackendError::NotOwner`] (issue #17).

mod filter;
mod flow;
mod group_id;
// `pub(crate)`: the backends' workers call `member::route` (routing a record through a member's
// filters is pure and written against these types).
pub(crate) mod member;
mod messages;
mod owner;
mod producer;
mod record;
mod start;

use std::sync::Arc;

use crossbeam_channel::Sender;

pub use filter::{AppAlias, AppTopics, MemberFilter, Mode, Selector};
pub use flow::ConnFlow;
pub use group_id::GroupKey;
pub use member::{route, route_scan, MemberFilters, Route};
pub use messages::{AckToken, Delivery, Join, ToBackend, ToShard};
pub use owner::{Claim, GroupKind, Owner};
pub use producer::{BackendError, BatchCompletion, Completion, Producer};
pub use record::{unroutable_records, Record};
pub use start::{parse_rfc3339, StartAt, START_FORMS};

/// Identifies one MQTT connection across the process: its shard, its slot there, and a
/// generation so that a reused slot never receives what was meant for its predecessor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub shard: u16,
    pub slot: u32,
    pub generation: u32,
}

/// Wakes a shard's event loop after messages were queued for it.
pub trait Notify: Send + Sync {
    fn notify(&self);
}

/// The way back from the backend to one shard.
#[derive(Clone)]
pub struct ShardLink {
    pub sender: Sender<ToShard>,
    pub notify: Arc<dyn Notify>,
}

impl ShardLink {
    /// Queues one message and wakes the shard. Batches should be sent as one message.
    pub fn send(&self, msg: ToShard) {
        // The shard only drops its receiver when it has stopped; nothing is left to deliver to.
        if self.sender.send(msg).is_ok() {
            self.notify.notify();
        }
    }
}

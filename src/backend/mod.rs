//! The event-backend seam.
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

pub mod embedded;
mod flow;
mod group_id;
pub mod kafka;
mod member;
mod owner;
mod record;

use std::sync::Arc;

use crossbeam_channel::Sender;

pub use flow::ConnFlow;
pub use group_id::GroupKey;
pub use member::{
    route, route_scan, AppAlias, AppTopics, MemberFilter, MemberFilters, Mode, Route, Selector,
};
pub use owner::{Claim, GroupKind, Owner};
pub use record::unroutable_records;
pub use record::Record;

use crate::cloudevents::Event;
use crate::protocol::QoS;

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

/// What a backend tells a shard.
pub enum ToShard {
    /// Answer to [`ToBackend::Join`]: the group's start position is fixed (or joining failed).
    Joined {
        conn: ConnId,
        member: u32,
        request: u64,
        result: Result<(), BackendError>,
    },
    /// Events for connections of this shard, in order per (connection, partition).
    Deliveries(Vec<Delivery>),
    /// A command or ingested event was durably accepted (or not).
    Produced {
        conn: ConnId,
        packet_id: u16,
        result: Result<(), BackendError>,
    },
}

/// What a shard tells a backend worker.
pub enum ToBackend {
    /// Add the member, or replace its filters if `(conn, group)` is already a member.
    /// Answered with [`ToShard::Joined`] once the start position is fixed.
    Join(Join),
    /// The member leaves the group (unsubscribe or disconnect). Unacknowledged events of its
    /// partitions will be delivered again to the next owner. `unsent` names the deliveries the
    /// session still held back (behind its QoS 1 window): they were never sent, so they must not
    /// count as redeliveries (DUP) next time.
    Leave {
        conn: ConnId,
        group: GroupKey,
        unsent: Vec<AckToken>,
    },
    /// Acknowledgements (QoS 1 PUBACKs) in the order they arrived.
    Acks(Vec<AckToken>),
    /// Some connection drained below its byte limit: paused groups may read again.
    Resume,
    /// New events were appended somewhere (embedded backend) or a timer is due.
    Wake,
    /// Commit what is acknowledged, answer on the channel, and stop.
    Shutdown(Sender<()>),
}

/// One membership request.
pub struct Join {
    pub conn: ConnId,
    /// Chosen by the session, echoed on every delivery so it can drop events of groups it left.
    pub member: u32,
    pub request: u64,
    pub app: Arc<str>,
    pub group: GroupKey,
    pub filters: Vec<MemberFilter>,
    pub flow: Arc<ConnFlow>,
    pub link: ShardLink,
    /// Who joins, checked against a durable group's [`Owner`] (ignored by ephemeral readers).
    pub claim: Claim,
}

/// One event for one connection.
pub struct Delivery {
    pub conn: ConnId,
    pub member: u32,
    pub record: Arc<Record>,
    /// A whole-application filter matched: the PUBLISH topic is that filter's own (`app/<a>`,
    /// `a/<a>`, `application/<a>`; the session has them for the member). Otherwise it is the
    /// record's concrete `app/<app>/<device>/<channel>` ([`Record::concrete_topic`], set by the
    /// routing).
    pub whole_app: Option<AppAlias>,
    pub qos: QoS,
    pub mode: Mode,
    pub subscription_ids: smallvec::SmallVec<[u32; 2]>,
    /// Set when this offset was handed out before (redelivery after reconnect or rebalance).
    pub dup: bool,
    /// Bytes charged to the connection's [`ConnFlow`]; released once written to the socket.
    pub cost: u32,
    /// Returned to the worker on PUBACK (QoS 1). QoS 0 deliveries are committed on dispatch.
    pub ack: AckToken,
}

impl Delivery {
    /// The PUBLISH topic, given `base` = [`AppTopics::base`] of this delivery's `whole_app`.
    pub fn topic<'a>(&'a self, base: &'a Arc<str>) -> &'a str {
        if self.whole_app.is_some() {
            // Not formatted (nor cached on the record) when nobody needs it.
            return base;
        }
        self.record.concrete_topic(base).map_or(&**base, |t| &**t)
    }
}

/// Names one dispatched offset for acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    pub worker: u16,
    pub group: u32,
    pub partition: u32,
    pub epoch: u32,
    pub offset: u64,
}

/// Why the backend could not do what was asked.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The backend cannot be reached or refused the request; retrying later may work.
    #[error("event backend unavailable: {0}")]
    Unavailable(String),
    /// The application has no event stream (e.g. its Kafka topic does not exist).
    #[error("no event stream for application `{0}`")]
    UnknownStream(String),
    /// A retention or size quota stops the write.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The durable group belongs to another identity or is of another kind (issue #17).
    #[error("not the group's owner: {0}")]
    NotOwner(String),
}

/// Called once when a produced event was durably accepted (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), BackendError>) + Send>;

/// Called once per event of a batch, with the event's position in the batch.
pub type BatchCompletion = Arc<dyn Fn(usize, Result<(), BackendError>) + Send + Sync>;

/// Writing side of a backend: ingest and commands.
pub trait Producer: Send + Sync {
    /// Appends a device event to the application's event stream.
    fn publish_event(&self, app: &str, event: Event, done: Completion);
    /// Appends `events` to the application's event stream in order; `done` is called once for
    /// each event handed over. Returns how many were handed over: when one fails at once, the
    /// rest would too, so the batch stops there.
    ///
    /// The default hands them over one by one. The embedded log overrides it to append the whole
    /// batch and then wake its readers once: waking them per event cost two thread wake-ups per
    /// event at low rates (~80 µs of CPU per event at 10,000 events/s in 10-event requests).
    fn publish_events(&self, app: &str, events: Vec<Event>, done: BatchCompletion) -> usize {
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handed = 0;
        for (index, event) in events.into_iter().enumerate() {
            let (done, failed_too) = (done.clone(), failed.clone());
            self.publish_event(
                app,
                event,
                Box::new(move |result| {
                    if result.is_err() {
                        failed_too.store(true, std::sync::atomic::Ordering::Release);
                    }
                    done(index, result);
                }),
            );
            handed += 1;
            if failed.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
        }
        handed
    }
    /// Appends a command for a device to the command stream.
    fn send_command(&self, app: &str, device: &str, event: Event, done: Completion);
    /// Whether the backend is reachable (for `/readyz`).
    fn ready(&self) -> bool;
}

/// A running backend: its producer and the worker threads that own consumer groups.
pub struct Backend {
    pub producer: Arc<dyn Producer>,
    workers: Vec<Sender<ToBackend>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ephemeral_by_app: bool,
}

impl Backend {
    pub fn new(
        producer: Arc<dyn Producer>,
        workers: Vec<Sender<ToBackend>>,
        threads: Vec<std::thread::JoinHandle<()>>,
    ) -> Backend {
        Backend {
            producer,
            workers,
            threads,
            ephemeral_by_app: false,
        }
    }

    /// Every ephemeral reader of an application goes to the same worker (which can then serve
    /// them through one consumer) instead of being spread by connection.
    pub fn ephemeral_readers_by_app(mut self) -> Backend {
        self.ephemeral_by_app = true;
        self
    }

    /// Handles for shards: cheap to clone, one per shard.
    pub fn handle(&self) -> BackendHandle {
        BackendHandle {
            workers: self.workers.clone().into(),
            ephemeral_by_app: self.ephemeral_by_app,
        }
    }

    /// Asks every worker to commit and stop, waiting at most `timeout` in all.
    pub fn shutdown(self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let (tx, rx) = crossbeam_channel::unbounded();
        for w in &self.workers {
            let _ = w.send(ToBackend::Shutdown(tx.clone()));
        }
        for _ in &self.workers {
            if rx.recv_deadline(deadline).is_err() {
                tracing::warn!("backend workers did not stop within the shutdown timeout");
                return;
            }
        }
        // Retired consumers are destroyed after the workers replied (the Kafka reaper), which
        // can block while a broker is unreachable: wait for them only until the deadline.
        for t in self.threads {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    thread = t.thread().name().unwrap_or("?"),
                    "a backend thread did not stop within the shutdown timeout; leaving it"
                );
            }
        }
    }
}

/// What a shard holds to reach the backend workers.
#[derive(Clone)]
pub struct BackendHandle {
    workers: Arc<[Sender<ToBackend>]>,
    ephemeral_by_app: bool,
}

impl BackendHandle {
    /// The worker that owns `group` (stable for the process lifetime).
    pub fn worker_of(&self, group: &GroupKey) -> u16 {
        let hash = match group {
            GroupKey::Ephemeral { app, .. } if self.ephemeral_by_app => {
                GroupKey::Durable(app.clone()).hash64()
            }
            _ => group.hash64(),
        };
        (hash % self.workers.len() as u64) as u16
    }

    pub fn send(&self, worker: u16, msg: ToBackend) {
        // A worker only stops at shutdown; then there is nobody left to tell.
        let _ = self.workers[worker as usize].send(msg);
    }

    pub fn broadcast(&self, mut make: impl FnMut() -> ToBackend) {
        for w in self.workers.iter() {
            let _ = w.send(make());
        }
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }
}

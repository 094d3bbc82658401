//! The consumer-group machinery both backends share: the at-least-once rules of spec 2.4,
//! written once.
//!
//! A worker thread owns consumer groups. A group ([`Group`]) has members (connections, sorted
//! by [`ConnId`](crate::seam::ConnId)), partitions spread over them round robin, and per
//! partition a [`Cursor`]: where the group reads, what it committed (the contiguous
//! acknowledged prefix), what is in flight and under which epoch. Records reach a member through
//! [`Cursor::offer`], which routes them through its filters, charges its connection's credit and queues
//! a [`Delivery`](crate::seam::Delivery) in the worker's [`Outbox`] (one batch per shard and
//! pass). The worker loop ([`worker::run`]) drains the seam channel, applies acknowledgements
//! and runs dispatch passes.
//!
//! What a backend provides:
//! - [`Partitions`]: rewind, pause and resume one partition of a group's source (Kafka seeks
//!   and pauses its consumer; the embedded log reads at the cursor, so it needs none of it);
//! - [`worker::Backend`]: how records are fetched (the embedded log is read at each cursor's
//!   position; a Kafka consumer is polled and its records pushed to the cursors), how offsets are
//!   committed (the embedded store, Kafka's group coordinator) and how groups are opened.
//!
//! Must not touch: sockets, shards or sessions (it talks to shards through the seam), and
//! neither backend's storage: it holds positions, never records beyond those handed out or held
//! back for a full connection.

mod cursor;
mod group;
mod member;
pub(crate) mod outbox;
pub(crate) mod worker;

pub(crate) use cursor::Cursor;
pub(crate) use group::Group;
pub(crate) use member::{joined, Member, Offer, Pass};
pub(crate) use outbox::Outbox;

/// What a group needs from its backend's source of records when a partition changes hands.
pub(crate) trait Partitions {
    /// Reading of `partition` goes on from `offset` (a rewind to the committed offset).
    fn rewind(&self, partition: u32, offset: u64);
    /// No more records of `partition` until [`Partitions::resume`].
    fn pause(&self, partition: u32);
    fn resume(&self, partition: u32);
}

/// A source that reads at the cursor's position on every pass (the embedded log): nothing to
/// seek, pause or resume.
pub(crate) struct ReadsAtCursor;

impl Partitions for ReadsAtCursor {
    fn rewind(&self, _: u32, _: u64) {}
    fn pause(&self, _: u32) {}
    fn resume(&self, _: u32) {}
}

/// Epochs of one worker: every change of a partition's owner (and every new cursor) draws the
/// next, so acknowledgements of an earlier owner (or of a group that used the same slot before)
/// are told apart and ignored.
#[derive(Default)]
pub(crate) struct Epochs(u32);

impl Epochs {
    pub(crate) fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

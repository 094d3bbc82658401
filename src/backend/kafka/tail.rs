//! The tail reader: every ephemeral reader (empty client id, spec 2.4) of one application on one
//! worker reads through ONE librdkafka consumer, which hands each record to all of them.
//!
//! Why: a librdkafka consumer is four threads, ~630 KiB and 8 open files when idle (measured,
//! `loadtest/subscription_cost.py`: 1,000 ephemeral subscriptions with a consumer each took the
//! service from 12 to 4,012 threads and 19 to 9,019 open files), a prefetch queue of up to
//! `queued.max.messages.kbytes` when busy, and a fetch session on the broker. Thousands of
//! subscriptions must not mean thousands of consumers where one can serve.
//!
//! Ephemeral readers commit nothing; what they share is a read position. One that cannot keep
//! up must not hold the others back (spec 2.4: one slow reader never slows another): a reader
//! whose connection is full keeps the records it had no room for, up to as much again as its
//! connection's credit ([`ConnFlow::limit`]); past that, if another reader keeps up, the worker
//! gives it a consumer of its own ([`Tail::detach`]), assigned at the first offset of each
//! partition the reader has not been handed, and the records held for it are dropped (its own
//! consumer reads them again). Nothing is lost, nothing is handed out twice. When every reader
//! is that far behind, the tail stops reading until one has room: nobody is slowed by another.
//! A reader with a consumer of its own goes back to the tail once it has caught up (the worker
//! checks every second).
//!
//! [`ConnFlow::limit`]: crate::seam::ConnFlow::limit

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;

use super::context::GroupContext;
use super::group::decode_record;
use super::payload::LiveMessages;
use super::KafkaStats;
use crate::backend::consumer::{Member, Offer, Pass};
use crate::seam::{AckToken, ConnId, Record};

/// The `group` of a tail reader's ack tokens: ephemeral readers commit nothing, so their acks
/// are not looked at (no slot of the worker's groups has this number).
pub(crate) const TAIL_GROUP: u32 = u32::MAX;

/// Readers a tail hands over to consumers of their own per worker pass (see [`Tail::too_slow`]).
const DETACH_PER_PASS: usize = 8;

/// One ephemeral reader of the tail.
struct Reader {
    member: Member,
    /// What its connection had no room for, in the order read (`member.pending` is their cost).
    held: VecDeque<Arc<Record>>,
    /// Per partition, offsets below this were handed to it already (it came back from a
    /// consumer of its own that had read further than the tail).
    seen_below: BTreeMap<i32, i64>,
}

impl Reader {
    fn new(member: Member, seen_below: BTreeMap<i32, i64>) -> Reader {
        Reader {
            member,
            held: VecDeque::new(),
            seen_below,
        }
    }

    /// Whether the record at `offset` of `p` was handed to it already.
    fn has_seen(&mut self, p: i32, offset: i64) -> bool {
        match self.seen_below.get(&p) {
            Some(&below) if offset < below => true,
            Some(_) => {
                self.seen_below.remove(&p);
                false
            }
            None => false,
        }
    }

    fn hold(&mut self, record: Arc<Record>) {
        self.member.pending += record.cost() as usize;
        self.held.push_back(record);
    }

    /// Offers the held records again, oldest first, while the connection has room.
    fn drain(&mut self, app_topic: &Arc<str>, pass: &mut Pass<'_>) {
        while let Some(record) = self.held.pop_front() {
            let cost = record.cost() as usize;
            if let Offer::Full(record) = offer(&self.member, record, app_topic, pass) {
                self.held.push_front(record);
                return;
            }
            self.member.pending -= cost;
        }
    }

    /// Held back as much as its connection's credit (see [`Tail::too_slow`]).
    fn too_slow(&self) -> bool {
        self.member.pending >= self.member.flow.limit().max(1)
    }
}

fn offer(member: &Member, record: Arc<Record>, app_topic: &Arc<str>, pass: &mut Pass<'_>) -> Offer {
    let ack = AckToken {
        worker: pass.worker,
        group: TAIL_GROUP,
        partition: record.partition,
        epoch: 0,
        offset: record.offset,
    };
    member.offer(record, app_topic, false, ack, pass.outbox)
}

pub(crate) struct Tail {
    pub consumer: BaseConsumer<GroupContext>,
    pub topic: Arc<str>,
    app_topic: Arc<str>,
    pub live: LiveMessages,
    stats: Arc<KafkaStats>,
    readers: Vec<Reader>,
    /// Per partition, the next offset to read (from the assignment, then the records).
    next_read: BTreeMap<i32, i64>,
}

impl Tail {
    /// A tail over `consumer`, which was assigned every partition at `assigned_at`.
    pub(crate) fn new(
        consumer: BaseConsumer<GroupContext>,
        app: Arc<str>,
        topic: Arc<str>,
        live: LiveMessages,
        stats: Arc<KafkaStats>,
        assigned_at: &[(i32, i64)],
    ) -> Tail {
        Tail {
            consumer,
            app_topic: format!("app/{app}").into(),
            topic,
            live,
            stats,
            readers: Vec::new(),
            next_read: assigned_at.iter().copied().collect(),
        }
    }

    /// Adds a reader, or replaces the filters of one already here (what is held stays held).
    pub(crate) fn join(&mut self, member: Member) {
        match self
            .readers
            .iter_mut()
            .find(|r| r.member.conn == member.conn)
        {
            Some(r) => {
                let pending = r.member.pending;
                r.member = member;
                r.member.pending = pending;
            }
            None => self.readers.push(Reader::new(member, BTreeMap::new())),
        }
    }

    /// Whether a reader positioned at `at` (per partition, the next offset it reads) can read
    /// on through the tail without a gap: the tail has not read past it anywhere.
    pub(crate) fn can_take_over(&self, at: &BTreeMap<i32, i64>) -> bool {
        self.next_read.len() == at.len()
            && self
                .next_read
                .iter()
                .all(|(p, next)| at.get(p).is_some_and(|a| a >= next))
    }

    /// A reader that had a consumer of its own comes back, positioned at `at` (checked with
    /// [`Tail::can_take_over`]): what the tail reads below that was handed to it already.
    pub(crate) fn take_back(&mut self, mut member: Member, at: BTreeMap<i32, i64>) {
        member.pending = 0; // nothing is held for it (checked by the caller)
        let seen_below = at
            .into_iter()
            .filter(|(p, a)| self.next_read.get(p).is_some_and(|next| a > next))
            .collect();
        self.readers.push(Reader::new(member, seen_below));
    }

    /// Removes a reader; false when it is not here.
    pub(crate) fn leave(&mut self, conn: ConnId) -> bool {
        let before = self.readers.len();
        self.readers.retain(|r| r.member.conn != conn);
        self.readers.len() != before
    }

    /// Whether `conn` reads here.
    pub(crate) fn has(&self, conn: ConnId) -> bool {
        self.readers.iter().any(|r| r.member.conn == conn)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// Hands held records out where there is room again, then polls up to `budget` records
    /// and offers each to every reader. Returns how many were consumed.
    ///
    /// While a reader is over its bound the tail does not read. Normally the worker detaches it
    /// right after this pass ([`Tail::too_slow`], [`Tail::detach`]); this lasts while every
    /// reader is over (none is slowed by another), for the readers beyond the few detached per
    /// pass, and when a consumer of its own could not be created for one — then the slow reader
    /// slows the others rather than lose events.
    pub(crate) fn poll(&mut self, budget: usize, pass: &mut Pass<'_>) -> usize {
        for r in &mut self.readers {
            r.drain(&self.app_topic, pass);
        }
        if self.readers.iter().any(Reader::too_slow) {
            return 0;
        }
        let mut consumed = 0;
        for _ in 0..budget {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!(topic = %self.topic, error = %e, "consumer error");
                }
                Some(Ok(msg)) => {
                    consumed += 1;
                    let (p, offset) = (msg.partition(), msg.offset());
                    match self.next_read.get_mut(&p) {
                        Some(next) if offset >= *next => *next = offset + 1,
                        _ => continue, // not assigned, or from before the assignment
                    }
                    let Some(record) = decode_record(msg, &self.live, &self.stats, &self.topic)
                    else {
                        continue;
                    };
                    for r in &mut self.readers {
                        if !r.seen_below.is_empty() && r.has_seen(p, offset) {
                            continue;
                        }
                        if !r.held.is_empty() {
                            // Order: nothing overtakes what is already held back.
                            r.hold(record.clone());
                        } else if let Offer::Full(record) =
                            offer(&r.member, record.clone(), &self.app_topic, pass)
                        {
                            r.hold(record);
                        }
                    }
                }
            }
        }
        consumed
    }

    /// The readers to give a consumer of their own: those held back as much as their
    /// connection's credit, while another reader keeps up (when none does, nobody is slowed by
    /// anyone: the tail waits, as a group whose members are all full stops reading), at most
    /// [`DETACH_PER_PASS`]: creating a consumer is four threads, and a burst must not have the
    /// worker create hundreds at once (the tail waits for the rest, a pass or a few).
    pub(crate) fn too_slow(&self) -> Vec<ConnId> {
        if self.readers.iter().all(Reader::too_slow) {
            return Vec::new();
        }
        self.readers
            .iter()
            .filter(|r| r.too_slow())
            .take(DETACH_PER_PASS)
            .map(|r| r.member.conn)
            .collect()
    }

    /// Where a consumer of the reader's own must start: per partition, at its first held
    /// record, else at the tail's read position (it was handed everything read so far), or
    /// further if it had seen further. None when it is not here.
    pub(crate) fn start_of(&self, conn: ConnId) -> Option<Vec<(i32, i64)>> {
        let r = self.readers.iter().find(|r| r.member.conn == conn)?;
        let mut start = self.next_read.clone();
        for (p, below) in &r.seen_below {
            start.entry(*p).and_modify(|s| *s = (*s).max(*below));
        }
        for record in r.held.iter().rev() {
            start.insert(record.partition as i32, record.offset as i64);
        }
        Some(start.into_iter().collect())
    }

    /// Takes a reader off the tail (its own consumer starts at [`Tail::start_of`]); what was
    /// held for it is dropped (that consumer reads it again).
    pub(crate) fn detach(&mut self, conn: ConnId) -> Option<Member> {
        let i = self.readers.iter().position(|r| r.member.conn == conn)?;
        let mut member = self.readers.swap_remove(i).member;
        member.pending = 0;
        Some(member)
    }
}

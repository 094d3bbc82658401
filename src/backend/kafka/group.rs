//! One consumer group as a worker holds it: one librdkafka consumer shared by every member
//! (connection) of the group in this process, the partitions Kafka assigned to it, spread over
//! the local members, and per partition the read/commit position with what is in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::codec;
use super::context::{GroupContext, RebalanceEvent};
use super::payload::LiveMessages;
use super::KafkaStats;
use crate::backend::consumer::{self, Cursor, Epochs, Member, Offer, Partitions};
use crate::seam::{AckToken, ConnId, GroupKey, Record};

/// The group's consumer as the shared group machinery sees it: seek, pause, resume.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub consumer: &'a BaseConsumer<GroupContext>,
    pub topic: &'a str,
}

impl Partitions for Source<'_> {
    fn rewind(&self, partition: u32, offset: u64) {
        let (p, at) = (partition as i32, Offset::Offset(offset as i64));
        if let Err(e) = self.consumer.seek(self.topic, p, at, Duration::ZERO) {
            tracing::warn!(topic = %self.topic, partition = p, error = %e, "seek failed");
        }
    }

    fn pause(&self, partition: u32) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(self.topic, partition as i32);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(topic = %self.topic, partition, error = %e, "pause failed");
        }
    }

    fn resume(&self, partition: u32) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(self.topic, partition as i32);
        if let Err(e) = self.consumer.resume(&tpl) {
            tracing::warn!(topic = %self.topic, partition, error = %e, "resume failed");
        }
    }
}

/// spec 2.4, never buffer without bound: a member whose connection is full may have as much
/// again held back in its partitions' `pending` queues. Beyond that, a group with one member
/// simply stops reading ([`GroupState::stop_reading`]: librdkafka's prefetch queue is bounded
/// and stays as it is); a group whose other members still have room pauses this partition
/// only. Pausing is the exception because librdkafka drops a paused partition's prefetched
/// records and only fetches again about a second after the resume — a stall at every ripple of
/// a fast reader.
fn pause_if_over(
    c: &mut Cursor,
    member: Option<&Member>,
    shared: bool,
    p: u32,
    source: Source<'_>,
) {
    let over = match member {
        Some(m) => shared && m.pending >= m.flow.limit(),
        None => true,
    };
    if over && !c.paused {
        source.pause(p);
        c.paused = true;
    }
}

/// How long a group may stop reading (every member full) before its partitions are paused:
/// librdkafka wants to be polled every `max.poll.interval.ms` (5 minutes by default), and a
/// paused partition does not hold prefetched records.
const LONG_STOP: Duration = Duration::from_secs(30);

pub(crate) struct Group {
    pub consumer: BaseConsumer<GroupContext>,
    pub state: GroupState,
}

pub(crate) struct GroupState {
    /// Members and cursors, shared with the embedded backend; the cursors are the partitions
    /// Kafka assigned to this consumer.
    pub core: consumer::Group,
    pub app: Arc<str>,
    pub topic: Arc<str>,
    /// `app/<app>`: the topic of whole-application deliveries.
    pub app_topic: Arc<str>,
    pub live: LiveMessages,
    pub stats: Arc<KafkaStats>,
    /// Acknowledged positions changed since they were mirrored into the context / committed.
    mirror_dirty: bool,
    commit_dirty: bool,
    /// Since when every local member has been full (the group stopped reading).
    stopped_since: Option<Instant>,
    /// Per partition not assigned to this consumer now: offsets below were handed out by this
    /// process before (by an earlier consumer of the group, or before a revoke), so handing them
    /// out again is a redelivery (DUP).
    handed_out: HashMap<u32, u64>,
}

/// Partition numbers: Kafka's are `i32`, never negative; the seam's are `u32`.
fn kafka_partition(p: u32) -> i32 {
    p as i32
}

impl Group {
    /// Polls up to `budget` records; returns how many were consumed.
    pub(crate) fn poll(
        &mut self,
        budget: usize,
        to: &mut consumer::Pass<'_>,
        epochs: &mut Epochs,
    ) -> usize {
        let mut consumed = 0;
        let mut polls = 0;
        let topic = self.state.topic.clone();
        let source = Source {
            consumer: &self.consumer,
            topic: &topic,
        };
        self.state.drain_pending(source, to);
        self.state.mirror(&self.consumer);
        if self.state.stop_reading(source) {
            return 0;
        }
        while polls < budget {
            polls += 1;
            let polled = self.consumer.poll(Duration::ZERO);
            // Rebalance callbacks ran inside poll: apply them before the record.
            self.state.apply_rebalances(&self.consumer, epochs);
            match polled {
                None => break,
                Some(Err(e)) => {
                    // Errors (broker down, …) do not count as progress: the worker may sleep.
                    tracing::debug!(topic = %self.state.topic, error = %e, "consumer error");
                }
                Some(Ok(msg)) => {
                    self.state.on_record(msg, source, to);
                    consumed += 1;
                }
            }
        }
        consumed
    }

    /// Commits the acknowledged prefix if it moved (asynchronously unless `sync`).
    pub(crate) fn commit(&mut self, sync: bool) {
        let Some(tpl) = self.take_commit(sync) else {
            return;
        };
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::warn!(group = %self.state.core.key, error = %e, "offset commit failed");
            self.consumer
                .context()
                .commit_failed
                .store(true, Ordering::Release);
        }
    }

    /// The offsets to commit: those that moved since the last commit, or (`all`) every known
    /// one; None when there is nothing to commit (or the group commits nothing: ephemeral).
    pub(crate) fn take_commit(&mut self, all: bool) -> Option<TopicPartitionList> {
        let state = &mut self.state;
        state.core.key.name()?;
        let retry = self
            .consumer
            .context()
            .commit_failed
            .swap(false, Ordering::AcqRel);
        if !state.commit_dirty && !retry && !all {
            return None;
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, c) in &mut state.core.cursors {
            if c.known && (retry || all || c.committed != c.stored) {
                let at = Offset::Offset(c.committed as i64);
                let _ = tpl.add_partition_offset(&state.topic, kafka_partition(p), at);
                c.stored = c.committed;
            }
        }
        state.commit_dirty = false;
        state.mirror(&self.consumer);
        self.consumer.context().tag(&tpl);
        (tpl.count() > 0).then_some(tpl)
    }

    /// Adds a member to the group (see [`consumer::Group::join`]).
    pub(crate) fn join(&mut self, member: Member, epochs: &mut Epochs) {
        let state = &mut self.state;
        let source = Source {
            consumer: &self.consumer,
            topic: &state.topic,
        };
        state.core.join(member, &source, epochs);
    }

    /// Removes the member of `conn`; false when it was not one.
    pub(crate) fn leave(&mut self, conn: ConnId, epochs: &mut Epochs) -> bool {
        let state = &mut self.state;
        let source = Source {
            consumer: &self.consumer,
            topic: &state.topic,
        };
        state.core.leave(conn, &source, epochs)
    }
}

impl GroupState {
    pub(crate) fn new(
        key: GroupKey,
        app: Arc<str>,
        topic: Arc<str>,
        live: LiveMessages,
        stats: Arc<KafkaStats>,
    ) -> GroupState {
        let app_topic = format!("app/{app}").into();
        GroupState {
            core: consumer::Group::new(key, BTreeMap::new()),
            app,
            topic,
            app_topic,
            live,
            stats,
            mirror_dirty: false,
            commit_dirty: false,
            stopped_since: None,
            handed_out: HashMap::new(),
        }
    }

    pub(crate) fn key(&self) -> &GroupKey {
        &self.core.key
    }

    /// What an earlier consumer of this group in this process handed out (see
    /// [`GroupState::handed_out`]), for the DUP flag of redeliveries.
    pub(crate) fn remember(&mut self, handed_out: HashMap<u32, u64>) {
        self.handed_out = handed_out;
        for (p, c) in &mut self.core.cursors {
            if let Some(&end) = self.handed_out.get(p) {
                c.dispatched_end = c.dispatched_end.max(end);
            }
        }
    }

    /// Per partition, the end of what this group handed out in this process (for the next
    /// consumer of the group: [`GroupState::remember`]).
    pub(crate) fn handed_out(&self) -> HashMap<u32, u64> {
        let mut all = self.handed_out.clone();
        for (&p, c) in &self.core.cursors {
            let end = all.entry(p).or_insert(0);
            *end = (*end).max(c.dispatched_end);
        }
        all.retain(|_, end| *end > 0);
        all
    }

    /// An ephemeral reader's read position in each partition, when nothing is held back for it
    /// (so that it may go back to its application's tail); None otherwise.
    pub(crate) fn idle_positions(&self) -> Option<BTreeMap<i32, i64>> {
        if self.core.key.name().is_some() || self.core.members().len() != 1 {
            return None;
        }
        let mut at = BTreeMap::new();
        for (&p, c) in &self.core.cursors {
            if !c.known || c.paused || !c.pending.is_empty() {
                return None;
            }
            at.insert(kafka_partition(p), c.next_read as i64);
        }
        Some(at)
    }

    /// An ephemeral reader's partitions, assigned by us at `offsets`.
    pub(crate) fn assign_at(&mut self, offsets: &[(i32, i64)], epochs: &mut Epochs) {
        for &(p, at) in offsets {
            let mut c = Cursor::unknown(epochs.next());
            c.start_at(at.max(0) as u64);
            self.core.cursors.insert(p as u32, c);
        }
    }

    pub(crate) fn ack(&mut self, token: &AckToken) {
        if self.core.ack(token) {
            self.mirror_dirty = true;
            self.commit_dirty = true;
        }
    }

    /// Applies the rebalances librdkafka reported during the last poll.
    fn apply_rebalances(&mut self, consumer: &BaseConsumer<GroupContext>, epochs: &mut Epochs) {
        let events = std::mem::take(&mut consumer.context().shared.lock().events);
        if events.is_empty() {
            return;
        }
        for ev in events {
            match ev {
                RebalanceEvent::Revoke(ps) => {
                    for p in ps {
                        // In-flight state of a revoked partition is dropped: the next owner
                        // reads again from what was committed.
                        if let Some(c) = self.core.cursors.remove(&(p as u32)) {
                            let end = self.handed_out.entry(p as u32).or_insert(0);
                            *end = (*end).max(c.dispatched_end);
                        }
                    }
                }
                RebalanceEvent::Assign(ps) => {
                    for p in ps {
                        let mut c = Cursor::unknown(epochs.next());
                        c.dispatched_end = self.handed_out.get(&(p as u32)).copied().unwrap_or(0);
                        self.core.cursors.insert(p as u32, c);
                    }
                }
            }
        }
        // Fresh cursors have no owner yet.
        self.core.place();
        self.mirror_dirty = true;
    }

    /// Mirrors the acknowledged positions into the context, for the revoke callback.
    fn mirror(&mut self, consumer: &BaseConsumer<GroupContext>) {
        if !self.mirror_dirty || self.core.key.name().is_none() {
            return;
        }
        let mut shared = consumer.context().shared.lock();
        shared.acked.clear();
        for (&p, c) in &self.core.cursors {
            if c.known {
                shared.acked.insert(kafka_partition(p), c.committed as i64);
            }
        }
        self.mirror_dirty = false;
    }

    fn on_record(
        &mut self,
        msg: BorrowedMessage<'_>,
        source: Source<'_>,
        pass: &mut consumer::Pass<'_>,
    ) {
        let p = msg.partition() as u32;
        let offset = msg.offset().max(0) as u64;
        let shared = self.core.members().len() > 1;
        let Some((c, member)) = self.core.owned(p) else {
            return; // not (any more) ours
        };
        if !c.known {
            c.start_at(offset);
        } else if offset < c.next_read {
            return; // from before a seek
        }
        c.next_read = offset + 1;
        let mut moved = false;
        match decode_record(msg, &self.live, &self.stats, &self.topic) {
            None => moved = c.advance(),
            Some(record) => match member {
                Some(member) if !c.paused && c.pending.is_empty() => {
                    if let Offer::Full(record) = c.offer(member, record, p, &self.app_topic, pass) {
                        c.hold(member, record);
                        pause_if_over(c, Some(member), shared, p, source);
                    }
                    moved = c.advance();
                }
                mut member => {
                    // Order: nothing overtakes what is already held back.
                    c.hold_back(member.as_deref_mut(), record);
                    pause_if_over(c, member.as_deref(), shared, p, source);
                }
            },
        }
        if moved {
            self.mirror_dirty = true;
            self.commit_dirty = true;
        }
    }

    /// Dispatches held-back records of partitions whose owner has room again; resumes a paused
    /// partition once its backlog is gone.
    fn drain_pending(&mut self, source: Source<'_>, pass: &mut consumer::Pass<'_>) {
        let app_topic = &self.app_topic;
        let mut moved = false;
        self.core.for_each_owned(|p, c, member| {
            if c.pending.is_empty() && !c.paused {
                return;
            }
            while let Some(record) = c.pending.pop_front() {
                let cost = record.cost() as usize;
                if let Offer::Full(record) = c.offer(member, record, p, app_topic, pass) {
                    c.pending.push_front(record);
                    break;
                }
                c.pending_bytes -= cost;
                member.pending = member.pending.saturating_sub(cost);
            }
            // Resume before the backlog is gone, so that the refetch overlaps its delivery
            // (librdkafka continues after the last record it handed out: order is kept, since
            // new records queue behind the held-back ones).
            if c.paused && member.pending <= member.flow.limit() / 2 {
                source.resume(p);
                c.paused = false;
            }
            moved |= c.advance();
        });
        if moved {
            self.mirror_dirty = true;
            self.commit_dirty = true;
        }
    }

    /// Whether the group should not read this pass: every member is full (its held-back bytes
    /// reached its credit). After [`LONG_STOP`] of that, every partition is paused instead and
    /// reading goes on (paused partitions deliver nothing; each resumes in `drain_pending` once
    /// its owner has room).
    fn stop_reading(&mut self, source: Source<'_>) -> bool {
        let members = self.core.members();
        let full = !members.is_empty() && members.iter().all(|m| m.pending >= m.flow.limit());
        if !full {
            self.stopped_since = None;
            return false;
        }
        let since = *self.stopped_since.get_or_insert_with(Instant::now);
        if since.elapsed() < LONG_STOP {
            return true;
        }
        for (&p, c) in self.core.cursors.iter_mut() {
            if !c.paused {
                source.pause(p);
                c.paused = true;
            }
        }
        false
    }
}

/// Decodes a record (spec 4); one that is not a CloudEvent is counted, logged and skipped (None).
pub(crate) fn decode_record(
    msg: BorrowedMessage<'_>,
    live: &LiveMessages,
    stats: &KafkaStats,
    topic: &str,
) -> Option<Arc<Record>> {
    let (p, offset) = (msg.partition(), msg.offset());
    match codec::decode(msg, live) {
        Ok(d) => {
            if d.zero_copy {
                stats.zero_copy.fetch_add(1, Ordering::Relaxed);
            }
            Some(Arc::new(Record::new(d.event, p as u32, offset as u64)))
        }
        Err(e) => {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(topic, partition = p, offset, error = %e, "skipping a record that is not a valid CloudEvent");
            None
        }
    }
}

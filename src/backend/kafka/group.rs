//! One consumer group as a worker holds it: one librdkafka consumer shared by every member
//! (connection) of the group in this process, the partitions Kafka assigned to it, spread over
//! the local members, and per partition the read/commit position with what is in flight.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
use crate::protocol::QoS;
use crate::seam::member::route;
use crate::seam::{
    AckToken, ConnFlow, ConnId, Delivery, GroupKey, MemberFilters, Record, ShardLink,
};

use crate::backend::embedded::outbox::Outbox;

pub(crate) struct Member {
    pub conn: ConnId,
    pub id: u32,
    pub filters: MemberFilters,
    pub flow: Arc<ConnFlow>,
    pub link: ShardLink,
    /// Bytes (delivery cost) of the records held back for this member in its partitions'
    /// `pending` queues.
    pub pending: usize,
}

/// Where the group stands in one assigned partition.
pub(crate) struct Cursor {
    owner: Option<ConnId>,
    owner_index: usize,
    /// Changes with every owner change and every (re)assignment: acks of older epochs are
    /// ignored.
    epoch: u32,
    /// False until the first record of this assignment arrives (the start offset is known to
    /// librdkafka, not to us): nothing to commit or rewind before.
    known: bool,
    /// Everything below is acknowledged: the offset to commit.
    committed: i64,
    last_commit: i64,
    next_read: i64,
    /// Offsets below this were handed out before in this process (DUP on redelivery).
    dispatched_end: i64,
    in_flight: VecDeque<(i64, bool)>,
    /// Read but not dispatched because the owner's connection was full. Bounded: once the
    /// owner's held-back bytes reach its connection's credit, the partition is paused.
    pending: VecDeque<Arc<Record>>,
    pending_bytes: usize,
    paused: bool,
}

impl Cursor {
    fn new(epoch: u32) -> Cursor {
        Cursor {
            owner: None,
            owner_index: 0,
            epoch,
            known: false,
            committed: -1,
            last_commit: -1,
            next_read: -1,
            dispatched_end: -1,
            in_flight: VecDeque::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            paused: false,
        }
    }

    fn start_at(&mut self, offset: i64) {
        self.known = true;
        self.committed = offset;
        self.last_commit = offset;
        self.next_read = offset;
        self.dispatched_end = self.dispatched_end.max(offset);
    }

    /// Holds back a record its owner had no room for (it goes first when there is room).
    fn hold(&mut self, member: &mut Member, record: Arc<Record>, pause: Pauser<'_>) {
        let cost = record.cost() as usize;
        self.pending.push_front(record);
        self.pending_bytes += cost;
        member.pending += cost;
        self.pause_if_over(Some(member), pause);
    }

    /// Queues a record behind the held-back ones (or for an owner yet to come).
    fn hold_back(&mut self, member: Option<&mut Member>, record: Arc<Record>, pause: Pauser<'_>) {
        let cost = record.cost() as usize;
        self.pending.push_back(record);
        self.pending_bytes += cost;
        match member {
            Some(m) => {
                m.pending += cost;
                self.pause_if_over(Some(m), pause);
            }
            None => self.pause_if_over(None, pause),
        }
    }

    /// spec 2.4, never buffer without bound: a member whose connection is full may have as much
    /// again held back here. Beyond that, a group with one member simply stops reading
    /// ([`GroupState::stop_reading`]: librdkafka's prefetch queue is bounded and stays as it
    /// is); a group whose other members still have room pauses this partition only. Pausing is
    /// the exception because librdkafka drops a paused partition's prefetched records and only
    /// fetches again about a second after the resume — a stall at every ripple of a fast reader.
    fn pause_if_over(&mut self, member: Option<&mut Member>, pause: Pauser<'_>) {
        let over = match member {
            Some(m) => pause.shared && m.pending >= m.flow.limit(),
            None => true,
        };
        if over && !self.paused {
            self::pause(pause.consumer, pause.topic, pause.partition);
            self.paused = true;
        }
    }

    /// Commit point: the first unacknowledged offset in flight, else the first pending one,
    /// else the read position. Returns whether it moved.
    fn advance(&mut self) -> bool {
        while matches!(self.in_flight.front(), Some((_, true))) {
            self.in_flight.pop_front();
        }
        let at = self
            .in_flight
            .front()
            .map(|&(o, _)| o)
            .or_else(|| self.pending.front().map(|r| r.offset as i64))
            .unwrap_or(self.next_read);
        let moved = at != self.committed;
        self.committed = at;
        moved
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
    pub key: GroupKey,
    pub app: Arc<str>,
    pub topic: Arc<str>,
    /// `app/<app>`: the topic of whole-application deliveries.
    pub app_topic: Arc<str>,
    pub live: LiveMessages,
    pub stats: Arc<KafkaStats>,
    members: Vec<Member>,
    cursors: BTreeMap<i32, Cursor>,
    /// Acknowledged positions changed since they were mirrored into the context / committed.
    mirror_dirty: bool,
    commit_dirty: bool,
    /// Since when every local member has been full (the group stopped reading).
    stopped_since: Option<Instant>,
    /// Per partition not assigned to this consumer now: offsets below were handed out by this
    /// process before (by an earlier consumer of the group, or before a revoke), so handing them
    /// out again is a redelivery (DUP).
    handed_out: HashMap<i32, i64>,
}

/// What a dispatch needs besides the group.
pub(crate) struct Pass<'a> {
    pub worker: u16,
    pub slot: u32,
    pub epochs: &'a mut u32,
    pub outbox: &'a mut Outbox,
}

/// What pausing a partition needs.
#[derive(Clone, Copy)]
struct Pauser<'a> {
    consumer: &'a BaseConsumer<GroupContext>,
    topic: &'a str,
    partition: i32,
    /// The group has several local members (pausing one partition lets the others go on).
    shared: bool,
}

enum Dispatch {
    Done,
    Full(Arc<Record>),
}

impl Group {
    /// Polls up to `budget` records; returns how many were consumed.
    pub(crate) fn poll(&mut self, budget: usize, pass: &mut Pass<'_>) -> usize {
        let mut consumed = 0;
        let mut polls = 0;
        self.state.drain_pending(&self.consumer, pass);
        self.state.mirror(&self.consumer);
        if self.state.stop_reading(&self.consumer) {
            return 0;
        }
        while polls < budget {
            polls += 1;
            let polled = self.consumer.poll(Duration::ZERO);
            // Rebalance callbacks ran inside poll: apply them before the record.
            self.state.apply_rebalances(&self.consumer, pass.epochs);
            match polled {
                None => break,
                Some(Err(e)) => {
                    // Errors (broker down, …) do not count as progress: the worker may sleep.
                    tracing::debug!(topic = %self.state.topic, error = %e, "consumer error");
                }
                Some(Ok(msg)) => {
                    self.state.on_record(msg, &self.consumer, pass);
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
            tracing::warn!(group = %self.state.key, error = %e, "offset commit failed");
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
        state.key.name()?;
        let retry = self
            .consumer
            .context()
            .commit_failed
            .swap(false, Ordering::AcqRel);
        if !state.commit_dirty && !retry && !all {
            return None;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, c) in &mut state.cursors {
            if c.known && (retry || all || c.committed != c.last_commit) {
                let _ = tpl.add_partition_offset(&state.topic, *p, Offset::Offset(c.committed));
                c.last_commit = c.committed;
            }
        }
        state.commit_dirty = false;
        state.mirror(&self.consumer);
        self.consumer.context().tag(&tpl);
        (tpl.count() > 0).then_some(tpl)
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
            key,
            app,
            topic,
            app_topic,
            live,
            stats,
            members: Vec::new(),
            cursors: BTreeMap::new(),
            mirror_dirty: false,
            commit_dirty: false,
            stopped_since: None,
            handed_out: HashMap::new(),
        }
    }

    /// What an earlier consumer of this group in this process handed out (see
    /// [`GroupState::handed_out`]), for the DUP flag of redeliveries.
    pub(crate) fn remember(&mut self, handed_out: HashMap<i32, i64>) {
        self.handed_out = handed_out;
        for (p, c) in &mut self.cursors {
            if let Some(&end) = self.handed_out.get(p) {
                c.dispatched_end = c.dispatched_end.max(end);
            }
        }
    }

    /// Per partition, the end of what this group handed out in this process (for the next
    /// consumer of the group: [`GroupState::remember`]).
    pub(crate) fn handed_out(&self) -> HashMap<i32, i64> {
        let mut all = self.handed_out.clone();
        for (&p, c) in &self.cursors {
            let end = all.entry(p).or_insert(-1);
            *end = (*end).max(c.dispatched_end);
        }
        all.retain(|_, end| *end >= 0);
        all
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// An ephemeral reader's read position in each partition, when nothing is held back for it
    /// (so that it may go back to its application's tail); None otherwise.
    pub(crate) fn idle_positions(&self) -> Option<BTreeMap<i32, i64>> {
        if self.key.name().is_some() || self.members.len() != 1 {
            return None;
        }
        let mut at = BTreeMap::new();
        for (&p, c) in &self.cursors {
            if !c.known || c.paused || !c.pending.is_empty() {
                return None;
            }
            at.insert(p, c.next_read);
        }
        Some(at)
    }

    /// Takes the members out (the group is being dissolved).
    pub(crate) fn take_members(&mut self) -> Vec<Member> {
        std::mem::take(&mut self.members)
    }

    /// An ephemeral reader's partitions, assigned by us at `offsets`.
    pub(crate) fn assign_at(&mut self, offsets: &[(i32, i64)], epochs: &mut u32) {
        for &(p, at) in offsets {
            let mut c = Cursor::new(next_epoch(epochs));
            c.start_at(at);
            self.cursors.insert(p, c);
        }
    }

    pub(crate) fn join(
        &mut self,
        member: Member,
        consumer: &BaseConsumer<GroupContext>,
        epochs: &mut u32,
    ) {
        match self.members.binary_search_by_key(&member.conn, |m| m.conn) {
            Ok(i) => {
                self.members[i] = member;
                self.recount_pending();
            }
            Err(i) => {
                self.members.insert(i, member);
                self.reassign(consumer, epochs);
            }
        }
    }

    pub(crate) fn leave(
        &mut self,
        conn: ConnId,
        consumer: &BaseConsumer<GroupContext>,
        epochs: &mut u32,
    ) -> bool {
        match self.members.binary_search_by_key(&conn, |m| m.conn) {
            Ok(i) => {
                self.members.remove(i);
                if !self.members.is_empty() {
                    self.reassign(consumer, epochs);
                }
                true
            }
            Err(_) => false,
        }
    }

    pub(crate) fn unsent(&mut self, tokens: &[AckToken]) {
        for t in tokens {
            if let Some(c) = self.cursors.get_mut(&(t.partition as i32)) {
                let offset = t.offset as i64;
                if c.epoch == t.epoch && offset < c.dispatched_end {
                    c.dispatched_end = offset.max(c.committed);
                }
            }
        }
    }

    pub(crate) fn ack(&mut self, token: &AckToken) {
        let Some(c) = self.cursors.get_mut(&(token.partition as i32)) else {
            return;
        };
        if c.epoch != token.epoch {
            return;
        }
        let offset = token.offset as i64;
        if let Ok(i) = c.in_flight.binary_search_by_key(&offset, |&(o, _)| o) {
            c.in_flight[i].1 = true;
            if c.advance() {
                self.mirror_dirty = true;
                self.commit_dirty = true;
            }
        }
    }

    /// Spreads the assigned partitions over the local members (round robin over the sorted
    /// members, as the embedded backend does). A partition that changes owner is rewound to its
    /// acknowledged prefix under a new epoch (a local rebalance).
    fn reassign(&mut self, consumer: &BaseConsumer<GroupContext>, epochs: &mut u32) {
        let n = self.members.len();
        if n == 0 {
            return;
        }
        for (i, (p, c)) in self.cursors.iter_mut().enumerate() {
            let idx = i % n;
            let conn = self.members[idx].conn;
            c.owner_index = idx;
            if c.owner == Some(conn) {
                continue;
            }
            let had_owner = c.owner.is_some();
            c.owner = Some(conn);
            if !had_owner || !c.known {
                continue;
            }
            c.epoch = next_epoch(epochs);
            c.in_flight.clear();
            c.pending.clear();
            c.pending_bytes = 0;
            c.next_read = c.committed;
            if let Err(e) =
                consumer.seek(&self.topic, *p, Offset::Offset(c.committed), Duration::ZERO)
            {
                tracing::warn!(topic = %self.topic, partition = p, error = %e, "seek failed");
            }
            if c.paused {
                resume(consumer, &self.topic, *p);
                c.paused = false;
            }
        }
        self.recount_pending();
    }

    /// Applies the rebalances librdkafka reported during the last poll.
    fn apply_rebalances(&mut self, consumer: &BaseConsumer<GroupContext>, epochs: &mut u32) {
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
                        if let Some(c) = self.cursors.remove(&p) {
                            let end = self.handed_out.entry(p).or_insert(-1);
                            *end = (*end).max(c.dispatched_end);
                        }
                    }
                }
                RebalanceEvent::Assign(ps) => {
                    for p in ps {
                        let mut c = Cursor::new(next_epoch(epochs));
                        c.dispatched_end = self.handed_out.get(&p).copied().unwrap_or(-1);
                        self.cursors.insert(p, c);
                    }
                }
            }
        }
        // Fresh cursors have no owner yet.
        let n = self.members.len();
        for (i, c) in self.cursors.values_mut().enumerate() {
            if n > 0 {
                c.owner_index = i % n;
                c.owner = Some(self.members[i % n].conn);
            }
        }
        self.recount_pending();
        self.mirror_dirty = true;
    }

    /// Mirrors the acknowledged positions into the context, for the revoke callback.
    fn mirror(&mut self, consumer: &BaseConsumer<GroupContext>) {
        if !self.mirror_dirty || self.key.name().is_none() {
            return;
        }
        let mut shared = consumer.context().shared.lock();
        shared.acked.clear();
        for (p, c) in &self.cursors {
            if c.known {
                shared.acked.insert(*p, c.committed);
            }
        }
        self.mirror_dirty = false;
    }

    fn on_record(
        &mut self,
        msg: BorrowedMessage<'_>,
        consumer: &BaseConsumer<GroupContext>,
        pass: &mut Pass<'_>,
    ) {
        let p = msg.partition();
        let offset = msg.offset();
        let Some(c) = self.cursors.get_mut(&p) else {
            return; // not (any more) ours
        };
        if !c.known {
            c.start_at(offset);
        } else if offset < c.next_read {
            return; // from before a seek
        }
        c.next_read = offset + 1;
        let Some(record) = decode_record(msg, &self.live, &self.stats, &self.topic) else {
            if c.advance() {
                self.mirror_dirty = true;
                self.commit_dirty = true;
            }
            return;
        };
        let pauser = Pauser {
            consumer,
            topic: &self.topic,
            partition: p,
            shared: self.members.len() > 1,
        };
        let member = c.owner.and_then(|_| self.members.get_mut(c.owner_index));
        match member {
            Some(member) if !c.paused && c.pending.is_empty() => {
                if let Dispatch::Full(record) =
                    dispatch(c, member, record, p, &self.app_topic, pass)
                {
                    c.hold(member, record, pauser);
                }
            }
            member => {
                // Order: nothing overtakes what is already held back.
                c.hold_back(member, record, pauser);
                return;
            }
        }
        if c.advance() {
            self.mirror_dirty = true;
            self.commit_dirty = true;
        }
    }

    /// Dispatches held-back records of partitions whose owner has room again; resumes a paused
    /// partition once its backlog is gone.
    fn drain_pending(&mut self, consumer: &BaseConsumer<GroupContext>, pass: &mut Pass<'_>) {
        for (p, c) in self.cursors.iter_mut() {
            if c.pending.is_empty() && !c.paused {
                continue;
            }
            let Some(member) = c.owner.and_then(|_| self.members.get_mut(c.owner_index)) else {
                continue;
            };
            while let Some(record) = c.pending.pop_front() {
                let cost = record.cost() as usize;
                if let Dispatch::Full(record) =
                    dispatch(c, member, record, *p, &self.app_topic, pass)
                {
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
                resume(consumer, &self.topic, *p);
                c.paused = false;
            }
            if c.advance() {
                self.mirror_dirty = true;
                self.commit_dirty = true;
            }
        }
    }

    /// Whether the group should not read this pass: every member is full (its held-back bytes
    /// reached its credit). After [`LONG_STOP`] of that, every partition is paused instead and
    /// reading goes on (paused partitions deliver nothing; each resumes in `drain_pending` once
    /// its owner has room).
    fn stop_reading(&mut self, consumer: &BaseConsumer<GroupContext>) -> bool {
        let full =
            !self.members.is_empty() && self.members.iter().all(|m| m.pending >= m.flow.limit());
        if !full {
            self.stopped_since = None;
            return false;
        }
        let since = *self.stopped_since.get_or_insert_with(Instant::now);
        if since.elapsed() < LONG_STOP {
            return true;
        }
        for (p, c) in self.cursors.iter_mut() {
            if !c.paused {
                pause(consumer, &self.topic, *p);
                c.paused = true;
            }
        }
        false
    }

    /// Recomputes each member's held-back bytes from the cursors (after partitions moved).
    fn recount_pending(&mut self) {
        for m in &mut self.members {
            m.pending = 0;
        }
        for c in self.cursors.values() {
            if let Some(m) = c.owner.and_then(|_| self.members.get_mut(c.owner_index)) {
                m.pending += c.pending_bytes;
            }
        }
    }
}

fn dispatch(
    c: &mut Cursor,
    member: &Member,
    record: Arc<Record>,
    p: i32,
    app_topic: &Arc<str>,
    pass: &mut Pass<'_>,
) -> Dispatch {
    let offset = record.offset as i64;
    let ack = AckToken {
        worker: pass.worker,
        group: pass.slot,
        partition: p as u32,
        epoch: c.epoch,
        offset: offset as u64,
    };
    match member.offer(record, app_topic, offset < c.dispatched_end, ack, pass) {
        // No filter matches: consumed, counts as acknowledged.
        Offer::NotForIt => Dispatch::Done,
        Offer::Full(record) => Dispatch::Full(record),
        Offer::Sent(qos) => {
            if qos != QoS::AtMostOnce {
                c.in_flight.push_back((offset, false));
            }
            c.dispatched_end = c.dispatched_end.max(offset + 1);
            Dispatch::Done
        }
    }
}

/// What offering a record to a member did.
pub(crate) enum Offer {
    /// None of its filters matches the record.
    NotForIt,
    /// Its connection is full (spec 2.4: never buffer without bound): the record comes back.
    Full(Arc<Record>),
    Sent(QoS),
}

impl Member {
    /// Queues `record` for the member's shard if one of its filters matches and its connection
    /// has room.
    pub(crate) fn offer(
        &self,
        record: Arc<Record>,
        app_topic: &Arc<str>,
        dup: bool,
        ack: AckToken,
        pass: &mut Pass<'_>,
    ) -> Offer {
        let Some(route) = route(&self.filters, &record, app_topic) else {
            return Offer::NotForIt;
        };
        if !self.flow.has_room() {
            return Offer::Full(record);
        }
        let cost = record.cost();
        self.flow.charge(cost as usize);
        let qos = route.qos;
        pass.outbox.push(
            &self.link,
            Delivery {
                conn: self.conn,
                member: self.id,
                record,
                whole_app: route.whole_app,
                qos,
                mode: route.mode,
                subscription_ids: route.subscription_ids,
                dup,
                cost,
                ack,
            },
        );
        Offer::Sent(qos)
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

fn pause(consumer: &BaseConsumer<GroupContext>, topic: &str, p: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, p);
    if let Err(e) = consumer.pause(&tpl) {
        tracing::warn!(topic, partition = p, error = %e, "pause failed");
    }
}

fn resume(consumer: &BaseConsumer<GroupContext>, topic: &str, p: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, p);
    if let Err(e) = consumer.resume(&tpl) {
        tracing::warn!(topic, partition = p, error = %e, "resume failed");
    }
}

pub(crate) fn next_epoch(epochs: &mut u32) -> u32 {
    *epochs = epochs.wrapping_add(1);
    *epochs
}

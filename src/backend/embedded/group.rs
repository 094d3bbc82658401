//! One consumer group as a worker holds it: its members, their partitions, and the dispatch of
//! records to them.

use std::sync::Arc;

use super::assignment;
use super::cursor::Cursor;
use super::log::AppLog;
use super::outbox::Outbox;
use super::store::PartitionOffsets;
use super::EmbeddedLog;
use crate::protocol::QoS;
use crate::seam::member::route;
use crate::seam::{
    AckToken, ConnFlow, ConnId, Delivery, GroupKey, MemberFilters, Record, ShardLink,
};

/// Records read under one lock acquisition.
const READ_BATCH: usize = 128;

/// One member: a connection's subscriptions that read through this group.
pub(crate) struct Member {
    pub conn: ConnId,
    /// The session's id for this membership, echoed on deliveries.
    pub id: u32,
    pub filters: MemberFilters,
    pub flow: Arc<ConnFlow>,
    pub link: ShardLink,
}

pub(crate) struct Group {
    pub key: GroupKey,
    pub app: Arc<AppLog>,
    /// Sorted by conn id (the assignment depends on the order).
    members: Vec<Member>,
    cursors: Vec<Cursor>,
    /// First partition of the next pass: rotates so that the budget of a pass is not always
    /// spent on the same busy partition.
    start_at: usize,
    /// Committed offsets moved since they were last stored.
    pub dirty: bool,
}

/// What dispatching needs besides the group.
pub(crate) struct Pass<'a> {
    pub worker: u16,
    pub slot: u32,
    /// At most this many records per group per pass.
    pub budget: usize,
    pub log: &'a EmbeddedLog,
    pub scratch: &'a mut Vec<Arc<Record>>,
    pub outbox: &'a mut Outbox,
}

impl Group {
    pub(crate) fn new(
        key: GroupKey,
        app: Arc<AppLog>,
        at: Vec<PartitionOffsets>,
        epochs: &mut u32,
    ) -> Group {
        let cursors = at
            .into_iter()
            .map(|o| Cursor::new(o, next_epoch(epochs)))
            .collect();
        Group {
            key,
            app,
            members: Vec::new(),
            cursors,
            start_at: 0,
            dirty: false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn offsets(&self) -> Vec<PartitionOffsets> {
        self.cursors.iter().map(Cursor::offsets).collect()
    }

    /// Adds `member`, or replaces the filters of the member with its conn id (spec 2.4: a
    /// subscription made again replaces the old one, never a second stream). Reassigns
    /// partitions when membership changed.
    pub(crate) fn join(&mut self, member: Member, epochs: &mut u32) {
        match self.members.binary_search_by_key(&member.conn, |m| m.conn) {
            Ok(i) => self.members[i] = member,
            Err(i) => {
                self.members.insert(i, member);
                self.reassign(epochs);
            }
        }
    }

    /// Removes the member of `conn`. Returns false when it was not a member.
    pub(crate) fn leave(&mut self, conn: ConnId, epochs: &mut u32) -> bool {
        match self.members.binary_search_by_key(&conn, |m| m.conn) {
            Ok(i) => {
                self.members.remove(i);
                self.reassign(epochs);
                true
            }
            Err(_) => false,
        }
    }

    /// Recomputes owners; a partition that changes owner is rewound to its committed offset
    /// under a new epoch, like a Kafka rebalance.
    fn reassign(&mut self, epochs: &mut u32) {
        let owners = assignment::assign(self.cursors.len(), self.members.len());
        for (cursor, owner) in self.cursors.iter_mut().zip(owners) {
            let conn = owner.and_then(|i| self.members.get(i)).map(|m| m.conn);
            cursor.owner_index = owner.unwrap_or(0);
            if cursor.owner != conn {
                cursor.owner = conn;
                cursor.rewind(next_epoch(epochs));
            }
        }
    }

    /// Deliveries the member never sent (see [`crate::seam::ToBackend::Leave`]).
    pub(crate) fn unsent(&mut self, tokens: &[AckToken]) {
        for token in tokens {
            if let Some(cursor) = self.cursors.get_mut(token.partition as usize) {
                cursor.unsent(token.epoch, token.offset);
            }
        }
    }

    /// Applies one acknowledgement; stale epochs and unknown offsets are ignored.
    pub(crate) fn ack(&mut self, token: &AckToken) {
        if let Some(cursor) = self.cursors.get_mut(token.partition as usize) {
            if cursor.ack(token.epoch, token.offset) {
                self.dirty = true;
            }
        }
    }

    /// One dispatch pass: reads from every owned partition, routes each record through its
    /// owner's filters and queues deliveries. Returns how many records were consumed.
    pub(crate) fn dispatch(&mut self, pass: &mut Pass<'_>) -> usize {
        let n = self.cursors.len();
        if n == 0 || self.members.is_empty() {
            return 0;
        }
        let mut consumed = 0;
        let first = self.start_at % n;
        self.start_at = first + 1;
        for i in 0..n {
            if consumed >= pass.budget {
                break;
            }
            let p = (first + i) % n;
            let budget = pass.budget - consumed;
            consumed += self.dispatch_partition(p, budget, pass);
        }
        consumed
    }

    fn dispatch_partition(&mut self, p: usize, mut budget: usize, pass: &mut Pass<'_>) -> usize {
        let (Some(cursor), Some(partition)) = (self.cursors.get_mut(p), self.app.partitions.get(p))
        else {
            return 0;
        };
        let Some(member) = cursor
            .owner
            .and_then(|_| self.members.get(cursor.owner_index))
        else {
            return 0;
        };
        let mut consumed = 0;
        let mut full = false;
        while budget > 0 && !full && cursor.next_read < partition.end() {
            pass.scratch.clear();
            let read = partition.read(cursor.next_read, budget.min(READ_BATCH), pass.scratch);
            if read.from > cursor.next_read {
                let skipped = read.from - cursor.next_read;
                tracing::warn!(
                    app = %self.app.name,
                    partition = p,
                    group = %self.key,
                    skipped,
                    "retention dropped records before this group read them; skipping forward"
                );
                pass.log.count_skipped(skipped);
                cursor.next_read = read.from;
            }
            if read.count == 0 {
                break;
            }
            for record in pass.scratch.drain(..) {
                let offset = record.offset;
                if let Some(route) = route(&member.filters, &record, &self.app.topic) {
                    // spec 2.4: never buffer without bound; a full connection pauses this
                    // partition until the shard sends Resume.
                    if !member.flow.has_room() {
                        full = true;
                        break;
                    }
                    let cost = record.cost();
                    member.flow.charge(cost as usize);
                    // QoS 0 is at most once: consumed at dispatch. QoS 1 (and 2, granted as 1)
                    // waits for its PUBACK.
                    if route.qos != QoS::AtMostOnce {
                        cursor.in_flight.push_back((offset, false));
                    }
                    let delivery = Delivery {
                        conn: member.conn,
                        member: member.id,
                        record,
                        whole_app: route.whole_app,
                        qos: route.qos,
                        mode: route.mode,
                        subscription_ids: route.subscription_ids,
                        dup: offset < cursor.dispatched_end,
                        cost,
                        ack: AckToken {
                            worker: pass.worker,
                            group: pass.slot,
                            partition: p as u32,
                            epoch: cursor.epoch,
                            offset,
                        },
                    };
                    pass.outbox.push(&member.link, delivery);
                    cursor.dispatched_end = cursor.dispatched_end.max(offset + 1);
                }
                // No route: the record is consumed and counts as acknowledged.
                cursor.next_read = offset + 1;
                consumed += 1;
                budget -= 1;
            }
        }
        if cursor.advance() {
            self.dirty = true;
        }
        consumed
    }
}

fn next_epoch(epochs: &mut u32) -> u32 {
    *epochs = epochs.wrapping_add(1);
    *epochs
}

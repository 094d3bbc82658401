//! Where one consumer group stands in one partition: read position, commit position, what is
//! in flight, what is held back for a full connection, and the epoch of the current owner.

use std::collections::VecDeque;
use std::sync::Arc;

use super::member::{Member, Offer, Pass};
use super::Partitions;
use crate::protocol::QoS;
use crate::seam::{AckToken, ConnId, Record};

pub(crate) struct Cursor {
    /// The member that reads this partition (its conn id), and its index in the member list.
    pub owner: Option<ConnId>,
    pub owner_index: usize,
    /// Changes whenever the partition changes owner; acks of an older epoch are ignored.
    pub epoch: u32,
    /// False until the start position is known (a Kafka consumer learns it with the first
    /// record of an assignment): nothing to commit or rewind before.
    pub known: bool,
    /// Everything below is acknowledged: the offset to commit.
    pub committed: u64,
    /// The committed offset as last stored or sent to the backend.
    pub stored: u64,
    pub next_read: u64,
    /// Offsets below this were handed out before (DUP on redelivery).
    pub dispatched_end: u64,
    /// QoS 1 deliveries not yet committed: (offset, acked), sorted by offset since dispatch is
    /// in order.
    pub in_flight: VecDeque<(u64, bool)>,
    /// Read but not dispatched because the owner's connection was full (sources that push
    /// records, like a Kafka consumer; the embedded log reads them again instead). Bounded by
    /// the owner's credit, see the Kafka group's `pause_if_over`.
    pub pending: VecDeque<Arc<Record>>,
    pub pending_bytes: usize,
    pub paused: bool,
}

impl Cursor {
    /// A cursor whose start is not known yet (see [`Cursor::known`]).
    pub(crate) fn unknown(epoch: u32) -> Cursor {
        Cursor {
            owner: None,
            owner_index: 0,
            epoch,
            known: false,
            committed: 0,
            stored: 0,
            next_read: 0,
            dispatched_end: 0,
            in_flight: VecDeque::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            paused: false,
        }
    }

    /// A cursor at the stored `committed` offset; offsets below `dispatched_end` were handed
    /// out before.
    pub(crate) fn at(committed: u64, dispatched_end: u64, epoch: u32) -> Cursor {
        let mut c = Cursor::unknown(epoch);
        c.start_at(committed);
        c.dispatched_end = dispatched_end.max(committed);
        c
    }

    /// The start position became known.
    pub(crate) fn start_at(&mut self, offset: u64) {
        self.known = true;
        self.committed = offset;
        self.stored = offset;
        self.next_read = offset;
        self.dispatched_end = self.dispatched_end.max(offset);
    }

    /// The partition moved to another member: read again from the committed offset, under a
    /// new epoch. What was in flight is delivered again, with DUP set since it is below
    /// `dispatched_end`; what was held back is read again.
    pub(crate) fn rewind(&mut self, partition: u32, epoch: u32, source: &dyn Partitions) {
        self.epoch = epoch;
        self.in_flight.clear();
        self.pending.clear();
        self.pending_bytes = 0;
        self.next_read = self.committed;
        source.rewind(partition, self.committed);
        if self.paused {
            source.resume(partition);
            self.paused = false;
        }
    }

    /// A delivery under `epoch` at `offset` never reached the client: nothing from it on was
    /// sent, so it is not a redelivery when it is dispatched again.
    pub(crate) fn unsent(&mut self, epoch: u32, offset: u64) {
        if epoch == self.epoch && offset < self.dispatched_end {
            self.dispatched_end = offset.max(self.committed);
        }
    }

    /// Marks `offset` acknowledged if it is in flight under `epoch`. Returns whether the
    /// committed offset moved.
    pub(crate) fn ack(&mut self, epoch: u32, offset: u64) -> bool {
        if epoch != self.epoch {
            return false;
        }
        match self.in_flight.binary_search_by_key(&offset, |&(o, _)| o) {
            Ok(i) => self.in_flight[i].1 = true,
            Err(_) => return false,
        }
        self.advance()
    }

    /// spec 2.4: committed only for the contiguous acknowledged prefix — the first unacked
    /// offset in flight, else the first one held back, else the read position. Returns whether
    /// it moved.
    pub(crate) fn advance(&mut self) -> bool {
        while matches!(self.in_flight.front(), Some((_, true))) {
            self.in_flight.pop_front();
        }
        let at = self
            .in_flight
            .front()
            .map(|&(o, _)| o)
            .or_else(|| self.pending.front().map(|r| r.offset))
            .unwrap_or(self.next_read);
        let moved = at != self.committed;
        self.committed = at;
        moved
    }

    /// Offers `record` of `partition` to the cursor's owner `member`: routed through its filters,
    /// charged to its connection's credit, queued in the outbox. QoS 0 is at most once (consumed
    /// here); QoS 1 (and 2, granted as 1) stays in flight until its PUBACK.
    pub(crate) fn offer(
        &mut self,
        member: &Member,
        record: Arc<Record>,
        partition: u32,
        app_topic: &Arc<str>,
        pass: &mut Pass<'_>,
    ) -> Offer {
        let offset = record.offset;
        let ack = AckToken {
            worker: pass.worker,
            group: pass.slot,
            partition,
            epoch: self.epoch,
            offset,
        };
        let dup = offset < self.dispatched_end;
        let offered = member.offer(record, app_topic, dup, ack, pass.outbox);
        if let Offer::Sent(qos) = offered {
            if qos != QoS::AtMostOnce {
                self.in_flight.push_back((offset, false));
            }
            self.dispatched_end = self.dispatched_end.max(offset + 1);
        }
        offered
    }

    /// Holds back a record its owner had no room for (it goes first when there is room).
    pub(crate) fn hold(&mut self, member: &mut Member, record: Arc<Record>) {
        let cost = record.cost() as usize;
        self.pending.push_front(record);
        self.pending_bytes += cost;
        member.pending += cost;
    }

    /// Queues a record behind the held-back ones (or for an owner yet to come).
    pub(crate) fn hold_back(&mut self, member: Option<&mut Member>, record: Arc<Record>) {
        let cost = record.cost() as usize;
        self.pending.push_back(record);
        self.pending_bytes += cost;
        if let Some(m) = member {
            m.pending += cost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ReadsAtCursor;
    use super::*;

    #[test]
    fn commits_only_the_contiguous_acked_prefix() {
        let mut c = Cursor::at(1, 1, 7);
        for o in 1..4 {
            c.in_flight.push_back((o, false));
            c.next_read = o + 1;
            c.dispatched_end = o + 1;
        }
        assert!(!c.ack(7, 2));
        assert_eq!(c.committed, 1);
        assert!(!c.ack(6, 1), "stale epoch");
        assert!(!c.ack(7, 9), "unknown offset");
        assert!(c.ack(7, 1));
        assert_eq!(c.committed, 3);
        assert!(c.ack(7, 3));
        assert_eq!(c.committed, 4);
        c.rewind(0, 8, &ReadsAtCursor);
        assert_eq!((c.next_read, c.epoch), (4, 8));
    }

    #[test]
    fn unsent_deliveries_are_no_redeliveries() {
        let mut c = Cursor::at(5, 5, 1);
        c.dispatched_end = 9;
        c.unsent(0, 6);
        assert_eq!(c.dispatched_end, 9, "stale epoch");
        c.unsent(1, 6);
        assert_eq!(c.dispatched_end, 6);
        c.unsent(1, 2);
        assert_eq!(c.dispatched_end, 5, "never below the committed offset");
    }
}

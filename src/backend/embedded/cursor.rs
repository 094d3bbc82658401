//! Where one consumer group stands in one partition: read position, commit position, what is
//! in flight, and the epoch of the current owner.

use std::collections::VecDeque;

use super::store::PartitionOffsets;

pub(crate) struct Cursor {
    /// The member that reads this partition (its conn id), and its index in the member list.
    pub owner: Option<crate::seam::ConnId>,
    pub owner_index: usize,
    /// Changes whenever the partition changes owner; acks of an older epoch are ignored.
    /// Drawn from a per-worker counter, so it also tells groups sharing a reused slot apart.
    pub epoch: u32,
    pub next_read: u64,
    pub committed: u64,
    pub dispatched_end: u64,
    /// QoS 1 deliveries not yet committed: (offset, acked), sorted by offset since dispatch is
    /// in order.
    pub in_flight: VecDeque<(u64, bool)>,
}

impl Cursor {
    pub(crate) fn new(at: PartitionOffsets, epoch: u32) -> Cursor {
        Cursor {
            owner: None,
            owner_index: 0,
            epoch,
            next_read: at.committed,
            committed: at.committed,
            dispatched_end: at.dispatched_end.max(at.committed),
            in_flight: VecDeque::new(),
        }
    }

    pub(crate) fn offsets(&self) -> PartitionOffsets {
        PartitionOffsets {
            committed: self.committed,
            dispatched_end: self.dispatched_end,
        }
    }

    /// The partition moved to another member: read again from the committed offset. What was in
    /// flight is delivered again, with DUP set since it is below `dispatched_end`.
    pub(crate) fn rewind(&mut self, epoch: u32) {
        self.epoch = epoch;
        self.next_read = self.committed;
        self.in_flight.clear();
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
    /// offset in flight, or the read position when nothing is. Returns whether it moved.
    pub(crate) fn advance(&mut self) -> bool {
        while matches!(self.in_flight.front(), Some((_, true))) {
            self.in_flight.pop_front();
        }
        let committed = self.in_flight.front().map_or(self.next_read, |&(o, _)| o);
        let moved = committed != self.committed;
        self.committed = committed;
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_acked_prefix() {
        let mut c = Cursor::new(
            PartitionOffsets {
                committed: 1,
                dispatched_end: 1,
            },
            7,
        );
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
        c.rewind(8);
        assert_eq!((c.next_read, c.epoch), (4, 8));
    }
}

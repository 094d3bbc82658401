//! One consumer group as a worker holds it: its members, which of them owns each partition,
//! and where the group stands in each partition.
//!
//! Assignment is round robin like Kafka's assignors: members sorted by [`ConnId`], the `i`-th
//! partition (in partition order) goes to member `i % n`. Every partition has exactly one owner,
//! so a shared subscription (`$share/g/…`) splits the stream and order per partition (per
//! device) is kept within the group (spec 2.1, 2.4). Recomputed on every join and leave; a
//! partition that changes owner is rewound to its committed offset under a new epoch, like a
//! Kafka rebalance.

use std::collections::BTreeMap;

use super::cursor::Cursor;
use super::member::Member;
use super::{Epochs, Partitions};
use crate::seam::{AckToken, ConnId, GroupKey};

pub(crate) struct Group {
    pub key: GroupKey,
    /// Sorted by conn id (the assignment depends on the order).
    members: Vec<Member>,
    /// The partitions the group reads here, by number.
    pub cursors: BTreeMap<u32, Cursor>,
}

impl Group {
    pub(crate) fn new(key: GroupKey, cursors: BTreeMap<u32, Cursor>) -> Group {
        Group {
            key,
            members: Vec::new(),
            cursors,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    /// Takes the members out (the group is being dissolved).
    pub(crate) fn take_members(&mut self) -> Vec<Member> {
        std::mem::take(&mut self.members)
    }

    /// Adds `member`, or replaces the filters of the member with its conn id (spec 2.4: a
    /// subscription made again replaces the old one, never a second stream). Reassigns
    /// partitions when membership changed.
    pub(crate) fn join(&mut self, member: Member, source: &dyn Partitions, epochs: &mut Epochs) {
        match self.members.binary_search_by_key(&member.conn, |m| m.conn) {
            Ok(i) => {
                self.members[i] = member;
                self.recount_pending();
            }
            Err(i) => {
                self.members.insert(i, member);
                self.reassign(source, epochs);
            }
        }
    }

    /// Removes the member of `conn`. Returns false when it was not a member.
    pub(crate) fn leave(
        &mut self,
        conn: ConnId,
        source: &dyn Partitions,
        epochs: &mut Epochs,
    ) -> bool {
        match self.members.binary_search_by_key(&conn, |m| m.conn) {
            Ok(i) => {
                self.members.remove(i);
                // Without members the group is dropped; its cursors need no owner.
                if !self.members.is_empty() {
                    self.reassign(source, epochs);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Recomputes owners. A partition that changes owner is rewound to its committed offset
    /// under a new epoch; one without an owner before, or whose start is not known yet, simply
    /// gets one.
    fn reassign(&mut self, source: &dyn Partitions, epochs: &mut Epochs) {
        let n = self.members.len();
        if n == 0 {
            return;
        }
        for (i, (&p, c)) in self.cursors.iter_mut().enumerate() {
            let index = i % n;
            let conn = self.members[index].conn;
            c.owner_index = index;
            if c.owner == Some(conn) {
                continue;
            }
            let had_owner = c.owner.replace(conn).is_some();
            if had_owner && c.known {
                c.rewind(p, epochs.next(), source);
            }
        }
        self.recount_pending();
    }

    /// Gives every partition its round-robin owner without rewinding (after partitions were
    /// added or removed under the group, which rewound nothing that stays).
    pub(crate) fn place(&mut self) {
        let n = self.members.len();
        if n > 0 {
            for (i, c) in self.cursors.values_mut().enumerate() {
                c.owner_index = i % n;
                c.owner = Some(self.members[i % n].conn);
            }
        }
        self.recount_pending();
    }

    /// Deliveries the member never sent (see [`crate::seam::ToBackend::Leave`]).
    pub(crate) fn unsent(&mut self, tokens: &[AckToken]) {
        for token in tokens {
            if let Some(cursor) = self.cursors.get_mut(&token.partition) {
                cursor.unsent(token.epoch, token.offset);
            }
        }
    }

    /// Applies one acknowledgement; stale epochs and unknown offsets are ignored. Returns
    /// whether a committed offset moved.
    pub(crate) fn ack(&mut self, token: &AckToken) -> bool {
        self.cursors
            .get_mut(&token.partition)
            .is_some_and(|c| c.ack(token.epoch, token.offset))
    }

    /// The cursor of `partition` and its owner, if it has one.
    pub(crate) fn owned(&mut self, partition: u32) -> Option<(&mut Cursor, Option<&mut Member>)> {
        let cursor = self.cursors.get_mut(&partition)?;
        let member = cursor
            .owner
            .and_then(|_| self.members.get_mut(cursor.owner_index));
        Some((cursor, member))
    }

    /// Calls `f` with every cursor that has an owner, and the owner.
    pub(crate) fn for_each_owned(&mut self, mut f: impl FnMut(u32, &mut Cursor, &mut Member)) {
        for (&p, c) in self.cursors.iter_mut() {
            if let Some(m) = c.owner.and_then(|_| self.members.get_mut(c.owner_index)) {
                f(p, c, m);
            }
        }
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::Arc;

    use super::*;
    use crate::seam::{ConnFlow, MemberFilters, Notify, ShardLink};

    struct Quiet;
    impl Notify for Quiet {
        fn notify(&self) {}
    }

    /// Records what the group asked of its source.
    #[derive(Default)]
    struct Recorded(RefCell<Vec<String>>);
    impl Partitions for Recorded {
        fn rewind(&self, p: u32, offset: u64) {
            self.0.borrow_mut().push(format!("rewind {p} to {offset}"));
        }
        fn pause(&self, p: u32) {
            self.0.borrow_mut().push(format!("pause {p}"));
        }
        fn resume(&self, p: u32) {
            self.0.borrow_mut().push(format!("resume {p}"));
        }
    }

    fn member(slot: u32) -> Member {
        let (sender, _) = crossbeam_channel::unbounded();
        Member {
            conn: ConnId {
                shard: 0,
                slot,
                generation: 1,
            },
            id: slot,
            filters: MemberFilters::new(Vec::new()),
            flow: Arc::new(ConnFlow::new(1 << 20)),
            link: ShardLink {
                sender,
                notify: Arc::new(Quiet),
            },
            pending: 0,
        }
    }

    /// A group with partitions `0..n` at `committed`, and the source it rewinds.
    fn group(n: u32, committed: u64, epochs: &mut Epochs) -> (Group, Recorded) {
        let cursors = (0..n)
            .map(|p| (p, Cursor::at(committed, committed, epochs.next())))
            .collect();
        (
            Group::new(GroupKey::shared("a", "g"), cursors),
            Recorded::default(),
        )
    }

    fn owners(g: &Group) -> Vec<u32> {
        g.cursors
            .values()
            .map(|c| c.owner.map_or(0, |o| o.slot))
            .collect()
    }

    #[test]
    fn round_robin_over_sorted_members_rewinding_what_moves() {
        let mut epochs = Epochs::default();
        let (mut g, source) = group(4, 10, &mut epochs);
        g.join(member(2), &source, &mut epochs);
        assert_eq!(owners(&g), [2, 2, 2, 2]);
        assert!(
            source.0.borrow().is_empty(),
            "a first owner rewinds nothing"
        );

        g.cursors
            .get_mut(&1)
            .unwrap()
            .in_flight
            .push_back((10, false));
        let before = g.cursors[&1].epoch;
        // Sorted by conn id: the new member (slot 1) comes first and takes partitions 0 and 2.
        g.join(member(1), &source, &mut epochs);
        assert_eq!(owners(&g), [1, 2, 1, 2]);
        assert_eq!(*source.0.borrow(), ["rewind 0 to 10", "rewind 2 to 10"]);
        assert_eq!(
            g.cursors[&1].epoch, before,
            "partition 1 stayed with its owner"
        );
        assert_eq!(g.cursors[&1].in_flight.len(), 1);

        source.0.borrow_mut().clear();
        assert!(g.leave(member(2).conn, &source, &mut epochs));
        assert_eq!(owners(&g), [1, 1, 1, 1]);
        assert_eq!(*source.0.borrow(), ["rewind 1 to 10", "rewind 3 to 10"]);
        assert!(g.cursors[&1].in_flight.is_empty(), "moved: delivered again");
        assert!(
            g.cursors[&1].epoch != before,
            "acks of the old owner are stale"
        );
        assert!(!g.leave(member(2).conn, &source, &mut epochs));
    }

    #[test]
    fn a_partition_whose_start_is_unknown_gets_an_owner_without_a_rewind() {
        let mut epochs = Epochs::default();
        let mut g = Group::new(GroupKey::shared("a", "g"), Default::default());
        let source = Recorded::default();
        g.join(member(1), &source, &mut epochs);
        g.join(member(2), &source, &mut epochs);
        // Kafka assigns partitions after the members joined.
        g.cursors.insert(0, Cursor::unknown(epochs.next()));
        g.cursors.insert(1, Cursor::unknown(epochs.next()));
        g.place();
        assert_eq!(owners(&g), [1, 2]);
        g.leave(member(1).conn, &source, &mut epochs);
        assert_eq!(owners(&g), [2, 2]);
        assert!(source.0.borrow().is_empty(), "nothing known to rewind to");
    }

    #[test]
    fn a_paused_partition_that_moves_is_resumed_and_its_held_back_records_dropped() {
        let mut epochs = Epochs::default();
        let (mut g, source) = group(2, 5, &mut epochs);
        g.join(member(1), &source, &mut epochs);
        g.join(member(2), &source, &mut epochs);
        let c = g.cursors.get_mut(&1).unwrap();
        c.paused = true;
        c.pending_bytes = 100;
        source.0.borrow_mut().clear();
        g.leave(member(2).conn, &source, &mut epochs);
        assert_eq!(*source.0.borrow(), ["rewind 1 to 5", "resume 1"]);
        let c = &g.cursors[&1];
        assert!(!c.paused && c.pending.is_empty() && c.pending_bytes == 0);
        assert_eq!(g.members()[0].pending, 0);
    }
}

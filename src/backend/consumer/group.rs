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

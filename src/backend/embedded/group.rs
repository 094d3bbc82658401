//! One consumer group of the embedded log as a worker holds it: the shared group state
//! ([`consumer::Group`]) over an application's log, read at each cursor's position on every
//! pass (nothing is buffered: a record a full connection had no room for is read again).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::app_log::AppLog;
use super::store::PartitionOffsets;
use super::EmbeddedLog;
use crate::backend::consumer::{self, Cursor, Epochs, Offer, ReadsAtCursor};
use crate::seam::{AckToken, ConnId, GroupKey, Record};

/// Records read under one lock acquisition.
const READ_BATCH: usize = 128;

pub(crate) struct Group {
    pub core: consumer::Group,
    pub app: Arc<AppLog>,
    /// First partition of the next pass: rotates so that the budget of a pass is not always
    /// spent on the same busy partition.
    start_at: u32,
    /// Committed offsets moved since they were last stored.
    pub dirty: bool,
}

/// What reading the log needs besides the group.
pub(crate) struct Reads<'a> {
    /// At most this many records per group per pass.
    pub budget: usize,
    pub log: &'a EmbeddedLog,
    pub scratch: &'a mut Vec<Arc<Record>>,
}

impl Group {
    pub(crate) fn new(
        key: GroupKey,
        app: Arc<AppLog>,
        at: Vec<PartitionOffsets>,
        epochs: &mut Epochs,
    ) -> Group {
        let cursors: BTreeMap<u32, Cursor> = (0u32..)
            .zip(at)
            .map(|(p, o)| (p, Cursor::at(o.committed, o.dispatched_end, epochs.next())))
            .collect();
        Group {
            core: consumer::Group::new(key, cursors),
            app,
            start_at: 0,
            dirty: false,
        }
    }

    pub(crate) fn offsets(&self) -> Vec<PartitionOffsets> {
        self.core
            .cursors
            .values()
            .map(|c| PartitionOffsets {
                committed: c.committed,
                dispatched_end: c.dispatched_end,
            })
            .collect()
    }

    pub(crate) fn join(&mut self, member: consumer::Member, epochs: &mut Epochs) {
        self.core.join(member, &ReadsAtCursor, epochs);
    }

    pub(crate) fn leave(&mut self, conn: ConnId, epochs: &mut Epochs) -> bool {
        self.core.leave(conn, &ReadsAtCursor, epochs)
    }

    pub(crate) fn ack(&mut self, token: &AckToken) {
        if self.core.ack(token) {
            self.dirty = true;
        }
    }

    /// One dispatch pass: reads from every owned partition, routes each record through its
    /// owner's filters and queues deliveries. Returns how many records were consumed.
    pub(crate) fn dispatch(&mut self, pass: &mut Reads<'_>, to: &mut consumer::Pass<'_>) -> usize {
        let n = self.core.cursors.len() as u32;
        if n == 0 || self.core.is_empty() {
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
            consumed += self.dispatch_partition(p, budget, pass, to);
        }
        consumed
    }

    fn dispatch_partition(
        &mut self,
        p: u32,
        mut budget: usize,
        pass: &mut Reads<'_>,
        to: &mut consumer::Pass<'_>,
    ) -> usize {
        let Some(partition) = self.app.partitions.get(p as usize) else {
            return 0;
        };
        // For the log line below (the cursor borrows the group): one reference count per
        // partition and pass.
        let key = self.core.key.clone();
        let Some((cursor, Some(member))) = self.core.owned(p) else {
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
                    group = %key,
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
                // spec 2.4: never buffer without bound; a full connection pauses this
                // partition until the shard sends Resume (the record is read again then).
                if let Offer::Full(_) = cursor.offer(member, record, p, &self.app.topic, to) {
                    full = true;
                    break;
                }
                // Sent, or no route: consumed (a record for no filter counts as acknowledged).
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

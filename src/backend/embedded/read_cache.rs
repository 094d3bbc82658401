//! A bounded window of decoded records of one on-disk partition (issue #14's fan-out target):
//! groups reading the same recent records share one decode instead of each pread-ing and
//! decoding every record into an event of its own.
//!
//! A window is a run of consecutive offsets `[first, next)` that only moves forward. A disk
//! partition has two (`disk_partition`): the tail, which appends fill (they have the events
//! already, so nothing is decoded at all for subscribers that keep up), and the trail, which
//! reads from the files fill (the first group to reach a record decodes it, the groups right
//! behind it find it there). Records that would move a window backwards — a group far behind
//! the others — are not kept: that group reads from the files, as every group did before, and
//! the window stays ahead, where the leading readers are.
//!
//! Bounded by bytes of [`Record::footprint`] (`backend.embedded.read_cache_bytes`, split over
//! the partitions and its two windows), the oldest dropped first, so memory does not grow with
//! retention. What is in a window is not a promise that it is readable: the partition still
//! hands readers only what is below its visible (durable) end.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::seam::Record;

pub(crate) struct ReadCache {
    /// Bytes of footprint kept at most; 0 turns the cache off.
    budget: u64,
    window: RwLock<Window>,
}

struct Window {
    /// Each with its footprint, computed once (it walks the event's attributes).
    records: VecDeque<(Arc<Record>, u64)>,
    /// Offset of `records[0]`.
    first: u64,
    /// Sum of the records' footprints.
    bytes: u64,
}

impl Window {
    fn next(&self) -> u64 {
        self.first + self.records.len() as u64
    }
}

impl ReadCache {
    pub(crate) fn new(budget: u64) -> ReadCache {
        ReadCache {
            budget,
            window: RwLock::new(Window {
                records: VecDeque::new(),
                first: 0,
                bytes: 0,
            }),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Bytes of footprint it keeps at most.
    pub(crate) fn budget(&self) -> u64 {
        self.budget
    }

    /// Offers records in offset order. Each one goes in if it is the next offset of the window,
    /// or restarts the window if it is past it; one before the window's end is already there
    /// (or, behind the window, not wanted). Then the oldest go until the window fits the budget
    /// (the newest always stays, however large).
    pub(crate) fn insert<'a>(&self, records: impl IntoIterator<Item = &'a Arc<Record>>) {
        if !self.enabled() {
            return;
        }
        let mut w = self.window.write();
        for record in records {
            let next = w.next();
            if record.offset < next && !w.records.is_empty() {
                continue;
            }
            if record.offset != next || w.records.is_empty() {
                // A jump forward (or the first record): the old window is behind every reader
                // that will come here next.
                w.records.clear();
                w.bytes = 0;
                w.first = record.offset;
            }
            let footprint = record.footprint();
            w.bytes += footprint;
            w.records.push_back((record.clone(), footprint));
        }
        while w.records.len() > 1 && w.bytes > self.budget {
            if let Some((_, footprint)) = w.records.pop_front() {
                w.first += 1;
                w.bytes = w.bytes.saturating_sub(footprint);
            }
        }
    }

    /// Appends to `out` up to `max` records from `from` on and below `below`, if the window
    /// holds `from`; returns how many (0: not here, read the files).
    pub(crate) fn read(
        &self,
        from: u64,
        below: u64,
        max: usize,
        out: &mut Vec<Arc<Record>>,
    ) -> usize {
        if !self.enabled() {
            return 0;
        }
        let w = self.window.read();
        if from < w.first || from >= w.next() {
            return 0;
        }
        let start = (from - w.first) as usize;
        let stop = w.next().min(below).saturating_sub(w.first) as usize;
        let stop = stop.min(start.saturating_add(max));
        if stop <= start {
            return 0;
        }
        out.extend(w.records.range(start..stop).map(|(r, _)| r.clone()));
        stop - start
    }

    /// Whether records from `from` on would go in (extend the window or move it forward):
    /// decoding ahead for the window is worth it only then.
    pub(crate) fn takes(&self, from: u64) -> bool {
        let w = self.window.read();
        self.enabled() && (w.records.is_empty() || from >= w.next())
    }

    /// The first offset the window holds, if it holds any: a read from the files before it can
    /// stop there and take the rest from here.
    pub(crate) fn first(&self) -> Option<u64> {
        let w = self.window.read();
        (!w.records.is_empty()).then_some(w.first)
    }

    /// (records, bytes of footprint) held, for tests.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, u64) {
        let w = self.window.read();
        (w.records.len(), w.bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;
    use crate::cloudevents::Event;

    /// A record of 100 bytes of data at `offset`.
    fn record(offset: u64) -> Arc<Record> {
        let data = Bytes::from(vec![b'x'; 100]);
        let at = SystemTime::UNIX_EPOCH;
        let event = Event::new_device_event("app", "d1", "ch", "d1", "test", None, data, at);
        Arc::new(Record::new(event, 0, offset))
    }

    fn offsets(out: &[Arc<Record>]) -> Vec<u64> {
        out.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn reads_inside_the_window_share_the_records() {
        let cache = ReadCache::new(1 << 20);
        let records: Vec<_> = (10..20).map(record).collect();
        cache.insert(&records);
        let mut out = Vec::new();
        assert_eq!(cache.read(12, 20, 3, &mut out), 3);
        assert_eq!(offsets(&out), [12, 13, 14]);
        // The same allocation, not a copy.
        assert!(Arc::ptr_eq(&out[0], &records[2]));
        out.clear();
        // Bounded by `below` (the visible end) and by the window's end.
        assert_eq!(cache.read(15, 17, 100, &mut out), 2);
        out.clear();
        assert_eq!(cache.read(18, 100, 100, &mut out), 2);
        out.clear();
        // Outside: not here.
        assert_eq!(cache.read(9, 100, 100, &mut out), 0);
        assert_eq!(cache.read(20, 100, 100, &mut out), 0);
        assert_eq!(cache.read(12, 12, 100, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(cache.first(), Some(10));
    }

    #[test]
    fn the_window_only_moves_forward() {
        let cache = ReadCache::new(1 << 20);
        cache.insert(&(0..5).map(record).collect::<Vec<_>>());
        // Overlapping: only the new part goes in.
        cache.insert(&(3..8).map(record).collect::<Vec<_>>());
        assert_eq!((cache.first(), cache.held().0), (Some(0), 8));
        // Behind: ignored.
        assert!(!cache.takes(2) && cache.takes(8) && cache.takes(50));
        cache.insert(&(0..2).map(record).collect::<Vec<_>>());
        assert_eq!((cache.first(), cache.held().0), (Some(0), 8));
        // Past the end: the window starts again there.
        cache.insert(&(100..103).map(record).collect::<Vec<_>>());
        assert_eq!((cache.first(), cache.held().0), (Some(100), 3));
        let mut out = Vec::new();
        assert_eq!(cache.read(2, 200, 10, &mut out), 0);
    }

    #[test]
    fn the_budget_bounds_the_window_and_drops_the_oldest() {
        let one = record(0).footprint();
        let cache = ReadCache::new(one * 4);
        cache.insert(&(0..10).map(record).collect::<Vec<_>>());
        assert_eq!(cache.held(), (4, one * 4));
        assert_eq!(cache.first(), Some(6));
        // The newest stays even when it alone is over the budget.
        let tiny = ReadCache::new(1);
        tiny.insert(&[record(0), record(1)]);
        assert_eq!((tiny.first(), tiny.held().0), (Some(1), 1));
        // Off: nothing kept, nothing found.
        let off = ReadCache::new(0);
        off.insert(&[record(0)]);
        assert_eq!((off.first(), off.held().0), (None, 0));
    }
}

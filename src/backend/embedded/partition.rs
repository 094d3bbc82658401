//! One partition of the log: an ordered run of records with offsets, trimmed from the front by
//! retention.
//!
//! Writers (HTTP threads, shards through the producer) take the write lock for one append;
//! readers (worker threads) take the read lock once per batch of records, never per event per
//! subscriber. The end offset is also kept in an atomic so that a worker can see "nothing new"
//! without touching the lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::cloudevents::Event;
use crate::seam::Record;

/// How much one partition keeps; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retention {
    pub events: u64,
    pub bytes: u64,
}

impl Retention {
    /// An application's retention split evenly over its partitions (rounded up, so a non-zero
    /// limit never becomes "unlimited").
    pub(crate) fn per_partition(events: u64, bytes: u64, partitions: u32) -> Retention {
        let split = |v: u64| {
            if v == 0 {
                0
            } else {
                v.div_ceil(u64::from(partitions.max(1)))
            }
        };
        Retention {
            events: split(events),
            bytes: split(bytes),
        }
    }

    fn exceeded(&self, events: usize, bytes: u64) -> bool {
        (self.events != 0 && events as u64 > self.events) || (self.bytes != 0 && bytes > self.bytes)
    }
}

struct Segment {
    records: VecDeque<Arc<Record>>,
    /// Offset of `records[0]` (the first retained offset); the end when empty.
    first: u64,
    /// Sum of [`Record::cost`] of the retained records: the byte measure of retention.
    bytes: u64,
}

pub(crate) struct Partition {
    id: u32,
    retention: Retention,
    segment: RwLock<Segment>,
    end: AtomicU64,
}

/// What [`Partition::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Read {
    /// Offset of the first record returned: above the requested one when retention dropped
    /// records the reader had not reached yet.
    pub from: u64,
    pub count: usize,
}

impl Partition {
    pub(crate) fn new(id: u32, retention: Retention) -> Partition {
        Partition {
            id,
            retention,
            segment: RwLock::new(Segment {
                records: VecDeque::new(),
                first: 0,
                bytes: 0,
            }),
            end: AtomicU64::new(0),
        }
    }

    /// Appends one event and returns its offset. Retention drops records from the front, but
    /// always keeps the newest one (an event larger than the byte limit is still readable once).
    pub(crate) fn append(&self, event: Event) -> u64 {
        let mut seg = self.segment.write();
        let offset = seg.first + seg.records.len() as u64;
        let record = Arc::new(Record::new(event, self.id, offset));
        seg.bytes += record.footprint();
        seg.records.push_back(record);
        while seg.records.len() > 1 && self.retention.exceeded(seg.records.len(), seg.bytes) {
            if let Some(old) = seg.records.pop_front() {
                seg.first += 1;
                seg.bytes = seg.bytes.saturating_sub(old.footprint());
            }
        }
        // Published inside the lock, after the record: a reader that sees this end finds it.
        // SeqCst pairs with the doorbell (see `wake`).
        self.end.store(offset + 1, Ordering::SeqCst);
        offset
    }

    /// The next offset to be written.
    pub(crate) fn end(&self) -> u64 {
        self.end.load(Ordering::SeqCst)
    }

    /// The first retained offset.
    pub(crate) fn first(&self) -> u64 {
        self.segment.read().first
    }

    /// The first retained offset whose event `time` is at or after `at` (the end if none is).
    /// A scan, not a binary search: producers set `time`, so it need not grow with the offset;
    /// an event without a readable `time` is taken as older.
    pub(crate) fn offset_for_time(&self, at: std::time::SystemTime) -> u64 {
        let seg = self.segment.read();
        let found = seg.records.iter().position(|r| {
            r.event
                .time
                .as_deref()
                .and_then(crate::seam::parse_rfc3339)
                .is_some_and(|t| t >= at)
        });
        match found {
            Some(i) => seg.first + i as u64,
            None => seg.first + seg.records.len() as u64,
        }
    }

    /// Appends up to `max` records from offset `from` on to `out`, under one read lock. A reader
    /// positioned before the first retained offset skips to it (see [`Read::from`]).
    pub(crate) fn read(&self, from: u64, max: usize, out: &mut Vec<Arc<Record>>) -> Read {
        let seg = self.segment.read();
        let start = from.max(seg.first);
        let index = usize::try_from(start - seg.first).unwrap_or(usize::MAX);
        let len = seg.records.len();
        if index >= len {
            return Read {
                from: start,
                count: 0,
            };
        }
        let stop = len.min(index.saturating_add(max));
        out.extend(seg.records.range(index..stop).cloned());
        Read {
            from: start,
            count: stop - index,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;

    use super::*;

    fn event(n: usize) -> Event {
        Event::new_device_event(
            "demo",
            "d1",
            "ch",
            "d1",
            "test",
            None,
            Bytes::from(vec![b'x'; n]),
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn offsets_start_at_zero_and_batches_read_in_order() {
        let p = Partition::new(
            3,
            Retention {
                events: 0,
                bytes: 0,
            },
        );
        for i in 0..5 {
            assert_eq!(p.append(event(1)), i);
        }
        assert_eq!(p.end(), 5);
        let mut out = Vec::new();
        assert_eq!(p.read(1, 2, &mut out), Read { from: 1, count: 2 });
        assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 2]);
        assert!(out.iter().all(|r| r.partition == 3));
        out.clear();
        assert_eq!(p.read(5, 10, &mut out), Read { from: 5, count: 0 });
    }

    #[test]
    fn retention_by_count_and_bytes_drops_the_front() {
        let p = Partition::new(
            0,
            Retention {
                events: 3,
                bytes: 0,
            },
        );
        for _ in 0..10 {
            p.append(event(1));
        }
        assert_eq!((p.first(), p.end()), (7, 10));
        let mut out = Vec::new();
        assert_eq!(p.read(2, 100, &mut out), Read { from: 7, count: 3 });

        let cost = Record::new(event(100), 0, 0).footprint();
        let p = Partition::new(
            0,
            Retention {
                events: 0,
                bytes: cost * 2,
            },
        );
        for _ in 0..5 {
            p.append(event(100));
        }
        assert_eq!((p.first(), p.end()), (3, 5));
        // One record above the byte limit is still kept: the newest is always readable.
        let p = Partition::new(
            0,
            Retention {
                events: 0,
                bytes: 1,
            },
        );
        p.append(event(100));
        p.append(event(100));
        assert_eq!((p.first(), p.end()), (1, 2));
    }

    #[test]
    fn retention_is_split_over_partitions() {
        assert_eq!(
            Retention::per_partition(10, 1000, 4),
            Retention {
                events: 3,
                bytes: 250
            }
        );
        assert_eq!(
            Retention::per_partition(0, 0, 4),
            Retention {
                events: 0,
                bytes: 0
            }
        );
    }
}

//! One partition of the log: an ordered run of records with offsets, trimmed from the front by
//! retention, held in memory or on disk (`backend.embedded.storage`, issue #14).
//!
//! In memory, writers (HTTP threads, shards through the producer) take the write lock for one
//! append; readers (worker threads) take the read lock once per batch of records, never per
//! event per subscriber. On disk the records live in a [`DiskPartition`]: a read takes them from
//! its bounded cache of decoded records when they are recent (`read_cache`), else decodes them
//! from the files (the page cache), so memory does not grow with retention.
//!
//! The end readers see is kept in an atomic so that a worker can see "nothing new" without
//! touching a lock. On disk with `fsync = "always"` it is the durable end, raised by the syncer
//! after each fdatasync: like Kafka's high watermark, readers see only what survives a power
//! loss, so nothing is delivered that a crash could take back.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::disk::StoreError;
use super::disk_partition::DiskPartition;
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
    storage: Storage,
    /// The end readers see (see the module documentation).
    end: AtomicU64,
}

enum Storage {
    Memory {
        retention: Retention,
        segment: RwLock<Segment>,
    },
    /// Boxed: far larger than the memory variant's state (the log's state and its cache).
    Disk(Box<DiskPartition>),
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
    /// A partition in memory.
    pub(crate) fn new(id: u32, retention: Retention) -> Partition {
        Partition {
            id,
            storage: Storage::Memory {
                retention,
                segment: RwLock::new(Segment {
                    records: VecDeque::new(),
                    first: 0,
                    bytes: 0,
                }),
            },
            end: AtomicU64::new(0),
        }
    }

    /// A partition on disk: everything recovery found is readable at once (it is what the disk
    /// holds, see [`super::disk::Log::open`]).
    pub(crate) fn on_disk(id: u32, disk: DiskPartition) -> Partition {
        let end = disk.end();
        Partition {
            id,
            storage: Storage::Disk(Box::new(disk)),
            end: AtomicU64::new(end),
        }
    }

    /// The disk log behind this partition, if it is on disk.
    pub(crate) fn disk(&self) -> Option<&DiskPartition> {
        match &self.storage {
            Storage::Disk(d) => Some(d),
            Storage::Memory { .. } => None,
        }
    }

    /// Appends `events` in order and returns their offsets. In memory they are readable at
    /// once; on disk too unless the disk waits for an fdatasync first (`fsync = "always"`:
    /// the syncer calls [`Partition::sync_to`]). A disk error keeps nothing of the batch.
    pub(crate) fn append_batch(&self, events: Vec<Event>) -> Result<Range<u64>, StoreError> {
        match &self.storage {
            Storage::Memory { .. } => {
                let mut range: Option<Range<u64>> = None;
                for event in events {
                    let offset = self.append(event);
                    range.get_or_insert(offset..offset).end = offset + 1;
                }
                Ok(range.unwrap_or_else(|| self.end()..self.end()))
            }
            Storage::Disk(disk) => {
                let range = disk.append(events)?;
                if !disk.waits_for_sync() {
                    // fetch_max: two appenders may publish their ends in either order.
                    self.end.fetch_max(range.end, Ordering::SeqCst);
                }
                Ok(range)
            }
        }
    }

    /// fdatasyncs the disk log up to at least `end` (group commit: one call covers every
    /// append made before it), then lets readers see it. Returns the end readers now see.
    pub(crate) fn sync_to(&self, end: u64) -> Result<u64, StoreError> {
        if let Storage::Disk(disk) = &self.storage {
            let durable = disk.make_durable(end)?;
            self.end.fetch_max(durable, Ordering::SeqCst);
        }
        Ok(self.end())
    }

    /// Appends one event in memory and returns its offset. Retention drops records from the
    /// front, but always keeps the newest one (an event larger than the byte limit is still
    /// readable once).
    fn append(&self, event: Event) -> u64 {
        let Storage::Memory { retention, segment } = &self.storage else {
            unreachable!("append is for memory partitions")
        };
        let mut seg = segment.write();
        let offset = seg.first + seg.records.len() as u64;
        let record = Arc::new(Record::new(event, self.id, offset));
        seg.bytes += record.footprint();
        seg.records.push_back(record);
        while seg.records.len() > 1 && retention.exceeded(seg.records.len(), seg.bytes) {
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
        match &self.storage {
            Storage::Memory { segment, .. } => segment.read().first,
            Storage::Disk(disk) => disk.first().min(self.end()),
        }
    }

    /// In memory: the first retained offset whose event `time` is at or after `at` (the end if
    /// none is). A scan, not a binary search: producers set `time`, so it need not grow with
    /// the offset; an event without a readable `time` is taken as older. On disk: the first
    /// record appended at or after `at`, from the time index (like Kafka's `offsetsForTimes`
    /// on the log append time).
    pub(crate) fn offset_for_time(&self, at: std::time::SystemTime) -> u64 {
        let segment = match &self.storage {
            Storage::Memory { segment, .. } => segment,
            Storage::Disk(disk) => {
                let end = self.end();
                let ms = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                return match disk.offset_for_time(ms) {
                    Ok(found) => found.map_or(end, |o| o.min(end)),
                    Err(e) => {
                        tracing::error!(error = %e, "embedded log: time lookup failed; starting at the end");
                        end
                    }
                };
            }
        };
        let seg = segment.read();
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
        let segment = match &self.storage {
            Storage::Memory { segment, .. } => segment,
            Storage::Disk(disk) => return self.read_disk(disk, from, max, out),
        };
        let seg = segment.read();
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

impl Partition {
    /// [`Partition::read`] from the files, below the end readers see. An error (the file
    /// changed under the service) is logged and reads as nothing new, so that a group does not
    /// skip past records it could not read.
    fn read_disk(
        &self,
        disk: &DiskPartition,
        from: u64,
        max: usize,
        out: &mut Vec<Arc<Record>>,
    ) -> Read {
        let end = self.end();
        let start = from.max(disk.first().min(end));
        if start >= end || max == 0 {
            return Read {
                from: start,
                count: 0,
            };
        }
        let limit = max.min(usize::try_from(end - start).unwrap_or(usize::MAX));
        let before = out.len();
        match disk.read_records(start, limit, end, out) {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, partition = self.id, "embedded log: read from disk failed");
                out.truncate(before);
                return Read {
                    from: start,
                    count: 0,
                };
            }
        }
        let count = out.len() - before;
        Read {
            from: out.get(before).map_or(start, |r| r.offset),
            count,
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

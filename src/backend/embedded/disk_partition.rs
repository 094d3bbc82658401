//! One partition of an application on disk (issue #14 step 2): a [`disk::Log`] of events in the
//! [`stored`] encoding, with the group commit that `fsync = "always"` needs.
//!
//! Group commit: appenders append under the log's lock (short: a write to the page cache), then
//! call [`DiskPartition::make_durable`] with the end of their batch. One of them at a time
//! fdatasyncs (under `sync_lock`, not the log's lock, so appends go on meanwhile); those waiting
//! behind it find their batch already durable when they get the lock and return without an
//! fsync of their own. So N concurrent appenders cost about two fsyncs, not N.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::disk::{self, Durability, RecordIn, StoreError};
use super::read_cache::ReadCache;
use super::stored;
use crate::cloudevents::Event;
use crate::config::Fsync;
use crate::seam::Record;

pub(crate) struct DiskPartition {
    id: u32,
    durability: Durability,
    log: Mutex<disk::Log>,
    /// Held while one appender fdatasyncs for everyone (see the module documentation).
    sync_lock: Mutex<()>,
    /// The first offset held: changes only when retention deletes segments, and is read on
    /// every read, which should not queue behind appends for the log's lock.
    first: AtomicU64,
    /// Decoded records at the end of the log, put there by appends, shared by every group
    /// (`read_cache`): readers that keep up decode nothing.
    tail: ReadCache,
    /// Decoded records behind `tail`, put there by the first group to read them from the
    /// files, for the groups right behind it (a backlog drained by several groups, or any read
    /// after a restart, when `tail` is empty).
    trail: ReadCache,
}

/// The store's durability for `backend.embedded.fsync`.
pub(crate) fn durability(fsync: Fsync, interval: Duration) -> Durability {
    match fsync {
        Fsync::Always => Durability::Always,
        Fsync::Interval => Durability::Interval(interval),
        Fsync::Never => Durability::Never,
    }
}

impl DiskPartition {
    /// Opens (recovering) partition `id` of `app` under `dir`. A torn tail is cut with a `warn`
    /// by the store; a file that makes no sense, or a directory another process holds, is an
    /// error naming the file.
    #[cfg(test)]
    pub(crate) fn open(
        dir: &Path,
        app: &str,
        id: u32,
        durability: Durability,
    ) -> Result<DiskPartition, StoreError> {
        Self::open_with(
            dir,
            app,
            id,
            durability,
            disk::Options::default().segment_bytes,
            4 << 20,
        )
    }

    /// [`DiskPartition::open`] with segments of `segment_bytes` (small ones let byte retention,
    /// which deletes whole segments, keep close to its limit) and a read cache of `cache_bytes`
    /// (0: none).
    pub(crate) fn open_with(
        dir: &Path,
        app: &str,
        id: u32,
        durability: Durability,
        segment_bytes: u64,
        cache_bytes: u64,
    ) -> Result<DiskPartition, StoreError> {
        let options = disk::Options {
            // `interval`: the store would fdatasync inside `append` when one is due, on the
            // appender's thread, which may be a shard's event loop. Give it an interval that
            // never comes due: the syncer thread syncs on its timer instead (`sync_now`). The
            // store still syncs a segment it seals, as with any mode but `never`.
            durability: match durability {
                Durability::Interval(_) => Durability::Interval(Duration::MAX),
                other => other,
            },
            segment_bytes,
            ..disk::Options::default()
        };
        let log = disk::Log::open(stored::partition_dir(dir, app, id), options)?;
        Ok(DiskPartition {
            id,
            durability,
            first: AtomicU64::new(log.earliest()),
            log: Mutex::new(log),
            sync_lock: Mutex::new(()),
            // Half each: whatever the readers do, the two together keep to `cache_bytes`.
            tail: ReadCache::new(cache_bytes / 2),
            trail: ReadCache::new(cache_bytes / 2),
        })
    }

    /// Appends `events` as one batch (key: the device; timestamp: now); returns their offsets.
    /// Not yet durable with `fsync = "always"`: call [`DiskPartition::make_durable`] before
    /// acknowledging. A full disk is [`StoreError::DiskFull`] and keeps nothing of the batch.
    /// The events become the tail cache's records: readers that keep up decode nothing.
    pub(crate) fn append(&self, events: Vec<Event>) -> Result<Range<u64>, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // Encoded outside the lock (the lock covers only the write), one after the other into
        // one buffer: no allocation per event.
        let mut values = Vec::with_capacity(events.iter().map(|e| 160 + e.data.len()).sum());
        let mut ends = Vec::with_capacity(events.len());
        for e in &events {
            stored::encode(e, &mut values);
            ends.push(values.len());
        }
        let records: Vec<RecordIn<'_>> = events
            .iter()
            .zip(&ends)
            .scan(0, |start, (e, &end)| {
                let value = &values[*start..end];
                *start = end;
                Some(RecordIn {
                    timestamp: now,
                    key: e.device().unwrap_or("").as_bytes(),
                    value,
                })
            })
            .collect();
        let mut log = self.log.lock();
        let range = log.append(&records)?;
        if self.tail.enabled() {
            // Under the log's lock, so that two appenders fill the window in offset order.
            let records: Vec<Arc<Record>> = events
                .into_iter()
                .zip(range.clone())
                .map(|(event, offset)| Arc::new(Record::new(event, self.id, offset)))
                .collect();
            self.tail.insert(&records);
        }
        Ok(range)
    }

    /// Whether readers wait for an fdatasync before they see an append (`fsync = "always"`).
    pub(crate) fn waits_for_sync(&self) -> bool {
        self.durability == Durability::Always
    }

    /// Returns once every record below `end` is on disk under `fsync = "always"` (at once
    /// otherwise: `interval` syncs from [`DiskPartition::sync_now`] on a timer, `never` leaves
    /// it to the OS), with the offset below which everything is durable (the end, when not
    /// `always`). See the module documentation for the group commit.
    pub(crate) fn make_durable(&self, end: u64) -> Result<u64, StoreError> {
        if self.durability != Durability::Always {
            return Ok(self.end());
        }
        let durable = self.log.lock().durable();
        if durable >= end {
            return Ok(durable);
        }
        let _syncing = self.sync_lock.lock();
        // Whoever held the sync lock before may have covered this batch.
        let point = {
            let log = self.log.lock();
            if log.durable() >= end {
                return Ok(log.durable());
            }
            log.sync_point()
        };
        let started = std::time::Instant::now();
        let synced = point.sync()?;
        crate::metrics::observe_log_fsync(started.elapsed());
        let mut log = self.log.lock();
        log.mark_durable(synced);
        Ok(log.durable())
    }

    /// fdatasync of everything appended, if something is not yet durable (for `interval`, from
    /// the syncer's timer, and at shutdown).
    pub(crate) fn sync_now(&self) -> Result<(), StoreError> {
        let _syncing = self.sync_lock.lock();
        let point = {
            let log = self.log.lock();
            if log.durable() >= log.latest() {
                return Ok(());
            }
            log.sync_point()
        };
        let started = std::time::Instant::now();
        let synced = point.sync()?;
        crate::metrics::observe_log_fsync(started.elapsed());
        self.log.lock().mark_durable(synced);
        Ok(())
    }

    /// Deletes whole segments past the byte limit or older than `max_age`.
    pub(crate) fn apply_retention(
        &self,
        max_bytes: Option<u64>,
        max_age: Option<Duration>,
    ) -> Result<disk::Deleted, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut log = self.log.lock();
        let deleted = log.apply_retention(now, max_bytes, max_age);
        self.first.store(log.earliest(), Ordering::SeqCst);
        deleted
    }

    /// (bytes of log on disk, segments).
    pub(crate) fn size(&self) -> (u64, usize) {
        let log = self.log.lock();
        (log.size_bytes(), log.segment_count())
    }

    /// Batches recovery cut at open (for the recovery metric).
    pub(crate) fn recovery_truncations(&self) -> u64 {
        u64::from(self.log.lock().recovery().truncations)
    }

    /// The first offset appended at or after `ms` (milliseconds since the epoch), if any.
    pub(crate) fn offset_for_time(&self, ms: u64) -> Result<Option<u64>, StoreError> {
        self.log.lock().offset_for_time(ms)
    }

    /// Appends to `out` up to `max` records from `from` on and below `below`: from the caches
    /// when one holds `from`, else decoded from the files (and kept in `trail`, for the groups
    /// behind this one). Offsets retention removed are skipped.
    pub(crate) fn read_records(
        &self,
        from: u64,
        max: usize,
        below: u64,
        out: &mut Vec<Arc<Record>>,
    ) -> Result<(), StoreError> {
        if self.tail.read(from, below, max, out) > 0 || self.trail.read(from, below, max, out) > 0 {
            return Ok(());
        }
        // Up to the first cached record ahead, if any: the next read takes it from there.
        let below = [self.tail.first(), self.trail.first()]
            .into_iter()
            .flatten()
            .filter(|&first| first > from)
            .fold(below, u64::min);
        // Without the trail: about the bytes `max` records take (the store returns at least one
        // record anyway), so that a read of a few records does not decode a megabyte. With it:
        // up to an eighth of its budget (a record's footprint is a few times its stored bytes),
        // decoded once and kept there, so that the one pread of a batch (an HTTP request's
        // batch is ~200 KiB, and the store reads whole batches) serves this group's next reads
        // and the groups behind it, rather than every 128-record read reading the batch again.
        // A group behind the trail's window decodes only what it asked for: the window would
        // not keep the rest.
        let (max_bytes, decode) = if self.trail.takes(from) {
            let bytes = max
                .saturating_mul(512)
                .max(usize::try_from(self.trail.budget() / 8).unwrap_or(usize::MAX));
            (bytes.clamp(4 << 10, 1 << 20), usize::MAX)
        } else {
            (max.saturating_mul(512).clamp(4 << 10, 1 << 20), max)
        };
        let stored = self.log.lock().read(from, max_bytes)?;
        let before = out.len();
        // Beyond the `max` asked for, no more than half the trail: decoding what the window
        // would drop before anyone reads it is wasted.
        let mut footprint = 0;
        for (i, r) in stored.into_iter().take(decode).enumerate() {
            if r.offset >= below || (i >= max && footprint > self.trail.budget() / 2) {
                break;
            }
            let event = stored::decode(&r.value).map_err(|reason| StoreError::Corrupt {
                file: self.log.lock().dir().to_path_buf(),
                reason: format!("record {}: {reason}", r.offset),
            })?;
            // About a record's footprint (see `Record::footprint`), without walking it.
            footprint += 2 * r.value.len() as u64 + 512;
            out.push(Arc::new(Record::new(event, self.id, r.offset)));
        }
        self.trail.insert(&out[before..]);
        out.truncate(before.saturating_add(max));
        Ok(())
    }

    /// Records from `from` on (about `max_bytes` of them, at least one if there is one), as the
    /// readers use them. Offsets retention removed are skipped.
    #[cfg(test)]
    pub(crate) fn read(&self, from: u64, max_bytes: usize) -> Result<Vec<Arc<Record>>, StoreError> {
        let stored = self.log.lock().read(from, max_bytes)?;
        let dir = || self.log.lock().dir().to_path_buf();
        stored
            .into_iter()
            .map(|r| {
                let event = stored::decode(&r.value).map_err(|reason| StoreError::Corrupt {
                    file: dir(),
                    reason: format!("record {}: {reason}", r.offset),
                })?;
                Ok(Arc::new(Record::new(event, self.id, r.offset)))
            })
            .collect()
    }

    /// The first offset held.
    pub(crate) fn first(&self) -> u64 {
        self.first.load(Ordering::SeqCst)
    }

    /// The offset the next record gets.
    pub(crate) fn end(&self) -> u64 {
        self.log.lock().latest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event(device: &str, n: u32) -> Event {
        Event::new_device_event(
            "app",
            device,
            "channel",
            device,
            "instance",
            Some("text/plain"),
            Bytes::from(format!("event {n}")),
            SystemTime::now(),
        )
    }

    #[test]
    fn appended_events_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..10).map(|n| event("d1", n)).collect();
        {
            let p = DiskPartition::open(dir.path(), "my/app", 2, Durability::Always).unwrap();
            assert_eq!(p.append(events[..4].to_vec()).unwrap(), 0..4);
            assert_eq!(p.append(events[4..].to_vec()).unwrap(), 4..10);
            p.make_durable(10).unwrap();
            assert_eq!(p.log.lock().durable(), 10);
        }
        assert!(dir.path().join("my%2Fapp").join("2").is_dir());
        let p = DiskPartition::open(dir.path(), "my/app", 2, Durability::Always).unwrap();
        assert_eq!((p.first(), p.end()), (0, 10));
        let read = p.read(3, usize::MAX).unwrap();
        assert_eq!(read.len(), 7);
        for (i, r) in read.iter().enumerate() {
            assert_eq!((r.partition, r.offset), (2, 3 + i as u64));
            assert_eq!(r.event, events[3 + i]);
        }
    }

    #[test]
    fn a_second_open_of_a_partition_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DiskPartition::open(dir.path(), "app", 0, Durability::Never).unwrap();
        let second = DiskPartition::open(dir.path(), "app", 0, Durability::Never);
        assert!(matches!(second, Err(StoreError::Locked { .. })));
    }

    #[test]
    fn concurrent_appenders_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(DiskPartition::open(dir.path(), "app", 0, Durability::Always).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        let range = p.append(vec![event(&format!("d{t}"), n)]).unwrap();
                        p.make_durable(range.end).unwrap();
                        assert!(p.log.lock().durable() >= range.end);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(p.end(), 100);
        // Per device, in order.
        let read = p.read(0, usize::MAX).unwrap();
        for t in 0..4 {
            let device = format!("d{t}");
            let data: Vec<Bytes> = read
                .iter()
                .filter(|r| r.event.device() == Some(&device))
                .map(|r| r.event.data.clone())
                .collect();
            let expected: Vec<Bytes> = (0..25).map(|n| Bytes::from(format!("event {n}"))).collect();
            assert_eq!(data, expected);
        }
    }

    /// Not a check (timings are noisy): prints the rate of single-event appends, each waited
    /// durable, with 1 and 16 appenders, to see the group commit at work.
    /// `cargo test --lib disk_partition::tests::group_commit_rate -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn group_commit_rate() {
        for appenders in [1, 16] {
            let dir = tempfile::tempdir().unwrap();
            let p =
                Arc::new(DiskPartition::open(dir.path(), "app", 0, Durability::Always).unwrap());
            let start = std::time::Instant::now();
            let threads: Vec<_> = (0..appenders)
                .map(|t| {
                    let p = p.clone();
                    std::thread::spawn(move || {
                        for n in 0..200 {
                            let range = p.append(vec![event(&format!("d{t}"), n)]).unwrap();
                            p.make_durable(range.end).unwrap();
                        }
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{appenders} appenders: {} durable events in {secs:.2}s = {:.0}/s",
                p.end(),
                p.end() as f64 / secs
            );
        }
    }
}

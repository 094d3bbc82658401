//! The embedded log on disk (issue #14) through the backend's own entry points: started on a
//! directory, written through the producer, stopped, started again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::store::PartitionOffsets;
use super::{start_on_disk, DiskOptions, EmbeddedLog, EmbeddedOptions, StartError};
use crate::backend::Backend;
use crate::cloudevents::Event;
use crate::config::Fsync;
use crate::seam::BackendError;

const APP: &str = "demo";

fn event(device: &str, n: usize) -> Event {
    Event::new_device_event(
        APP,
        device,
        "ch",
        device,
        "test",
        None,
        Bytes::from(format!("event {n}")),
        SystemTime::now(),
    )
}

fn disk(dir: &Path, fsync: Fsync) -> DiskOptions {
    DiskOptions {
        dir: dir.to_path_buf(),
        fsync,
        fsync_interval: Duration::from_millis(20),
        retention_age: Duration::from_secs(3600),
        offsets_flush_interval: Duration::from_millis(50),
        read_cache_bytes: 1 << 20,
    }
}

/// One partition read by one worker.
fn one_partition() -> EmbeddedOptions {
    EmbeddedOptions {
        partitions: 1,
        ..options()
    }
}

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        partitions: 2,
        consumer_threads: 1,
        ..EmbeddedOptions::default()
    }
}

fn open(dir: &Path, fsync: Fsync) -> (Backend, Arc<EmbeddedLog>) {
    match start_on_disk(options(), disk(dir, fsync), [APP]) {
        Ok(started) => started,
        Err(e) => panic!("start failed: {e}"),
    }
}

/// Publishes through the producer and waits for every completion.
fn publish(backend: &Backend, events: Vec<Event>) -> Vec<Result<(), BackendError>> {
    let n = events.len();
    let (tx, rx) = crossbeam_channel::unbounded();
    let handed = backend.producer.publish_events(
        APP,
        events,
        Arc::new(move |i, r| {
            let _ = tx.send((i, r));
        }),
    );
    assert_eq!(handed, n);
    let mut out = vec![Err(BackendError::Unavailable("no answer".into())); n];
    for _ in 0..n {
        let (i, r) = rx.recv_timeout(Duration::from_secs(5)).expect("completion");
        out[i] = r;
    }
    out
}

fn all_data(log: &EmbeddedLog) -> Vec<Vec<Bytes>> {
    (0..log.partitions())
        .map(|p| {
            log.read(APP, p, 0, usize::MAX)
                .unwrap_or_default()
                .iter()
                .map(|r| r.event.data.clone())
                .collect()
        })
        .collect()
}

/// Opens the log in `dir` (fsync always), appends events 0 to 9 of device `d`, and saves the
/// offsets of group `demo.g` at `committed` and `dispatched_end` in d's partition; returns the
/// offsets saved.
fn with_saved_offsets(
    dir: &Path,
    committed: u64,
    dispatched_end: u64,
) -> (Backend, Arc<EmbeddedLog>, Vec<PartitionOffsets>) {
    let (backend, log) = open(dir, Fsync::Always);
    log.append_events(APP, (0..10).map(|n| event("d", n)).collect())
        .unwrap();
    let mut at = vec![PartitionOffsets::default(); 2];
    at[log.partition_of("d") as usize] = PartitionOffsets {
        committed,
        dispatched_end,
    };
    log.store.save("demo.g", &Arc::from(APP), at.clone());
    (backend, log, at)
}

#[test]
fn published_events_are_readable_when_complete_and_survive_a_restart() {
    for fsync in [Fsync::Always, Fsync::Interval, Fsync::Never] {
        let dir = tempfile::tempdir().unwrap();
        let (backend, log) = open(dir.path(), fsync);
        let events: Vec<Event> = (0..20).map(|n| event(&format!("d{}", n % 3), n)).collect();
        assert!(publish(&backend, events).iter().all(Result::is_ok));
        let before = all_data(&log);
        assert_eq!(before.iter().map(Vec::len).sum::<usize>(), 20, "{fsync:?}");
        assert_eq!(log.end_offsets(APP).unwrap().iter().sum::<u64>(), 20);
        backend.shutdown(Duration::from_secs(5));
        drop(log);

        let (backend, log) = open(dir.path(), fsync);
        assert_eq!(all_data(&log), before, "{fsync:?}");
        // Offsets go on from where they were.
        log.append_event(APP, event("d0", 99)).unwrap();
        assert_eq!(log.end_offsets(APP).unwrap().iter().sum::<u64>(), 21);
        backend.shutdown(Duration::from_secs(5));
    }
}

#[test]
fn a_second_log_on_the_same_dir_is_refused_naming_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, _log) = open(dir.path(), Fsync::Never);
    match start_on_disk(options(), disk(dir.path(), Fsync::Never), [APP]) {
        Err(StartError::Disk(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&dir.path().join("LOCK").display().to_string()),
                "{msg}"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second log started on the same directory"),
    }
    backend.shutdown(Duration::from_secs(5));
}

#[test]
fn committed_offsets_are_written_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, log, at) = with_saved_offsets(dir.path(), 3, 5);
    // Written by the syncer's timer, not only at shutdown.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !dir.path().join("offsets").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "offsets file not written"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    backend.shutdown(Duration::from_secs(5));
    drop(log);
    let (backend, log) = open(dir.path(), Fsync::Always);
    assert_eq!(log.store.load("demo.g", APP), Some(at));
    backend.shutdown(Duration::from_secs(5));
}

#[test]
fn byte_retention_deletes_whole_segments_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        // 256 KiB per partition: 64 KiB segments.
        retention_bytes: 256 << 10,
        ..one_partition()
    };
    let (backend, log) = start_on_disk(options, disk(dir.path(), Fsync::Never), [APP]).unwrap();
    let big = |n| {
        let mut e = event("d", n);
        e.data = Bytes::from(vec![b'x'; 4096]);
        e
    };
    for chunk in 0..40 {
        log.append_events(APP, (0..8).map(|n| big(chunk * 8 + n)).collect())
            .unwrap();
    }
    // The syncer applies retention on its timer.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let size = log.disk_size().unwrap();
        if size.bytes[0].1 <= 256 << 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run: {size:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = log.first_offsets(APP).unwrap()[0];
    assert!(first > 0);
    let read = log.read(APP, 0, 0, 1).unwrap();
    assert_eq!(
        read[0].offset, first,
        "a read before the first offset skips to it"
    );
    backend.shutdown(Duration::from_secs(5));
}

#[test]
fn a_group_committed_past_the_end_of_the_log_starts_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, log, _) = with_saved_offsets(dir.path(), 8, 10);
    let p = log.partition_of("d") as usize;
    backend.shutdown(Duration::from_secs(5));
    drop(log);
    // The partition's segments are lost; the offsets file is not.
    std::fs::remove_dir_all(dir.path().join(APP).join(p.to_string())).unwrap();
    let (backend, log) = open(dir.path(), Fsync::Always);
    let restored = log.store.load("demo.g", APP).unwrap();
    assert_eq!(restored[p], PartitionOffsets::default());
    backend.shutdown(Duration::from_secs(5));
}

/// Reads of one partition in chunks of `chunk` from `from`, as a group's passes make them.
fn read_all(log: &EmbeddedLog, p: u32, from: u64, chunk: usize) -> Vec<Arc<crate::seam::Record>> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let read = log.read(APP, p, next, chunk).unwrap();
        let Some(last) = read.last() else {
            return out;
        };
        next = last.offset + 1;
        out.extend(read);
    }
}

#[test]
fn groups_reading_the_same_records_share_one_decode_and_read_in_order_past_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let options = one_partition();
    let one = crate::seam::Record::new(event("d", 0), 0, 0).footprint();
    let mut disk = disk(dir.path(), Fsync::Always);
    // About 25 of the 300 events fit in each of the two windows.
    disk.read_cache_bytes = one * 50;
    let (backend, log) = start_on_disk(options, disk.clone(), [APP]).unwrap();
    for chunk in 0..30 {
        log.append_events(APP, (0..10).map(|n| event("d", chunk * 10 + n)).collect())
            .unwrap();
    }
    let expected: Vec<Bytes> = (0..300)
        .map(|n| Bytes::from(format!("event {n}")))
        .collect();
    let data = |records: &[Arc<crate::seam::Record>]| -> Vec<Bytes> {
        records.iter().map(|r| r.event.data.clone()).collect()
    };
    // Recent records: the appended ones, the same allocation for every reader.
    let a = read_shared(&log, 290, 10);
    assert_eq!(a.len(), 10);
    assert_eq!(data(&a), expected[290..]);
    // A backlog behind them: the first group to read decodes, the next one shares.
    assert_eq!(data(&read_shared(&log, 50, 10)), expected[50..60]);
    // A reader from the start reads the files up to the window, then the window: in order, no
    // gap, nothing twice.
    let all = read_all(&log, 0, 0, 7);
    assert_eq!(
        all.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
    assert_eq!(data(&all), expected);
    backend.shutdown(Duration::from_secs(5));
    drop(log);

    // After a restart nothing is cached: the first group to read decodes, the one right behind
    // it shares those records.
    let (backend, log) = start_on_disk(options, disk, [APP]).unwrap();
    let first = read_shared(&log, 100, 20);
    assert_eq!(first.len(), 20);
    assert_eq!(data(&first), expected[100..120]);
    // One far behind reads the files, correctly, and does not move the window back.
    let behind = log.read(APP, 0, 10, 5).unwrap();
    assert_eq!(data(&behind), expected[10..15]);
    let again = log.read(APP, 0, 100, 20).unwrap();
    assert!(first.iter().zip(&again).all(|(x, y)| Arc::ptr_eq(x, y)));
    assert_eq!(data(&read_all(&log, 0, 0, 13)), expected);
    backend.shutdown(Duration::from_secs(5));
}

/// Two groups reading the same `n` records of partition 0 from `from`: both get the same
/// allocations (one decode), which is returned.
fn read_shared(log: &EmbeddedLog, from: u64, n: usize) -> Vec<Arc<crate::seam::Record>> {
    let first = log.read(APP, 0, from, n).unwrap();
    let second = log.read(APP, 0, from, n).unwrap();
    assert_eq!(first.len(), second.len());
    assert!(
        first.iter().zip(&second).all(|(x, y)| Arc::ptr_eq(x, y)),
        "records {from}.. were decoded twice"
    );
    first
}

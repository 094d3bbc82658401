//! The store's unit tests: real files in temporary directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::offsets::{CommittedOffsets, OffsetsFile, PartitionOffsets};
use super::segment::file_name;
use super::*;

fn options(segment_bytes: u64) -> Options {
    Options {
        segment_bytes,
        index_interval_bytes: 128,
        durability: Durability::Never,
    }
}

/// A new log in a temporary directory (which the log must not outlive).
fn new_log(options: Options) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options).unwrap();
    (dir, log)
}

/// The directory of a log with segments of `segment_bytes`, written by `fill(batches, 3)` and
/// closed: for tests that damage its files and open it again.
fn written_log(segment_bytes: u64, batches: u64) -> tempfile::TempDir {
    let (dir, mut log) = new_log(options(segment_bytes));
    fill(&mut log, batches, 3);
    dir
}

/// Record `i`: a value whose length and bytes depend on `i`, a timestamp 10 ms apart.
fn value(i: u64) -> Vec<u8> {
    vec![(i % 251) as u8; 20 + (i % 13) as usize]
}

fn ts(i: u64) -> u64 {
    1_000_000 + i * 10
}

/// Appends `batches` batches of `per_batch` records; returns the end offset of each batch.
fn fill(log: &mut Log, batches: u64, per_batch: u64) -> Vec<u64> {
    let mut ends = Vec::new();
    for _ in 0..batches {
        let first = log.latest();
        let values: Vec<Vec<u8>> = (first..first + per_batch).map(value).collect();
        let keys: Vec<[u8; 8]> = (first..first + per_batch).map(u64::to_le_bytes).collect();
        let records: Vec<RecordIn<'_>> = (0..per_batch as usize)
            .map(|i| RecordIn {
                timestamp: ts(first + i as u64),
                key: &keys[i],
                value: &values[i],
            })
            .collect();
        let range = log.append(&records).unwrap();
        assert_eq!(range, first..first + per_batch);
        ends.push(range.end);
    }
    ends
}

fn read_all(log: &Log, from: u64) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut from = from;
    loop {
        let got = log.read(from, 300).unwrap();
        let Some(last) = got.last() else { break };
        from = last.offset + 1;
        out.extend(got);
    }
    out
}

/// Every record is record `offset` as `fill` wrote it, and the offsets are `expected`.
fn assert_records(records: &[StoredRecord], expected: impl IntoIterator<Item = u64>) {
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, expected.into_iter().collect::<Vec<_>>());
    for r in records {
        assert_eq!(r.value[..], value(r.offset)[..], "value of {}", r.offset);
        assert_eq!(r.key[..], r.offset.to_le_bytes()[..], "key of {}", r.offset);
        assert_eq!(r.timestamp, ts(r.offset), "timestamp of {}", r.offset);
    }
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn sample_offsets() -> CommittedOffsets {
    let mut offsets = CommittedOffsets::new();
    for g in 0..3u32 {
        let mut owners = BTreeMap::new();
        for o in 0..2u32 {
            let partitions = (0..4u32)
                .map(|p| {
                    (
                        p,
                        PartitionOffsets {
                            committed: u64::from(g * 100 + o * 10 + p),
                            dispatched_end: u64::from(g * 100 + o * 10 + p + 5),
                        },
                    )
                })
                .collect();
            owners.insert(format!("owner-{o}"), partitions);
        }
        offsets.insert(format!("app.group-{g}"), owners);
    }
    offsets
}

mod durability;
mod format;
mod offsets;
mod recovery;
mod retention;

//! The `log_recovery` fuzz target (exposed through `crate::fuzzing`): whatever the files of a
//! log hold, opening never panics and never returns a record that was not written intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Durability, Log, Options, RecordIn};

/// First byte even: the rest is the raw contents of one segment (after a valid header when bit
/// 1 is set) and its two indexes. Odd: the rest is a recipe of batches written through the log,
/// then damage done to its files (truncations, flipped bytes, garbage appended), then a reopen
/// that must return only records as they were written.
pub fn log_recovery(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = TempDir::new();
    if mode & 1 == 0 {
        raw(&dir.0, mode & 2 != 0, rest);
    } else {
        written_then_damaged(&dir.0, rest);
    }
}

fn options() -> Options {
    Options {
        segment_bytes: 1024,
        index_interval_bytes: 64,
        durability: Durability::Never,
    }
}

fn raw(dir: &Path, header: bool, data: &[u8]) {
    let (lens, data) = data.split_at(data.len().min(2));
    let (a, b) = match lens {
        [a, b] => (usize::from(*a), usize::from(*b)),
        _ => (0, 0),
    };
    let (index, data) = data.split_at(a.min(data.len()));
    let (time_index, log) = data.split_at(b.min(data.len()));
    let mut contents = Vec::new();
    if header {
        contents.extend_from_slice(super::segment::MAGIC);
        contents.extend_from_slice(&0u64.to_le_bytes());
    }
    contents.extend_from_slice(log);
    write(dir, "log", &contents);
    write(dir, "index", index);
    write(dir, "timeindex", time_index);
    let Ok(mut log) = Log::open(dir, options()) else {
        return;
    };
    let records = read_all(&log);
    let mut last = None;
    for r in &records {
        assert!(last < Some(r.offset), "offsets out of order");
        assert!(r.offset < log.latest(), "a record past the end");
        last = Some(r.offset);
    }
    let _ = log.offset_for_time(0);
    let _ = log.offset_for_time(u64::MAX / 2);
    append_and_check(&mut log);
}

fn written_then_damaged(dir: &Path, data: &[u8]) {
    let split = data
        .len()
        .min(usize::from(data.first().copied().unwrap_or(0) % 48) + 1);
    let (recipe, damage) = data.split_at(split);
    let mut written: HashMap<u64, (u64, Vec<u8>, Vec<u8>)> = HashMap::new();
    {
        let Ok(mut log) = Log::open(dir, options()) else {
            panic!("a fresh log must open");
        };
        let mut ts = 1_000;
        for &b in recipe {
            let n = usize::from(b % 4) + 1;
            let values: Vec<Vec<u8>> = (0..n)
                .map(|i| vec![b.wrapping_add(i as u8); usize::from(b >> 2) % 50])
                .collect();
            let key = [b];
            let records: Vec<RecordIn<'_>> = values
                .iter()
                .enumerate()
                .map(|(i, v)| RecordIn {
                    // Not always increasing: time lookups must not assume it.
                    timestamp: ts + (u64::from(b) + i as u64) % 7,
                    key: &key,
                    value: v,
                })
                .collect();
            ts += 5;
            let range = log.append(&records).expect("append");
            for (offset, r) in range.zip(&records) {
                written.insert(offset, (r.timestamp, r.key.to_vec(), r.value.to_vec()));
            }
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| !p.ends_with(super::lock::LOCK_FILE));
    files.sort();
    for op in damage.chunks_exact(4) {
        let Some(path) = files.get(usize::from(op[1]) % files.len().max(1)) else {
            break;
        };
        let Ok(mut bytes) = std::fs::read(path) else {
            continue;
        };
        let at = usize::from(u16::from_le_bytes([op[2], op[3]]));
        match op[0] % 3 {
            0 => bytes.truncate(at),
            1 => {
                if !bytes.is_empty() {
                    let i = at % bytes.len();
                    bytes[i] ^= op[3] | 1;
                }
            }
            _ => bytes.extend((0..op[2] % 64).map(|i| i.wrapping_mul(op[3]))),
        }
        let _ = std::fs::write(path, bytes);
    }
    let Ok(mut log) = Log::open(dir, options()) else {
        // Damage to a header is reported, not repaired: allowed.
        return;
    };
    let mut last = None;
    for r in read_all(&log) {
        let Some((ts, key, value)) = written.get(&r.offset) else {
            panic!("offset {} was never written", r.offset);
        };
        assert!(last < Some(r.offset), "offsets out of order");
        last = Some(r.offset);
        assert_eq!(
            (r.timestamp, &r.key[..], &r.value[..]),
            (*ts, &key[..], &value[..]),
            "offset {} differs from what was written",
            r.offset
        );
    }
    if let Ok(Some(offset)) = log.offset_for_time(1_050) {
        assert!(written.contains_key(&offset));
    }
    append_and_check(&mut log);
}

/// Appending goes on after any repair, and what is appended reads back.
fn append_and_check(log: &mut Log) {
    let r = RecordIn {
        timestamp: 7,
        key: b"k",
        value: b"after recovery",
    };
    let Ok(range) = log.append(&[r]) else {
        return;
    };
    let got = log
        .read(range.start, 1 << 20)
        .expect("read what was just appended");
    assert_eq!(
        got.first().map(|r| (r.offset, &r.value[..])),
        Some((range.start, &b"after recovery"[..]))
    );
}

fn read_all(log: &Log) -> Vec<super::StoredRecord> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let Ok(batch) = log.read(from, 4096) else {
            return out;
        };
        let Some(last) = batch.last() else {
            return out;
        };
        from = last.offset + 1;
        out.extend(batch);
    }
}

fn write(dir: &Path, ext: &str, bytes: &[u8]) {
    let _ = std::fs::write(dir.join(super::segment::file_name(0, ext)), bytes);
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "mqi-log-recovery-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

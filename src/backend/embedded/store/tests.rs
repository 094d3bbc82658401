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

#[test]
fn round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(1 << 20)).unwrap();
    assert_eq!((log.earliest(), log.latest()), (0, 0));
    assert_eq!(log.append(&[]).unwrap(), 0..0);
    fill(&mut log, 1, 1);
    fill(&mut log, 5, 7);
    fill(&mut log, 1, 100);
    assert_eq!(log.latest(), 136);
    assert_records(&read_all(&log, 0), 0..136);
    // From the middle of a batch, and a budget that stops early but always gives one.
    assert_records(&read_all(&log, 10), 10..136);
    assert_records(&log.read(50, 1).unwrap(), [50]);
    assert!(log.read(136, 1 << 20).unwrap().is_empty());
    drop(log);
    let log = Log::open(dir.path(), options(1 << 20)).unwrap();
    assert_eq!(log.recovery(), &Recovery::default());
    assert_eq!((log.earliest(), log.latest()), (0, 136));
    assert_records(&read_all(&log, 0), 0..136);
}

#[test]
fn segments_roll_by_size_and_every_offset_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    fill(&mut log, 60, 3);
    let n = log.segment_count();
    assert!(n >= 5, "{n} segments");
    let logs = files(dir.path(), "log");
    assert_eq!(logs.len(), n);
    for path in &logs {
        let len = std::fs::metadata(path).unwrap().len();
        // One batch of 3 is at most ~230 bytes: a segment is never much over its size.
        assert!(len <= 2048, "{} is {len} bytes", path.display());
    }
    assert!(files(dir.path(), "index")
        .iter()
        .any(|p| std::fs::metadata(p).unwrap().len() > 0));
    // Every offset through the index (sealed segments and the active one alike).
    for from in 0..180 {
        let got = log.read(from, 1).unwrap();
        assert_records(&got, [from]);
    }
    drop(log);
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    assert_eq!(log.recovery(), &Recovery::default());
    assert_records(&read_all(&log, 0), 0..180);
    fill(&mut log, 1, 1);
    assert_records(&read_all(&log, 170), 170..181);
}

#[test]
fn retention_by_bytes_deletes_whole_segments_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    fill(&mut log, 60, 3);
    let before = log.segment_count();
    let size = log.size_bytes();
    let deleted = log.apply_retention(0, Some(size / 2), None).unwrap();
    assert!(deleted.segments > 0 && deleted.segments < before);
    assert_eq!(log.size_bytes(), size - deleted.bytes);
    assert!(log.size_bytes() <= size / 2);
    assert_eq!(files(dir.path(), "log").len(), log.segment_count());
    assert_eq!(files(dir.path(), "index").len(), log.segment_count());
    assert_eq!(files(dir.path(), "timeindex").len(), log.segment_count());
    let earliest = log.earliest();
    assert!(earliest > 0);
    // Reading from a deleted offset starts at the earliest kept.
    assert_records(&read_all(&log, 0), earliest..180);
    // Never the active segment, whatever the limit.
    log.apply_retention(0, Some(0), None).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.latest(), 180);
    drop(log);
    let log = Log::open(dir.path(), options(2048)).unwrap();
    assert_eq!(log.latest(), 180);
    assert_records(&read_all(&log, 0), log.earliest()..180);
}

#[test]
fn retention_by_age_deletes_segments_whose_records_are_all_older() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    fill(&mut log, 60, 3);
    let now = ts(180);
    // Nothing is 10 s old.
    let none = log
        .apply_retention(now, None, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(none, Deleted::default());
    // Older than 1 s: records 0..80 (ts(80) = now - 1000).
    log.apply_retention(now, None, Some(Duration::from_secs(1)))
        .unwrap();
    let earliest = log.earliest();
    let kept = read_all(&log, 0);
    assert_records(&kept, earliest..180);
    // Every record before `earliest` was old; the segment kept first holds a young one.
    assert!(earliest <= 81, "{earliest}");
    let first_segment_end = log.read(earliest, usize::MAX).unwrap();
    assert!(first_segment_end.iter().any(|r| r.timestamp >= now - 1000));
}

#[test]
fn time_index_finds_the_first_record_at_or_after_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    fill(&mut log, 80, 3);
    assert!(files(dir.path(), "timeindex")
        .iter()
        .any(|p| std::fs::metadata(p).unwrap().len() > 0));
    assert_eq!(log.offset_for_time(0).unwrap(), Some(0));
    for i in [0u64, 1, 2, 3, 57, 100, 101, 200, 239] {
        assert_eq!(log.offset_for_time(ts(i)).unwrap(), Some(i), "at ts({i})");
        assert_eq!(
            log.offset_for_time(ts(i) - 5).unwrap(),
            Some(i),
            "before ts({i})"
        );
    }
    assert_eq!(log.offset_for_time(ts(240)).unwrap(), None);
}

#[test]
fn time_lookup_with_timestamps_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    let mut stamps = Vec::new();
    for i in 0..300u64 {
        // A sawtooth: clocks of different devices.
        let t = 1000 + (i * 37) % 500 + i;
        stamps.push(t);
        let v = value(i);
        log.append(&[RecordIn {
            timestamp: t,
            key: b"k",
            value: &v,
        }])
        .unwrap();
    }
    for t in (900..1900).step_by(7) {
        let expected = stamps.iter().position(|&s| s >= t).map(|p| p as u64);
        assert_eq!(log.offset_for_time(t).unwrap(), expected, "at {t}");
    }
}

/// A small log (3 batches, one segment) and its files' bytes.
fn small_log() -> (tempfile::TempDir, Vec<u64>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(1 << 20)).unwrap();
    let ends = fill(&mut log, 3, 2);
    drop(log);
    let bytes = std::fs::read(dir.path().join(file_name(0, "log"))).unwrap();
    (dir, ends, bytes)
}

/// Where each batch of the small log ends in its file.
fn batch_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut pos = 16;
    while pos < bytes.len() {
        pos += batch::header(&bytes[pos..]).unwrap().total_len;
        ends.push(pos);
    }
    ends
}

#[test]
fn torn_tail_at_every_byte_keeps_every_complete_batch() {
    let (src, ends, bytes) = small_log();
    let file_ends = batch_ends(&bytes);
    assert_eq!(file_ends.len(), 3);
    for len in 0..=bytes.len() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file_name(0, "log")), &bytes[..len]).unwrap();
        for ext in ["index", "timeindex"] {
            std::fs::copy(
                src.path().join(file_name(0, ext)),
                dir.path().join(file_name(0, ext)),
            )
            .unwrap();
        }
        let mut log = Log::open(dir.path(), options(1 << 20))
            .unwrap_or_else(|e| panic!("truncated to {len}: {e}"));
        let whole = file_ends.iter().filter(|&&e| e <= len).count();
        let end = if whole == 0 { 0 } else { ends[whole - 1] };
        assert_eq!(log.latest(), end, "truncated to {len}");
        assert_records(&read_all(&log, 0), 0..end);
        let torn = !(len == 16 || file_ends.contains(&len));
        assert_eq!(
            log.recovery().truncations,
            u32::from(torn),
            "truncated to {len}"
        );
        // Appending goes on, and survives another reopen.
        fill(&mut log, 1, 2);
        drop(log);
        let log = Log::open(dir.path(), options(1 << 20)).unwrap();
        assert_eq!(
            log.recovery().truncations,
            0,
            "truncated to {len}, reopened"
        );
        assert_records(&read_all(&log, 0), 0..end + 2);
    }
}

#[test]
fn a_flipped_byte_drops_its_batch_and_what_follows_in_the_segment() {
    let (src, ends, bytes) = small_log();
    let file_ends = batch_ends(&bytes);
    for at in 16..bytes.len() {
        let dir = tempfile::tempdir().unwrap();
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x40;
        std::fs::write(dir.path().join(file_name(0, "log")), &damaged).unwrap();
        std::fs::copy(
            src.path().join(file_name(0, "index")),
            dir.path().join(file_name(0, "index")),
        )
        .unwrap();
        let log = Log::open(dir.path(), options(1 << 20)).unwrap();
        let hit = file_ends.iter().position(|&e| at < e).unwrap();
        let end = if hit == 0 { 0 } else { ends[hit - 1] };
        assert_eq!(log.latest(), end, "byte {at} flipped");
        assert_records(&read_all(&log, 0), 0..end);
        let r = log.recovery();
        assert_eq!(r.truncations, 1);
        assert_eq!(
            r.bytes_dropped,
            (bytes.len() - if hit == 0 { 16 } else { file_ends[hit - 1] }) as u64
        );
    }
}

#[test]
fn damage_in_a_sealed_segment_keeps_the_segments_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    fill(&mut log, 60, 3);
    drop(log);
    let logs = files(dir.path(), "log");
    let second = &logs[1];
    let mut bytes = std::fs::read(second).unwrap();
    let first_batch_end = batch_ends(&bytes)[0];
    bytes[first_batch_end + 40] ^= 1;
    std::fs::write(second, &bytes).unwrap();
    let log = Log::open(dir.path(), options(2048)).unwrap();
    let r = log.recovery().clone();
    assert_eq!(r.truncations, 1);
    assert!(r.offsets_lost > 0);
    let got: Vec<u64> = read_all(&log, 0).iter().map(|r| r.offset).collect();
    let base2: u64 = second
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let lost = (base2 + 3)..(base2 + 3 + r.offsets_lost);
    let expected: Vec<u64> = (0..180).filter(|o| !lost.contains(o)).collect();
    assert_eq!(got, expected);
    assert_records(&read_all(&log, 0), expected);
}

#[test]
fn random_bytes_appended_to_every_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    fill(&mut log, 40, 3);
    drop(log);
    let offsets_path = dir.path().join("offsets");
    let (file, _, _) = OffsetsFile::open(&offsets_path).unwrap();
    let offsets = sample_offsets();
    file.save(&offsets).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for (n, entry) in std::fs::read_dir(dir.path()).unwrap().enumerate() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        for _ in 0..(37 + n * 11) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        std::fs::write(&path, bytes).unwrap();
    }
    let log = Log::open(dir.path(), options(2048)).unwrap();
    assert_records(&read_all(&log, 0), 0..120);
    let r = log.recovery();
    assert_eq!(r.truncations as usize, log.segment_count());
    assert_eq!(r.indexes_rebuilt as usize, 2 * log.segment_count());
    let (_, loaded, repair) = OffsetsFile::open(&offsets_path).unwrap();
    assert_eq!(loaded, offsets);
    assert!(repair.bytes_dropped > 0);
}

#[test]
fn indexes_that_do_not_match_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(4096)).unwrap();
    fill(&mut log, 40, 3);
    drop(log);
    let index = files(dir.path(), "index").remove(0);
    let good = std::fs::read(&index).unwrap();
    assert!(good.len() >= 16);
    // Plausible but wrong entries, and a missing time index.
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&20u32.to_le_bytes());
    std::fs::write(&index, &bad).unwrap();
    std::fs::remove_file(files(dir.path(), "timeindex").remove(0)).unwrap();
    let log = Log::open(dir.path(), options(4096)).unwrap();
    assert_eq!(log.recovery().indexes_rebuilt, 2);
    assert_eq!(std::fs::read(&index).unwrap(), good);
    for from in 0..120 {
        assert_records(&log.read(from, 1).unwrap(), [from]);
    }
    assert_eq!(log.offset_for_time(ts(77)).unwrap(), Some(77));
}

#[test]
fn files_that_make_no_sense_stop_open_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), options(2048)).unwrap();
    fill(&mut log, 40, 3);
    drop(log);
    let logs = files(dir.path(), "log");

    // A bad magic.
    let mut bytes = std::fs::read(&logs[0]).unwrap();
    bytes[0] = b'X';
    std::fs::write(&logs[0], &bytes).unwrap();
    let e = Log::open(dir.path(), options(2048)).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(&file_name(0, "log")), "{e}");
    bytes[0] = b'M';
    std::fs::write(&logs[0], &bytes).unwrap();

    // A segment whose base offset does not follow (the second one gone, not cut).
    let second = std::fs::read(&logs[1]).unwrap();
    std::fs::remove_file(&logs[1]).unwrap();
    let e = Log::open(dir.path(), options(2048)).unwrap_err();
    let name = logs[2].file_name().unwrap().to_str().unwrap();
    assert!(e.to_string().contains(name), "{e}");
    assert!(e.to_string().contains("does not follow"), "{e}");
    std::fs::write(&logs[1], second).unwrap();

    // A header whose base is not the name's.
    let mut bytes = std::fs::read(&logs[1]).unwrap();
    bytes[8] ^= 1;
    std::fs::write(&logs[1], &bytes).unwrap();
    let e = Log::open(dir.path(), options(2048)).unwrap_err();
    assert!(e.to_string().contains("base offset does not match"), "{e}");
}

#[test]
fn a_second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(2048)).unwrap();
    let e = Log::open(dir.path(), options(2048)).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("LOCK"), "{e}");
    // Another process too (flock is per open file, and the kernel's).
    let lock = dir.path().join("LOCK");
    let status = std::process::Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(&lock)
        .arg("true")
        .status();
    if let Ok(status) = status {
        assert!(
            !status.success(),
            "flock(1) got the lock while the log held it"
        );
    }
    drop(log);
    Log::open(dir.path(), options(2048)).unwrap();
}

#[test]
fn group_commit_syncs_on_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        Options {
            durability: Durability::Always,
            ..options(1 << 20)
        },
    )
    .unwrap();
    assert_eq!(log.durable(), 0);
    fill(&mut log, 3, 2);
    assert_eq!(log.durable(), 0);
    let point = log.sync_point();
    // Appends go on while the sync runs; they are not covered by it.
    let syncer = std::thread::spawn(move || point.sync().unwrap());
    fill(&mut log, 1, 2);
    let end = syncer.join().unwrap();
    assert_eq!(end, 6);
    log.mark_durable(end);
    assert_eq!(log.durable(), 6);
    assert_eq!(log.sync().unwrap(), 8);
    assert_eq!(log.durable(), 8);
}

#[test]
fn interval_durability_syncs_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(
        dir.path(),
        Options {
            durability: Durability::Interval(Duration::from_millis(50)),
            ..options(1 << 20)
        },
    )
    .unwrap();
    fill(&mut log, 1, 2);
    assert_eq!(log.durable(), 0);
    log.sync_if_due(std::time::Instant::now() + Duration::from_millis(60))
        .unwrap();
    assert_eq!(log.durable(), 2);
    std::thread::sleep(Duration::from_millis(60));
    fill(&mut log, 1, 2);
    // The append found the interval passed.
    assert_eq!(log.durable(), 4);
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

#[test]
fn offsets_file_round_trip_and_torn_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offsets");
    let (file, loaded, _) = OffsetsFile::open(&path).unwrap();
    assert!(loaded.is_empty());
    let offsets = sample_offsets();
    file.save(&offsets).unwrap();
    assert!(!dir.path().join("offsets.tmp").exists());
    let (_, loaded, repair) = OffsetsFile::open(&path).unwrap();
    assert_eq!(loaded, offsets);
    assert_eq!(repair.bytes_dropped, 0);

    let bytes = std::fs::read(&path).unwrap();
    let entries: Vec<(String, String)> = offsets
        .iter()
        .flat_map(|(g, owners)| owners.keys().map(move |o| (g.clone(), o.clone())))
        .collect();
    // Where each entry ends.
    let mut ends = Vec::new();
    let mut pos = 8;
    while pos < bytes.len() {
        pos += 4 + batch::u32_at(&bytes, pos) as usize;
        ends.push(pos);
    }
    assert_eq!(ends.len(), entries.len());
    for len in 0..=bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let (_, loaded, repair) =
            OffsetsFile::open(&path).unwrap_or_else(|e| panic!("torn at {len}: {e}"));
        let whole = ends.iter().filter(|&&e| e <= len).count();
        let mut expected = CommittedOffsets::new();
        for (g, o) in &entries[..whole] {
            expected
                .entry(g.clone())
                .or_default()
                .insert(o.clone(), offsets[g][o].clone());
        }
        assert_eq!(loaded, expected, "torn at {len}");
        let good = match whole {
            0 if len < 8 => 0,
            0 => 8,
            n => ends[n - 1],
        };
        assert_eq!(repair.bytes_dropped, (len - good) as u64, "torn at {len}");
        // The repair is on disk: loading again drops nothing more.
        let (_, again, repair2) = OffsetsFile::open(&path).unwrap();
        assert_eq!(again, expected, "torn at {len}, reloaded");
        assert_eq!(repair2.bytes_dropped, 0, "torn at {len}, reloaded");
    }

    // Not an offsets file at all.
    std::fs::write(&path, b"{\"group\": 1}").unwrap();
    let e = OffsetsFile::open(&path).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("offsets"), "{e}");
}

#[test]
fn disk_full_is_its_own_error_and_leaves_the_log_consistent() {
    const INNER: &str = "MQI_STORE_DISK_FULL_DIR";
    let Ok(dir) = std::env::var(INNER) else {
        // Run this test again in a private mount namespace with a 256 KiB tmpfs, if the machine
        // lets us make one (user namespaces or root); nothing is mounted outside it.
        let mnt = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let script = format!(
            "mount -t tmpfs -o size=256k tmpfs '{m}' && exec '{e}' --exact backend::embedded::disk::tests::disk_full_is_its_own_error_and_leaves_the_log_consistent --nocapture --test-threads 1",
            m = mnt.path().display(),
            e = exe.display()
        );
        let out = std::process::Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .env(INNER, mnt.path())
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.contains("1 passed"), "{stdout}");
            }
            Ok(out)
                if String::from_utf8_lossy(&out.stderr).contains("mount")
                    || String::from_utf8_lossy(&out.stderr).contains("unshare") =>
            {
                eprintln!(
                    "skipped: cannot make a small file system here: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(out) => panic!(
                "in the namespace: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("skipped: no unshare(1): {e}"),
        }
        return;
    };
    let dir = Path::new(&dir).join("log");
    let opts = Options {
        durability: Durability::Always,
        ..options(64 << 10)
    };
    let mut log = Log::open(&dir, opts.clone()).unwrap();
    let big = vec![0xA5u8; 8 << 10];
    let mut acked = 0;
    let err = loop {
        let r = RecordIn {
            timestamp: acked,
            key: b"k",
            value: &big,
        };
        match log.append(&[r]) {
            Ok(range) => {
                log.sync().unwrap();
                acked = range.end;
            }
            Err(e) => break e,
        }
        assert!(acked < 1000, "the disk never filled");
    };
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert_eq!(log.latest(), acked);
    // The files hold exactly what was acknowledged: a reopen finds nothing torn.
    drop(log);
    let mut log = Log::open(&dir, opts).unwrap();
    assert_eq!(log.recovery().truncations, 0);
    assert_eq!(log.latest(), acked);
    let got = {
        let mut v = Vec::new();
        let mut from = 0;
        while let Some(last) = log
            .read(from, 1 << 20)
            .unwrap()
            .into_iter()
            .inspect(|r| v.push(r.offset))
            .last()
        {
            from = last.offset + 1;
        }
        v
    };
    assert_eq!(got, (0..acked).collect::<Vec<_>>());
    // Space freed: appending works again.
    log.apply_retention(0, Some(0), None).unwrap();
    let r = RecordIn {
        timestamp: 0,
        key: b"k",
        value: b"small",
    };
    assert_eq!(log.append(&[r]).unwrap(), acked..acked + 1);
    log.sync().unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// The fuzz target on random inputs, on stable: raw files and written-then-damaged logs.
    #[test]
    fn recovery_never_returns_what_was_not_written(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160)
    ) {
        super::fuzz::log_recovery(&data);
    }
}

#[test]
fn options_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for segment_bytes in [10, 2 << 30] {
        let e = Log::open(dir.path(), options(segment_bytes)).unwrap_err();
        assert!(matches!(e, StoreError::Options { .. }), "{e}");
        assert!(e.to_string().contains("segment_bytes"), "{e}");
    }
}

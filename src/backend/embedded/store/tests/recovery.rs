//! Recovery at open: torn tails, flipped bytes, damaged sealed segments, garbage, stale indexes,
//! files that make no sense, and a directory opened twice.

use super::*;

/// A small log (3 batches, one segment) and its files' bytes.
fn small_log() -> (tempfile::TempDir, Vec<u64>, Vec<u8>) {
    let (dir, mut log) = new_log(options(1 << 20));
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
    let dir = written_log(2048, 60);
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
    let dir = written_log(2048, 40);
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
    let dir = written_log(4096, 40);
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
    let dir = written_log(2048, 40);
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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// The fuzz target on random inputs, on stable: raw files and written-then-damaged logs.
    #[test]
    fn recovery_never_returns_what_was_not_written(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160)
    ) {
        super::super::fuzz::log_recovery(&data);
    }
}

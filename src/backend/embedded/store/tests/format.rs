//! Writing and reading back: reopening, rolling segments, the offset and time indexes, and the
//! options refused.

use super::*;

#[test]
fn round_trip_and_reopen() {
    let (dir, mut log) = new_log(options(1 << 20));
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
    let (dir, mut log) = new_log(options(2048));
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
fn time_index_finds_the_first_record_at_or_after_a_time() {
    let (dir, mut log) = new_log(options(2048));
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
    let (_dir, mut log) = new_log(options(2048));
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

#[test]
fn options_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for segment_bytes in [10, 2 << 30] {
        let e = Log::open(dir.path(), options(segment_bytes)).unwrap_err();
        assert!(matches!(e, StoreError::Options { .. }), "{e}");
        assert!(e.to_string().contains("segment_bytes"), "{e}");
    }
}

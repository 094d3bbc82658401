//! Retention: whole segments deleted oldest first, by bytes and by age.

use super::*;

#[test]
fn retention_by_bytes_deletes_whole_segments_oldest_first() {
    let (dir, mut log) = new_log(options(2048));
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
    let (_dir, mut log) = new_log(options(2048));
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

//! Which segments retention deletes: whole sealed segments, oldest first, never the active one.

use std::time::Duration;

/// What retention looks at in a segment.
#[derive(Debug, Clone, Copy)]
pub struct SegmentInfo {
    pub bytes: u64,
    /// The largest record timestamp in it, in milliseconds; `None` if it is empty.
    pub max_ts: Option<u64>,
}

/// How many of the oldest segments to delete. `segments` runs oldest first and includes the
/// active (last) segment, which is never deleted. A segment goes when all of its records are
/// older than `max_age`, or while the log is over `max_bytes`; deletion stops at the first
/// segment that may stay, so what remains is always a contiguous suffix.
pub fn segments_to_delete(
    segments: &[SegmentInfo],
    now_ms: u64,
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
) -> usize {
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
    let cutoff =
        max_age.map(|a| now_ms.saturating_sub(a.as_millis().min(u128::from(u64::MAX)) as u64));
    let mut n = 0;
    for s in segments.iter().take(segments.len().saturating_sub(1)) {
        let too_old = match (cutoff, s.max_ts) {
            (Some(cutoff), Some(ts)) => ts < cutoff,
            // An empty sealed segment (its records lost to a repair) holds nothing to keep.
            (Some(_), None) => true,
            (None, _) => false,
        };
        let too_big = max_bytes.is_some_and(|max| total > max);
        if !(too_old || too_big) {
            break;
        }
        total -= s.bytes;
        n += 1;
    }
    n
}

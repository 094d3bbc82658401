//! Opening a log directory after whatever happened to it: every segment checked, torn tails
//! cut, indexes rebuilt, leftovers removed, and the segments checked to follow one another.

use std::path::Path;

use super::error::StoreError;
use super::lock::LOCK_FILE;
use super::segment::{file_name, Segment};

/// What recovery repaired, for the logs and the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Log files whose tail was cut off.
    pub truncations: u32,
    pub bytes_dropped: u64,
    pub indexes_rebuilt: u32,
    /// Offsets lost between segments because a segment's tail was damaged (not torn: a crash
    /// only tears the active segment, which nothing follows).
    pub offsets_lost: u64,
}

/// The segments in `dir`, oldest first, each checked and repaired.
pub fn recover(dir: &Path, index_interval: u64) -> Result<(Vec<Segment>, Recovery), StoreError> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, "list directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, "list directory", e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match name.split_once('.') {
            Some((stem, "log")) => match parse_base(stem) {
                Some(base) => bases.push(base),
                None => {
                    return Err(StoreError::corrupt(
                        entry.path(),
                        "a log file whose name is not a base offset",
                    ))
                }
            },
            Some((stem, "index" | "timeindex")) => indexes.push((stem.to_owned(), entry.path())),
            _ if name == LOCK_FILE => {}
            _ => {
                tracing::warn!(file = %entry.path().display(), "store: a file that is not the store's in its directory; left alone")
            }
        }
    }
    bases.sort_unstable();
    // Indexes whose log is gone: retention deleted the log and a crash came before the indexes.
    for (stem, path) in indexes {
        if !parse_base(&stem).is_some_and(|b| bases.binary_search(&b).is_ok()) {
            tracing::warn!(file = %path.display(), "store: index without its log; removed");
            std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, "remove index", e))?;
        }
    }

    let mut report = Recovery::default();
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    let mut prev_cut = false;
    for base in bases {
        let (seg, repair) = Segment::recover(dir, base, index_interval)?;
        if let Some(prev) = segments.last() {
            if base < prev.next_offset || (base > prev.next_offset && !prev_cut) {
                return Err(StoreError::corrupt(
                    &seg.path,
                    format!(
                        "its base offset {base} does not follow the previous segment {}, which ends at {}",
                        file_name(prev.base, "log"),
                        prev.next_offset
                    ),
                ));
            }
            if base > prev.next_offset {
                tracing::warn!(file = %seg.path.display(), lost = base - prev.next_offset, "store: offsets lost with the previous segment's damaged tail");
                report.offsets_lost += base - prev.next_offset;
            }
        }
        prev_cut = repair.cut();
        if repair.cut() {
            report.truncations += 1;
            report.bytes_dropped += repair.log_bytes_dropped;
        }
        report.indexes_rebuilt += repair.indexes_rebuilt;
        if let Some(prev) = segments.last_mut() {
            prev.seal();
        }
        segments.push(seg);
    }
    Ok((segments, report))
}

fn parse_base(stem: &str) -> Option<u64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

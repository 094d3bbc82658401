//! The embedded backend's on-disk store (issue 14, step 1): a segment log per partition and the
//! committed offsets file. Not wired into the backend yet; a later step does that.
//!
//! # Files
//! One directory per partition log (the caller chooses it), holding:
//! ```text
//! LOCK                      flock'ed while a Log is open: one process per directory
//! <base>.log                segment: "MQISEG01" | base_offset u64 | batch*
//! <base>.index              sparse offset index: relative_offset u32 | position u32
//! <base>.timeindex          sparse time index:   max_ts_before u64 | relative_offset u32
//!
//! batch  = len u32 | crc32 u32 | base_offset u64 | count u32 | min_ts u64 | max_ts u64 | record*
//! record = timestamp u64 | key_len u32 | value_len u32 | key | value
//! ```
//! Little-endian. `<base>` is the segment's first offset in 20 digits. `len` counts the bytes
//! after itself; the CRC-32 covers everything after itself. Timestamps are milliseconds since
//! the Unix epoch, chosen by the caller (not required to increase). Segments roll when the
//! next batch would take the active one past `segment_bytes`; an index entry is written for a
//! batch once `index_interval_bytes` of log lie since the last one. Reads pread from the files
//! (the page cache), and index lookups binary-search the index files with pread: memory per
//! log is a few hundred bytes per segment, whatever the retention. Descriptors: one per sealed
//! segment (its log, for reads; its indexes are opened per lookup), three for the active one.
//!
//! Committed offsets ([`offsets`]): one file of checksummed entries, group → owner →
//! partition → (committed, dispatched end), replaced atomically (temporary file, fdatasync,
//! rename, fsync of the directory).
//!
//! # Recovery (on open)
//! - Every batch of every segment is checked (length, CRC, offsets following on). At the first
//!   batch that is torn (a crash mid-write) or damaged (a checksum mismatch), the segment is cut
//!   there, with a `warn` naming the file and the bytes dropped; earlier batches are kept.
//! - Indexes are recomputed from the log and rewritten when they differ (a torn tail, garbage,
//!   a missing file); an index without its log is removed.
//! - Segments must follow one another: a base offset below the previous segment's end, or a gap
//!   the previous segment's repair does not explain, is an error naming the file, as is a bad
//!   magic, or a header whose base offset is not the file's name. A segment shorter than its
//!   header (a crash right after a roll) gets its header rewritten.
//! - The offsets file keeps its whole, checked entries and loses the rest, with a `warn`; a
//!   bad magic is an error; a leftover temporary file is removed.
//! - A second open of a directory (another process, or this one) is refused:
//!   [`StoreError::Locked`].
//!
//! # Durability
//! - [`Durability::Always`]: the caller calls [`Log::sync`] (or [`Log::sync_point`] on another
//!   thread, for a group commit: one fdatasync covers every append before it) and acknowledges
//!   only records below the offset it returns. Survives power loss.
//! - [`Durability::Interval`]: an fdatasync at most every interval, from `append` or the
//!   caller's timer ([`Log::sync_if_due`]): a power loss loses at most the last interval. A
//!   process crash loses nothing (the page cache survives it).
//! - [`Durability::Never`]: the OS writes back when it likes; a process crash loses nothing, a
//!   power loss what was not yet written back.
//!
//! Unless `Never`, a sealed segment is fdatasynced before the next one is created (so a power
//! loss cannot leave a hole between segments; with `Never` it can, and recovery then accepts the
//! gap after the segment it had to cut). Index files are never synced (they are rebuilt).
//! A failed append (e.g. a full disk, [`StoreError::DiskFull`]) is cut back out of the files.

mod batch;
mod error;
mod index;
mod lock;
mod log;
pub mod offsets;
mod recovery;
mod retention;
mod segment;

#[doc(hidden)]
pub mod fuzz;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

pub use error::StoreError;
pub use lock::DirLock;
pub use log::{Deleted, Log, SyncPoint};
pub use recovery::Recovery;

/// When appended records reach the disk; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Always,
    Interval(Duration),
    Never,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// A segment is sealed and a new one started when the next batch would take it past this.
    pub segment_bytes: u64,
    /// Bytes of log between two index entries.
    pub index_interval_bytes: u64,
    pub durability: Durability,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 64 << 20,
            index_interval_bytes: 4096,
            durability: Durability::Always,
        }
    }
}

/// Positions in an index are 32-bit.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;

impl Options {
    fn check(&self, dir: &Path) -> Result<(), StoreError> {
        if self.segment_bytes > MAX_SEGMENT_BYTES || self.segment_bytes < 1024 {
            return Err(StoreError::Options {
                dir: dir.to_path_buf(),
                reason: format!(
                    "segment_bytes {} is outside 1 KiB..=1 GiB",
                    self.segment_bytes
                ),
            });
        }
        Ok(())
    }
}

/// A record to append. `timestamp` is in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct RecordIn<'a> {
    pub timestamp: u64,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// A record read back; `key` and `value` share the buffer read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    pub timestamp: u64,
    pub key: Bytes,
    pub value: Bytes,
}

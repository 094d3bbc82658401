//! The sparse indexes of a segment: offset → file position, and timestamp → offset.
//!
//! ```text
//! <base>.index      entry = relative_offset u32 | position u32        (8 bytes)
//! <base>.timeindex  entry = max_ts_before u64  | relative_offset u32  (12 bytes)
//! ```
//! Little-endian, no header: both are derived from the log and rebuilt from it whenever they do
//! not match, so they are never synced. An entry is written for a batch when at least
//! `index_interval` bytes of log lie between it and the previous entry (or the segment's start),
//! so the two files have their entries at the same batches. `max_ts_before` is the largest
//! timestamp of every record before that batch in the segment: a time lookup can start at the
//! last entry whose `max_ts_before` is below the wanted time, since nothing before it reaches it.
//! Lookups binary-search the files with pread (the page cache keeps hot ones in memory), so
//! memory does not grow with retention.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::StoreError;

pub const OFFSET_ENTRY: usize = 8;
pub const TIME_ENTRY: usize = 12;

/// One entry of both indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub relative_offset: u32,
    pub position: u32,
    pub max_ts_before: u64,
}

impl Entry {
    pub fn encode_offset(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
    }

    pub fn encode_time(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.max_ts_before.to_le_bytes());
        out.extend_from_slice(&self.relative_offset.to_le_bytes());
    }
}

/// An index file, appended to and searched with positioned I/O.
#[derive(Debug)]
pub struct IndexFile {
    pub path: PathBuf,
    /// Open while its segment is the active one; a sealed segment's index is opened for each
    /// lookup, so a long retention does not hold three descriptors per segment.
    file: Option<File>,
    /// Bytes of whole entries in the file.
    pub len: u64,
    entry: usize,
}

impl IndexFile {
    /// Opens the file and sets it to exactly `contents` (what the log says it must hold),
    /// rewriting it if it differs. Returns whether it had to.
    pub fn open_matching(
        path: PathBuf,
        entry: usize,
        contents: &[u8],
    ) -> Result<(IndexFile, bool), StoreError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "open index", e))?;
        let on_disk = std::fs::read(&path).map_err(|e| StoreError::io(&path, "read index", e))?;
        let rebuilt = on_disk != contents;
        if rebuilt {
            file.set_len(0)
                .and_then(|()| file.write_all_at(contents, 0))
                .map_err(|e| StoreError::io(&path, "rebuild index", e))?;
            if on_disk.len() > contents.len() && on_disk.starts_with(contents) {
                tracing::warn!(file = %path.display(), bytes_dropped = on_disk.len() - contents.len(), "store: index had entries past the log's end (a torn tail); truncated");
            } else {
                tracing::warn!(file = %path.display(), bytes_on_disk = on_disk.len(), bytes_rebuilt = contents.len(), "store: index did not match its log; rebuilt from the log");
            }
        }
        Ok((
            IndexFile {
                path,
                file: Some(file),
                len: contents.len() as u64,
                entry,
            },
            rebuilt,
        ))
    }

    pub fn entries(&self) -> usize {
        self.len as usize / self.entry
    }

    /// Closes the file: the segment is sealed, only lookups come now.
    pub fn seal(&mut self) {
        self.file = None;
    }

    fn writable(&self) -> Result<&File, StoreError> {
        self.file.as_ref().ok_or_else(|| {
            StoreError::io(
                &self.path,
                "write index",
                std::io::Error::other("the segment is sealed"),
            )
        })
    }

    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.writable()?
            .write_all_at(bytes, self.len)
            .map_err(|e| StoreError::io(&self.path, "append to index", e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Drops everything from `len` on (undoing a failed append).
    pub fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        self.writable()?
            .set_len(len)
            .map_err(|e| StoreError::io(&self.path, "truncate index", e))?;
        self.len = len;
        Ok(())
    }

    fn read_entry(&self, file: &File, i: usize) -> Result<[u8; 12], StoreError> {
        let mut buf = [0u8; 12];
        file.read_exact_at(&mut buf[..self.entry], (i * self.entry) as u64)
            .map_err(|e| StoreError::io(&self.path, "read index", e))?;
        Ok(buf)
    }

    /// The number of leading entries for which `below` holds (they must be sorted so that it
    /// holds for a prefix): a binary search, one pread per step.
    /// The last entry for which `below` holds, if any (entries must be sorted so that it
    /// holds for a prefix): a binary search, one pread per step.
    fn last_below(
        &self,
        below: impl Fn(&[u8; 12]) -> bool,
    ) -> Result<Option<[u8; 12]>, StoreError> {
        if self.entries() == 0 {
            return Ok(None);
        }
        let opened;
        let file = match &self.file {
            Some(f) => f,
            None => {
                opened = File::open(&self.path)
                    .map_err(|e| StoreError::io(&self.path, "open index", e))?;
                &opened
            }
        };
        let (mut lo, mut hi) = (0, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(&self.read_entry(file, mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(None);
        }
        self.read_entry(file, lo - 1).map(Some)
    }

    /// Offset index: the position of the last indexed batch starting at or before
    /// `relative_offset`, if any.
    pub fn position_for(&self, relative_offset: u32) -> Result<Option<u32>, StoreError> {
        Ok(self
            .last_below(|e| rel(e, 0) <= relative_offset)?
            .map(|e| rel(&e, 4)))
    }

    /// Time index: the relative offset of the last indexed batch before which every record is
    /// older than `ts`, if any.
    pub fn offset_before_time(&self, ts: u64) -> Result<Option<u32>, StoreError> {
        Ok(self
            .last_below(|e| u64::from_le_bytes(e[..8].try_into().unwrap()) < ts)?
            .map(|e| rel(&e, 8)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn rel(e: &[u8; 12], at: usize) -> u32 {
    u32::from_le_bytes(e[at..at + 4].try_into().unwrap())
}

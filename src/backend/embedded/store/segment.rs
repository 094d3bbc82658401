//! One segment: a log file of record batches after a fixed header, and its two indexes.
//!
//! ```text
//! <base>.log = magic "MQISEG01" (8 bytes) | base_offset u64 | batch*
//! ```
//! `<base>` is the base offset, 20 decimal digits, so names sort in offset order. The header's
//! base offset must agree with the name.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{self, BatchHeader, Invalid};
use super::error::StoreError;
use super::index::{self, Entry, IndexFile};

pub const MAGIC: &[u8; 8] = b"MQISEG01";
pub const FILE_HEADER_LEN: u64 = 16;
/// How much of a segment recovery and reads take per pread.
const CHUNK: usize = 1 << 20;

pub fn file_name(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

fn file_header(base: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&base.to_le_bytes());
    h
}

/// What recovery did to a segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    /// Bytes cut off the end of the log file (a torn or damaged tail).
    pub log_bytes_dropped: u64,
    /// Index files rewritten from the log.
    pub indexes_rebuilt: u32,
    /// The file was shorter than its header (a crash right after creating it).
    pub header_rewritten: bool,
}

impl Repair {
    pub fn cut(&self) -> bool {
        self.log_bytes_dropped > 0 || self.header_rewritten
    }
}

#[derive(Debug)]
pub struct Segment {
    pub base: u64,
    pub path: PathBuf,
    /// Shared with sync points, which fdatasync it on another thread.
    pub file: Arc<File>,
    /// Bytes of the file that hold whole, checked batches (header included).
    pub len: u64,
    /// One past the last offset held; `base` when empty.
    pub next_offset: u64,
    /// The largest record timestamp held (0 when empty).
    pub max_ts: u64,
    pub offset_index: IndexFile,
    pub time_index: IndexFile,
    /// Where the last index entry points (the file header's end when none).
    last_indexed: u64,
}

impl Segment {
    /// A new, empty segment; the file is synced if `sync`, the directory is the caller's.
    pub fn create(dir: &Path, base: u64, sync: bool) -> Result<Segment, StoreError> {
        let made = Self::try_create(dir, base, sync);
        if made.is_err() {
            // Nothing half-made stays behind (a full disk fails here), so a later roll can
            // create it again and recovery never meets it.
            for ext in ["log", "index", "timeindex"] {
                let _ = std::fs::remove_file(dir.join(file_name(base, ext)));
            }
        }
        made
    }

    fn try_create(dir: &Path, base: u64, sync: bool) -> Result<Segment, StoreError> {
        let path = dir.join(file_name(base, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "create segment", e))?;
        file.write_all_at(&file_header(base), 0)
            .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
            .map_err(|e| StoreError::io(&path, "write segment header", e))?;
        let (offset_index, _) =
            IndexFile::open_matching(dir.join(file_name(base, "index")), index::OFFSET_ENTRY, &[])?;
        let (time_index, _) = IndexFile::open_matching(
            dir.join(file_name(base, "timeindex")),
            index::TIME_ENTRY,
            &[],
        )?;
        Ok(Segment {
            base,
            path,
            file: Arc::new(file),
            len: FILE_HEADER_LEN,
            next_offset: base,
            max_ts: 0,
            offset_index,
            time_index,
            last_indexed: FILE_HEADER_LEN,
        })
    }

    /// Opens an existing segment and checks every batch: a torn or damaged tail is cut off
    /// (with a warning), the indexes are rebuilt if they do not match. A file whose header is
    /// not a segment's is an error.
    pub fn recover(
        dir: &Path,
        base: u64,
        index_interval: u64,
    ) -> Result<(Segment, Repair), StoreError> {
        let path = dir.join(file_name(base, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "open segment", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| StoreError::io(&path, "stat segment", e))?
            .len();
        let mut repair = Repair::default();
        let expected = file_header(base);
        let mut head = vec![0u8; (file_len.min(FILE_HEADER_LEN)) as usize];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| StoreError::io(&path, "read segment header", e))?;
        if head[..] != expected[..head.len()] {
            let magic = head.len().min(MAGIC.len());
            let reason = if head[..magic] != MAGIC[..magic] {
                "not a segment file (bad magic)".to_string()
            } else {
                "its header's base offset does not match its name".to_string()
            };
            return Err(StoreError::corrupt(&path, reason));
        }
        if file_len < FILE_HEADER_LEN {
            // Created but its header not all written: a crash right after a roll.
            tracing::warn!(file = %path.display(), bytes_dropped = file_len, "store: segment header torn; rewritten");
            file.write_all_at(&expected, 0)
                .map_err(|e| StoreError::io(&path, "rewrite segment header", e))?;
            repair.log_bytes_dropped += file_len;
            repair.header_rewritten = true;
        }
        let file_len = file_len.max(FILE_HEADER_LEN);

        let mut seg = Scan {
            base,
            next_offset: base,
            max_ts: 0,
            last_indexed: FILE_HEADER_LEN,
            offset_index: Vec::new(),
            time_index: Vec::new(),
        };
        let mut pos = FILE_HEADER_LEN;
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = pos;
        let mut stop: Option<&'static str> = None;
        loop {
            let at = (pos - buf_start) as usize;
            match batch::check(&buf[at..]) {
                Ok(h) => {
                    if h.base_offset != seg.next_offset || h.count == 0 {
                        stop = Some("a batch out of sequence");
                        break;
                    }
                    seg.add(pos, &h, index_interval);
                    pos += h.total_len as u64;
                }
                Err(Invalid::Short) => {
                    let end = buf_start + buf.len() as u64;
                    if end >= file_len {
                        if pos < file_len {
                            stop = Some("a torn batch");
                        }
                        break;
                    }
                    let need = batch::header(&buf[at..]).map_or(0, |h| h.total_len);
                    buf.drain(..at);
                    buf_start = pos;
                    let want = need
                        .max(CHUNK)
                        .saturating_sub(buf.len())
                        .clamp(1, (file_len - end) as usize);
                    let old = buf.len();
                    buf.resize(old + want, 0);
                    file.read_exact_at(&mut buf[old..], end)
                        .map_err(|e| StoreError::io(&path, "read segment", e))?;
                }
                Err(Invalid::Damaged(reason)) => {
                    stop = Some(reason);
                    break;
                }
            }
        }
        if let Some(reason) = stop {
            tracing::warn!(file = %path.display(), at = pos, bytes_dropped = file_len - pos, reason, "store: segment tail dropped");
            file.set_len(pos)
                .map_err(|e| StoreError::io(&path, "truncate segment", e))?;
            repair.log_bytes_dropped += file_len - pos;
        }
        let (offset_index, a) = IndexFile::open_matching(
            dir.join(file_name(base, "index")),
            index::OFFSET_ENTRY,
            &seg.offset_index,
        )?;
        let (time_index, b) = IndexFile::open_matching(
            dir.join(file_name(base, "timeindex")),
            index::TIME_ENTRY,
            &seg.time_index,
        )?;
        repair.indexes_rebuilt = u32::from(a) + u32::from(b);
        Ok((
            Segment {
                base,
                path,
                file: Arc::new(file),
                len: pos,
                next_offset: seg.next_offset,
                max_ts: seg.max_ts,
                offset_index,
                time_index,
                last_indexed: seg.last_indexed,
            },
            repair,
        ))
    }

    /// No more appends: the index files are closed (the log file stays open for reads).
    pub fn seal(&mut self) {
        self.offset_index.seal();
        self.time_index.seal();
    }

    pub fn is_empty(&self) -> bool {
        self.next_offset == self.base
    }

    /// Writes an encoded batch at the end, with its index entries if one is due. On failure
    /// nothing of it stays (the files are cut back), so the log stays consistent.
    pub fn append(
        &mut self,
        bytes: &[u8],
        h: &BatchHeader,
        index_interval: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let pos = self.len;
        if let Err(e) = self.file.write_all_at(bytes, pos) {
            let _ = self.file.set_len(pos);
            return Err(StoreError::io(&self.path, "append to segment", e));
        }
        if let Some(entry) = self.entry_for(pos, index_interval) {
            let (ol, tl) = (self.offset_index.len, self.time_index.len);
            scratch.clear();
            entry.encode_offset(scratch);
            let mut r = self.offset_index.append(scratch);
            if r.is_ok() {
                scratch.clear();
                entry.encode_time(scratch);
                r = self.time_index.append(scratch);
            }
            if let Err(e) = r {
                let _ = self.file.set_len(pos);
                let _ = self.offset_index.truncate(ol);
                let _ = self.time_index.truncate(tl);
                return Err(e);
            }
            self.last_indexed = pos;
        }
        self.len = pos + bytes.len() as u64;
        self.next_offset = h.next_offset();
        self.max_ts = self.max_ts.max(h.max_ts);
        Ok(())
    }

    fn entry_for(&self, pos: u64, index_interval: u64) -> Option<Entry> {
        entry_for(
            pos,
            self.last_indexed,
            index_interval,
            self.next_offset - self.base,
            self.max_ts,
        )
    }

    /// Where to start reading for `offset` (held by this segment): the indexed batch at or
    /// before it.
    pub fn position_for(&self, offset: u64) -> Result<u64, StoreError> {
        let rel = u32::try_from(offset - self.base).unwrap_or(u32::MAX);
        Ok(self
            .offset_index
            .position_for(rel)?
            .map_or(FILE_HEADER_LEN, u64::from))
    }

    /// Reads whole batches from `pos`, at least `want` bytes if the segment has them (and at
    /// least one whole batch). The returned bytes start at `pos`.
    pub fn read_at(&self, pos: u64, want: usize) -> Result<Bytes, StoreError> {
        let avail = (self.len - pos) as usize;
        let mut buf = vec![0u8; want.clamp(batch::HEADER_LEN.min(avail), avail)];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| StoreError::io(&self.path, "read segment", e))?;
        if let Ok(h) = batch::header(&buf) {
            if h.total_len > buf.len() && h.total_len <= avail {
                let old = buf.len();
                buf.resize(h.total_len, 0);
                self.file
                    .read_exact_at(&mut buf[old..], pos + old as u64)
                    .map_err(|e| StoreError::io(&self.path, "read segment", e))?;
            }
        }
        Ok(Bytes::from(buf))
    }

    pub fn sync(&self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, "fdatasync segment", e))
    }

    /// Removes the log and its indexes (retention).
    pub fn delete(self) -> Result<(), StoreError> {
        std::fs::remove_file(&self.path)
            .map_err(|e| StoreError::io(&self.path, "delete segment", e))?;
        for index in [self.offset_index.path(), self.time_index.path()] {
            if let Err(e) = std::fs::remove_file(index) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(StoreError::io(index, "delete index", e));
                }
            }
        }
        Ok(())
    }
}

/// The index entry due for a batch at `pos`, if any; the same rule on append and on recovery, so
/// a rebuilt index is byte for byte what appending wrote.
fn entry_for(
    pos: u64,
    last_indexed: u64,
    index_interval: u64,
    relative_offset: u64,
    max_ts_before: u64,
) -> Option<Entry> {
    if pos - last_indexed < index_interval.max(1) {
        return None;
    }
    Some(Entry {
        relative_offset: relative_offset as u32,
        position: pos as u32,
        max_ts_before,
    })
}

/// What recovery learns from the batches, and the indexes they call for.
struct Scan {
    base: u64,
    next_offset: u64,
    max_ts: u64,
    last_indexed: u64,
    offset_index: Vec<u8>,
    time_index: Vec<u8>,
}

impl Scan {
    fn add(&mut self, pos: u64, h: &BatchHeader, index_interval: u64) {
        let relative_offset = h.base_offset - self.base;
        if let Some(e) = entry_for(
            pos,
            self.last_indexed,
            index_interval,
            relative_offset,
            self.max_ts,
        ) {
            e.encode_offset(&mut self.offset_index);
            e.encode_time(&mut self.time_index);
            self.last_indexed = pos;
        }
        self.next_offset = h.next_offset();
        self.max_ts = self.max_ts.max(h.max_ts);
    }
}

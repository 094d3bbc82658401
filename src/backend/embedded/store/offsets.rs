//! Committed offsets on disk: group → owner → partition → offsets, in one small file written
//! atomically (a temporary file, fsync, rename over the old one, fsync of the directory).
//!
//! ```text
//! file  = magic "MQIOFF01" | entry*
//! entry = len u32 | crc u32 | group_len u16 | group | owner_len u16 | owner
//!         | count u32 | (partition u32 | committed u64 | dispatched_end u64)*count
//! ```
//! Little-endian; `len` counts the bytes after itself and the CRC-32 covers the bytes after
//! itself. One entry per (group, owner). Rename makes a torn file unlikely, but a file system
//! that loses data can still leave one: loading keeps every whole, checked entry and cuts the
//! rest off with a warning. A file with another magic is an error.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::batch::{u32_at, u64_at};
use super::error::StoreError;

const MAGIC: &[u8; 8] = b"MQIOFF01";
const MAX_ENTRY: usize = 16 << 20;

/// Where a group stands in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartitionOffsets {
    /// The next offset to deliver after a restart: everything below is acknowledged.
    pub committed: u64,
    /// One past the highest offset ever dispatched (what is below and not committed goes out
    /// again with DUP=1).
    pub dispatched_end: u64,
}

/// group → owner → partition → offsets.
pub type CommittedOffsets = BTreeMap<String, BTreeMap<String, BTreeMap<u32, PartitionOffsets>>>;

/// The offsets file at a path.
#[derive(Debug)]
pub struct OffsetsFile {
    path: PathBuf,
    tmp: PathBuf,
}

/// What loading dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OffsetsRepair {
    pub bytes_dropped: u64,
}

impl OffsetsFile {
    /// Loads the file (none yet: no offsets), repairing a torn tail.
    pub fn open(
        path: impl Into<PathBuf>,
    ) -> Result<(OffsetsFile, CommittedOffsets, OffsetsRepair), StoreError> {
        let path = path.into();
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let file = OffsetsFile {
            path,
            tmp: tmp.into(),
        };
        // A temporary file left by a crash before its rename: the old file is the truth.
        let _ = std::fs::remove_file(&file.tmp);
        let bytes = match std::fs::read(&file.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((file, CommittedOffsets::new(), OffsetsRepair::default()))
            }
            Err(e) => return Err(StoreError::io(&file.path, "read offsets", e)),
        };
        let (offsets, good) = decode(&bytes).map_err(|r| StoreError::corrupt(&file.path, r))?;
        let mut repair = OffsetsRepair::default();
        if good < bytes.len() {
            repair.bytes_dropped = (bytes.len() - good) as u64;
            tracing::warn!(file = %file.path.display(), bytes_dropped = repair.bytes_dropped, "store: offsets file had a torn or damaged tail; truncated to its last whole entry");
            // Rewritten whole, so that what is on disk is what was loaded.
            file.save(&offsets)?;
        }
        Ok((file, offsets, repair))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with these offsets, atomically and durably.
    pub fn save(&self, offsets: &CommittedOffsets) -> Result<(), StoreError> {
        let bytes = encode(offsets);
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(StoreError::io(&self.tmp, "write offsets", e));
        }
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| StoreError::io(&self.path, "rename offsets into place", e))?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, "fsync directory", e))
}

pub fn encode(offsets: &CommittedOffsets) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (group, owners) in offsets {
        for (owner, partitions) in owners {
            let start = out.len();
            out.extend_from_slice(&[0; 8]);
            for s in [group, owner] {
                // Names are bounded far below this by the caller (topic and group limits).
                let s = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(s.len() as u16).to_le_bytes());
                out.extend_from_slice(s);
            }
            out.extend_from_slice(&(partitions.len() as u32).to_le_bytes());
            for (p, o) in partitions {
                out.extend_from_slice(&p.to_le_bytes());
                out.extend_from_slice(&o.committed.to_le_bytes());
                out.extend_from_slice(&o.dispatched_end.to_le_bytes());
            }
            let len = (out.len() - start - 4) as u32;
            let crc = crc32fast::hash(&out[start + 8..]);
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        }
    }
    out
}

/// The offsets in the whole, checked entries, and how many bytes those make up. An error if the
/// bytes do not start as an offsets file.
pub fn decode(bytes: &[u8]) -> Result<(CommittedOffsets, usize), String> {
    let head = &bytes[..bytes.len().min(MAGIC.len())];
    if head != &MAGIC[..head.len()] {
        return Err("not an offsets file (bad magic)".into());
    }
    let mut offsets = CommittedOffsets::new();
    let mut pos = MAGIC.len();
    if bytes.len() < pos {
        return Ok((offsets, 0));
    }
    while let Some(entry) = entry_at(bytes, pos) {
        let (group, owner, partitions) = entry.1;
        offsets.entry(group).or_default().insert(owner, partitions);
        pos = entry.0;
    }
    Ok((offsets, pos))
}

type Entry = (String, String, BTreeMap<u32, PartitionOffsets>);

/// The entry at `pos` and where it ends, if it is whole and checks.
fn entry_at(bytes: &[u8], pos: usize) -> Option<(usize, Entry)> {
    let head = bytes.get(pos..pos + 8)?;
    let len = u32_at(head, 0) as usize;
    if !(4..=MAX_ENTRY).contains(&len) {
        return None;
    }
    let body = bytes.get(pos + 8..pos + 4 + len)?;
    if crc32fast::hash(body) != u32_at(head, 4) {
        return None;
    }
    let mut at = 0;
    let mut text = || -> Option<String> {
        let n = u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(body.get(at + 2..at + 2 + n)?).ok()?;
        at += 2 + n;
        Some(s.to_owned())
    };
    let group = text()?;
    let owner = text()?;
    let count = u32_at(body.get(at..at + 4)?, 0) as usize;
    at += 4;
    if body.len() != at.checked_add(count.checked_mul(20)?)? {
        return None;
    }
    let mut partitions = BTreeMap::new();
    for i in 0..count {
        let p = &body[at + i * 20..at + (i + 1) * 20];
        partitions.insert(
            u32_at(p, 0),
            PartitionOffsets {
                committed: u64_at(p, 4),
                dispatched_end: u64_at(p, 12),
            },
        );
    }
    Some((pos + 4 + len, (group, owner, partitions)))
}

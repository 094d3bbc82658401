//! The on-disk record batch and its checksum.
//!
//! ```text
//! batch   = len u32 | crc u32 | base_offset u64 | count u32 | min_ts u64 | max_ts u64 | record*count
//! record  = timestamp u64 | key_len u32 | value_len u32 | key | value
//! ```
//! Little-endian. `len` counts the bytes after itself; `crc` is CRC-32 (IEEE) over the bytes
//! after itself, so a torn or damaged batch fails the check and nothing in it is believed. A
//! record's offset is `base_offset` plus its index in the batch.

use bytes::Bytes;

use super::{RecordIn, StoredRecord};

/// `len` + `crc` + `base_offset` + `count` + `min_ts` + `max_ts`.
pub const HEADER_LEN: usize = 4 + 4 + 8 + 4 + 8 + 8;
const RECORD_HEADER_LEN: usize = 8 + 4 + 4;
/// Larger is rejected on append and taken for garbage on recovery (a length read from damaged
/// bytes must not make us allocate gigabytes).
pub const MAX_BATCH_LEN: usize = 64 << 20;

/// What the fixed header of a batch says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Bytes of the whole batch, header included.
    pub total_len: usize,
    pub crc: u32,
    pub base_offset: u64,
    pub count: u32,
    pub min_ts: u64,
    pub max_ts: u64,
}

impl BatchHeader {
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.count)
    }
}

/// The encoded size of a batch of these records.
pub fn encoded_len(records: &[RecordIn<'_>]) -> usize {
    HEADER_LEN
        + records
            .iter()
            .map(|r| RECORD_HEADER_LEN + r.key.len() + r.value.len())
            .sum::<usize>()
}

/// Appends the batch to `out`. The caller has checked the sizes (see [`encoded_len`]).
pub fn encode(base_offset: u64, records: &[RecordIn<'_>], out: &mut Vec<u8>) {
    let start = out.len();
    let total = encoded_len(records);
    let min_ts = records.iter().map(|r| r.timestamp).min().unwrap_or(0);
    let max_ts = records.iter().map(|r| r.timestamp).max().unwrap_or(0);
    out.reserve(total);
    out.extend_from_slice(&((total - 4) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the crc, filled in below
    out.extend_from_slice(&base_offset.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&min_ts.to_le_bytes());
    out.extend_from_slice(&max_ts.to_le_bytes());
    for r in records {
        out.extend_from_slice(&r.timestamp.to_le_bytes());
        out.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
        out.extend_from_slice(r.key);
        out.extend_from_slice(r.value);
    }
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why bytes are not a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes than the header or its length promise: a torn write, if at the end.
    Short,
    /// A length no batch can have, a checksum that does not match, or records that do not fill
    /// the batch exactly.
    Damaged(&'static str),
}

/// Reads the fixed header. `Short` if fewer than [`HEADER_LEN`] bytes.
pub fn header(buf: &[u8]) -> Result<BatchHeader, Invalid> {
    if buf.len() < HEADER_LEN {
        return Err(Invalid::Short);
    }
    let len = u32_at(buf, 0) as usize;
    if !(HEADER_LEN - 4..=MAX_BATCH_LEN).contains(&len) {
        return Err(Invalid::Damaged("impossible batch length"));
    }
    Ok(BatchHeader {
        total_len: len + 4,
        crc: u32_at(buf, 4),
        base_offset: u64_at(buf, 8),
        count: u32_at(buf, 16),
        min_ts: u64_at(buf, 20),
        max_ts: u64_at(buf, 28),
    })
}

/// Checks a whole batch (`buf` starts at the batch and may run past it): the length, the
/// checksum and that the records fill it exactly. Returns the header.
pub fn check(buf: &[u8]) -> Result<BatchHeader, Invalid> {
    let h = header(buf)?;
    let Some(batch) = buf.get(..h.total_len) else {
        return Err(Invalid::Short);
    };
    if crc32fast::hash(&batch[8..]) != h.crc {
        return Err(Invalid::Damaged("checksum mismatch"));
    }
    // The checksum covers the record framing too, so this only fails on a writer bug or a
    // checksum collision; checked anyway, it is what keeps `records` from slicing out of range.
    let mut pos = HEADER_LEN;
    for _ in 0..h.count {
        let Some(rh) = batch.get(pos..pos + RECORD_HEADER_LEN) else {
            return Err(Invalid::Damaged("records overrun the batch"));
        };
        let kl = u32_at(rh, 8) as usize;
        let vl = u32_at(rh, 12) as usize;
        pos = pos
            .checked_add(RECORD_HEADER_LEN + kl)
            .and_then(|p| p.checked_add(vl))
            .ok_or(Invalid::Damaged("records overrun the batch"))?;
        if pos > batch.len() {
            return Err(Invalid::Damaged("records overrun the batch"));
        }
    }
    if pos != batch.len() {
        return Err(Invalid::Damaged("records do not fill the batch"));
    }
    Ok(h)
}

/// The records of a batch already [`check`]ed, from offset `from` on, as slices of `batch`
/// (no copy). Stops early once `budget` bytes of key and value are taken, but always yields at
/// least one record. Returns the bytes taken.
pub fn records(
    batch: &Bytes,
    h: &BatchHeader,
    from: u64,
    mut budget: usize,
    out: &mut Vec<StoredRecord>,
) -> usize {
    let mut pos = HEADER_LEN;
    let mut taken = 0;
    for i in 0..u64::from(h.count) {
        let ts = u64_at(batch, pos);
        let kl = u32_at(batch, pos + 8) as usize;
        let vl = u32_at(batch, pos + 12) as usize;
        let key_at = pos + RECORD_HEADER_LEN;
        pos = key_at + kl + vl;
        let offset = h.base_offset + i;
        if offset < from {
            continue;
        }
        let size = kl + vl;
        if size > budget && !out.is_empty() {
            break;
        }
        budget = budget.saturating_sub(size);
        taken += size;
        out.push(StoredRecord {
            offset,
            timestamp: ts,
            key: batch.slice(key_at..key_at + kl),
            value: batch.slice(key_at + kl..pos),
        });
    }
    taken
}

pub fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

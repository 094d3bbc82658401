//! [`Log`]: one partition's segments, appended to, read, synced, and trimmed by retention.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch;
use super::error::StoreError;
use super::lock::DirLock;
use super::offsets::sync_dir;
use super::recovery::{self, Recovery};
use super::retention::{self, SegmentInfo};
use super::segment::Segment;
use super::{Durability, Options, RecordIn, StoredRecord};

/// One partition's log in a directory of its own.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    options: Options,
    /// Oldest first; the last one is appended to. Never empty.
    segments: Vec<Segment>,
    /// Everything below is on disk (fdatasync returned).
    durable: u64,
    last_sync: Instant,
    scratch: Vec<u8>,
    index_scratch: Vec<u8>,
    recovery: Recovery,
    _lock: DirLock,
}

/// The state to fdatasync for a group commit, taken from the log so that the fsync can run on
/// another thread while appends go on; see [`Log::sync_point`].
#[derive(Debug, Clone)]
pub struct SyncPoint {
    file: Arc<File>,
    path: PathBuf,
    /// Everything below this offset is durable once [`SyncPoint::sync`] returns.
    pub end: u64,
}

impl SyncPoint {
    /// fdatasync: afterwards every append made before the sync point was taken is on disk.
    pub fn sync(&self) -> Result<u64, StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, "fdatasync segment", e))?;
        Ok(self.end)
    }
}

/// What [`Log::apply_retention`] deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub segments: usize,
    pub bytes: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`: takes the directory's lock, checks every file and
    /// repairs what a crash can leave (see the module documentation).
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Log, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        options.check(&dir)?;
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, "create directory", e))?;
        let lock = DirLock::acquire(&dir)?;
        let (mut segments, recovery) = recovery::recover(&dir, options.index_interval_bytes)?;
        if segments.is_empty() {
            let sync = options.durability != Durability::Never;
            segments.push(Segment::create(&dir, 0, sync)?);
            if sync {
                sync_dir(&dir)?;
            }
        }
        let next = segments.last().map_or(0, |s| s.next_offset);
        Ok(Log {
            dir,
            options,
            segments,
            // What recovery found is what the OS has; treat it as durable (the caller cannot
            // do better, and a later sync covers it anyway).
            durable: next,
            last_sync: Instant::now(),
            scratch: Vec::new(),
            index_scratch: Vec::new(),
            recovery,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening repaired (for the recovery metrics).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Appends the records as one batch; returns their offsets. With `Durability::Interval`, an
    /// fdatasync is made here when one is due. Nothing of a failed append stays in the log; a
    /// full disk is [`StoreError::DiskFull`].
    pub fn append(&mut self, records: &[RecordIn<'_>]) -> Result<Range<u64>, StoreError> {
        let base = self.latest();
        if records.is_empty() {
            return Ok(base..base);
        }
        let len = batch::encoded_len(records);
        let too_large = records
            .iter()
            .any(|r| r.key.len() > u32::MAX as usize || r.value.len() > u32::MAX as usize)
            || len > batch::MAX_BATCH_LEN
            || records.len() > u32::MAX as usize;
        if too_large {
            return Err(StoreError::TooLarge {
                file: self.active().path.clone(),
                reason: format!(
                    "a batch of {len} bytes; at most {} bytes fit in one",
                    batch::MAX_BATCH_LEN
                ),
            });
        }
        let active = self.active();
        if !active.is_empty() && active.len + len as u64 > self.options.segment_bytes {
            self.roll()?;
        }
        self.scratch.clear();
        batch::encode(base, records, &mut self.scratch);
        let h = batch::header(&self.scratch).expect("a batch just encoded");
        let interval = self.options.index_interval_bytes;
        let seg = self.segments.last_mut().expect("never empty");
        seg.append(&self.scratch, &h, interval, &mut self.index_scratch)?;
        if let Durability::Interval(every) = self.options.durability {
            if self.last_sync.elapsed() >= every {
                self.sync()?;
            }
        }
        Ok(base..h.next_offset())
    }

    /// Seals the active segment (synced unless `Never`, so that a power loss cannot leave a hole
    /// before the next one) and starts a new one.
    fn roll(&mut self) -> Result<(), StoreError> {
        let sync = self.options.durability != Durability::Never;
        if sync {
            self.active().sync()?;
        }
        let next = self.latest();
        let seg = Segment::create(&self.dir, next, sync)?;
        if sync {
            sync_dir(&self.dir)?;
        }
        if let Some(sealed) = self.segments.last_mut() {
            sealed.seal();
        }
        self.segments.push(seg);
        Ok(())
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("never empty")
    }

    /// fdatasync of everything appended; returns the offset below which all is durable.
    pub fn sync(&mut self) -> Result<u64, StoreError> {
        let end = self.sync_point().sync()?;
        self.mark_durable(end);
        Ok(end)
    }

    /// For a group commit on another thread: take the point under the log's lock, fdatasync it
    /// without the lock ([`SyncPoint::sync`]), then report it with [`Log::mark_durable`].
    /// Segments before the active one were synced when they were sealed.
    pub fn sync_point(&self) -> SyncPoint {
        let active = self.active();
        SyncPoint {
            file: active.file.clone(),
            path: active.path.clone(),
            end: self.latest(),
        }
    }

    pub fn mark_durable(&mut self, end: u64) {
        self.durable = self.durable.max(end);
        self.last_sync = Instant::now();
    }

    /// For `Durability::Interval`: fdatasync if the interval has passed and something is not
    /// yet durable. The caller calls it from a timer so that a quiet log is synced too.
    pub fn sync_if_due(&mut self, now: Instant) -> Result<(), StoreError> {
        if let Durability::Interval(every) = self.options.durability {
            if self.durable < self.latest() && now.duration_since(self.last_sync) >= every {
                self.sync()?;
            }
        }
        Ok(())
    }

    /// Everything below this offset has been fdatasynced.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// The first offset held (retention and repairs remove from the front); `latest()` if the
    /// log holds nothing.
    pub fn earliest(&self) -> u64 {
        self.segments
            .iter()
            .find(|s| !s.is_empty())
            .map_or(self.latest(), |s| s.base)
    }

    /// The offset the next record gets.
    pub fn latest(&self) -> u64 {
        self.active().next_offset
    }

    /// Bytes of log on disk (indexes not counted).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Records from `from` on, read from the files: about `max_bytes` of keys and values, at
    /// least one record if there is one. Offsets that are gone (retention, a repair) are
    /// skipped: the first record returned may be later than `from`.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<Vec<StoredRecord>, StoreError> {
        let mut out = Vec::new();
        let mut budget = max_bytes;
        let first = self.segments.partition_point(|s| s.next_offset <= from);
        for seg in &self.segments[first..] {
            if seg.is_empty() {
                continue;
            }
            let mut pos = if from > seg.base {
                seg.position_for(from)?
            } else {
                super::segment::FILE_HEADER_LEN
            };
            while pos < seg.len {
                // Small reads cost a syscall each; large ones memory: 64 KiB to 4 MiB.
                let want = budget
                    .saturating_add(batch::HEADER_LEN)
                    .clamp(64 << 10, 4 << 20);
                let bytes = seg.read_at(pos, want)?;
                let mut at = 0;
                while at < bytes.len() {
                    let Some(h) = batch_at(&seg.path, &bytes, at, pos)? else {
                        break;
                    };
                    if h.next_offset() > from {
                        let batch = bytes.slice(at..at + h.total_len);
                        let taken = batch::records(&batch, &h, from, budget, &mut out);
                        budget = budget.saturating_sub(taken);
                        if budget == 0 || out.last().is_some_and(|r| r.offset + 1 < h.next_offset())
                        {
                            return Ok(out);
                        }
                    }
                    at += h.total_len;
                }
                pos += at as u64;
            }
        }
        Ok(out)
    }

    /// The first offset whose record's timestamp is at or after `ts` (milliseconds), or `None`
    /// if every record is older (a reader then starts at `latest()`).
    pub fn offset_for_time(&self, ts: u64) -> Result<Option<u64>, StoreError> {
        let Some(seg) = self
            .segments
            .iter()
            .find(|s| !s.is_empty() && s.max_ts >= ts)
        else {
            return Ok(None);
        };
        let mut pos = match seg.time_index.offset_before_time(ts)? {
            Some(rel) => seg.position_for(seg.base + u64::from(rel))?,
            None => super::segment::FILE_HEADER_LEN,
        };
        while pos < seg.len {
            let bytes = seg.read_at(pos, 256 << 10)?;
            let mut at = 0;
            while at < bytes.len() {
                let Some(h) = batch_at(&seg.path, &bytes, at, pos)? else {
                    break;
                };
                if h.max_ts >= ts {
                    let batch = bytes.slice(at..at + h.total_len);
                    let mut records = Vec::new();
                    batch::records(&batch, &h, 0, usize::MAX, &mut records);
                    if let Some(r) = records.iter().find(|r| r.timestamp >= ts) {
                        return Ok(Some(r.offset));
                    }
                }
                at += h.total_len;
            }
            pos += at as u64;
        }
        Ok(None)
    }

    /// Deletes whole sealed segments, oldest first: those whose records are all older than
    /// `max_age` (relative to `now_ms`), and then while the log is over `max_bytes`.
    pub fn apply_retention(
        &mut self,
        now_ms: u64,
        max_bytes: Option<u64>,
        max_age: Option<Duration>,
    ) -> Result<Deleted, StoreError> {
        let infos: Vec<SegmentInfo> = self
            .segments
            .iter()
            .map(|s| SegmentInfo {
                bytes: s.len,
                max_ts: (!s.is_empty()).then_some(s.max_ts),
            })
            .collect();
        let n = retention::segments_to_delete(&infos, now_ms, max_bytes, max_age);
        let mut deleted = Deleted::default();
        for seg in self.segments.drain(..n) {
            deleted.segments += 1;
            deleted.bytes += seg.len;
            seg.delete()?;
        }
        Ok(deleted)
    }
}

/// The batch at `at` of `bytes`, read from the segment `path` at file position `pos`: `None`
/// when the read ended inside it (read on from its start). The log was checked when it was
/// opened, so anything else that does not check out means the file changed under the service.
fn batch_at(
    path: &Path,
    bytes: &[u8],
    at: usize,
    pos: u64,
) -> Result<Option<batch::BatchHeader>, StoreError> {
    match batch::check(&bytes[at..]) {
        Ok(h) => Ok(Some(h)),
        Err(batch::Invalid::Short) if at > 0 => Ok(None),
        Err(e) => Err(StoreError::corrupt(
            path,
            format!(
                "at byte {}: {e:?} (the file changed under the running service)",
                pos + at as u64
            ),
        )),
    }
}

//! `backend.embedded.storage = "disk"` (issue #14): the settings of the on-disk log, and opening
//! it at start — the directory's lock, every partition recovered, the committed offsets loaded.
//!
//! ```text
//! dir/LOCK                   this process's, while it runs (a second one exits naming it)
//! dir/offsets                committed offsets and owners of the durable groups
//! dir/<app>/<partition>/     one segment log per partition (see `store/disk.rs`)
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::disk::offsets::OffsetsFile;
use super::disk::{DirLock, Durability, StoreError};
use super::disk_partition::{self, DiskPartition};
use super::partition::Partition;
use super::store::OffsetStore;
use crate::config::Fsync;

/// Where and how the log is kept on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    /// `backend.embedded.dir`, created if missing.
    pub dir: PathBuf,
    pub fsync: Fsync,
    pub fsync_interval: Duration,
    /// Segments whose records are all older than this are deleted.
    pub retention_age: Duration,
    /// Committed offsets reach the offsets file at most this long after they change.
    pub offsets_flush_interval: Duration,
    /// Bytes (of [`crate::seam::Record::footprint`]) of decoded records kept for readers, for
    /// the whole log: split evenly over every partition of every application; 0 = none.
    pub read_cache_bytes: u64,
}

impl DiskOptions {
    pub(crate) fn durability(&self) -> Durability {
        disk_partition::durability(self.fsync, self.fsync_interval)
    }

    /// How often the syncer wakes for its timed work (interval fsyncs, offsets, retention).
    pub(crate) fn tick(&self) -> Duration {
        let mut tick = self.offsets_flush_interval.min(Duration::from_secs(1));
        if self.fsync == Fsync::Interval {
            tick = tick.min(self.fsync_interval);
        }
        tick.max(Duration::from_millis(1))
    }
}

/// The on-disk log, opened.
pub(crate) struct Opened {
    pub lock: DirLock,
    /// Per application (in the order given), its partitions.
    pub partitions: Vec<Box<[Partition]>>,
    pub offsets: OffsetsFile,
    /// Each partition's share of `read_cache_bytes`.
    pub cache_bytes: u64,
}

/// Segments per partition are at most this large, and small enough that byte retention (whole
/// segments) keeps within about a quarter of its limit.
pub(crate) fn segment_bytes(retention_bytes_per_partition: u64) -> u64 {
    const MAX: u64 = 64 << 20;
    const MIN: u64 = 64 << 10;
    match retention_bytes_per_partition {
        0 => MAX,
        r => (r / 4).clamp(MIN, MAX),
    }
}

/// Opens `dir` for `apps`: takes `dir/LOCK` (another process on it: [`StoreError::Locked`]
/// naming it), recovers every partition, and loads the offsets file into `store`.
pub(crate) fn open(
    options: &DiskOptions,
    apps: &[std::sync::Arc<str>],
    partitions: u32,
    retention_bytes_per_partition: u64,
    store: &OffsetStore,
) -> Result<Opened, StoreError> {
    let dir = &options.dir;
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, "create directory", e))?;
    let lock = DirLock::acquire(dir)?;
    let started = Instant::now();
    let durability = options.durability();
    let segment_bytes = segment_bytes(retention_bytes_per_partition);
    let partition_count = (apps.len() as u64).saturating_mul(u64::from(partitions.max(1)));
    let cache_bytes = options.read_cache_bytes / partition_count.max(1);
    let mut opened = Vec::with_capacity(apps.len());
    let mut records = 0;
    for app in apps {
        let parts = open_partitions(dir, app, partitions, durability, segment_bytes, cache_bytes)?;
        records += parts.iter().map(|p| p.end() - p.first()).sum::<u64>();
        opened.push(parts);
    }
    let (offsets, committed, _repair) = OffsetsFile::open(offsets_path(dir))?;
    store
        .restore(&committed, partitions, Instant::now())
        .map_err(|what| StoreError::corrupt(offsets_path(dir), format!("{what} cannot be read")))?;
    clamp_to_ends(store, apps, &opened);
    tracing::info!(
        dir = %dir.display(),
        records,
        groups = store.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "embedded log opened on disk"
    );
    Ok(Opened {
        lock,
        partitions: opened,
        offsets,
        cache_bytes,
    })
}

/// Opens (creating or recovering) the partitions of an application added at run time, in the
/// directory [`open`] locked.
/// Its partitions get the same share of the read cache as those opened at start (so the cache
/// may exceed `read_cache_bytes` by the added applications' shares until a restart).
pub(crate) fn open_app(
    options: &DiskOptions,
    app: &str,
    partitions: u32,
    segment_bytes: u64,
    cache_bytes: u64,
) -> Result<Box<[Partition]>, StoreError> {
    open_partitions(
        &options.dir,
        app,
        partitions,
        options.durability(),
        segment_bytes,
        cache_bytes,
    )
}

fn open_partitions(
    dir: &Path,
    app: &str,
    partitions: u32,
    durability: Durability,
    segment_bytes: u64,
    cache_bytes: u64,
) -> Result<Box<[Partition]>, StoreError> {
    (0..partitions)
        .map(|p| {
            let disk =
                DiskPartition::open_with(dir, app, p, durability, segment_bytes, cache_bytes)?;
            Ok(Partition::on_disk(p, disk))
        })
        .collect()
}

/// A group committed past the end of a partition (its segments were lost or removed by hand,
/// the offsets file survived) would skip that many new events: it starts at the end instead.
fn clamp_to_ends(store: &OffsetStore, apps: &[std::sync::Arc<str>], opened: &[Box<[Partition]>]) {
    for (name, app, _, _) in store.snapshot() {
        let Some(parts) = apps.iter().position(|a| *a == app).map(|i| &opened[i]) else {
            continue;
        };
        let Some(mut offsets) = store.load(&name, &app) else {
            continue;
        };
        let mut changed = false;
        for (o, p) in offsets.iter_mut().zip(parts.iter()) {
            let end = p.end();
            if o.committed > end || o.dispatched_end > end {
                tracing::warn!(group = %name, app = %app, committed = o.committed, end, "embedded log: a group's committed offset is past the end of the log on disk; it starts at the end");
                o.committed = o.committed.min(end);
                o.dispatched_end = o.dispatched_end.min(end);
                changed = true;
            }
        }
        if changed {
            store.save(&name, &app, offsets);
        }
    }
}

fn offsets_path(dir: &Path) -> PathBuf {
    dir.join("offsets")
}

//! The embedded in-process event log (spec 4, `backend.kind = "embedded"`): partitioned logs per
//! application, consumer groups with committed offsets, retention by count and bytes, in memory
//! or on disk (`backend.embedded.storage`, issue #14).
//!
//! How it fits together:
//! - [`EmbeddedLog`] (`log`) holds one partitioned log per application (`partition`), the
//!   command stream (`commands`), the committed offsets of durable groups (`store`) and the
//!   doorbells that wake workers after an append (`wake`). Partitioning is by a stable hash of
//!   the device (`hash`).
//! - On disk (`storage`), each partition is a segment log under `dir` (`disk_partition` over
//!   the store in `store/`, events encoded by `stored`, recent ones kept decoded for every
//!   group in a bounded `read_cache`), and one syncer thread per log
//!   (`syncer`) does every fdatasync (group commit for `fsync = "always"`), retention, and
//!   writes the committed offsets to `dir/offsets` at most `offsets_flush_interval` after they
//!   change and at shutdown; they are restored at start, so durable groups resume after a
//!   restart or a crash.
//! - [`EmbeddedProducer`] (`producer`) is the seam's writing side.
//! - Worker threads (`worker`) own consumer groups (`group`), in the machinery both backends
//!   share ([`crate::backend::consumer`]: members, assignment, cursors, the outbox, the loop);
//!   what is the embedded log's own is how a group reads: at each cursor's position, on every
//!   pass.
//!
//! Start it with [`start`] (in memory) or [`start_on_disk`]; stop it with
//! [`Backend::shutdown`], which commits what is acknowledged (and, on disk, syncs the log and
//! writes the offsets). In memory, offsets survive reconnects, not restarts. Beside them the
//! `store` keeps each durable group's owner, and forgets groups idle for longer than
//! [`EmbeddedOptions::group_retention`]. Commands are kept in memory either way: nothing in the
//! process reads them back (production uses Kafka for commands).

mod app_log;
mod commands;
/// The on-disk segment log and offsets file (issue 14), in `store/`. Its root is `store/disk.rs`,
/// not `store/mod.rs`, which would clash with `store.rs` (the in-memory offsets).
#[path = "store/disk.rs"]
pub mod disk;
mod disk_partition;
mod group;
mod hash;
mod log;
mod partition;
mod producer;
mod read_cache;
mod storage;
mod store;
mod stored;
mod sync_request;
mod syncer;
mod wake;
mod worker;

#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crossbeam_channel::Sender;

pub use log::EmbeddedLog;
pub use producer::EmbeddedProducer;
pub use storage::DiskOptions;

use crate::backend::Backend;
use crate::seam::ToBackend;

/// Tuning of the embedded log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Partitions per application: the unit of order (per device) and of sharing a group.
    pub partitions: u32,
    /// Events kept per application, split evenly over its partitions; 0 = no limit.
    pub retention_events: u64,
    /// Bytes (estimated as [`crate::seam::Record::cost`]) kept per application, split evenly
    /// over its partitions; 0 = no limit.
    pub retention_bytes: u64,
    /// Worker threads that dispatch to consumer groups; 0 = the available parallelism.
    pub consumer_threads: usize,
    /// A durable group with no member for this long is forgotten (offsets and owner).
    pub group_retention: std::time::Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> EmbeddedOptions {
        EmbeddedOptions {
            partitions: 8,
            retention_events: 1_000_000,
            retention_bytes: 1 << 30,
            consumer_threads: 0,
            group_retention: crate::config::DEFAULT_GROUP_RETENTION,
        }
    }
}

/// Why the embedded backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A log needs at least one partition.
    #[error("embedded backend: partitions must be at least 1")]
    NoPartitions,
    /// The OS refused a worker thread.
    #[error("embedded backend: cannot start worker thread {worker}: {source}")]
    Spawn {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    /// The on-disk log could not be opened: the error names the file (another process holds
    /// the directory, a file that makes no sense, no permission, …).
    #[error("embedded backend: {0}")]
    Disk(#[from] disk::StoreError),
}

/// Starts the embedded backend for the applications `apps` (known at start; events for other
/// applications are refused with `UnknownStream`). Returns the seam's [`Backend`] and a handle on
/// the log for tests, tools and metrics ([`EmbeddedLog::group_lag`], …).
pub fn start(
    options: EmbeddedOptions,
    apps: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<(Backend, Arc<EmbeddedLog>), StartError> {
    start_with(options, None, apps)
}

/// [`start`] with the log on disk (`backend.embedded.storage = "disk"`): opens (recovering) the
/// log and the committed offsets under `disk.dir`, and starts its syncer.
pub fn start_on_disk(
    options: EmbeddedOptions,
    disk: DiskOptions,
    apps: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<(Backend, Arc<EmbeddedLog>), StartError> {
    start_with(options, Some(disk), apps)
}

fn start_with<I, S>(
    options: EmbeddedOptions,
    disk: Option<DiskOptions>,
    apps: I,
) -> Result<(Backend, Arc<EmbeddedLog>), StartError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    if options.partitions == 0 {
        return Err(StartError::NoPartitions);
    }
    let threads = match options.consumer_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    // Worker ids travel as u16 in ack tokens.
    .min(usize::from(u16::MAX));
    let (senders, receivers): (Vec<Sender<ToBackend>>, Vec<_>) =
        (0..threads).map(|_| crossbeam_channel::unbounded()).unzip();
    let apps: Vec<Arc<str>> = apps.into_iter().map(|a| Arc::from(a.as_ref())).collect();
    let mut syncer = None;
    let log = match &disk {
        None => Arc::new(EmbeddedLog::new(
            &options,
            apps,
            wake::Wakers::new(&senders),
        )),
        Some(disk) => {
            let retention_bytes =
                partition::Retention::per_partition(0, options.retention_bytes, options.partitions)
                    .bytes;
            let offsets = store::OffsetStore::default();
            let opened = storage::open(disk, &apps, options.partitions, retention_bytes, &offsets)?;
            let (tx, rx) = crossbeam_channel::unbounded();
            // Appends wait for the syncer only with `fsync = "always"`.
            let waits = (disk.fsync == crate::config::Fsync::Always).then(|| tx.clone());
            let on_disk = log::OnDisk {
                options: disk.clone(),
                segment_bytes: storage::segment_bytes(retention_bytes),
                cache_bytes: opened.cache_bytes,
                lock: opened.lock,
            };
            let log = Arc::new(EmbeddedLog::on_disk(
                &options,
                on_disk,
                apps,
                opened.partitions,
                wake::Wakers::new(&senders),
                offsets,
                waits,
            ));
            let run = syncer::Syncer::new(
                log.clone(),
                rx,
                disk.clone(),
                opened.offsets,
                retention_bytes,
            );
            let handle = std::thread::Builder::new()
                .name("embedded-syncer".to_owned())
                .spawn(move || run.run())
                .map_err(|source| StartError::Spawn {
                    worker: threads,
                    source,
                })?;
            syncer = Some((tx, handle));
            log
        }
    };
    let mut handles = Vec::with_capacity(threads);
    for (id, rx) in receivers.into_iter().enumerate() {
        let worker = worker::Worker::new(id as u16, rx, log.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("embedded-worker-{id}"))
            .spawn(move || worker.run());
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(source) => {
                // Stop the workers already running before giving up.
                let (tx, _rx) = crossbeam_channel::unbounded();
                for s in &senders[..id] {
                    let _ = s.send(ToBackend::Shutdown(tx.clone()));
                }
                return Err(StartError::Spawn { worker: id, source });
            }
        }
    }
    let producer = Arc::new(EmbeddedProducer::new(log.clone()));
    let mut backend = Backend::new(producer, senders, handles);
    if let Some((tx, handle)) = syncer {
        // After the workers committed what was acknowledged: the last sync and offsets write.
        backend = backend.on_stopped(move || {
            syncer::stop(&tx);
            let _ = handle.join();
        });
    }
    Ok((backend, log))
}

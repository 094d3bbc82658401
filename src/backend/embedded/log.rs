//! The log itself: one [`AppLog`] (`app_log`) per application (those configured at start, and
//! those a reload adds), the command stream, the offset store and the doorbells, behind one
//! shared [`EmbeddedLog`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::Sender;

use super::app_log::AppLog;
use super::commands::CommandLog;
use super::disk::DirLock;
use super::hash;
use super::partition::{Partition, Retention};
use super::storage::{self, DiskOptions};
use super::store::OffsetStore;
use super::sync_request::{Done, Msg};
use super::wake::Wakers;
use super::EmbeddedOptions;
use crate::cloudevents::Event;
use crate::seam::{BackendError, Record};

/// The embedded backend's shared state. Obtained from [`super::start`]; its methods are for
/// tests, tools and metrics (the service itself talks to the backend through the seam).
pub struct EmbeddedLog {
    partitions: u32,
    /// Replaced whole when a reload adds applications; readers load it without a lock.
    apps: ArcSwap<HashMap<Arc<str>, Arc<AppLog>>>,
    /// How the log of an application added at run time is made.
    options: EmbeddedOptions,
    /// On disk: where, the segment size and each partition's read cache (`None` in memory).
    disk: Option<(DiskOptions, u64, u64)>,
    /// One [`EmbeddedLog::add_apps`] at a time.
    adding: parking_lot::Mutex<()>,
    commands: CommandLog,
    pub(crate) store: OffsetStore,
    pub(crate) wakers: Wakers,
    skipped: AtomicU64,
    /// `backend.group_retention`.
    pub(crate) group_retention: std::time::Duration,
    /// On disk: the syncer, when appends wait for it before they complete (`fsync =
    /// "always"`).
    pub(crate) syncer: Option<Sender<Msg>>,
    /// On disk: `dir/LOCK`, held while the log is open.
    _lock: Option<DirLock>,
}

/// Where a log on disk lives: its settings, the size of its segments (for the logs of
/// applications added later) and the directory's lock.
pub(crate) struct OnDisk {
    pub options: DiskOptions,
    pub segment_bytes: u64,
    /// Each partition's share of the read cache.
    pub cache_bytes: u64,
    pub lock: DirLock,
}

/// The on-disk log's size, from [`EmbeddedLog::disk_size`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiskSize {
    /// Bytes of segment files per application.
    pub bytes: Vec<(String, u64)>,
    pub segments: u64,
    /// Segment files whose tail recovery cut at start.
    pub recovery_truncations: u64,
}

/// What one append of a batch did in one partition.
pub(crate) struct PartitionAppend {
    pub partition: u32,
    /// Positions in the batch of the events that went to this partition.
    pub indexes: Vec<usize>,
    /// The end of the appended records, or why nothing was kept.
    pub result: Result<u64, BackendError>,
}

impl EmbeddedLog {
    pub(crate) fn new(
        options: &EmbeddedOptions,
        apps: Vec<Arc<str>>,
        wakers: Wakers,
    ) -> EmbeddedLog {
        let workers = wakers.len();
        EmbeddedLog {
            partitions: options.partitions,
            apps: ArcSwap::from_pointee(
                apps.into_iter()
                    .map(|name| (name.clone(), Arc::new(AppLog::new(name, options, workers))))
                    .collect(),
            ),
            options: *options,
            disk: None,
            adding: parking_lot::Mutex::new(()),
            commands: CommandLog::new(
                options.partitions,
                Retention {
                    events: options.retention_events,
                    bytes: options.retention_bytes,
                },
            ),
            store: OffsetStore::default(),
            wakers,
            skipped: AtomicU64::new(0),
            group_retention: options.group_retention,
            syncer: None,
            _lock: None,
        }
    }

    /// A log on disk: `partitions` per application (in the order of `apps`), opened by
    /// [`super::storage::open`]; `syncer` when appends wait for its fdatasync.
    pub(crate) fn on_disk(
        options: &EmbeddedOptions,
        disk: OnDisk,
        apps: Vec<Arc<str>>,
        partitions: Vec<Box<[Partition]>>,
        wakers: Wakers,
        store: OffsetStore,
        syncer: Option<Sender<Msg>>,
    ) -> EmbeddedLog {
        let mut log = EmbeddedLog::new(options, Vec::new(), wakers);
        let workers = log.wakers.len();
        log.apps = ArcSwap::from_pointee(
            apps.into_iter()
                .zip(partitions)
                .map(|(name, parts)| {
                    let app = AppLog::with_partitions(name.clone(), parts, workers);
                    (name, Arc::new(app))
                })
                .collect(),
        );
        log.disk = Some((disk.options, disk.segment_bytes, disk.cache_bytes));
        log.store = store;
        log._lock = Some(disk.lock);
        log.syncer = syncer;
        log
    }

    pub(crate) fn app(&self, name: &str) -> Option<Arc<AppLog>> {
        self.apps.load().get(name).cloned()
    }

    pub(crate) fn apps(&self) -> Vec<Arc<AppLog>> {
        self.apps.load().values().cloned().collect()
    }

    /// Adds the applications of `names` this log does not have yet (a reload configured them):
    /// in memory, empty; on disk, opened in `dir` (recovering what an earlier run left there).
    /// Applications are never removed at run time: a reload that drops one takes away every
    /// right to it (the registry's), and its log stays until a restart.
    pub fn add_apps(&self, names: &[&str]) -> Result<Vec<String>, BackendError> {
        let _one = self.adding.lock();
        let current = self.apps.load_full();
        let mut next = (*current).clone();
        let mut added = Vec::new();
        let workers = self.wakers.len();
        for &name in names {
            if next.contains_key(name) {
                continue;
            }
            let name: Arc<str> = Arc::from(name);
            let app = match &self.disk {
                None => AppLog::new(name.clone(), &self.options, workers),
                Some((disk, segment_bytes, cache_bytes)) => {
                    let parts = storage::open_app(
                        disk,
                        &name,
                        self.partitions,
                        *segment_bytes,
                        *cache_bytes,
                    )
                    .map_err(|e| {
                        BackendError::Unavailable(format!(
                            "cannot open the log of application {name}: {e}"
                        ))
                    })?;
                    AppLog::with_partitions(name.clone(), parts, workers)
                }
            };
            added.push(name.to_string());
            next.insert(name, Arc::new(app));
        }
        if !added.is_empty() {
            self.apps.store(Arc::new(next));
        }
        Ok(added)
    }

    /// Appends `events` to `app`'s log, one batch per partition (partition = hash of the
    /// event's `device` extension, 0 without one), in order per partition. Nothing is
    /// readable or complete yet: see [`EmbeddedLog::complete`].
    pub(crate) fn append_batch(
        &self,
        app: &str,
        events: Vec<Event>,
    ) -> Result<(Arc<AppLog>, Vec<PartitionAppend>), BackendError> {
        let log = self
            .app(app)
            .ok_or_else(|| BackendError::UnknownStream(app.to_owned()))?;
        let mut by_partition: Vec<(Vec<usize>, Vec<Event>)> = Vec::new();
        let mut slot = vec![usize::MAX; self.partitions as usize];
        for (index, event) in events.into_iter().enumerate() {
            let p = hash::partition_of(event.device(), self.partitions) as usize;
            if slot[p] == usize::MAX {
                slot[p] = by_partition.len();
                by_partition.push((Vec::new(), Vec::new()));
            }
            let (indexes, batch) = &mut by_partition[slot[p]];
            indexes.push(index);
            batch.push(event);
        }
        let mut appended = Vec::with_capacity(by_partition.len());
        for (indexes, batch) in by_partition {
            let p = hash::partition_of(batch[0].device(), self.partitions);
            let result = log.partitions[p as usize]
                .append_batch(batch)
                .map(|range| range.end)
                .map_err(|e| {
                    // The log line names the file; the answer to the client does not (paths
                    // on the server are not the client's business).
                    tracing::error!(error = %e, app, partition = p, "embedded log: append failed; answering 503");
                    BackendError::Unavailable(if e.is_disk_full() {
                        "the event log's disk is full".to_owned()
                    } else {
                        "the event log cannot write".to_owned()
                    })
                });
            appended.push(PartitionAppend {
                partition: p,
                indexes,
                result,
            });
        }
        Ok((log, appended))
    }

    /// Completes appends made by [`EmbeddedLog::append_batch`]: `done` runs once the
    /// partitions are durable up to `ends` (on the syncer's thread with `fsync = "always"`,
    /// at once otherwise), and the readers of `app` are woken once what was appended is
    /// readable.
    pub(crate) fn complete(&self, app: &Arc<AppLog>, ends: Vec<(u32, u64)>, done: Done) {
        match &self.syncer {
            Some(syncer) if !ends.is_empty() => {
                let msg = Msg::Wait {
                    app: app.clone(),
                    ends,
                    done,
                };
                // The syncer is gone only after shutdown: answer rather than leave the caller waiting.
                if let Err(crossbeam_channel::SendError(Msg::Wait { done, .. })) = syncer.send(msg)
                {
                    done(Err(BackendError::Unavailable(
                        "the embedded log is shutting down".to_owned(),
                    )));
                }
            }
            _ => {
                if !ends.is_empty() {
                    app.interest.ring(&self.wakers);
                }
                done(Ok(()));
            }
        }
    }

    /// Appends a device event to `app`'s log (partition = hash of its `device` extension, 0
    /// without one), waits until it is durable (`fsync = "always"`) and wakes the workers
    /// reading `app`. Returns (partition, offset). For tests and tools: it blocks.
    pub fn append_event(&self, app: &str, event: Event) -> Result<(u32, u64), BackendError> {
        let (log, mut appended) = self.append_batch(app, vec![event])?;
        let one = appended.pop().expect("one event, one partition");
        let end = one.result?;
        self.wait_complete(&log, vec![(one.partition, end)])?;
        Ok((one.partition, end - 1))
    }

    /// Appends `events` to `app`'s log in order, then wakes its readers once. Blocks like
    /// [`EmbeddedLog::append_event`].
    pub fn append_events(&self, app: &str, events: Vec<Event>) -> Result<(), BackendError> {
        let (log, appended) = self.append_batch(app, events)?;
        let mut ends = Vec::with_capacity(appended.len());
        for a in appended {
            ends.push((a.partition, a.result?));
        }
        self.wait_complete(&log, ends)
    }

    fn wait_complete(&self, app: &Arc<AppLog>, ends: Vec<(u32, u64)>) -> Result<(), BackendError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.complete(
            app,
            ends,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv().unwrap_or_else(|_| {
            Err(BackendError::Unavailable(
                "the embedded log is shutting down".to_owned(),
            ))
        })
    }

    /// Appends a command for `device` of `app` to the command stream. Returns (partition, offset).
    pub fn append_command(
        &self,
        app: &str,
        device: &str,
        event: Event,
    ) -> Result<(u32, u64), BackendError> {
        // Commands for applications this backend does not know are refused like events: the
        // application must exist (spec 2.5).
        if !self.apps.load().contains_key(app) {
            return Err(BackendError::UnknownStream(app.to_owned()));
        }
        Ok(self.commands.append(app, device, event))
    }

    /// On disk: the size of the log's files (for the metrics); `None` in memory.
    pub fn disk_size(&self) -> Option<DiskSize> {
        let mut size = DiskSize::default();
        let mut on_disk = false;
        for app in self.apps.load().values() {
            let mut bytes = 0;
            for disk in app.partitions.iter().filter_map(Partition::disk) {
                on_disk = true;
                let (b, segments) = disk.size();
                bytes += b;
                size.segments += segments as u64;
                size.recovery_truncations += disk.recovery_truncations();
            }
            size.bytes.push((app.name.to_string(), bytes));
        }
        on_disk.then_some(size)
    }

    /// The applications, in no particular order.
    pub fn applications(&self) -> Vec<String> {
        self.apps.load().keys().map(|k| k.to_string()).collect()
    }

    /// Partitions per application.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition a device's events go to.
    pub fn partition_of(&self, device: &str) -> u32 {
        hash::partition_of(Some(device), self.partitions)
    }

    /// The next offset to be written, per partition.
    pub fn end_offsets(&self, app: &str) -> Option<Vec<u64>> {
        let log = self.app(app)?;
        Some(log.partitions.iter().map(Partition::end).collect())
    }

    /// The first retained offset, per partition.
    pub fn first_offsets(&self, app: &str) -> Option<Vec<u64>> {
        let log = self.app(app)?;
        Some(log.partitions.iter().map(Partition::first).collect())
    }

    /// Up to `max` retained records of one partition from `from` on.
    pub fn read(
        &self,
        app: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Option<Vec<Arc<Record>>> {
        let log = self.app(app)?;
        let p = log.partitions.get(partition as usize)?;
        let mut out = Vec::new();
        p.read(from, max, &mut out);
        Some(out)
    }

    /// Committed offsets per partition of durable group `group` (`<application>.<group>`).
    pub fn committed(&self, group: &str) -> Option<Vec<u64>> {
        self.store.committed(group)
    }

    /// Per durable group with members or lag: events not yet committed (sum over partitions of
    /// end − committed), sorted by group name. Up to date after every ack batch and dispatch
    /// pass. Idle groups that have read everything are left out, so that `/metrics` stays small
    /// with many groups (issue #17).
    pub fn group_lag(&self) -> Vec<(String, u64)> {
        let apps = self.apps.load();
        let mut out: Vec<(String, u64)> = self
            .store
            .snapshot()
            .into_iter()
            .filter_map(|(name, app, committed, active)| {
                let log = apps.get(&app)?;
                let lag = log
                    .partitions
                    .iter()
                    .zip(committed)
                    .map(|(p, c)| p.end().saturating_sub(c))
                    .sum();
                (active || lag > 0).then(|| (name.to_string(), lag))
            })
            .collect();
        out.sort();
        out
    }

    /// Durable groups known: with members, or idle within `backend.group_retention`.
    pub fn groups(&self) -> usize {
        self.store.len()
    }

    /// Records that readers skipped because retention dropped them before they were read.
    pub fn skipped_records(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    pub(crate) fn count_skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }

    /// Commands from the `from`-th ever appended (0-based, over all applications) on, in append
    /// order; commands dropped by retention are left out. Poll with the previous
    /// [`EmbeddedLog::commands_appended`] to read only new ones.
    pub fn commands_since(&self, from: usize) -> Vec<Arc<Record>> {
        self.commands.since(from)
    }

    /// How many commands were ever appended.
    pub fn commands_appended(&self) -> usize {
        self.commands.appended()
    }
}

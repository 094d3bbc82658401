//! The log itself: one [`AppLog`] per application (known at start), the command stream, the
//! offset store and the doorbells, behind one shared [`EmbeddedLog`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::commands::CommandLog;
use super::hash;
use super::partition::{Partition, Retention};
use super::store::{OffsetStore, PartitionOffsets};
use super::wake::{Interest, Wakers};
use super::EmbeddedOptions;
use crate::cloudevents::Event;
use crate::seam::{BackendError, Record, StartAt};
use std::time::SystemTime;

/// The events of one application.
pub(crate) struct AppLog {
    pub name: Arc<str>,
    /// `app/<application>`: the PUBLISH topic of whole-application filters (spec 2.1), kept once.
    pub topic: Arc<str>,
    pub partitions: Box<[Partition]>,
    /// Which workers have groups reading this application, so an append wakes only those.
    pub interest: Interest,
}

impl AppLog {
    fn new(name: Arc<str>, options: &EmbeddedOptions, workers: usize) -> AppLog {
        let retention = Retention::per_partition(
            options.retention_events,
            options.retention_bytes,
            options.partitions,
        );
        AppLog {
            topic: format!("app/{name}").into(),
            name,
            partitions: (0..options.partitions)
                .map(|p| Partition::new(p, retention))
                .collect(),
            interest: Interest::new(workers),
        }
    }

    /// Where a new reader starts (spec 2.1 `start`): the current end of every partition by
    /// default, the first retained event for `Earliest`, else the first event at or after the
    /// time. `now` resolves `-<duration>`.
    pub fn start_positions(&self, start: StartAt, now: SystemTime) -> Vec<PartitionOffsets> {
        self.partitions
            .iter()
            .map(|p| {
                let at = match start {
                    StartAt::Latest => p.end(),
                    StartAt::Earliest => p.first(),
                    StartAt::Time(_) | StartAt::Ago(_) => {
                        start.instant(now).map_or(p.end(), |t| p.offset_for_time(t))
                    }
                };
                PartitionOffsets {
                    committed: at,
                    dispatched_end: at,
                }
            })
            .collect()
    }
}

/// The embedded backend's shared state. Obtained from [`super::start`]; its methods are for
/// tests, tools and metrics (the service itself talks to the backend through the seam).
pub struct EmbeddedLog {
    partitions: u32,
    apps: HashMap<Arc<str>, Arc<AppLog>>,
    commands: CommandLog,
    pub(crate) store: OffsetStore,
    pub(crate) wakers: Wakers,
    skipped: AtomicU64,
    /// `backend.group_retention`.
    pub(crate) group_retention: std::time::Duration,
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
            apps: apps
                .into_iter()
                .map(|name| (name.clone(), Arc::new(AppLog::new(name, options, workers))))
                .collect(),
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
        }
    }

    pub(crate) fn app(&self, name: &str) -> Option<&Arc<AppLog>> {
        self.apps.get(name)
    }

    /// Appends a device event to `app`'s log (partition = hash of its `device` extension, 0
    /// without one) and wakes the workers reading `app`. Returns (partition, offset).
    pub fn append_event(&self, app: &str, event: Event) -> Result<(u32, u64), BackendError> {
        let log = self
            .apps
            .get(app)
            .ok_or_else(|| BackendError::UnknownStream(app.to_owned()))?;
        let partition = hash::partition_of(event.device(), self.partitions);
        let offset = log.partitions[partition as usize].append(event);
        log.interest.ring(&self.wakers);
        Ok((partition, offset))
    }

    /// Appends `events` to `app`'s log in order, then wakes its readers once.
    pub fn append_events(&self, app: &str, events: Vec<Event>) -> Result<(), BackendError> {
        let log = self
            .apps
            .get(app)
            .ok_or_else(|| BackendError::UnknownStream(app.to_owned()))?;
        if events.is_empty() {
            return Ok(());
        }
        for event in events {
            let partition = hash::partition_of(event.device(), self.partitions);
            log.partitions[partition as usize].append(event);
        }
        log.interest.ring(&self.wakers);
        Ok(())
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
        if !self.apps.contains_key(app) {
            return Err(BackendError::UnknownStream(app.to_owned()));
        }
        Ok(self.commands.append(app, device, event))
    }

    /// The applications, in no particular order.
    pub fn applications(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(|k| &**k)
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
        let log = self.apps.get(app)?;
        Some(log.partitions.iter().map(Partition::end).collect())
    }

    /// The first retained offset, per partition.
    pub fn first_offsets(&self, app: &str) -> Option<Vec<u64>> {
        let log = self.apps.get(app)?;
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
        let p = self.apps.get(app)?.partitions.get(partition as usize)?;
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
        let mut out: Vec<(String, u64)> = self
            .store
            .snapshot()
            .into_iter()
            .filter_map(|(name, app, committed, active)| {
                let log = self.apps.get(&app)?;
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

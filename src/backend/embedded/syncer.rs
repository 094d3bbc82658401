//! The syncer: one thread per on-disk log that does every fdatasync, so that no appender — a
//! shard's event loop among them — ever waits for the disk.
//!
//! With `fsync = "always"` an appender writes its batch to the page cache on its own thread and
//! hands its completion here ([`Msg::Wait`], in `sync_request`). The syncer takes every completion waiting, syncs
//! each partition they touched once, lets readers see what is now durable, and only then runs
//! the completions (HTTP `202`, command PUBACK): one fdatasync per partition covers every
//! request that arrived while the previous one ran (group commit). On a timer it also syncs
//! `fsync = "interval"` logs, deletes segments retention no longer keeps, and writes the
//! committed offsets file when they changed. [`Msg::Stop`] syncs and writes everything a last
//! time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::app_log::AppLog;
use super::disk::offsets::OffsetsFile;
use super::storage::DiskOptions;
use super::sync_request::{Done, Msg};
use super::EmbeddedLog;
use crate::config::Fsync;
use crate::seam::BackendError;

/// An append waiting for its partitions to be durable: (application, (partition, end)*, done).
type Waiting = (Arc<AppLog>, Vec<(u32, u64)>, Done);

pub(crate) struct Syncer {
    log: Arc<EmbeddedLog>,
    rx: Receiver<Msg>,
    options: DiskOptions,
    offsets: OffsetsFile,
    /// The offset store's version last written to the offsets file.
    written: u64,
    /// Per partition (application, partition): the byte retention.
    retention_bytes: u64,
}

impl Syncer {
    pub(crate) fn new(
        log: Arc<EmbeddedLog>,
        rx: Receiver<Msg>,
        options: DiskOptions,
        offsets: OffsetsFile,
        retention_bytes: u64,
    ) -> Syncer {
        let written = log.store.version();
        Syncer {
            log,
            rx,
            options,
            offsets,
            written,
            retention_bytes,
        }
    }

    pub(crate) fn run(mut self) {
        let tick = self.options.tick();
        let mut next_tick = Instant::now() + tick;
        loop {
            let mut waits = Vec::new();
            let mut stop = None;
            let first = self.rx.recv_deadline(next_tick);
            let disconnected = matches!(first, Err(RecvTimeoutError::Disconnected));
            for msg in first.into_iter().chain(self.rx.try_iter()) {
                match msg {
                    Msg::Wait { app, ends, done } => waits.push((app, ends, done)),
                    Msg::Stop(reply) => stop = Some(reply),
                }
            }
            if !waits.is_empty() {
                self.commit(waits);
            }
            if stop.is_some() || disconnected || Instant::now() >= next_tick {
                self.timed(stop.is_some() || disconnected);
                next_tick = Instant::now() + tick;
            }
            if let Some(reply) = stop {
                let _ = reply.send(());
                return;
            }
            if disconnected {
                return;
            }
        }
    }

    /// The group commit: every partition the waiting appends touched synced once, then their
    /// completions run.
    fn commit(&self, waits: Vec<Waiting>) {
        let mut need: BTreeMap<(Arc<str>, u32), (Arc<AppLog>, u64)> = BTreeMap::new();
        for (app, ends, _) in &waits {
            for &(p, end) in ends {
                let slot = need
                    .entry((app.name.clone(), p))
                    .or_insert_with(|| (app.clone(), end));
                slot.1 = slot.1.max(end);
            }
        }
        let mut failed: BTreeMap<(Arc<str>, u32), String> = BTreeMap::new();
        let mut rung: Vec<Arc<str>> = Vec::new();
        for ((name, p), (app, end)) in &need {
            let Some(partition) = app.partitions.get(*p as usize) else {
                continue;
            };
            if let Err(e) = partition.sync_to(*end) {
                tracing::error!(error = %e, app = %name, partition = p, "embedded log: fdatasync failed; the appends it covers are answered 503");
                failed.insert(
                    (name.clone(), *p),
                    "the event log cannot sync to its disk".to_owned(),
                );
            }
            if !rung.contains(name) {
                rung.push(name.clone());
            }
        }
        // Readers see the records now durable; one doorbell per application.
        for name in &rung {
            if let Some(app) = self.log.app(name) {
                app.interest.ring(&self.log.wakers);
            }
        }
        for (app, ends, done) in waits {
            let error = ends
                .iter()
                .find_map(|&(p, _)| failed.get(&(app.name.clone(), p)));
            done(match error {
                None => Ok(()),
                Some(e) => Err(BackendError::Unavailable(e.clone())),
            });
        }
    }

    /// The timer's work; `last` at shutdown (everything synced and written, now).
    fn timed(&mut self, last: bool) {
        let apps = self.log.apps();
        let every_partition = || {
            apps.iter()
                .flat_map(|app| app.partitions.iter().filter_map(|p| p.disk()))
        };
        if self.options.fsync == Fsync::Interval || last {
            for disk in every_partition() {
                if let Err(e) = disk.sync_now() {
                    tracing::error!(error = %e, "embedded log: fdatasync failed");
                }
            }
        }
        let bytes = (self.retention_bytes > 0).then_some(self.retention_bytes);
        let age = (!self.options.retention_age.is_zero()).then_some(self.options.retention_age);
        for disk in every_partition() {
            match disk.apply_retention(bytes, age) {
                Ok(d) if d.segments > 0 => {
                    tracing::debug!(
                        segments = d.segments,
                        bytes = d.bytes,
                        "embedded log: retention deleted segments"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "embedded log: retention could not delete a segment")
                }
            }
        }
        let version = self.log.store.version();
        if version != self.written {
            match self.offsets.save(&self.log.store.to_file()) {
                Ok(()) => self.written = version,
                Err(e) => {
                    tracing::error!(error = %e, "embedded log: cannot write the committed offsets; retrying")
                }
            }
        }
    }
}

/// How long [`stop`] waits for the syncer's last sync and write.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the syncer to sync and write everything a last time and waits for it (at most
/// [`STOP_TIMEOUT`]).
pub(crate) fn stop(tx: &Sender<Msg>) {
    let (reply, done) = crossbeam_channel::bounded(1);
    if tx.send(Msg::Stop(reply)).is_ok() && done.recv_timeout(STOP_TIMEOUT).is_err() {
        tracing::warn!("embedded log: the syncer did not finish its last sync in time");
    }
}

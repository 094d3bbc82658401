//! Starting the configured backend: the server's one way in, so that nothing outside
//! `backend/` reaches into `embedded::` or `kafka::`.

use std::sync::Arc;

use super::command_inbox::OfferingProducer;
use super::embedded::{self, DiskOptions, EmbeddedLog, EmbeddedOptions};
use super::kafka;
use super::kafka::command_reader::CommandReader;
use super::Backend;
use crate::config::{BackendKind, Config, Storage};
use crate::inbox::Inbox;
use crate::metrics::Metrics;

/// Starts the backend `config` names for its applications and has `metrics` read the backend's
/// own figures (group lag, skipped records, groups, consumers) before each rendering. Returns the
/// backend and, for the embedded one, its log (to read commands back in tests). The error is the
/// backend's own message.
pub fn start(
    config: &Config,
    metrics: &Metrics,
    inbox: &Arc<Inbox>,
) -> Result<(Backend, Option<Arc<EmbeddedLog>>), String> {
    let started = match config.backend.kind {
        BackendKind::Embedded => {
            let e = &config.backend.embedded;
            let options = EmbeddedOptions {
                partitions: e.partitions,
                retention_events: e.retention_events,
                retention_bytes: e.retention_bytes,
                consumer_threads: e.consumer_threads,
                group_retention: config.backend.group_retention,
            };
            let apps = config.apps.iter().map(|a| a.name.clone());
            let (backend, log) = match e.storage {
                Storage::Memory => embedded::start(options, apps),
                Storage::Disk => {
                    let disk = DiskOptions {
                        dir: e.dir.clone(),
                        fsync: e.fsync,
                        fsync_interval: e.fsync_interval,
                        retention_age: e.retention_age,
                        offsets_flush_interval: e.offsets_flush_interval,
                        read_cache_bytes: e.read_cache_bytes,
                    };
                    embedded::start_on_disk(options, disk, apps)
                }
            }
            .map_err(|e| e.to_string())?;
            // Commands reach devices waiting over HTTP once stored.
            let mut backend = backend;
            backend.producer = Arc::new(OfferingProducer {
                inner: backend.producer.clone(),
                inbox: inbox.clone(),
            });
            let lags = log.clone();
            let commands = inbox.clone();
            metrics.set_collector(move |m| {
                commands.sweep(std::time::Instant::now());
                m.raise_commands_expired(commands.expired_total());
                m.replace_group_lags(lags.group_lag().into_iter().map(|(g, lag)| (g, lag as i64)));
                m.raise_records_skipped(lags.skipped_records() + crate::seam::unroutable_records());
                m.set_groups(lags.groups() as i64);
                if let Some(size) = lags.disk_size() {
                    m.set_log_size(
                        size.bytes.into_iter().map(|(app, b)| (app, b as i64)),
                        size.segments as i64,
                    );
                    m.raise_log_recovery_truncations(size.recovery_truncations);
                }
            });
            (backend, Some(log))
        }
        BackendKind::Kafka => {
            let apps = config.apps.iter().map(|a| a.name.clone());
            let (backend, stats) = kafka::start(
                &config.backend.kafka,
                apps,
                config.backend.kafka.consumer_threads,
                config.backend.group_retention,
            )
            .map_err(|e| e.to_string())?;
            // Every instance reads the command topic for the devices waiting on it.
            let reader = CommandReader::start(&config.backend.kafka, inbox.clone())
                .map_err(|e| format!("cannot start the command topic's reader: {e}"))?;
            let backend = backend.on_stopped(move || reader.stop());
            metrics.set_collector(move |m| {
                m.replace_group_lags(stats.lags.lock().iter().map(|(g, lag)| (g.clone(), *lag)));
                m.raise_records_skipped(
                    stats.skipped.load(std::sync::atomic::Ordering::Relaxed)
                        + crate::seam::unroutable_records(),
                );
                m.set_backend_consumers(stats.consumers.load(std::sync::atomic::Ordering::Relaxed));
                m.set_groups(stats.groups.load(std::sync::atomic::Ordering::Relaxed));
            });
            (backend, None)
        }
    };
    Ok(started)
}

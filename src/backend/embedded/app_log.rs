//! One application's log: its partitions, the topic of whole-application deliveries, which
//! workers read it, and where a new reader starts.

use std::sync::Arc;
use std::time::SystemTime;

use super::partition::{Partition, Retention};
use super::store::PartitionOffsets;
use super::wake::Interest;
use super::EmbeddedOptions;
use crate::seam::StartAt;

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
    /// An application in memory.
    pub(crate) fn new(name: Arc<str>, options: &EmbeddedOptions, workers: usize) -> AppLog {
        let retention = Retention::per_partition(
            options.retention_events,
            options.retention_bytes,
            options.partitions,
        );
        let partitions = (0..options.partitions)
            .map(|p| Partition::new(p, retention))
            .collect();
        AppLog::with_partitions(name, partitions, workers)
    }

    pub(crate) fn with_partitions(
        name: Arc<str>,
        partitions: Box<[Partition]>,
        workers: usize,
    ) -> AppLog {
        AppLog {
            topic: format!("app/{name}").into(),
            name,
            partitions,
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

//! Committed offsets of durable consumer groups (`<application>.<group>`, spec 2.1).
//!
//! Per partition a group keeps its committed offset and the end of what was ever dispatched, so
//! that events handed out again after a reconnect or a rebalance carry DUP=1 (spec 2.4). Workers
//! write here once per ack batch, pass or leave — never per event — so one mutex is enough.
//! Ephemeral readers are never stored.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Where a group stands in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PartitionOffsets {
    /// The next offset to read after a restart: everything below is acknowledged.
    pub committed: u64,
    /// One past the highest offset ever dispatched to a member of this group.
    pub dispatched_end: u64,
}

struct Stored {
    app: Arc<str>,
    partitions: Vec<PartitionOffsets>,
}

#[derive(Default)]
pub(crate) struct OffsetStore {
    groups: Mutex<HashMap<Arc<str>, Stored>>,
}

impl OffsetStore {
    /// The offsets of group `name` reading `app`, if it ever stored any. A group name stored
    /// for another application (names are `<app>.<group>` and apps may contain dots) is not
    /// taken for this one.
    pub(crate) fn load(&self, name: &str, app: &str) -> Option<Vec<PartitionOffsets>> {
        let groups = self.groups.lock();
        let stored = groups.get(name)?;
        (&*stored.app == app).then(|| stored.partitions.clone())
    }

    pub(crate) fn save(&self, name: &str, app: &Arc<str>, partitions: Vec<PartitionOffsets>) {
        let mut groups = self.groups.lock();
        match groups.get_mut(name) {
            Some(stored) => {
                stored.app = app.clone();
                stored.partitions = partitions;
            }
            None => {
                groups.insert(
                    name.into(),
                    Stored {
                        app: app.clone(),
                        partitions,
                    },
                );
            }
        }
    }

    /// Committed offsets per partition of group `name`.
    pub(crate) fn committed(&self, name: &str) -> Option<Vec<u64>> {
        let groups = self.groups.lock();
        groups
            .get(name)
            .map(|s| s.partitions.iter().map(|p| p.committed).collect())
    }

    /// (group, application, committed offsets) of every stored group.
    pub(crate) fn snapshot(&self) -> Vec<(Arc<str>, Arc<str>, Vec<u64>)> {
        let groups = self.groups.lock();
        groups
            .iter()
            .map(|(name, s)| {
                let committed = s.partitions.iter().map(|p| p.committed).collect();
                (name.clone(), s.app.clone(), committed)
            })
            .collect()
    }
}

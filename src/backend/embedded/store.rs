//! Committed offsets of durable consumer groups (`<application>.<group>`, spec 2.1).
//!
//! Per partition a group keeps its committed offset and the end of what was ever dispatched, so
//! that events handed out again after a reconnect or a rebalance carry DUP=1 (spec 2.4). Workers
//! write here once per ack batch, pass or leave — never per event — so one mutex is enough.
//! Ephemeral readers are never stored.
//!
//! Beside its offsets a group keeps its [`Owner`] (issue #17) and since when it has had no
//! member: a group idle for longer than `backend.group_retention` is forgotten, offsets and
//! owner, like Kafka's `offsets.retention.minutes` (see [`OffsetStore::expire`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::seam::{BackendError, Claim, GroupKey, Owner};

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
    /// Set by the first join (None only between a group's first save and its claim).
    owner: Option<Owner>,
    /// When its last member left; None while it has members.
    idle_since: Option<Instant>,
}

/// (group, application, committed offsets per partition, has members).
pub(crate) type GroupSnapshot = (Arc<str>, Arc<str>, Vec<u64>, bool);

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
                        owner: None,
                        idle_since: None,
                    },
                );
            }
        }
    }

    /// Checks `claim` against the owner of the group `key` (named `name`) and marks the group
    /// in use; a group without an owner yet becomes the claimant's. Called by the one worker
    /// that owns the group, after [`OffsetStore::save`] stored a new group's start.
    pub(crate) fn claim(
        &self,
        name: &str,
        key: &GroupKey,
        claim: &Claim,
    ) -> Result<(), BackendError> {
        let mut groups = self.groups.lock();
        let Some(stored) = groups.get_mut(name) else {
            return Ok(());
        };
        match &stored.owner {
            Some(owner) => claim.check(key, owner)?,
            None => stored.owner = Some(claim.owner.clone()),
        }
        stored.idle_since = None;
        Ok(())
    }

    /// The group's last member left at `now`: its retention starts.
    pub(crate) fn idle(&self, name: &str, now: Instant) {
        if let Some(stored) = self.groups.lock().get_mut(name) {
            stored.idle_since = Some(now);
        }
    }

    /// Forgets groups with no member for longer than `retention`; returns how many.
    pub(crate) fn expire(&self, now: Instant, retention: Duration) -> usize {
        let mut groups = self.groups.lock();
        let before = groups.len();
        groups.retain(|_, s| {
            s.idle_since.map_or(true, |since| {
                now.saturating_duration_since(since) < retention
            })
        });
        before - groups.len()
    }

    /// How many durable groups are known (with members or within their retention).
    pub(crate) fn len(&self) -> usize {
        self.groups.lock().len()
    }

    /// Committed offsets per partition of group `name`.
    pub(crate) fn committed(&self, name: &str) -> Option<Vec<u64>> {
        let groups = self.groups.lock();
        groups
            .get(name)
            .map(|s| s.partitions.iter().map(|p| p.committed).collect())
    }

    /// (group, application, committed offsets, has members) of every stored group.
    pub(crate) fn snapshot(&self) -> Vec<GroupSnapshot> {
        let groups = self.groups.lock();
        groups
            .iter()
            .map(|(name, s)| {
                let committed = s.partitions.iter().map(|p| p.committed).collect();
                (
                    name.clone(),
                    s.app.clone(),
                    committed,
                    s.idle_since.is_none(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::GroupKind;

    fn claim(user: Option<&str>, kind: GroupKind) -> Claim {
        Claim {
            owner: Owner {
                kind,
                user: user.map(str::to_owned),
            },
            admin: false,
        }
    }

    #[test]
    fn the_first_claim_owns_and_idle_groups_expire() {
        let store = OffsetStore::default();
        let key = GroupKey::client("demo", "c");
        let app: Arc<str> = "demo".into();
        store.save("demo.c", &app, vec![PartitionOffsets::default()]);
        let bob = claim(Some("bob"), GroupKind::Client);
        assert_eq!(store.claim("demo.c", &key, &bob), Ok(()));
        let thief = claim(None, GroupKind::Shared);
        assert!(matches!(
            store.claim("demo.c", &key, &thief),
            Err(BackendError::NotOwner(_))
        ));
        let t0 = Instant::now();
        store.idle("demo.c", t0);
        let retention = Duration::from_secs(60);
        assert_eq!(store.expire(t0 + Duration::from_secs(59), retention), 0);
        // Joined again: no longer idle, never expires while it has members.
        assert_eq!(store.claim("demo.c", &key, &bob), Ok(()));
        assert_eq!(store.expire(t0 + Duration::from_secs(600), retention), 0);
        store.idle("demo.c", t0);
        assert_eq!(store.expire(t0 + retention, retention), 1);
        assert_eq!(store.len(), 0);
        assert_eq!(store.load("demo.c", "demo"), None, "offsets forgotten");
    }
}

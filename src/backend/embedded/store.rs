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
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Bumped on every change, so that the disk flusher (issue #14) writes the offsets file
    /// only when something changed since its last write.
    version: AtomicU64,
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
        self.version.fetch_add(1, Ordering::Relaxed);
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
            None => {
                stored.owner = Some(claim.owner.clone());
                self.version.fetch_add(1, Ordering::Relaxed);
            }
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
        let expired = before - groups.len();
        if expired > 0 {
            self.version.fetch_add(1, Ordering::Relaxed);
        }
        expired
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

/// The offsets file's group name for group `name` of `app`: `<app length>:<app><name>`, so
/// that neither a dot in an application name nor any character in a group name is ambiguous.
fn file_group(app: &str, name: &str) -> String {
    format!("{}:{app}{name}", app.len())
}

fn parse_file_group(text: &str) -> Option<(&str, &str)> {
    let (len, rest) = text.split_once(':')?;
    let len: usize = len.parse().ok()?;
    (rest.is_char_boundary(len) && len <= rest.len()).then(|| rest.split_at(len))
}

/// Persistence for the log on disk (issue #14): written by the syncer, restored at start.
impl OffsetStore {
    /// How many changes were made: the flusher writes when this moved since its last write.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Every group as the offsets file holds it (issue #14): group → owner
    /// ([`Owner::encode`], empty before the first claim) → partition → offsets.
    pub(crate) fn to_file(&self) -> super::disk::offsets::CommittedOffsets {
        let groups = self.groups.lock();
        let mut out = super::disk::offsets::CommittedOffsets::new();
        for (name, s) in groups.iter() {
            let owner = s.owner.as_ref().map(Owner::encode).unwrap_or_default();
            let partitions = s
                .partitions
                .iter()
                .enumerate()
                .map(|(p, o)| {
                    let o = super::disk::offsets::PartitionOffsets {
                        committed: o.committed,
                        dispatched_end: o.dispatched_end,
                    };
                    (p as u32, o)
                })
                .collect();
            out.entry(file_group(&s.app, name))
                .or_default()
                .insert(owner, partitions);
        }
        out
    }

    /// Loads what the offsets file held at start: every group is idle since `now` (no member
    /// yet), with `partitions` partitions (missing ones start at 0, extra ones are dropped).
    /// An entry that makes no sense is an error naming it.
    pub(crate) fn restore(
        &self,
        file: &super::disk::offsets::CommittedOffsets,
        partitions: u32,
        now: Instant,
    ) -> Result<(), String> {
        let mut groups = self.groups.lock();
        for (group, owners) in file {
            let (app, name) =
                parse_file_group(group).ok_or_else(|| format!("group entry {group:?}"))?;
            // One owner per group is written; should a file hold more, the last one wins.
            for (owner, offsets) in owners {
                let owner = match owner.as_str() {
                    "" => None,
                    text => Some(Owner::decode(text).ok_or_else(|| {
                        format!("owner {text:?} of group {name:?} of application {app:?}")
                    })?),
                };
                let partitions = (0..partitions)
                    .map(|p| {
                        offsets.get(&p).map_or_else(PartitionOffsets::default, |o| {
                            PartitionOffsets {
                                committed: o.committed,
                                dispatched_end: o.dispatched_end.max(o.committed),
                            }
                        })
                    })
                    .collect();
                groups.insert(
                    name.into(),
                    Stored {
                        app: app.into(),
                        partitions,
                        owner,
                        idle_since: Some(now),
                    },
                );
            }
        }
        Ok(())
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

    #[test]
    fn groups_survive_the_offsets_file() {
        let store = OffsetStore::default();
        let demo: Arc<str> = "de.mo".into();
        let offsets = |c, d| PartitionOffsets {
            committed: c,
            dispatched_end: d,
        };
        let v0 = store.version();
        store.save("de.mo.c:1", &demo, vec![offsets(3, 5), offsets(7, 7)]);
        let bob = claim(Some("bob;x"), GroupKind::Client);
        let key = GroupKey::client("de.mo", "c:1");
        store.claim("de.mo.c:1", &key, &bob).unwrap();
        store.save("de.mo.s", &demo, vec![offsets(1, 1), offsets(0, 0)]);
        assert!(store.version() > v0);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets");
        let (file, loaded, _) =
            crate::backend::embedded::disk::offsets::OffsetsFile::open(&path).unwrap();
        assert!(loaded.is_empty());
        file.save(&store.to_file()).unwrap();
        let (_, loaded, _) =
            crate::backend::embedded::disk::offsets::OffsetsFile::open(&path).unwrap();

        let t0 = Instant::now();
        let back = OffsetStore::default();
        back.restore(&loaded, 2, t0).unwrap();
        assert_eq!(
            back.load("de.mo.c:1", "de.mo"),
            Some(vec![offsets(3, 5), offsets(7, 7)])
        );
        assert_eq!(
            back.load("de.mo.c:1", "de"),
            None,
            "the application is kept"
        );
        assert_eq!(back.committed("de.mo.s"), Some(vec![1, 0]));
        // The owner came back: another identity is refused, the owner is not.
        let eve = claim(Some("eve"), GroupKind::Client);
        assert!(matches!(
            back.claim("de.mo.c:1", &key, &eve),
            Err(BackendError::NotOwner(_))
        ));
        assert_eq!(back.claim("de.mo.c:1", &key, &bob), Ok(()));
        // Restored groups without members are idle since the restart.
        let retention = Duration::from_secs(60);
        assert_eq!(back.expire(t0 + retention, retention), 1, "de.mo.s expired");

        // A different partition count: missing partitions start at 0, extra ones are dropped.
        let three = OffsetStore::default();
        three.restore(&loaded, 3, t0).unwrap();
        assert_eq!(three.committed("de.mo.c:1"), Some(vec![3, 7, 0]));
        let one = OffsetStore::default();
        one.restore(&loaded, 1, t0).unwrap();
        assert_eq!(one.committed("de.mo.c:1"), Some(vec![3]));
    }

    #[test]
    fn nonsense_entries_are_named() {
        let mut file = crate::backend::embedded::disk::offsets::CommittedOffsets::new();
        file.entry("garbage".into())
            .or_default()
            .insert(String::new(), Default::default());
        let err = OffsetStore::default()
            .restore(&file, 1, Instant::now())
            .unwrap_err();
        assert!(err.contains("garbage"), "{err}");
        let mut file = crate::backend::embedded::disk::offsets::CommittedOffsets::new();
        file.entry(file_group("demo", "demo.c"))
            .or_default()
            .insert("someone".into(), Default::default());
        let err = OffsetStore::default()
            .restore(&file, 1, Instant::now())
            .unwrap_err();
        assert!(err.contains("someone"), "{err}");
    }
}

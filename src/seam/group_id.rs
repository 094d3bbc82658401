//! Consumer group names (spec 2.1).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::ConnId;

/// The consumer group a subscription reads through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// Durable group with committed offsets: `<application>.<group>` for shared subscriptions,
    /// `<application>.<client-id>` otherwise.
    Durable(Arc<str>),
    /// Empty client id: a reader of its own with no committed offsets, starting at the newest event.
    Ephemeral { app: Arc<str>, conn: ConnId },
}

impl GroupKey {
    pub fn shared(app: &str, group: &str) -> GroupKey {
        GroupKey::Durable(format!("{app}.{group}").into())
    }

    pub fn client(app: &str, client_id: &str) -> GroupKey {
        GroupKey::Durable(format!("{app}.{client_id}").into())
    }

    /// The name used for offsets and metrics; ephemeral readers have none.
    pub fn name(&self) -> Option<&str> {
        match self {
            GroupKey::Durable(name) => Some(name),
            GroupKey::Ephemeral { .. } => None,
        }
    }

    /// A stable hash for picking the owning worker (FNV-1a: same value in every process).
    pub fn hash64(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        match self {
            GroupKey::Durable(name) => name.as_bytes().hash(&mut h),
            GroupKey::Ephemeral { app, conn } => {
                app.as_bytes().hash(&mut h);
                conn.hash(&mut h);
            }
        }
        h.0
    }
}

/// The group's name for logs: its durable name, or the connection of an ephemeral reader.
impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupKey::Durable(name) => f.write_str(name),
            GroupKey::Ephemeral { app, conn } => write!(
                f,
                "ephemeral reader of {app} ({}:{}:{})",
                conn.shard, conn.slot, conn.generation
            ),
        }
    }
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        assert_eq!(GroupKey::shared("demo", "g").name(), Some("demo.g"));
        assert_eq!(GroupKey::client("demo", "c1").name(), Some("demo.c1"));
        let eph = GroupKey::Ephemeral {
            app: "demo".into(),
            conn: ConnId {
                shard: 0,
                slot: 1,
                generation: 1,
            },
        };
        assert_eq!(eph.name(), None);
        assert_eq!(
            GroupKey::client("demo", "c1").hash64(),
            GroupKey::client("demo", "c1").hash64()
        );
    }
}

//! Which connection holds which client id, across shards (spec 2.6: a second connection with the
//! same client id takes over — when it is the same identity, issue #17). Touched on CONNECT and
//! close only, never per event.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::registry::Identity;
use crate::seam::ConnId;

#[derive(Debug, Default)]
pub struct ClientIds {
    /// Keyed by the session's own copy of the id: one entry per connection, so no second copy
    /// of every id (issue #5: idle connections should cost little beyond their struct).
    by_id: Mutex<HashMap<Arc<str>, Holder>>,
}

#[derive(Debug)]
struct Holder {
    conn: ConnId,
    /// The holder's user name; None = anonymous. A token user and an API-key user of the same
    /// name are the same identity.
    user: Option<Box<str>>,
}

/// A client id held by a connection of another identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldByOther(pub ConnId);

impl ClientIds {
    /// Records `conn` (authenticated as `identity`) as the holder of `client_id`; returns the
    /// connection it takes over. Only the same identity, or an admin, takes over: anyone else
    /// is refused and the holder stays.
    pub fn claim(
        &self,
        client_id: Arc<str>,
        conn: ConnId,
        identity: &Identity,
    ) -> Result<Option<ConnId>, HeldByOther> {
        let (user, admin) = match identity {
            Identity::Anonymous => (None, false),
            Identity::User { name, admin } => (Some(name.as_str()), *admin),
        };
        let mut map = self.by_id.lock();
        if let Some(held) = map.get(&client_id) {
            if held.conn != conn && !admin && held.user.as_deref() != user {
                return Err(HeldByOther(held.conn));
            }
        }
        // Removed first: `insert` would keep the old key, the previous session's copy.
        let previous = map.remove(&client_id);
        map.insert(
            client_id,
            Holder {
                conn,
                user: user.map(Box::from),
            },
        );
        Ok(previous.map(|h| h.conn).filter(|prev| *prev != conn))
    }

    /// Forgets `client_id` if `conn` still holds it.
    pub fn release(&self, client_id: &str, conn: ConnId) {
        let mut map = self.by_id.lock();
        if map.get(client_id).is_some_and(|h| h.conn == conn) {
            map.remove(client_id);
        }
    }
}

/// Open connections per source IP address, for `server.max_connections_per_ip`. Touched on
/// accept and close only.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    open: Mutex<HashMap<std::net::IpAddr, usize>>,
}

impl PerIp {
    /// `limit` 0 = no limit (and no bookkeeping).
    pub fn new(limit: usize) -> PerIp {
        PerIp {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection from `ip`; false (and not counted) when `ip` is at the limit.
    pub fn admit(&self, ip: std::net::IpAddr) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return false;
        }
        *n += 1;
        true
    }

    pub fn release(&self, ip: std::net::IpAddr) {
        if self.limit == 0 {
            return;
        }
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limit() {
        let ip: std::net::IpAddr = "127.0.0.2".parse().unwrap();
        let other: std::net::IpAddr = "127.0.0.3".parse().unwrap();
        let p = PerIp::new(2);
        assert!(p.admit(ip) && p.admit(ip));
        assert!(!p.admit(ip), "third from the same address");
        assert!(p.admit(other));
        p.release(ip);
        assert!(p.admit(ip));
        let unlimited = PerIp::new(0);
        assert!((0..10).all(|_| unlimited.admit(ip)));
    }

    #[test]
    fn takeover_and_release() {
        let ids = ClientIds::default();
        let a = ConnId {
            shard: 0,
            slot: 1,
            generation: 1,
        };
        let b = ConnId {
            shard: 1,
            slot: 1,
            generation: 1,
        };
        let anon = &Identity::Anonymous;
        assert_eq!(ids.claim("c".into(), a, anon), Ok(None));
        assert_eq!(ids.claim("c".into(), b, anon), Ok(Some(a)));
        ids.release("c", a); // a no longer holds it: b keeps it
        assert_eq!(ids.claim("c".into(), a, anon), Ok(Some(b)));
    }

    #[test]
    fn only_the_same_identity_or_an_admin_takes_over() {
        let ids = ClientIds::default();
        let conn = |slot| ConnId {
            shard: 0,
            slot,
            generation: 1,
        };
        let user = |name: &str, admin| Identity::User {
            name: name.into(),
            admin,
        };
        let alice = user("alice", false);
        // (who claims "c" on which connection, what the claim answers), in order.
        for (slot, who, answer) in [
            (1, &alice, Ok(None)),
            (2, &Identity::Anonymous, Err(HeldByOther(conn(1)))),
            (3, &user("bob", false), Err(HeldByOther(conn(1)))),
            // A token user and an API-key user named alice are both alice.
            (4, &alice, Ok(Some(conn(1)))),
            (5, &user("root", true), Ok(Some(conn(4)))),
            // The admin holds it now: alice may not take it back.
            (6, &alice, Err(HeldByOther(conn(5)))),
        ] {
            assert_eq!(
                ids.claim("c".into(), conn(slot), who),
                answer,
                "claim {slot}"
            );
        }
    }
}

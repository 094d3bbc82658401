//! Which connection holds which client id, across shards (spec 2.6: a second connection with the
//! same client id takes over). Touched on CONNECT and close only, never per event.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::backend::ConnId;

#[derive(Debug, Default)]
pub struct ClientIds {
    by_id: Mutex<HashMap<String, ConnId>>,
}

impl ClientIds {
    /// Records `conn` as the holder of `client_id`; returns the connection it takes over.
    pub fn claim(&self, client_id: &str, conn: ConnId) -> Option<ConnId> {
        self.by_id
            .lock()
            .insert(client_id.to_owned(), conn)
            .filter(|prev| *prev != conn)
    }

    /// Forgets `client_id` if `conn` still holds it.
    pub fn release(&self, client_id: &str, conn: ConnId) {
        let mut map = self.by_id.lock();
        if map.get(client_id) == Some(&conn) {
            map.remove(client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(ids.claim("c", a), None);
        assert_eq!(ids.claim("c", b), Some(a));
        ids.release("c", a); // a no longer holds it: b keeps it
        assert_eq!(ids.claim("c", a), Some(b));
    }
}

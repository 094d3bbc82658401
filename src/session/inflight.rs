//! Outbound QoS 1 window: packet identifiers in use and what each acknowledges.
//!
//! [MQTT-4.9.0] the server sends at most Receive Maximum unacknowledged QoS 1 PUBLISHes.
//! Identifiers are handed out in sequence, skipping those still in use, so a stuck id does not
//! block the others.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::seam::AckToken;

#[derive(Debug, Default)]
pub struct Inflight {
    by_id: HashMap<u16, AckToken, BuildHasherDefault<IdHasher>>,
    next_id: u16,
}

impl Inflight {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Reserves the next free packet identifier for `token`. The caller keeps the window, so at
    /// most 65,535 are ever in use and a free one always exists.
    pub fn insert(&mut self, token: AckToken) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id == 0 {
                continue; // [MQTT-2.3.1-1] packet identifiers are non-zero
            }
            if let std::collections::hash_map::Entry::Vacant(v) = self.by_id.entry(self.next_id) {
                v.insert(token);
                return self.next_id;
            }
        }
    }

    /// A PUBACK arrived: the token to acknowledge, if the identifier was in use.
    pub fn remove(&mut self, packet_id: u16) -> Option<AckToken> {
        self.by_id.remove(&packet_id)
    }
}

/// Packet identifiers are already well spread; hashing them again is wasted work.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n);
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(offset: u64) -> AckToken {
        AckToken {
            worker: 0,
            group: 0,
            partition: 0,
            epoch: 0,
            offset,
        }
    }

    #[test]
    fn ids_are_nonzero_unique_and_skip_those_in_use() {
        let mut w = Inflight::default();
        let a = w.insert(token(1));
        let b = w.insert(token(2));
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert_eq!(w.remove(a), Some(token(1)));
        assert_eq!(w.remove(a), None);
        // Wrap around with `b` still in flight: it is skipped.
        for i in 0..70_000u64 {
            let id = w.insert(token(i));
            assert_ne!(id, b);
            w.remove(id);
        }
        assert_eq!(w.len(), 1);
    }
}

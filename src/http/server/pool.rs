//! The connections the server holds, and which one gives way when a new one arrives while all
//! places are taken (issue #17, item 6: the operations routes are never starved).
//!
//! Two measures, because either alone leaves a hole:
//! - **Idle connections give way.** When every place is taken, the connection that has waited
//!   longest for its next request (or for its first) is closed to make room. RFC 9112 section
//!   9.6 lets a server close an idle connection at any time; clients reopen. So sockets opened
//!   and left idle — 255 of them used to make `/readyz` and every ingest answer `503` — cost a
//!   newcomer nothing.
//! - **A reserve for the operations routes.** Connections in the middle of a request (a head
//!   being trickled in, an ingest waiting for the backend) cannot be closed without harm. When
//!   all places are held by such requests, a few more connections are admitted to the reserve;
//!   there only `/healthz`, `/readyz` and `/metrics` are answered (anything else gets `503`),
//!   one request per connection. In the reserve, a connection that has not sent its whole head
//!   gives way too: probes send theirs at once, so the newest connection wins.
//!
//! A request head also has an overall deadline (`http.head_timeout`), so that a place held by
//! a trickled head comes back in bounded time.
//!
//! A per-address limit (`http.max_connections_per_ip`, off by default) keeps one client from
//! taking every place.
//!
//! The event loops share the pool: its lock is taken once per accepted connection and once when
//! a connection ends (O(1) both, unless every place is taken and one must be chosen to give
//! way); the per-request state changes are atomics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::responder::{Delivery, Inbox};

/// Where a connection was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Any route, keep-alive.
    General,
    /// The reserve: operations routes only, one request.
    Reserve,
}

/// Waiting for the first byte of a request: may be closed to make room.
const IDLE: u8 = 0;
/// A request head is arriving.
const HEAD: u8 = 1;
/// A request is being handled or answered.
const BUSY: u8 = 2;
/// Closed to make room; the connection's loop closes it at its next step.
const EVICTED: u8 = 3;

/// One admitted connection, as the pool and the connection's event loop share it.
pub(crate) struct Slot {
    pub place: Place,
    id: u64,
    ip: IpAddr,
    /// Where to tell the connection's loop that it was closed to make room (a handle on the
    /// socket itself would cost a second descriptor per connection).
    owner: Option<(Arc<Inbox>, usize)>,
    state: AtomicU8,
    /// When `state` last became [`IDLE`] or [`HEAD`], in ms since the pool started.
    since: AtomicU64,
    epoch: Instant,
}

impl Slot {
    /// Its number in the pool (an eviction names the slot, so that it reaches only the
    /// connection still holding it).
    pub fn id(&self) -> u64 {
        self.id
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enter(&self, from: u8, to: u8) -> bool {
        let ok = self
            .state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if ok && to != BUSY {
            self.since.store(self.now(), Ordering::Release);
        }
        ok
    }

    /// The first bytes of a request arrived; `false` if the connection was evicted meanwhile.
    pub fn head_started(&self) -> bool {
        self.enter(IDLE, HEAD) || self.state.load(Ordering::Acquire) == HEAD
    }

    /// The head is complete: the request is handled and cannot be evicted any more.
    pub fn handling(&self) -> bool {
        self.enter(HEAD, BUSY) || self.enter(IDLE, BUSY) || self.is_busy()
    }

    fn is_busy(&self) -> bool {
        self.state.load(Ordering::Acquire) == BUSY
    }

    /// The request was answered; the connection waits for the next one.
    pub fn idle(&self) -> bool {
        self.enter(BUSY, IDLE)
    }

    fn evictable(&self) -> Option<u64> {
        let state = self.state.load(Ordering::Acquire);
        let allowed = match self.place {
            Place::General => state == IDLE,
            Place::Reserve => state == IDLE || state == HEAD,
        };
        allowed.then(|| self.since.load(Ordering::Acquire))
    }

    fn evict(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        if state == BUSY || state == EVICTED {
            return false;
        }
        if self
            .state
            .compare_exchange(state, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // Its loop closes it; until then it no longer counts, and takes no further request.
        if let Some((inbox, key)) = &self.owner {
            inbox.deliver(Delivery::Evict {
                key: *key,
                slot: self.id,
            });
        }
        true
    }
}

/// The connections held, within `general` + `reserve` places.
pub(crate) struct Pool {
    inner: Mutex<Held>,
    general: usize,
    reserve: usize,
    /// Most connections from one address (0: no limit).
    per_ip: usize,
    epoch: Instant,
}

#[derive(Default)]
struct Held {
    slots: HashMap<u64, Arc<Slot>>,
    general: usize,
    reserve: usize,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
}

impl Held {
    fn count(&mut self, place: Place) -> &mut usize {
        match place {
            Place::General => &mut self.general,
            Place::Reserve => &mut self.reserve,
        }
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Slot>> {
        let slot = self.slots.remove(&id)?;
        *self.count(slot.place) -= 1;
        if let Some(n) = self.per_ip.get_mut(&slot.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&slot.ip);
            }
        }
        Some(slot)
    }
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// Every place is held by a request in progress.
    Everywhere,
    /// Its address holds `http.max_connections_per_ip` connections already.
    FromAddress,
}

impl Pool {
    pub fn new(general: usize, reserve: usize, per_ip: usize) -> Pool {
        Pool {
            inner: Mutex::new(Held::default()),
            general: general.max(1),
            reserve,
            per_ip,
            epoch: Instant::now(),
        }
    }

    /// Admits a connection from `ip`, served as connection `owner.1` of the loop whose inbox is
    /// `owner.0` (closing an idle connection to make room if need be), or says why not.
    pub fn admit(&self, ip: IpAddr, owner: Option<(Arc<Inbox>, usize)>) -> Result<Arc<Slot>, Full> {
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if self.per_ip > 0 && held.per_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return Err(Full::FromAddress);
        }
        let place = self
            .room(&mut held, Place::General, self.general)
            .or_else(|| self.room(&mut held, Place::Reserve, self.reserve))
            .ok_or(Full::Everywhere)?;
        held.next_id += 1;
        let slot = Arc::new(Slot {
            place,
            id: held.next_id,
            ip,
            owner,
            state: AtomicU8::new(IDLE),
            since: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            epoch: self.epoch,
        });
        held.slots.insert(slot.id, slot.clone());
        *held.count(place) += 1;
        *held.per_ip.entry(ip).or_default() += 1;
        Ok(slot)
    }

    /// Whether `place` has room, made by evicting its longest-waiting connection if need be.
    fn room(&self, held: &mut Held, place: Place, capacity: usize) -> Option<Place> {
        if capacity == 0 {
            return None;
        }
        if *held.count(place) < capacity {
            return Some(place);
        }
        loop {
            let (id, _) = held
                .slots
                .values()
                .filter(|s| s.place == place)
                .filter_map(|s| s.evictable().map(|since| (s.id, since)))
                .min_by_key(|&(_, since)| since)?;
            let victim = held.remove(id).expect("found just now");
            if victim.evict() {
                tracing::debug!(?place, "HTTP connection closed to make room for a new one");
                return Some(place);
            }
        }
    }

    /// The connection of `slot` ends.
    pub fn release(&self, slot: &Slot) {
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(slot.id);
    }

    /// How many connections hold a place (evicted ones whose loops are closing them excluded).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.inner.lock().unwrap().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn idle_give_way_busy_do_not_and_the_reserve_takes_ops_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = Pool::new(2, 1, 0);
        let mut kept = Vec::new();
        let mut admit = || {
            let (client, server) = pair(&listener);
            let slot = pool.admit(server.peer_addr().unwrap().ip(), None);
            kept.push((client, server));
            slot
        };
        let a = admit().ok().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = admit().ok().unwrap();
        assert_eq!((a.place, b.place), (Place::General, Place::General));
        // Full: the longest idle (a) gives way.
        let c = admit().ok().unwrap();
        assert_eq!(c.place, Place::General);
        assert!(!a.head_started(), "a was evicted");
        assert!(b.head_started() && b.handling());
        assert!(c.handling());
        // Both general places busy: the reserve.
        let d = admit().ok().unwrap();
        assert_eq!(d.place, Place::Reserve);
        assert!(d.head_started());
        // A reserve connection still in its head gives way to a newer one.
        let e = admit().ok().unwrap();
        assert_eq!(e.place, Place::Reserve);
        assert!(!d.handling());
        assert!(e.handling());
        assert!(admit().is_err(), "everything busy: full");
        pool.release(&a); // already gone: no effect
        pool.release(&b);
        assert_eq!(pool.held(), 2);
        assert_eq!(admit().ok().unwrap().place, Place::General);
        assert!(c.idle());
    }

    #[test]
    fn one_address_holds_at_most_its_share() {
        let pool = Pool::new(10, 0, 2);
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let a = pool.admit(one, None).unwrap();
        let _b = pool.admit(one, None).unwrap();
        assert_eq!(pool.admit(one, None).err(), Some(Full::FromAddress));
        assert!(pool.admit("127.0.0.2".parse().unwrap(), None).is_ok());
        pool.release(&a);
        assert!(pool.admit(one, None).is_ok());
    }
}

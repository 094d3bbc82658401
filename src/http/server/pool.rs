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
//! Threads never wait on this pool's lock for long: it is taken once per accepted connection and
//! once when a connection ends; the per-request state changes are atomics.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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
/// Closed to make room; the connection's thread stops at its next step.
const EVICTED: u8 = 3;

/// One admitted connection, as the pool and the connection's thread share it.
pub(crate) struct Slot {
    pub place: Place,
    /// A handle on the socket, to close it from the accepting thread.
    stream: TcpStream,
    state: AtomicU8,
    /// When `state` last became [`IDLE`] or [`HEAD`], in ms since the pool started.
    since: AtomicU64,
    epoch: Instant,
}

impl Slot {
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
        // Wakes the connection's thread: its read sees the end of the stream.
        let _ = self.stream.shutdown(Shutdown::Both);
        true
    }
}

/// The connections held, within `general` + `reserve` places.
pub(crate) struct Pool {
    slots: Mutex<Vec<Arc<Slot>>>,
    general: usize,
    reserve: usize,
    epoch: Instant,
}

/// Why a connection was not admitted.
pub(crate) struct Full;

impl Pool {
    pub fn new(general: usize, reserve: usize) -> Pool {
        Pool {
            slots: Mutex::new(Vec::new()),
            general: general.max(1),
            reserve,
            epoch: Instant::now(),
        }
    }

    /// Admits `stream` (closing an idle connection to make room if need be), or says it is full.
    pub fn admit(&self, stream: &TcpStream) -> Result<Arc<Slot>, Full> {
        let handle = stream.try_clone().map_err(|_| Full)?;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let place = self
            .room(&mut slots, Place::General, self.general)
            .or_else(|| self.room(&mut slots, Place::Reserve, self.reserve))
            .ok_or(Full)?;
        let slot = Arc::new(Slot {
            place,
            stream: handle,
            state: AtomicU8::new(IDLE),
            since: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            epoch: self.epoch,
        });
        slots.push(slot.clone());
        Ok(slot)
    }

    /// Whether `place` has room, made by evicting its longest-waiting connection if need be.
    fn room(&self, slots: &mut Vec<Arc<Slot>>, place: Place, capacity: usize) -> Option<Place> {
        if capacity == 0 {
            return None;
        }
        if slots.iter().filter(|s| s.place == place).count() < capacity {
            return Some(place);
        }
        loop {
            let (i, _) = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.place == place)
                .filter_map(|(i, s)| s.evictable().map(|since| (i, since)))
                .min_by_key(|&(_, since)| since)?;
            let victim = slots.swap_remove(i);
            if victim.evict() {
                tracing::debug!(?place, "HTTP connection closed to make room for a new one");
                return Some(place);
            }
        }
    }

    /// The connection of `slot` ended (its thread is done with it).
    pub fn release(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = slots.iter().position(|s| Arc::ptr_eq(s, slot)) {
            slots.swap_remove(i);
        }
    }

    /// How many connections hold a place (evicted ones whose threads are finishing excluded).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.slots.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn idle_give_way_busy_do_not_and_the_reserve_takes_ops_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = Pool::new(2, 1);
        let mut kept = Vec::new();
        let mut admit = || {
            let (client, server) = pair(&listener);
            let slot = pool.admit(&server);
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
}

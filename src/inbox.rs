//! The device inbox: commands on their way to devices that fetch them over HTTP (issue #15),
//! as Drogue Cloud's HTTP endpoint gives them (`?ct=<seconds>` on an ingest, or a long poll).
//!
//! A device that asks waits here, keyed by `(application, device)`; a command the backend carries
//! for that device is handed to the first one waiting, else (with [`Keep::For`]) kept for a while
//! for the next one to ask. Each waiter gets at most one command: one HTTP answer carries one.
//!
//! - The embedded backend offers every command it appends and keeps those nobody waits for, for
//!   `backend.embedded.command_ttl`, then drops and counts them ([`Inbox::expired_total`]).
//! - With Kafka, commands are read from the command topic by every instance and offered with
//!   [`Keep::OnlyWaiting`]: a device waits on one instance, and the instance it waits on is the
//!   one that hands it the command; the others drop their copy.
//!
//! Owns: waiting devices and undelivered commands, in memory. Must not touch: sockets (the HTTP
//! side gives a [`Claim`] and answers when it is called), backends (they call
//! [`Inbox::offer`]), the clock (callers pass `now`, so tests control time).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cloudevents::Event;

/// Called once with the command a waiting device gets.
pub type Claim = Box<dyn FnOnce(Event) + Send>;

/// What becomes of a command offered while no device waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Kept this long for the device to ask, then dropped and counted.
    For(Duration),
    /// Dropped at once (another instance may have the device waiting).
    OnlyWaiting,
}

/// Commands kept per device at most; the oldest goes (counted as expired) when one more comes.
/// A device that never asks must not grow memory without bound.
pub const MAX_KEPT_PER_DEVICE: usize = 100;

/// A waiting device's place, to give up waiting with [`Inbox::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitId(u64);

/// Waiting devices and the commands kept for them.
pub struct Inbox {
    keep: Keep,
    state: Mutex<State>,
    expired: AtomicU64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    devices: HashMap<(String, String), Device>,
    /// Which device each waiter waits at, for `cancel`.
    waiting: HashMap<WaitId, (String, String)>,
    /// Commands kept, over all devices.
    kept: usize,
}

#[derive(Default)]
struct Device {
    waiters: VecDeque<(WaitId, Claim)>,
    /// Oldest first, with the time each was offered.
    kept: VecDeque<(Instant, Event)>,
}

impl Device {
    fn is_empty(&self) -> bool {
        self.waiters.is_empty() && self.kept.is_empty()
    }
}

/// What [`Inbox::wait`] did.
pub enum Waiting {
    /// A kept command was there: the claim ran at once, before `wait` returned.
    Claimed,
    /// The device waits; call [`Inbox::cancel`] when the wait ends without a command.
    Queued(WaitId),
}

impl Inbox {
    pub fn new(keep: Keep) -> Inbox {
        Inbox {
            keep,
            state: Mutex::new(State::default()),
            expired: AtomicU64::new(0),
        }
    }

    /// `device` of `app` asks for its next command: a kept one now, or the next one offered.
    pub fn wait(&self, app: &str, device: &str, now: Instant, claim: Claim) -> Waiting {
        let mut st = self.state.lock();
        self.drop_expired(&mut st, now);
        let key = (app.to_owned(), device.to_owned());
        let entry = st.devices.entry(key.clone()).or_default();
        if let Some((_, command)) = entry.kept.pop_front() {
            if entry.is_empty() {
                st.devices.remove(&key);
            }
            st.kept -= 1;
            drop(st);
            claim(command);
            return Waiting::Claimed;
        }
        let id = WaitId(st.next_id);
        st.next_id += 1;
        st.devices
            .get_mut(&key)
            .expect("inserted above")
            .waiters
            .push_back((id, claim));
        st.waiting.insert(id, key);
        Waiting::Queued(id)
    }

    /// The wait `id` ends (its deadline passed, the client went away). Returns `true` if it was
    /// still waiting, and so will never be claimed; `false` if a command was handed to it (its
    /// claim ran or is running: the caller answers with that).
    pub fn cancel(&self, id: WaitId) -> bool {
        let mut st = self.state.lock();
        let Some(key) = st.waiting.remove(&id) else {
            return false;
        };
        if let Some(device) = st.devices.get_mut(&key) {
            device.waiters.retain(|(w, _)| *w != id);
            if device.is_empty() {
                st.devices.remove(&key);
            }
        }
        true
    }

    /// The backend carries `command` for `device` of `app`: to the device waiting longest, else
    /// kept or dropped as [`Keep`] says. Returns whether a waiting device got it.
    pub fn offer(&self, app: &str, device: &str, command: Event, now: Instant) -> bool {
        let mut st = self.state.lock();
        self.drop_expired(&mut st, now);
        let key = (app.to_owned(), device.to_owned());
        let waiter = st.devices.get_mut(&key).and_then(|d| d.waiters.pop_front());
        if let Some((id, claim)) = waiter {
            st.waiting.remove(&id);
            if st.devices.get(&key).is_some_and(Device::is_empty) {
                st.devices.remove(&key);
            }
            drop(st);
            claim(command);
            return true;
        }
        if self.keep == Keep::OnlyWaiting {
            return false;
        }
        let entry = st.devices.entry(key).or_default();
        entry.kept.push_back((now, command));
        let dropped = if entry.kept.len() > MAX_KEPT_PER_DEVICE {
            entry.kept.pop_front();
            true
        } else {
            false
        };
        if dropped {
            self.expired.fetch_add(1, Ordering::Relaxed);
        } else {
            st.kept += 1;
        }
        false
    }

    /// Drops the kept commands older than the TTL (also done by every `wait` and `offer`).
    pub fn sweep(&self, now: Instant) {
        let mut st = self.state.lock();
        self.drop_expired(&mut st, now);
    }

    /// Commands dropped because no device asked for them in time (or too many were kept).
    pub fn expired_total(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Commands kept now, and devices waiting now.
    pub fn sizes(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.kept, st.waiting.len())
    }

    fn drop_expired(&self, st: &mut State, now: Instant) {
        let Keep::For(ttl) = self.keep else {
            return;
        };
        if st.kept == 0 {
            return;
        }
        let mut dropped = 0;
        st.devices.retain(|_, device| {
            while device
                .kept
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= ttl)
            {
                device.kept.pop_front();
                dropped += 1;
            }
            !device.is_empty()
        });
        st.kept -= dropped;
        self.expired.fetch_add(dropped as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;

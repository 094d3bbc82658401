//! The device inbox: commands on their way to devices that fetch them over HTTP (issue #15),
//! as Drogue Cloud's HTTP endpoint gives them (`?ct=<seconds>` on an ingest, or a long poll).
//!
//! A device that asks waits here, keyed by `(application, device)`, until a deadline; a command
//! the backend carries for that device is handed to the device waiting longest, else (with
//! [`Keep::For`]) kept for a while for the next one to ask. Each wait ends exactly once: its
//! [`Claim`] is called with the command, or with `None` at its deadline ([`Inbox::expire_waits`],
//! which [`Inbox::start_timer`]'s thread calls), or never if it is [`Inbox::cancel`]led first.
//!
//! - The embedded backend offers every command it stores and keeps those nobody waits for, for
//!   `backend.embedded.command_ttl`, then drops and counts them ([`Inbox::expired_total`]).
//! - With Kafka, every instance reads the command topic and offers each command with
//!   [`Keep::OnlyWaiting`]: the instance the device waits on hands it over, the others drop
//!   their copy.
//!
//! Owns: waiting devices and undelivered commands, in memory. Must not touch: sockets (the HTTP
//! side gives a claim that sends its reply), backends (they call [`Inbox::offer`]). Claims run
//! under the inbox's lock, so that a wait is either claimed or cancelled, never both: they must
//! be quick and must not call the inbox.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::cloudevents::Event;

/// Called once: with the command the waiting device gets, or `None` when its wait ran out.
pub type Claim = Box<dyn FnOnce(Option<Event>) + Send>;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitId(u64);

/// Waiting devices and the commands kept for them.
pub struct Inbox {
    keep: Keep,
    state: Mutex<State>,
    /// Signalled when a wait with an earlier deadline than any before arrives.
    timer: Condvar,
    expired: AtomicU64,
}

type Key = (String, String);

#[derive(Default)]
struct State {
    next_id: u64,
    devices: HashMap<Key, Device>,
    /// Every wait by deadline, for the timer.
    deadlines: BTreeMap<(Instant, WaitId), Key>,
    /// Where each wait is, for `cancel`.
    waiting: HashMap<WaitId, (Key, Instant)>,
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
#[derive(Debug, PartialEq, Eq)]
pub enum Waiting {
    /// A kept command was there: the claim ran at once, before `wait` returned.
    Claimed,
    /// The device waits; its claim runs later (a command, or `None` at the deadline).
    Queued(WaitId),
}

impl Inbox {
    pub fn new(keep: Keep) -> Inbox {
        Inbox {
            keep,
            state: Mutex::new(State::default()),
            timer: Condvar::new(),
            expired: AtomicU64::new(0),
        }
    }

    /// Starts the thread that ends waits at their deadlines; it stops once the inbox is dropped.
    pub fn start_timer(self: &Arc<Self>) -> std::io::Result<()> {
        let inbox = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("inbox-timer".into())
            .spawn(move || run_timer(&inbox))
            .map(drop)
    }

    /// `device` of `app` asks for its next command, until `deadline`: a kept one now, else the
    /// next one offered before the deadline, else `None` at the deadline.
    pub fn wait(
        &self,
        app: &str,
        device: &str,
        now: Instant,
        deadline: Instant,
        claim: Claim,
    ) -> Waiting {
        let mut st = self.state.lock();
        self.drop_expired(&mut st, now);
        let key = (app.to_owned(), device.to_owned());
        if let Some(entry) = st.devices.get_mut(&key) {
            if let Some((_, command)) = entry.kept.pop_front() {
                if entry.is_empty() {
                    st.devices.remove(&key);
                }
                st.kept -= 1;
                claim(Some(command));
                return Waiting::Claimed;
            }
        }
        let id = WaitId(st.next_id);
        st.next_id += 1;
        let earliest = st
            .deadlines
            .keys()
            .next()
            .map_or(true, |(d, _)| deadline < *d);
        st.devices
            .entry(key.clone())
            .or_default()
            .waiters
            .push_back((id, claim));
        st.deadlines.insert((deadline, id), key.clone());
        st.waiting.insert(id, (key, deadline));
        if earliest {
            self.timer.notify_one();
        }
        Waiting::Queued(id)
    }

    /// The wait `id` ends without its claim (the client went away). Returns `true` if it was
    /// still waiting; `false` if its claim already ran.
    pub fn cancel(&self, id: WaitId) -> bool {
        let mut st = self.state.lock();
        remove_wait(&mut st, id).is_some()
    }

    /// The backend carries `command` for `device` of `app`: to the device waiting longest, else
    /// kept or dropped as [`Keep`] says. Returns whether a waiting device got it.
    pub fn offer(&self, app: &str, device: &str, command: Event, now: Instant) -> bool {
        let mut st = self.state.lock();
        self.drop_expired(&mut st, now);
        let key = (app.to_owned(), device.to_owned());
        let first = st
            .devices
            .get(&key)
            .and_then(|d| d.waiters.front())
            .map(|(id, _)| *id);
        if let Some(claim) = first.and_then(|id| remove_wait(&mut st, id)) {
            claim(Some(command));
            return true;
        }
        if self.keep == Keep::OnlyWaiting {
            return false;
        }
        let entry = st.devices.entry(key).or_default();
        entry.kept.push_back((now, command));
        if entry.kept.len() > MAX_KEPT_PER_DEVICE {
            entry.kept.pop_front();
            self.expired.fetch_add(1, Ordering::Relaxed);
        } else {
            st.kept += 1;
        }
        false
    }

    /// Ends the waits whose deadline is at or before `now` (their claims get `None`); returns
    /// the next deadline, if any wait is left.
    pub fn expire_waits(&self, now: Instant) -> Option<Instant> {
        let mut st = self.state.lock();
        while let Some((&(deadline, id), _)) = st.deadlines.iter().next() {
            if deadline > now {
                return Some(deadline);
            }
            if let Some(claim) = remove_wait(&mut st, id) {
                claim(None);
            }
        }
        None
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

/// Takes wait `id` out of every index; its claim, if it was still waiting.
fn remove_wait(st: &mut State, id: WaitId) -> Option<Claim> {
    let (key, deadline) = st.waiting.remove(&id)?;
    st.deadlines.remove(&(deadline, id));
    let device = st.devices.get_mut(&key)?;
    let at = device.waiters.iter().position(|(w, _)| *w == id)?;
    let (_, claim) = device.waiters.remove(at)?;
    if device.is_empty() {
        st.devices.remove(&key);
    }
    Some(claim)
}

/// The timer thread: sleeps until the earliest deadline (or a new, earlier one), ends the waits
/// that are due, and stops when the inbox is gone.
fn run_timer(inbox: &Weak<Inbox>) {
    // At least this often it checks whether the inbox still exists.
    const CHECK: Duration = Duration::from_secs(1);
    loop {
        let Some(inbox) = inbox.upgrade() else {
            return;
        };
        let next = inbox.expire_waits(Instant::now());
        let until = next.map_or(Instant::now() + CHECK, |n| n.min(Instant::now() + CHECK));
        let mut st = inbox.state.lock();
        // A wait with an earlier deadline may have come since `expire_waits`: its `notify_one`
        // found nobody waiting, so look before sleeping.
        let earlier = st.deadlines.keys().next().is_some_and(|(d, _)| *d < until);
        if !earlier {
            inbox.timer.wait_until(&mut st, until);
        }
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;

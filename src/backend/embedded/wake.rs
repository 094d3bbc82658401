//! Doorbells: how an append wakes the worker threads that read the application.
//!
//! Every worker has a "rung" flag. An append rings the workers interested in its application:
//! it sets the flag and sends [`ToBackend::Wake`] only if the flag was not already set, so a burst
//! of appends costs one message per worker, not one per event. The worker clears its flag before
//! it scans the logs, so an append that lands after the scan read an end offset always rings again.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crossbeam_channel::Sender;

use crate::seam::ToBackend;

struct Bell {
    rung: AtomicBool,
    tx: Sender<ToBackend>,
}

/// One bell per worker thread.
pub(crate) struct Wakers {
    bells: Box<[Bell]>,
}

impl Wakers {
    pub(crate) fn new(senders: &[Sender<ToBackend>]) -> Wakers {
        let bells = senders
            .iter()
            .map(|tx| Bell {
                rung: AtomicBool::new(false),
                tx: tx.clone(),
            })
            .collect();
        Wakers { bells }
    }

    pub(crate) fn len(&self) -> usize {
        self.bells.len()
    }

    /// Wakes `worker` unless it was already rung and has not scanned since.
    pub(crate) fn ring(&self, worker: usize) {
        if let Some(bell) = self.bells.get(worker) {
            // SeqCst pairs with `clear` + the worker's load of the end offset: either the worker
            // sees the new end, or this swap sees the cleared flag and sends a Wake.
            if !bell.rung.swap(true, Ordering::SeqCst) {
                // The worker only drops its receiver when it stopped; nobody is left to wake.
                let _ = bell.tx.send(ToBackend::Wake);
            }
        }
    }

    /// Called by `worker` right before it scans the logs.
    pub(crate) fn clear(&self, worker: usize) {
        if let Some(bell) = self.bells.get(worker) {
            bell.rung.store(false, Ordering::SeqCst);
        }
    }
}

/// Which workers read an application: a count of live groups per worker.
pub(crate) struct Interest {
    groups: Box<[AtomicU32]>,
}

impl Interest {
    pub(crate) fn new(workers: usize) -> Interest {
        Interest {
            groups: (0..workers).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub(crate) fn add(&self, worker: usize) {
        if let Some(n) = self.groups.get(worker) {
            n.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn remove(&self, worker: usize) {
        if let Some(n) = self.groups.get(worker) {
            // Saturating: a miscount must not wrap into "interested forever".
            let _ = n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
        }
    }

    /// Rings every worker that has at least one group on this application.
    pub(crate) fn ring(&self, wakers: &Wakers) {
        for (worker, n) in self.groups.iter().enumerate() {
            if n.load(Ordering::SeqCst) > 0 {
                wakers.ring(worker);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_once_until_cleared() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let wakers = Wakers::new(&[tx]);
        let interest = Interest::new(1);
        interest.ring(&wakers);
        assert!(rx.try_recv().is_err(), "no group, no wake");
        interest.add(0);
        interest.ring(&wakers);
        interest.ring(&wakers);
        assert!(matches!(rx.try_recv(), Ok(ToBackend::Wake)));
        assert!(rx.try_recv().is_err(), "deduplicated");
        wakers.clear(0);
        interest.ring(&wakers);
        assert!(matches!(rx.try_recv(), Ok(ToBackend::Wake)));
        interest.remove(0);
        interest.remove(0);
        wakers.clear(0);
        interest.ring(&wakers);
        assert!(rx.try_recv().is_err());
    }
}

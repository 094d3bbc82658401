//! A worker thread's loop, the same for both backends: drain the seam channel without blocking
//! (joins, leaves, acks, resumes, wakes), one dispatch pass over all groups with a budget per
//! group (so one busy group cannot starve the others), one batch per shard, then — if nothing
//! was consumed — block until a message or a short timeout.
//!
//! Appends (the embedded log) and librdkafka (a consumer queue that became non-empty) ring the
//! worker with [`ToBackend::Wake`], so idle groups cost nothing and the timeout is only a safety
//! net.

use std::collections::HashMap;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use slab::Slab;

use super::{Outbox, Pass};
use crate::seam::{AckToken, ConnId, GroupKey, Join, ToBackend};

/// Records per group per pass.
pub(crate) const GROUP_BUDGET: usize = 256;
/// How long an idle worker sleeps when no message comes.
pub(crate) const IDLE: Duration = Duration::from_millis(100);

/// What a backend's worker does with the seam's messages.
pub(crate) trait Backend {
    /// This worker's id, as written into the ack tokens of its deliveries.
    fn id(&self) -> u16;
    fn join(&mut self, join: Join);
    fn leave(&mut self, conn: ConnId, group: &GroupKey, unsent: &[AckToken]);
    /// One acknowledgement of a delivery this worker made.
    fn ack(&mut self, token: &AckToken);
    /// After a batch of acknowledgements (to store what moved, say).
    fn acked(&mut self) {}
    /// Before the channel is drained (Kafka: take in the groups opened meanwhile).
    fn before_drain(&mut self) {}
    /// After the channel was drained, right before the pass (clear the doorbell, expire idle
    /// groups).
    fn before_pass(&mut self) {}
    /// One dispatch pass over every group; returns how many records were consumed.
    fn pass(&mut self) -> usize;
    /// How long to wait for a message when a pass consumed nothing.
    fn idle_wait(&self) -> Duration {
        IDLE
    }
    /// Commits what is acknowledged and lets go of every group: the worker stops.
    fn stop(&mut self);
}

enum Next {
    Continue,
    Stop,
}

/// Runs `worker` on the messages of `rx` until a [`ToBackend::Shutdown`] or until every sender
/// is gone.
pub(crate) fn run(rx: &Receiver<ToBackend>, worker: &mut impl Backend) {
    loop {
        worker.before_drain();
        loop {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return worker.stop(),
            };
            if let Next::Stop = handle(worker, msg) {
                return;
            }
        }
        worker.before_pass();
        if worker.pass() > 0 {
            continue;
        }
        match rx.recv_timeout(worker.idle_wait()) {
            Ok(msg) => {
                if let Next::Stop = handle(worker, msg) {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return worker.stop(),
        }
    }
}

fn handle(worker: &mut impl Backend, msg: ToBackend) -> Next {
    match msg {
        ToBackend::Join(join) => worker.join(join),
        ToBackend::Leave {
            conn,
            group,
            unsent,
        } => worker.leave(conn, &group, &unsent),
        ToBackend::Acks(tokens) => {
            let id = worker.id();
            for token in tokens.iter().filter(|t| t.worker == id) {
                worker.ack(token);
            }
            worker.acked();
        }
        // Both only ask for another pass, which follows every drain.
        ToBackend::Resume | ToBackend::Wake => {}
        ToBackend::Shutdown(reply) => {
            worker.stop();
            let _ = reply.send(());
            return Next::Stop;
        }
    }
    Next::Continue
}

/// A worker's groups: slot ids go into ack tokens (so an ack finds its group without a hash
/// lookup), and the index finds a group by key.
pub(crate) struct Slots<G> {
    groups: Slab<G>,
    index: HashMap<GroupKey, usize>,
}

impl<G> Default for Slots<G> {
    fn default() -> Slots<G> {
        Slots {
            groups: Slab::new(),
            index: HashMap::new(),
        }
    }
}

impl<G> Slots<G> {
    pub(crate) fn insert(&mut self, key: GroupKey, group: G) -> usize {
        let slot = self.groups.insert(group);
        self.index.insert(key, slot);
        slot
    }

    pub(crate) fn slot_of(&self, key: &GroupKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    pub(crate) fn contains(&self, key: &GroupKey) -> bool {
        self.index.contains_key(key)
    }

    pub(crate) fn get(&self, slot: usize) -> Option<&G> {
        self.groups.get(slot)
    }

    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut G> {
        self.groups.get_mut(slot)
    }

    pub(crate) fn remove(&mut self, slot: usize, key: &GroupKey) -> Option<G> {
        let group = self.groups.try_remove(slot)?;
        self.index.remove(key);
        Some(group)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &G)> {
        self.groups.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut G)> {
        self.groups.iter_mut()
    }

    /// One dispatch pass of `worker`: `dispatch` runs for every group with the group's
    /// [`Pass`] into `outbox`, and returns how many records it consumed; returns the sum.
    pub(crate) fn pass(
        &mut self,
        worker: u16,
        outbox: &mut Outbox,
        mut dispatch: impl FnMut(&mut G, &mut Pass<'_>) -> usize,
    ) -> usize {
        let mut consumed = 0;
        for (slot, group) in self.groups.iter_mut() {
            let mut pass = Pass {
                worker,
                slot: slot as u32,
                outbox,
            };
            consumed += dispatch(group, &mut pass);
        }
        consumed
    }

    /// Takes every group out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = G> + '_ {
        self.index.clear();
        self.groups.drain()
    }
}

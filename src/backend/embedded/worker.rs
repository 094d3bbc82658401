//! A worker thread of the embedded log: owns the consumer groups that hash to it and
//! dispatches their records, in the loop every backend shares ([`consumer::worker`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use super::group::{Group, Reads};
use super::EmbeddedLog;
use crate::backend::consumer::worker::{self, Slots, GROUP_BUDGET};
use crate::backend::consumer::{self, joined, Epochs, Outbox};
use crate::seam::{AckToken, BackendError, ConnId, GroupKey, Join, Record, ToBackend};

/// The worker thread: its channel and what it holds.
pub(crate) struct Worker {
    rx: Receiver<ToBackend>,
    state: State,
}

/// What a worker holds, driven by the shared loop ([`worker::run`]).
struct State {
    id: u16,
    log: Arc<EmbeddedLog>,
    groups: Slots<Group>,
    epochs: Epochs,
    outbox: Outbox,
    scratch: Vec<Arc<Record>>,
    /// When worker 0 next forgets idle groups (`backend.group_retention`).
    next_expiry: Instant,
}

impl Worker {
    pub(crate) fn new(id: u16, rx: Receiver<ToBackend>, log: Arc<EmbeddedLog>) -> Worker {
        Worker {
            rx,
            state: State {
                id,
                log,
                groups: Slots::default(),
                epochs: Epochs::default(),
                outbox: Outbox::default(),
                scratch: Vec::with_capacity(128),
                next_expiry: Instant::now(),
            },
        }
    }

    pub(crate) fn run(mut self) {
        worker::run(&self.rx, &mut self.state);
    }
}

impl worker::Backend for State {
    fn id(&self) -> u16 {
        self.id
    }

    fn join(&mut self, join: Join) {
        let Some(app_log) = self.log.app(&join.app) else {
            let unknown = BackendError::UnknownStream(join.app.to_string());
            join.link.send(joined(&join, Err(unknown)));
            return;
        };
        let group = &join.group;
        let slot = match self.groups.slot_of(group) {
            Some(slot) => slot,
            None => {
                // Interest first, then the end offsets: an append racing with this join either
                // lands below the start position or rings this worker.
                app_log.interest.add(usize::from(self.id));
                // spec 2.4: a new group's start position is fixed now, before the join is
                // answered (and so before SUBACK), not when partitions are read later.
                let at = match group.name() {
                    Some(name) => match self.log.store.load(name, &join.app) {
                        Some(stored) => stored,
                        None => {
                            let at = app_log.start_positions(join.start, SystemTime::now());
                            // Stored at once, so a reconnect before any ack resumes here too.
                            self.log.store.save(name, &app_log.name, at.clone());
                            at
                        }
                    },
                    None => app_log.start_positions(join.start, SystemTime::now()),
                };
                let state = Group::new(group.clone(), app_log.clone(), at, &mut self.epochs);
                self.groups.insert(group.clone(), state)
            }
        };
        let Some(state) = self.groups.get(slot) else {
            return;
        };
        if state.app.name != app_log.name {
            // `<app>.<group>` names of two applications can collide when names contain dots.
            let msg = format!(
                "consumer group `{}` already reads application `{}`",
                group, state.app.name
            );
            join.link
                .send(joined(&join, Err(BackendError::Unavailable(msg))));
            return;
        }
        if let Some(name) = group.name() {
            // Issue #17: only the group's owner (or an admin) joins it.
            if let Err(e) = self.log.store.claim(name, group, &join.claim) {
                join.link.send(joined(&join, Err(e)));
                if state.core.is_empty() {
                    let key = group.clone();
                    self.drop_group(slot, &key);
                }
                return;
            }
        }
        let Some(state) = self.groups.get_mut(slot) else {
            return;
        };
        // Answered on the same channel as the deliveries, before any of them (FIFO).
        let (link, answer) = (join.link.clone(), joined(&join, Ok(())));
        state.join(consumer::Member::from(join), &mut self.epochs);
        link.send(answer);
    }

    fn leave(&mut self, conn: ConnId, key: &GroupKey, unsent: &[AckToken]) {
        let Some(slot) = self.groups.slot_of(key) else {
            return;
        };
        let Some(group) = self.groups.get_mut(slot) else {
            return;
        };
        group.core.unsent(unsent);
        if !group.leave(conn, &mut self.epochs) {
            return;
        }
        persist(&self.log, group);
        if group.core.is_empty() {
            if let Some(name) = key.name() {
                self.log.store.idle(name, Instant::now());
            }
            self.drop_group(slot, key);
        }
    }

    fn ack(&mut self, token: &AckToken) {
        if let Some(group) = self.groups.get_mut(token.group as usize) {
            group.ack(token);
        }
    }

    fn acked(&mut self) {
        self.persist_dirty();
    }

    fn before_pass(&mut self) {
        self.expire();
        // Cleared before scanning: an append after this point rings again (see `wake`).
        self.log.wakers.clear(usize::from(self.id));
    }

    /// One pass over all groups; returns the number of records consumed.
    fn pass(&mut self) -> usize {
        let (log, scratch) = (&self.log, &mut self.scratch);
        let consumed = self.groups.pass(self.id, &mut self.outbox, |group, to| {
            let mut reads = Reads {
                budget: GROUP_BUDGET,
                log,
                scratch,
            };
            group.dispatch(&mut reads, to)
        });
        self.outbox.flush();
        self.persist_dirty();
        consumed
    }

    fn stop(&mut self) {
        for (_, group) in self.groups.iter_mut() {
            persist(&self.log, group);
        }
    }
}

impl State {
    /// Drops a group without members from this worker (its offsets stay in the store).
    fn drop_group(&mut self, slot: usize, key: &GroupKey) {
        if let Some(group) = self.groups.remove(slot, key) {
            group.app.interest.remove(usize::from(self.id));
        }
    }

    /// Worker 0 forgets the groups idle for longer than `backend.group_retention`, checking
    /// ten times per retention period (at most once a minute, at least every 100 ms).
    fn expire(&mut self) {
        let now = Instant::now();
        if self.id != 0 || now < self.next_expiry {
            return;
        }
        let retention = self.log.group_retention;
        self.next_expiry =
            now + (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let forgotten = self.log.store.expire(now, retention);
        if forgotten > 0 {
            tracing::info!(
                forgotten,
                ?retention,
                "forgot consumer groups without members for longer than backend.group_retention"
            );
        }
    }

    fn persist_dirty(&mut self) {
        for (_, group) in self.groups.iter_mut() {
            if group.dirty {
                persist(&self.log, group);
            }
        }
    }
}

/// Stores a durable group's offsets; ephemeral readers commit nothing (spec 2.1).
fn persist(log: &EmbeddedLog, group: &mut Group) {
    if let Some(name) = group.core.key.name() {
        log.store.save(name, &group.app.name, group.offsets());
    }
    group.dirty = false;
}

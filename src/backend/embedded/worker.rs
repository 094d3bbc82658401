//! A worker thread: owns the consumer groups that hash to it and dispatches their records.
//!
//! The loop: drain the channel without blocking (joins, leaves, acks, resumes, wakes), then one
//! dispatch pass over all groups with a per-group budget (so one busy group cannot starve the
//! others), one batch per shard, then — if nothing was consumed — block until a message or a
//! short timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use slab::Slab;

use super::group::{Group, Member, Pass};
use super::outbox::Outbox;
use super::EmbeddedLog;
use crate::seam::{AckToken, BackendError, ConnId, GroupKey, Join, Record, ToBackend, ToShard};

/// Records per group per pass.
const GROUP_BUDGET: usize = 256;
/// How long an idle worker sleeps when no message comes (appends ring the worker, so this is
/// only a safety net).
const IDLE: Duration = Duration::from_millis(100);

pub(crate) struct Worker {
    id: u16,
    rx: Receiver<ToBackend>,
    log: Arc<EmbeddedLog>,
    /// Slot ids go into ack tokens; epochs (unique per worker) tell reused slots apart.
    groups: Slab<Group>,
    index: HashMap<GroupKey, usize>,
    epochs: u32,
    outbox: Outbox,
    scratch: Vec<Arc<Record>>,
    /// When worker 0 next forgets idle groups (`backend.group_retention`).
    next_expiry: Instant,
}

enum Next {
    Continue,
    Stop,
}

impl Worker {
    pub(crate) fn new(id: u16, rx: Receiver<ToBackend>, log: Arc<EmbeddedLog>) -> Worker {
        Worker {
            id,
            rx,
            log,
            groups: Slab::new(),
            index: HashMap::new(),
            epochs: 0,
            outbox: Outbox::default(),
            scratch: Vec::with_capacity(128),
            next_expiry: Instant::now(),
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            loop {
                let msg = match self.rx.try_recv() {
                    Ok(msg) => msg,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return self.persist_all(),
                };
                if let Next::Stop = self.handle(msg) {
                    return;
                }
            }
            self.expire();
            // Cleared before scanning: an append after this point rings again (see `wake`).
            self.log.wakers.clear(usize::from(self.id));
            if self.dispatch_pass() > 0 {
                continue;
            }
            match self.rx.recv_timeout(IDLE) {
                Ok(msg) => {
                    if let Next::Stop = self.handle(msg) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.persist_all(),
            }
        }
    }

    fn handle(&mut self, msg: ToBackend) -> Next {
        match msg {
            ToBackend::Join(join) => self.join(join),
            ToBackend::Leave {
                conn,
                group,
                unsent,
            } => self.leave(conn, &group, &unsent),
            ToBackend::Acks(tokens) => self.acks(&tokens),
            // Both only ask for another pass, which follows every drain.
            ToBackend::Resume | ToBackend::Wake => {}
            ToBackend::Shutdown(reply) => {
                self.persist_all();
                let _ = reply.send(());
                return Next::Stop;
            }
        }
        Next::Continue
    }

    fn join(&mut self, join: Join) {
        let Join {
            conn,
            member,
            request,
            app,
            group,
            filters,
            flow,
            link,
            claim,
            start,
        } = join;
        let answer = |result| ToShard::Joined {
            conn,
            member,
            request,
            result,
        };
        let Some(app_log) = self.log.app(&app).cloned() else {
            link.send(answer(Err(BackendError::UnknownStream(app.to_string()))));
            return;
        };
        let slot = match self.index.get(&group) {
            Some(&slot) => slot,
            None => {
                // Interest first, then the end offsets: an append racing with this join either
                // lands below the start position or rings this worker.
                app_log.interest.add(usize::from(self.id));
                // spec 2.4: a new group's start position is fixed now, before the join is
                // answered (and so before SUBACK), not when partitions are read later.
                let at = match group.name() {
                    Some(name) => match self.log.store.load(name, &app) {
                        Some(stored) => stored,
                        None => {
                            let at = app_log.start_positions(start, SystemTime::now());
                            // Stored at once, so a reconnect before any ack resumes here too.
                            self.log.store.save(name, &app_log.name, at.clone());
                            at
                        }
                    },
                    None => app_log.start_positions(start, SystemTime::now()),
                };
                let state = Group::new(group.clone(), app_log.clone(), at, &mut self.epochs);
                let slot = self.groups.insert(state);
                self.index.insert(group.clone(), slot);
                slot
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
            link.send(answer(Err(BackendError::Unavailable(msg))));
            return;
        }
        if let Some(name) = group.name() {
            // Issue #17: only the group's owner (or an admin) joins it.
            if let Err(e) = self.log.store.claim(name, &group, &claim) {
                link.send(answer(Err(e)));
                if state.is_empty() {
                    self.drop_group(slot, &group);
                }
                return;
            }
        }
        let Some(state) = self.groups.get_mut(slot) else {
            return;
        };
        // Answered on the same channel as the deliveries, before any of them (FIFO).
        let reply = link.clone();
        state.join(
            Member {
                conn,
                id: member,
                filters: filters.into(),
                flow,
                link,
            },
            &mut self.epochs,
        );
        reply.send(answer(Ok(())));
    }

    fn leave(&mut self, conn: ConnId, key: &GroupKey, unsent: &[AckToken]) {
        let Some(&slot) = self.index.get(key) else {
            return;
        };
        let Some(group) = self.groups.get_mut(slot) else {
            return;
        };
        group.unsent(unsent);
        if !group.leave(conn, &mut self.epochs) {
            return;
        }
        persist(&self.log, group);
        if group.is_empty() {
            if let Some(name) = key.name() {
                self.log.store.idle(name, Instant::now());
            }
            self.drop_group(slot, key);
        }
    }

    /// Drops a group without members from this worker (its offsets stay in the store).
    fn drop_group(&mut self, slot: usize, key: &GroupKey) {
        if let Some(group) = self.groups.try_remove(slot) {
            group.app.interest.remove(usize::from(self.id));
        }
        self.index.remove(key);
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

    fn acks(&mut self, tokens: &[AckToken]) {
        for token in tokens {
            if token.worker != self.id {
                continue;
            }
            if let Some(group) = self.groups.get_mut(token.group as usize) {
                group.ack(token);
            }
        }
        self.persist_dirty();
    }

    /// One pass over all groups; returns the number of records consumed.
    fn dispatch_pass(&mut self) -> usize {
        let mut consumed = 0;
        for (slot, group) in self.groups.iter_mut() {
            let mut pass = Pass {
                worker: self.id,
                slot: slot as u32,
                budget: GROUP_BUDGET,
                log: &self.log,
                scratch: &mut self.scratch,
                outbox: &mut self.outbox,
            };
            consumed += group.dispatch(&mut pass);
        }
        self.outbox.flush();
        self.persist_dirty();
        consumed
    }

    fn persist_dirty(&mut self) {
        for (_, group) in self.groups.iter_mut() {
            if group.dirty {
                persist(&self.log, group);
            }
        }
    }

    fn persist_all(&mut self) {
        for (_, group) in self.groups.iter_mut() {
            persist(&self.log, group);
        }
    }
}

/// Stores a durable group's offsets; ephemeral readers commit nothing (spec 2.1).
fn persist(log: &EmbeddedLog, group: &mut Group) {
    if let Some(name) = group.key.name() {
        log.store.save(name, &group.app.name, group.offsets());
    }
    group.dirty = false;
}

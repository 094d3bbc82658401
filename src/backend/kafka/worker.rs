//! A worker thread: owns the consumer groups that hash to it (one librdkafka consumer per
//! group), like the embedded workers.
//!
//! The loop: take in the groups opened meanwhile, drain the seam channel (joins, leaves, acks,
//! resumes), one pass polling every group's consumer without blocking (a budget per group, so a
//! busy group cannot starve the others; a paused group costs a poll), one batch per shard, the
//! periodic asynchronous commit, then — if nothing was consumed — block on the channel.
//! librdkafka rings the worker (a `Wake` on the channel) when a consumer queue becomes
//! non-empty, so idle groups cost nothing.
//!
//! Opening a group (its consumer, the topic's metadata, the start position) is a few blocking
//! round trips to Kafka, retried for a while when Kafka is not ready: it runs on a short-lived
//! opener thread, and the joins of that group wait for it while the others keep flowing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::group::{Group, GroupState};
use super::open::{new_consumer, open, ConsumerSetup, Opened, OpenedGroup};
use super::payload::LiveMessages;
use super::reaper::Retired;
use super::tail::{Tail, TAIL_GROUP};
use crate::backend::consumer::worker::{self as core, Slots, GROUP_BUDGET, IDLE};
use crate::backend::consumer::{self, joined, Epochs, Member, Outbox};
use crate::seam::{AckToken, BackendError, Claim, ConnId, GroupKey, Join, StartAt, ToBackend};

/// Offsets of acknowledged records are committed this often (asynchronously).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Worker {
    pub id: u16,
    pub rx: Receiver<ToBackend>,
    pub setup: ConsumerSetup,
    pub reaper: Sender<Retired>,
    pub groups: Slots<Group>,
    pub epochs: Epochs,
    pub outbox: Outbox,
    /// When the acknowledged offsets are committed next.
    pub next_commit: Instant,
    /// Groups being opened on an opener thread, with the joins waiting for them.
    pub opening: HashMap<GroupKey, Vec<Join>>,
    /// Opens waiting for an opener (at most [`MAX_OPENERS`] run at once), with the claim of
    /// the join that asked (a group without an owner record becomes its).
    pub open_queue: VecDeque<(GroupKey, Arc<str>, Claim, StartAt)>,
    pub opened_tx: Sender<Opened>,
    pub opened_rx: Receiver<Opened>,
    /// What retired groups handed out, per partition (see `GroupState::handed_out`): a group
    /// opened again (its last member reconnects) marks redeliveries of those offsets DUP.
    /// A hint, bounded by [`HANDED_OUT_GROUPS`]: a forgotten group's redeliveries go out with
    /// DUP=0, as after a restart. Forgotten after `backend.group_retention` too, like the group.
    pub handed_out: HashMap<GroupKey, (Instant, HashMap<u32, u64>)>,
    /// `backend.group_retention`: Kafka expires the group's offsets (and so its owner record)
    /// itself (`offsets.retention.minutes`); the worker only forgets what it holds.
    pub group_retention: Duration,
    /// Per application, the tail reader its ephemeral readers share (see [`super::tail`]).
    pub tails: HashMap<Arc<str>, Tail>,
    /// Per application whose tail is being opened: the key it is opened under in `opening`
    /// (the first joiner's).
    pub tail_opening: HashMap<Arc<str>, GroupKey>,
}

/// Retired groups whose handed-out offsets a worker remembers.
const HANDED_OUT_GROUPS: usize = 10_000;

/// How many groups one worker opens at once (each open is a few blocking round trips to
/// Kafka, up to [`super::open::OPEN_RETRY_FOR`] when it is down).
const MAX_OPENERS: usize = 8;

impl Worker {
    pub(crate) fn run(mut self) {
        let rx = self.rx.clone();
        core::run(&rx, &mut self);
    }
}

impl core::Backend for Worker {
    fn id(&self) -> u16 {
        self.id
    }

    fn join(&mut self, join: Join) {
        Worker::join(self, join);
    }

    fn leave(&mut self, conn: ConnId, group: &GroupKey, unsent: &[AckToken]) {
        Worker::leave(self, conn, group, unsent);
    }

    fn ack(&mut self, token: &AckToken) {
        if let Some(g) = self.groups.get_mut(token.group as usize) {
            g.state.ack(token);
        }
    }

    fn before_drain(&mut self) {
        while let Ok(opened) = self.opened_rx.try_recv() {
            self.opened(opened);
        }
    }

    fn before_pass(&mut self) {
        self.setup.bell.clear();
    }

    fn pass(&mut self) -> usize {
        let epochs = &mut self.epochs;
        let mut consumed = self.groups.pass(self.id, &mut self.outbox, |g, to| {
            g.poll(GROUP_BUDGET, to, epochs)
        });
        let mut slow = Vec::new();
        for (app, t) in self.tails.iter_mut() {
            let mut pass = consumer::Pass {
                worker: self.id,
                slot: TAIL_GROUP,
                outbox: &mut self.outbox,
            };
            consumed += t.poll(GROUP_BUDGET, &mut pass);
            slow.extend(t.too_slow().into_iter().map(|conn| (app.clone(), conn)));
        }
        self.outbox.flush();
        for (app, conn) in slow {
            self.detach(&app, conn);
        }
        if Instant::now() >= self.next_commit {
            for (_, g) in self.groups.iter_mut() {
                g.commit(false);
            }
            self.rejoin_tails();
            let retention = self.group_retention;
            self.handed_out
                .retain(|_, (since, _)| since.elapsed() < retention);
            self.next_commit = Instant::now() + COMMIT_INTERVAL;
        }
        consumed
    }

    fn idle_wait(&self) -> Duration {
        self.next_commit
            .saturating_duration_since(Instant::now())
            .min(IDLE)
    }

    fn stop(&mut self) {
        Worker::stop(self);
    }
}

impl Worker {
    /// Gives an ephemeral reader that fell behind its application's tail a consumer of its
    /// own, at the first offsets it was not handed (see [`super::tail`]). Creating and
    /// assigning a consumer makes no request to Kafka, so it is done here. If it fails, the
    /// reader stays on the tail, which waits for it.
    fn detach(&mut self, app: &Arc<str>, conn: ConnId) {
        let key = GroupKey::Ephemeral {
            app: app.clone(),
            conn,
        };
        let Some(tail) = self.tails.get_mut(app) else {
            return;
        };
        let consumer = match new_consumer(&self.setup, &key, &tail.topic) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot give a slow ephemeral reader a consumer of its own; the others wait for it");
                return;
            }
        };
        let Some(start) = tail.start_of(conn) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for &(p, at) in &start {
            let _ = tpl.add_partition_offset(&tail.topic, p, Offset::Offset(at));
        }
        if let Err(e) = consumer.assign(&tpl) {
            // The reader stays where it is, with what is held for it; the tail waits for it.
            tracing::warn!(%key, error = %e, "cannot assign a slow ephemeral reader's consumer; the others wait for it");
            return;
        }
        let Some(member) = tail.detach(conn) else {
            return;
        };
        tracing::debug!(%key, start = ?start, "ephemeral reader fell behind; it reads on its own now");
        let state = GroupState::new(
            key.clone(),
            app.clone(),
            tail.topic.clone(),
            LiveMessages::default(),
            self.setup.stats.clone(),
        );
        let mut group = Group { consumer, state };
        group.state.assign_at(&start, &mut self.epochs);
        group.join(member, &mut self.epochs);
        self.groups.insert(key, group);
        if self.tails.get(app).is_some_and(Tail::is_empty) {
            self.retire_tail(app);
        }
    }

    /// Ephemeral readers with a consumer of their own that caught up (nothing held back for
    /// them, read as far as their application's tail or further) go back to the tail; where
    /// the tail is gone, the first such reader's consumer becomes it. A burst that made many
    /// readers fall behind for a moment does not leave a consumer per reader behind it.
    fn rejoin_tails(&mut self) {
        let caught_up: Vec<(usize, BTreeMap<i32, i64>)> = self
            .groups
            .iter()
            .filter_map(|(slot, g)| g.state.idle_positions().map(|at| (slot, at)))
            .collect();
        for (slot, at) in caught_up {
            let Some(g) = self.groups.get(slot) else {
                continue;
            };
            let (app, key) = (g.state.app.clone(), g.state.key().clone());
            if self.tails.get(&app).is_some_and(|t| !t.can_take_over(&at)) {
                continue;
            }
            let Some(mut g) = self.groups.remove(slot, &key) else {
                continue;
            };
            let members = g.state.core.take_members();
            let tail = match self.tails.get_mut(&app) {
                Some(tail) => {
                    let live = g.state.live.clone();
                    let _ = self.reaper.send(Retired {
                        consumer: g.consumer,
                        live,
                        last_commit: None,
                    });
                    tail
                }
                None => {
                    let positions: Vec<(i32, i64)> = at.iter().map(|(&p, &a)| (p, a)).collect();
                    let tail = Tail::new(
                        g.consumer,
                        app.clone(),
                        g.state.topic.clone(),
                        g.state.live.clone(),
                        self.setup.stats.clone(),
                        &positions,
                    );
                    self.tails.entry(app.clone()).or_insert(tail)
                }
            };
            for m in members {
                tracing::debug!(app = %app, conn = ?m.conn, "ephemeral reader caught up; back on the tail");
                tail.take_back(m, at.clone());
            }
        }
    }

    fn retire_tail(&mut self, app: &Arc<str>) {
        if let Some(t) = self.tails.remove(app) {
            let _ = self.reaper.send(Retired {
                consumer: t.consumer,
                live: t.live,
                last_commit: None,
            });
        }
    }

    fn join(&mut self, join: Join) {
        if let Some(waiting) = self.opening.get_mut(&join.group) {
            waiting.push(join);
            return;
        }
        if let GroupKey::Ephemeral { app, .. } = &join.group {
            // Without a consumer of its own (it has one after falling behind, or when it asked
            // for a `start` other than the end), an ephemeral reader reads through its
            // application's tail, which starts at the end.
            // A reader already on the tail (or waiting for it) stays there: `start` is for
            // where it begins, not for a later SUBSCRIBE adding filters.
            let on_tail = self.tails.get(app).is_some_and(|t| t.has(join.conn))
                || self
                    .tail_opening
                    .get(app)
                    .and_then(|key| self.opening.get(key))
                    .is_some_and(|waiting| waiting.iter().any(|j| j.conn == join.conn));
            if !self.groups.contains(&join.group) && (join.start == StartAt::Latest || on_tail) {
                let app = app.clone();
                self.join_tail(&app, join);
                return;
            }
        }
        let Some(slot) = self.groups.slot_of(&join.group) else {
            // A new group: open its consumer off this thread, so that the groups already
            // here keep flowing while Kafka answers (or does not).
            let (key, app, claim) = (join.group.clone(), join.app.clone(), join.claim.clone());
            let start = join.start;
            self.opening.insert(key.clone(), vec![join]);
            self.open_queue.push_back((key, app, claim, start));
            self.start_opens();
            return;
        };
        self.add_member(slot, join);
    }

    /// An ephemeral reader joins its application's tail, which is opened for the first one.
    fn join_tail(&mut self, app: &Arc<str>, join: Join) {
        if let Some(tail) = self.tails.get_mut(app) {
            let (link, answer) = (join.link.clone(), joined(&join, Ok(())));
            tail.join(Member::from(join));
            // Same channel as the deliveries, before any of them.
            link.send(answer);
            return;
        }
        if let Some(key) = self.tail_opening.get(app) {
            if let Some(waiting) = self.opening.get_mut(key) {
                waiting.push(join);
                return;
            }
        }
        let (key, claim) = (join.group.clone(), join.claim.clone());
        self.tail_opening.insert(app.clone(), key.clone());
        self.opening.insert(key.clone(), vec![join]);
        self.open_queue
            .push_back((key, app.clone(), claim, StartAt::Latest));
        self.start_opens();
    }

    fn add_member(&mut self, slot: usize, join: Join) {
        let Some(g) = self.groups.get_mut(slot) else {
            return;
        };
        if *g.state.app != *join.app {
            let msg = format!(
                "consumer group `{}` already reads application `{}`",
                join.group, g.state.app
            );
            join.link
                .send(joined(&join, Err(BackendError::Unavailable(msg))));
            return;
        }
        if let Some(owner) = g.consumer.context().owner.get() {
            // Issue #17: only the group's owner (or an admin) joins it.
            if let Err(e) = join.claim.check(&join.group, owner) {
                join.link.send(joined(&join, Err(e)));
                return;
            }
        }
        let (link, answer) = (join.link.clone(), joined(&join, Ok(())));
        g.join(Member::from(join), &mut self.epochs);
        // Same channel as the deliveries, before any of them.
        link.send(answer);
    }

    /// Starts queued opens while fewer than [`MAX_OPENERS`] run.
    fn start_opens(&mut self) {
        let running = self.opening.len() - self.open_queue.len();
        for _ in running..MAX_OPENERS {
            let Some((key, app, claim, start)) = self.open_queue.pop_front() else {
                return;
            };
            let setup = self.setup.clone();
            let (tx, wake) = (self.opened_tx.clone(), self.setup.bell.tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("kafka-open-{}", self.id))
                .spawn(move || {
                    let result = open(&setup, &key, &app, &claim, start);
                    // A worker that stopped meanwhile drops the channel: the consumer is
                    // destroyed here (none of its records exists yet).
                    if tx.send(Opened { key, claim, result }).is_ok() {
                        let _ = wake.send(ToBackend::Wake);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a thread to open a consumer group: {e}");
            }
        }
    }

    /// A group's consumer is open (or could not be): answer the joins that waited for it.
    fn opened(&mut self, opened: Opened) {
        let Opened { key, claim, result } = opened;
        let waiting = self.opening.remove(&key).unwrap_or_default();
        self.start_opens();
        let tail_of = match &key {
            GroupKey::Ephemeral { app, .. } if self.tail_opening.get(app) == Some(&key) => {
                self.tail_opening.remove(app);
                Some(app.clone())
            }
            _ => None,
        };
        match result {
            Err(e @ BackendError::NotOwner(_)) => {
                // Refused for the claim it was opened with; the joins of other identities
                // (the owner's among them, perhaps) open it again with theirs.
                for join in waiting {
                    if join.claim == claim {
                        join.link.send(joined(&join, Err(e.clone())));
                    } else {
                        self.join(join);
                    }
                }
            }
            Err(e) => {
                for join in waiting {
                    join.link.send(joined(&join, Err(e.clone())));
                }
            }
            Ok(OpenedGroup {
                mut group,
                assigned_at,
            }) => {
                if let (Some(app), Some(at)) = (tail_of, &assigned_at) {
                    let Group { consumer, state } = group;
                    if self.tails.contains_key(&app) {
                        // A reader that caught up became the tail meanwhile: the joins go to
                        // it, this consumer (nothing read through it) is retired.
                        let _ = self.reaper.send(Retired {
                            consumer,
                            live: state.live.clone(),
                            last_commit: None,
                        });
                    } else {
                        let tail = Tail::new(
                            consumer,
                            app.clone(),
                            state.topic.clone(),
                            state.live.clone(),
                            self.setup.stats.clone(),
                            at,
                        );
                        self.tails.insert(app.clone(), tail);
                    }
                    for join in waiting {
                        self.join_tail(&app, join);
                    }
                    if self.tails.get(&app).is_some_and(Tail::is_empty) {
                        self.retire_tail(&app); // everyone left while it opened
                    }
                    return;
                }
                if key.name().is_some() {
                    // Counted until retired (`mqtt_integration_groups`).
                    self.setup.stats.groups.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(at) = assigned_at {
                    group.state.assign_at(&at, &mut self.epochs);
                }
                if let Some((_, handed_out)) = self.handed_out.remove(&key) {
                    group.state.remember(handed_out);
                }
                if waiting.is_empty() {
                    // Everyone left while it opened.
                    self.retire(group, None);
                    return;
                }
                let slot = self.groups.insert(key.clone(), group);
                for join in waiting {
                    self.add_member(slot, join);
                }
                if self
                    .groups
                    .get(slot)
                    .is_some_and(|g| g.state.core.is_empty())
                {
                    // Every join was refused (not the owner).
                    if let Some(g) = self.groups.remove(slot, &key) {
                        self.retire(g, None);
                    }
                }
            }
        }
    }

    fn leave(&mut self, conn: ConnId, key: &GroupKey, unsent: &[AckToken]) {
        // An ephemeral reader with a consumer of its own leaves it (below); otherwise it waits
        // for its application's tail to open, or is on it.
        let opening_key = match key {
            GroupKey::Ephemeral { app, .. } if !self.groups.contains(key) => {
                self.tail_opening.get(app).unwrap_or(key)
            }
            _ => key,
        };
        if let Some(waiting) = self.opening.get_mut(opening_key) {
            // Left before its group was open: nothing was delivered, nothing to answer.
            waiting.retain(|j| j.conn != conn);
            return;
        }
        let Some(slot) = self.groups.slot_of(key) else {
            if let GroupKey::Ephemeral { app, .. } = key {
                let app = app.clone();
                if self
                    .tails
                    .get_mut(&app)
                    .is_some_and(|t| t.leave(conn) && t.is_empty())
                {
                    self.retire_tail(&app);
                }
            }
            return;
        };
        let Some(g) = self.groups.get_mut(slot) else {
            return;
        };
        g.state.core.unsent(unsent);
        if !g.leave(conn, &mut self.epochs) {
            return;
        }
        if g.state.core.is_empty() {
            // The last member: retire the consumer; the reaper commits what is acknowledged
            // (synchronously, off this thread) before it leaves the Kafka group.
            let last_commit = g.take_commit(true).map(|tpl| (key.clone(), tpl));
            if let Some(g) = self.groups.remove(slot, key) {
                self.retire(g, last_commit);
            }
        }
    }

    fn retire(&mut self, g: Group, last_commit: Option<(GroupKey, TopicPartitionList)>) {
        if let Some(name) = g.state.key().name() {
            self.setup.stats.lags.lock().remove(name);
            self.setup.stats.groups.fetch_sub(1, Ordering::Relaxed);
            let handed_out = g.state.handed_out();
            if !handed_out.is_empty() {
                if self.handed_out.len() >= HANDED_OUT_GROUPS {
                    // Any one will do: it only costs a DUP flag.
                    if let Some(k) = self.handed_out.keys().next().cloned() {
                        self.handed_out.remove(&k);
                    }
                }
                self.handed_out
                    .insert(g.state.key().clone(), (Instant::now(), handed_out));
            }
        }
        let live = g.state.live.clone();
        drop(g.state);
        let _ = self.reaper.send(Retired {
            consumer: g.consumer,
            live,
            last_commit,
        });
    }

    /// Commits everything acknowledged (synchronously) and retires every consumer.
    fn stop(&mut self) {
        for (_, g) in self.groups.iter_mut() {
            g.commit(true);
        }
        let groups: Vec<Group> = self.groups.drain().collect();
        for g in groups {
            self.retire(g, None);
        }
        let apps: Vec<Arc<str>> = self.tails.keys().cloned().collect();
        for app in apps {
            self.retire_tail(&app);
        }
    }
}

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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::clients::{self, REQUEST_TIMEOUT};
use super::context::GroupContext;
use super::group::{Group, GroupState, Pass};
use super::payload::LiveMessages;
use super::tail::{Tail, TAIL_GROUP};
use super::topic::events_topic;
use super::KafkaStats;
use crate::backend::consumer::worker::{self as core, Slots, GROUP_BUDGET, IDLE};
use crate::backend::consumer::{self, joined, Epochs, Member, Outbox};
use crate::config::KafkaConfig;
use crate::seam::{
    AckToken, BackendError, Claim, ConnId, GroupKey, Join, Owner, StartAt, ToBackend,
};

/// Offsets of acknowledged records are committed this often (asynchronously).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Rings a worker once until it clears the bell (librdkafka may call it for every message).
pub(crate) struct Bell {
    rung: AtomicBool,
    pub(crate) tx: Sender<ToBackend>,
}

impl Bell {
    pub(crate) fn new(tx: Sender<ToBackend>) -> Bell {
        Bell {
            rung: AtomicBool::new(false),
            tx,
        }
    }

    fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(ToBackend::Wake);
        }
    }

    fn clear(&self) {
        self.rung.store(false, Ordering::Release);
    }
}

/// A consumer taken out of service, dropped by the reaper once no message of it is alive.
pub(crate) struct Retired {
    pub consumer: BaseConsumer<GroupContext>,
    pub live: LiveMessages,
    /// The group's last commit (its acknowledged prefix), made by the reaper before the consumer
    /// leaves the Kafka group: a synchronous commit takes up to librdkafka's request timeout
    /// when Kafka is down, which the worker's other groups should not wait out.
    pub last_commit: Option<(GroupKey, TopicPartitionList)>,
}

pub(crate) struct Worker {
    pub id: u16,
    pub rx: Receiver<ToBackend>,
    pub bell: Arc<Bell>,
    pub config: Arc<KafkaConfig>,
    pub stats: Arc<KafkaStats>,
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
/// Kafka, up to [`OPEN_RETRY_FOR`] when it is down).
const MAX_OPENERS: usize = 8;

/// A group's consumer, opened off the worker thread.
pub(crate) struct Opened {
    key: GroupKey,
    /// The claim the group was opened with.
    claim: Claim,
    result: Result<OpenedGroup, BackendError>,
}

pub(crate) struct OpenedGroup {
    group: Group,
    /// An ephemeral reader's partitions and the offsets it was assigned at.
    assigned_at: Option<Vec<(i32, i64)>>,
}

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
        self.bell.clear();
    }

    fn pass(&mut self) -> usize {
        let mut consumed = 0;
        for (slot, g) in self.groups.iter_mut() {
            let mut pass = Pass {
                to: consumer::Pass {
                    worker: self.id,
                    slot: slot as u32,
                    outbox: &mut self.outbox,
                },
                epochs: &mut self.epochs,
            };
            consumed += g.poll(GROUP_BUDGET, &mut pass);
        }
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
        let consumer = match new_consumer(&self.config, &self.stats, &self.bell, &key, &tail.topic)
        {
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
            self.stats.clone(),
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
                        self.stats.clone(),
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
            let (config, stats, bell) =
                (self.config.clone(), self.stats.clone(), self.bell.clone());
            let (tx, wake) = (self.opened_tx.clone(), self.bell.tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("kafka-open-{}", self.id))
                .spawn(move || {
                    let result = open(&config, &stats, &bell, &key, &app, &claim, start);
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
                            self.stats.clone(),
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
                    self.stats.groups.fetch_add(1, Ordering::Relaxed);
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
            self.stats.lags.lock().remove(name);
            self.stats.groups.fetch_sub(1, Ordering::Relaxed);
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

/// Creates the group's consumer and fixes its start position (spec 2.4) before the join is
/// answered: a durable group without committed offsets commits the current end offsets
/// (synchronously) before it subscribes; an ephemeral reader is assigned the end offsets.
///
/// A durable group's owner (issue #17) is read from its committed offsets' metadata, where every
/// commit of this service writes it: Kafka keeps it with the offsets, any process of the service
/// reads it with them (no topic of our own to provision), and it expires with them
/// (`offsets.retention.minutes`). A refused `claim` returns before subscribing, so a thief never
/// joins the Kafka group (no rebalance for the owner's process). A group without an owner record
/// (new, or created by Drogue Cloud or an older version) is adopted: all its offsets are
/// committed again with the claimant as owner.
fn open(
    config: &KafkaConfig,
    stats: &Arc<KafkaStats>,
    bell: &Arc<Bell>,
    key: &GroupKey,
    app: &Arc<str>,
    claim: &Claim,
    start: StartAt,
) -> Result<OpenedGroup, BackendError> {
    let topic: Arc<str> = events_topic(app).into();
    let unavailable = |e: rdkafka::error::KafkaError| BackendError::Unavailable(e.to_string());
    let consumer = new_consumer(config, stats, bell, key, &topic).map_err(unavailable)?;
    let partitions = match clients::partitions_of(consumer.client(), &topic).map_err(unavailable)? {
        Some(n) => n,
        None if config.create_topics => {
            clients::create_topic(config, &topic).map_err(unavailable)?;
            let mut found = None;
            for _ in 0..50 {
                if let Some(n) =
                    clients::partitions_of(consumer.client(), &topic).map_err(unavailable)?
                {
                    found = Some(n);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            found.ok_or_else(|| {
                BackendError::Unavailable(format!(
                    "topic `{topic}` was created but has no metadata yet"
                ))
            })?
        }
        None => {
            tracing::warn!(app = %app, topic = %topic, "no Kafka topic for this application's events (create it, or set backend.kafka.create_topics = true)");
            return Err(BackendError::UnknownStream(app.to_string()));
        }
    };
    let live = LiveMessages::default();
    let state = GroupState::new(key.clone(), app.clone(), topic.clone(), live, stats.clone());
    let high = |p: i32| {
        retrying("reading the end offset", || {
            consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
        })
        .map(|(_, high)| high)
        .map_err(unavailable)
    };
    // Spec 2.1 `start`: where a new group (or an ephemeral reader) begins in partition `p`.
    let begin = |p: i32| match start {
        StartAt::Latest => high(p),
        StartAt::Earliest => retrying("reading the first offset", || {
            consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
        })
        .map(|(low, _)| low)
        .map_err(unavailable),
        StartAt::Time(_) | StartAt::Ago(_) => {
            let at = start
                .instant(SystemTime::now())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let millis = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, p, Offset::Offset(millis))
                .map_err(unavailable)?;
            let found = retrying("looking up offsets for a time", || {
                consumer.offsets_for_times(tpl.clone(), REQUEST_TIMEOUT)
            })
            .map_err(unavailable)?;
            match found.elements().first().map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Ok(o),
                // No record at or after that time: the end.
                _ => high(p),
            }
        }
    };
    let assigned_at = match key.name() {
        Some(name) => {
            let mut all = TopicPartitionList::new();
            all.add_partition_range(&topic, 0, partitions - 1);
            let committed = retrying("reading committed offsets", || {
                consumer.committed_offsets(all.clone(), REQUEST_TIMEOUT)
            })
            .map_err(unavailable)?;
            let recorded = committed
                .elements()
                .iter()
                .find_map(|e| Owner::decode(&metadata_of(e)?));
            if let Some(owner) = &recorded {
                claim.check(key, owner)?;
            }
            let adopt = recorded.is_none();
            let owner = recorded.unwrap_or_else(|| claim.owner.clone());
            let mut start = TopicPartitionList::new();
            let mut new = 0;
            for e in committed.elements() {
                let at = match e.offset() {
                    Offset::Offset(at) if adopt => at,
                    Offset::Offset(_) => continue,
                    _ => {
                        new += 1;
                        begin(e.partition())?
                    }
                };
                start
                    .add_partition_offset(&topic, e.partition(), Offset::Offset(at))
                    .map_err(unavailable)?;
            }
            if start.count() > 0 {
                super::context::tag(&start, &owner.encode());
                retrying("committing the start position", || {
                    consumer.commit(&start, rdkafka::consumer::CommitMode::Sync)
                })
                .map_err(unavailable)?;
                if new > 0 {
                    tracing::info!(group = name, topic = %topic, partitions = new, ?start, "new consumer group's start position fixed");
                }
                if adopt {
                    tracing::info!(group = name, %owner, "consumer group without an owner record adopted by its first joiner");
                }
            }
            let _ = consumer.context().owner.set(owner);
            consumer.subscribe(&[&topic]).map_err(unavailable)?;
            None
        }
        None => {
            let mut at = Vec::with_capacity(partitions as usize);
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                let h = begin(p)?;
                at.push((p, h));
                tpl.add_partition_offset(&topic, p, Offset::Offset(h))
                    .map_err(unavailable)?;
            }
            consumer.assign(&tpl).map_err(unavailable)?;
            Some(at)
        }
    };
    Ok(OpenedGroup {
        group: Group { consumer, state },
        assigned_at,
    })
}

/// The metadata of a committed offset. rdkafka's accessor panics on metadata that is not UTF-8
/// (another program may write anything there): such metadata is no owner record of ours.
fn metadata_of(e: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.metadata().to_owned())).ok()
}

/// A consumer for the group `key` reading `topic`, which rings the worker's bell when records
/// arrive. Nothing is asked of Kafka yet.
fn new_consumer(
    config: &KafkaConfig,
    stats: &Arc<KafkaStats>,
    bell: &Arc<Bell>,
    key: &GroupKey,
    topic: &Arc<str>,
) -> rdkafka::error::KafkaResult<BaseConsumer<GroupContext>> {
    let ctx = GroupContext::new(key.name().map(Arc::from), topic.clone(), stats.clone());
    // librdkafka wants a group id even for `assign`; an ephemeral reader's is random and
    // never used for commits or membership.
    let ephemeral_id = format!("mqtt-integration-ephemeral-{}", uuid::Uuid::new_v4());
    let group_id = key.name().unwrap_or(&ephemeral_id);
    let mut consumer: BaseConsumer<GroupContext> =
        clients::consumer_config(config, group_id).create_with_context(ctx)?;
    let bell = bell.clone();
    consumer.set_nonempty_callback(move || bell.ring());
    Ok(consumer)
}

/// Drops retired consumers once none of their records is alive (see [`super::payload`]);
/// polls them meanwhile so that they leave their group cleanly.
pub(crate) fn reaper(rx: Receiver<Retired>) {
    let mut waiting: Vec<Retired> = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(mut r) => {
                // Commit while still a member (a non-member's commit is refused while others
                // are in the group), then leave.
                if let Some((group, tpl)) = r.last_commit.take() {
                    if let Err(e) = r.consumer.commit(&tpl, CommitMode::Sync) {
                        tracing::warn!(%group, error = %e, "last offset commit of a group failed; its next consumer starts from the commit before (events since come again)");
                    }
                }
                r.consumer.unsubscribe();
                waiting.push(r);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Consumers wait as long as their records are in use (a session may hold one until its
        // client acknowledges it); only at shutdown are they leaked after a grace period.
        let mut i = 0;
        while i < waiting.len() {
            let _ = waiting[i].consumer.poll(Duration::ZERO);
            if waiting[i].live.count() == 0 {
                drop(waiting.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }
    // Shutdown: the shards are gone, so records are being released; wait a little, then leak
    // what is still in use rather than destroy a client under its messages.
    let deadline = Instant::now() + Duration::from_secs(2);
    for r in waiting {
        if r.live
            .wait_zero(deadline.saturating_duration_since(Instant::now()))
        {
            drop(r);
        } else {
            tracing::warn!(
                messages = r.live.count(),
                "records of a Kafka consumer are still in use at shutdown; leaking the consumer"
            );
            std::mem::forget(r.consumer);
        }
    }
}

/// How long a group's first join keeps retrying a failing request before it gives up.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(15);

/// Runs a request of a group's first join, retrying failures for a while: right after a topic
/// or a cluster is created, Kafka answers "coordinator not available" or "leader not available"
/// for some seconds, and such a join should wait, not fail.
fn retrying<T>(
    what: &str,
    mut request: impl FnMut() -> Result<T, rdkafka::error::KafkaError>,
) -> Result<T, rdkafka::error::KafkaError> {
    let deadline = Instant::now() + OPEN_RETRY_FOR;
    loop {
        match request() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("{what} failed, retrying: {e}");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

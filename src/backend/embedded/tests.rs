//! The embedded backend driven through its real channels by a fake shard: a crossbeam channel
//! and a counting [`Notify`], exactly what a shard hands the backend.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use crossbeam_channel::Receiver;

use super::{start, EmbeddedLog, EmbeddedOptions};
use crate::backend::{Backend, BackendHandle};
use crate::cloudevents::Event;
use crate::protocol::QoS;
use crate::seam::{
    AckToken, AppAlias, AppTopics, BackendError, ConnFlow, ConnId, Delivery, GroupKey, Join,
    MemberFilter, Mode, Notify, Selector, ShardLink, ToBackend, ToShard,
};

const APP: &str = "demo";
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

struct CountingNotify(AtomicUsize);

impl Notify for CountingNotify {
    fn notify(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Harness {
    backend: Option<Backend>,
    handle: BackendHandle,
    log: Arc<EmbeddedLog>,
}

impl Harness {
    fn new(options: EmbeddedOptions) -> Harness {
        let (backend, log) = match start(options, [APP, "other"]) {
            Ok(started) => started,
            Err(e) => panic!("start failed: {e}"),
        };
        Harness {
            handle: backend.handle(),
            backend: Some(backend),
            log,
        }
    }

    fn default() -> Harness {
        Harness::new(options(4))
    }

    fn publish(&self, device: &str, channel: &str) -> (u32, u64) {
        match self.log.append_event(APP, event(device, channel)) {
            Ok(at) => at,
            Err(e) => panic!("append failed: {e}"),
        }
    }

    fn send(&self, group: &GroupKey, msg: ToBackend) {
        self.handle.send(self.handle.worker_of(group), msg);
    }

    fn leave(&self, conn: ConnId, group: &GroupKey) {
        self.send(
            group,
            ToBackend::Leave {
                conn,
                group: group.clone(),
                unsent: Vec::new(),
            },
        );
    }

    /// Sends acks to the worker that owns `group`.
    fn ack(&self, group: &GroupKey, tokens: Vec<AckToken>) {
        self.send(group, ToBackend::Acks(tokens));
    }

    fn committed(&self, group: &GroupKey) -> Vec<u64> {
        group
            .name()
            .and_then(|n| self.log.committed(n))
            .unwrap_or_default()
    }

    /// Waits until `group`'s committed offsets satisfy `ok`.
    fn wait_committed(&self, group: &GroupKey, ok: impl Fn(&[u64]) -> bool) -> Vec<u64> {
        let deadline = Instant::now() + WAIT;
        loop {
            let c = self.committed(group);
            if ok(&c) || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn shutdown(&mut self) {
        if let Some(b) = self.backend.take() {
            b.shutdown(WAIT);
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn options(partitions: u32) -> EmbeddedOptions {
    EmbeddedOptions {
        partitions,
        retention_events: 0,
        retention_bytes: 0,
        consumer_threads: 2,
        ..EmbeddedOptions::default()
    }
}

fn event(device: &str, channel: &str) -> Event {
    Event::new_device_event(
        APP,
        device,
        channel,
        device,
        "test",
        Some("text/plain"),
        Bytes::from_static(b"hello"),
        SystemTime::UNIX_EPOCH,
    )
}

fn whole(qos: QoS, id: Option<u32>) -> MemberFilter {
    MemberFilter {
        filter: format!("app/{APP}").into(),
        selector: Selector::WholeApp(AppAlias::App),
        qos,
        subscription_id: id,
        mode: Mode::Structured,
    }
}

fn topic(filter: &str, qos: QoS, id: u32) -> MemberFilter {
    MemberFilter {
        filter: filter.into(),
        selector: Selector::Topic(filter.into()),
        qos,
        subscription_id: Some(id),
        mode: Mode::Binary,
    }
}

/// A fake shard: what the backend sends it lands in `rx`.
struct Shard {
    id: u16,
    link: ShardLink,
    rx: Receiver<ToShard>,
    notify: Arc<CountingNotify>,
    /// Deliveries received while waiting for something else.
    pending: VecDeque<Delivery>,
}

impl Shard {
    fn new(id: u16) -> Shard {
        let (tx, rx) = crossbeam_channel::unbounded();
        let notify = Arc::new(CountingNotify(AtomicUsize::new(0)));
        Shard {
            id,
            link: ShardLink {
                sender: tx,
                notify: notify.clone(),
            },
            rx,
            notify,
            pending: VecDeque::new(),
        }
    }

    fn conn(&self, slot: u32) -> ConnId {
        ConnId {
            shard: self.id,
            slot,
            generation: 1,
        }
    }

    /// Joins and waits for the answer; no delivery for this member may come before it.
    fn join(
        &mut self,
        h: &Harness,
        conn: ConnId,
        member: u32,
        group: &GroupKey,
        filters: Vec<MemberFilter>,
        flow: Arc<ConnFlow>,
    ) -> Result<(), BackendError> {
        self.join_app(h, APP, conn, member, group, filters, flow)
    }

    #[allow(clippy::too_many_arguments)]
    fn join_app(
        &mut self,
        h: &Harness,
        app: &str,
        conn: ConnId,
        member: u32,
        group: &GroupKey,
        filters: Vec<MemberFilter>,
        flow: Arc<ConnFlow>,
    ) -> Result<(), BackendError> {
        let request = u64::from(member) + 1000;
        h.send(
            group,
            ToBackend::Join(Join {
                conn,
                member,
                request,
                app: app.into(),
                group: group.clone(),
                filters,
                flow,
                link: self.link.clone(),
                start: crate::seam::StartAt::Latest,
                // One identity for every join of these tests (ownership: tests/ownership.rs).
                claim: crate::seam::Claim {
                    owner: crate::seam::Owner {
                        kind: crate::seam::GroupKind::Shared,
                        user: None,
                    },
                    admin: false,
                },
            }),
        );
        let deadline = Instant::now() + WAIT;
        loop {
            match self.rx.recv_deadline(deadline) {
                Ok(ToShard::Joined {
                    conn: c,
                    member: m,
                    request: r,
                    result,
                }) if c == conn && m == member && r == request => return result,
                Ok(ToShard::Deliveries(ds)) => {
                    assert!(
                        ds.iter().all(|d| d.conn != conn || d.member != member),
                        "delivery before Joined"
                    );
                    self.pending.extend(ds);
                }
                Ok(_) => {}
                Err(_) => panic!("no Joined within {WAIT:?}"),
            }
        }
    }

    /// Receives deliveries until `n` arrived (or the wait ends).
    fn collect(&mut self, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + WAIT;
        let mut out: Vec<Delivery> = self.pending.drain(..).collect();
        while out.len() < n {
            match self.rx.recv_deadline(deadline) {
                Ok(ToShard::Deliveries(ds)) => out.extend(ds),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        assert_eq!(out.len(), n, "deliveries received");
        out
    }

    /// Everything that arrives within `QUIET`.
    fn drain_quiet(&mut self) -> Vec<Delivery> {
        let mut out: Vec<Delivery> = self.pending.drain(..).collect();
        while let Ok(msg) = self.rx.recv_timeout(QUIET) {
            if let ToShard::Deliveries(ds) = msg {
                out.extend(ds);
            }
        }
        out
    }
}

fn flow() -> Arc<ConnFlow> {
    Arc::new(ConnFlow::new(usize::MAX / 2))
}

fn offsets(ds: &[Delivery]) -> Vec<(u32, u64)> {
    ds.iter()
        .map(|d| (d.record.partition, d.record.offset))
        .collect()
}

/// Devices covering every partition (the hash is stable, so this is deterministic).
fn devices_for_all_partitions(h: &Harness) -> Vec<String> {
    let mut by_partition = BTreeMap::new();
    for i in 0.. {
        let d = format!("dev{i}");
        by_partition.entry(h.log.partition_of(&d)).or_insert(d);
        if by_partition.len() == h.log.partitions() as usize {
            break;
        }
    }
    by_partition.into_values().collect()
}

#[test]
fn a_new_group_gets_only_events_appended_after_joined() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    for i in 0..5 {
        h.publish(&format!("d{i}"), "temp");
    }
    let group = GroupKey::client(APP, "c1");
    let conn = shard.conn(1);
    assert_eq!(
        shard.join(
            &h,
            conn,
            7,
            &group,
            vec![whole(QoS::AtMostOnce, None)],
            flow()
        ),
        Ok(())
    );
    let after: BTreeSet<_> = (0..3)
        .map(|i| h.publish(&format!("d{i}"), "temp"))
        .collect();
    let got = shard.collect(3);
    assert_eq!(offsets(&got).into_iter().collect::<BTreeSet<_>>(), after);
    assert!(got
        .iter()
        .all(|d| d.conn == conn && d.member == 7 && !d.dup));
    let topics = AppTopics::new("demo");
    assert!(got
        .iter()
        .all(|d| d.topic(topics.base(d.whole_app)) == "app/demo"));
    assert!(shard.drain_quiet().is_empty());
    assert!(
        shard.notify.0.load(Ordering::SeqCst) >= 2,
        "shard woken for Joined and deliveries"
    );
}

#[test]
fn unknown_application_is_refused() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::client("nope", "c1");
    let result = shard.join_app(&h, "nope", shard.conn(1), 1, &group, vec![], flow());
    assert_eq!(result, Err(BackendError::UnknownStream("nope".into())));
}

#[test]
fn a_shared_group_splits_by_partition_and_delivers_each_once() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::shared(APP, "g");
    let (a, b) = (shard.conn(1), shard.conn(2));
    shard
        .join(
            &h,
            a,
            1,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    shard
        .join(
            &h,
            b,
            2,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let devices = devices_for_all_partitions(&h);
    let mut sent = BTreeSet::new();
    for round in 0..5 {
        for d in &devices {
            sent.insert(h.publish(d, &format!("ch{round}")));
        }
    }
    let got = shard.collect(sent.len());
    assert_eq!(
        offsets(&got).into_iter().collect::<BTreeSet<_>>(),
        sent,
        "each once"
    );
    let mut owner = BTreeMap::new();
    for d in &got {
        assert_eq!(
            *owner.entry(d.record.partition).or_insert(d.conn),
            d.conn,
            "one owner per partition"
        );
    }
    // Members sorted by conn id; partition p goes to member p % 2.
    for (p, conn) in &owner {
        assert_eq!(*conn, if p % 2 == 0 { a } else { b });
    }
    // Order per partition is kept.
    for p in owner.keys() {
        let offs: Vec<u64> = got
            .iter()
            .filter(|d| d.record.partition == *p)
            .map(|d| d.record.offset)
            .collect();
        assert!(offs.windows(2).all(|w| w[0] < w[1]));
    }
    assert!(shard.drain_quiet().is_empty());
}

#[test]
fn a_rebalance_redelivers_unacked_events_of_moved_partitions() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::shared(APP, "g");
    let (a, b) = (shard.conn(1), shard.conn(2));
    shard
        .join(
            &h,
            a,
            1,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let devices = devices_for_all_partitions(&h);
    for d in &devices {
        h.publish(d, "t");
    }
    let first = shard.collect(devices.len());
    assert!(first.iter().all(|d| d.conn == a && !d.dup));
    shard
        .join(
            &h,
            b,
            2,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    // Odd partitions moved to b: their unacked event comes again, with DUP, under a new epoch.
    let again = shard.collect(devices.len() / 2);
    assert!(again
        .iter()
        .all(|d| d.conn == b && d.dup && d.record.partition % 2 == 1));
    let stale: Vec<AckToken> = first.iter().map(|d| d.ack).collect();
    h.ack(&group, stale);
    let c = h.wait_committed(&group, |c| c.iter().step_by(2).all(|&o| o == 1));
    // a's acks commit its own partitions; b's partitions wait for b's acks (old epoch ignored).
    assert_eq!(c, [1, 0, 1, 0]);
    h.ack(&group, again.iter().map(|d| d.ack).collect());
    assert_eq!(
        h.wait_committed(&group, |c| c == [1, 1, 1, 1]),
        [1, 1, 1, 1]
    );
}

#[test]
fn two_groups_each_get_everything() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let (g1, g2) = (GroupKey::client(APP, "c1"), GroupKey::client(APP, "c2"));
    shard
        .join(
            &h,
            shard.conn(1),
            1,
            &g1,
            vec![whole(QoS::AtMostOnce, None)],
            flow(),
        )
        .ok();
    shard
        .join(
            &h,
            shard.conn(2),
            2,
            &g2,
            vec![whole(QoS::AtMostOnce, None)],
            flow(),
        )
        .ok();
    let sent: BTreeSet<_> = (0..20).map(|i| h.publish(&format!("d{i}"), "t")).collect();
    let got = shard.collect(40);
    for conn in [shard.conn(1), shard.conn(2)] {
        let mine: BTreeSet<_> = got
            .iter()
            .filter(|d| d.conn == conn)
            .map(|d| (d.record.partition, d.record.offset))
            .collect();
        assert_eq!(mine, sent);
    }
    // One batch per shard per pass: fewer messages than deliveries.
    assert!(shard.notify.0.load(Ordering::SeqCst) < 40 + 2);
}

#[test]
fn resubscribing_replaces_filters_without_a_second_stream() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "c1");
    let conn = shard.conn(1);
    shard
        .join(
            &h,
            conn,
            1,
            &group,
            vec![topic("app/demo/d1/#", QoS::AtMostOnce, 1)],
            flow(),
        )
        .ok();
    h.publish("d1", "t");
    h.publish("d2", "t");
    let got = shard.collect(1);
    assert_eq!(got[0].record.event.device(), Some("d1"));
    assert_eq!(got[0].topic(&"app/demo".into()), "app/demo/d1/t");
    // Both records consumed (d2 matched no filter) before the filters change; otherwise d2
    // would rightly go out under the new filter.
    let consumed = h.wait_committed(&group, |c| c.iter().sum::<u64>() >= 2);
    assert_eq!(consumed.iter().sum::<u64>(), 2);
    shard
        .join(
            &h,
            conn,
            2,
            &group,
            vec![whole(QoS::AtMostOnce, Some(5))],
            flow(),
        )
        .ok();
    h.publish("d1", "t");
    h.publish("d2", "t");
    let got = shard.collect(2);
    assert!(got
        .iter()
        .all(|d| d.member == 2 && d.subscription_ids.as_slice() == [5] && !d.dup));
    assert!(
        shard.drain_quiet().is_empty(),
        "no second stream, no replay"
    );
}

#[test]
fn unacked_qos1_events_come_again_with_dup_after_rejoin() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "c1");
    let conn = shard.conn(1);
    shard
        .join(
            &h,
            conn,
            1,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let sent: BTreeSet<_> = (0..6).map(|i| h.publish(&format!("d{i}"), "t")).collect();
    let first = shard.collect(6);
    assert!(first.iter().all(|d| !d.dup && d.qos == QoS::AtLeastOnce));
    h.leave(conn, &group);
    // The session resumes on a new connection (spec 2.4).
    let conn2 = ConnId {
        generation: 2,
        ..conn
    };
    shard
        .join(
            &h,
            conn2,
            2,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let again = shard.collect(6);
    assert!(again.iter().all(|d| d.dup && d.conn == conn2));
    assert_eq!(
        offsets(&again).into_iter().collect::<BTreeSet<_>>(),
        sent,
        "nothing skipped"
    );
    let next = h.publish("d0", "t");
    let fresh = shard.collect(1);
    assert_eq!(offsets(&fresh), [next]);
    assert!(!fresh[0].dup);
    // Acks of the old connection's epoch are stale; those of the new one commit.
    h.ack(&group, first.iter().map(|d| d.ack).collect());
    h.ack(&group, again.iter().chain(&fresh).map(|d| d.ack).collect());
    let end = h.log.end_offsets(APP).unwrap_or_default();
    assert_eq!(h.wait_committed(&group, |c| c == end), end);
    h.leave(conn2, &group);
    shard
        .join(
            &h,
            conn,
            3,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    assert!(
        shard.drain_quiet().is_empty(),
        "acknowledged events are not redelivered"
    );
}

#[test]
fn only_the_contiguous_acknowledged_prefix_is_committed() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "c1");
    shard
        .join(
            &h,
            shard.conn(1),
            1,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let p = h.log.partition_of("d1") as usize;
    for _ in 0..3 {
        h.publish("d1", "t");
    }
    let got = shard.collect(3);
    assert_eq!(
        got.iter().map(|d| d.record.offset).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // spec 2.4: offset 2 is acked, 1 is not → committed stays at 1.
    h.ack(&group, vec![got[0].ack, got[2].ack]);
    let c = h.wait_committed(&group, |c| c[p] == 1);
    assert_eq!(c[p], 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.committed(&group)[p], 1);
    h.ack(&group, vec![got[1].ack]);
    assert_eq!(h.wait_committed(&group, |c| c[p] == 3)[p], 3);
    assert_eq!(h.log.group_lag(), [("demo.c1".to_string(), 0)]);
}

#[test]
fn a_full_connection_pauses_until_resume() {
    let h = Harness::new(options(1));
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "c1");
    // One event before joining, to learn what a record costs; the group starts after it.
    h.publish("d1", "t");
    let one = h.log.read(APP, 0, 0, 1).unwrap_or_default()[0].cost() as usize;
    let limit = one * 3;
    let conn_flow = Arc::new(ConnFlow::new(limit));
    shard
        .join(
            &h,
            shard.conn(1),
            1,
            &group,
            vec![whole(QoS::AtMostOnce, None)],
            conn_flow.clone(),
        )
        .ok();
    for _ in 0..20 {
        h.publish("d1", "t");
    }
    let mut received = Vec::new();
    while received.len() < 20 {
        let burst = shard.drain_quiet();
        assert!(
            !burst.is_empty(),
            "stalled after {} deliveries",
            received.len()
        );
        let bytes: usize = burst.iter().map(|d| d.cost as usize).sum();
        assert!(
            bytes <= limit + one,
            "{bytes} queued with a limit of {limit}"
        );
        assert_eq!(conn_flow.queued(), bytes);
        // The shard writes them out and, being drained, tells the worker to resume.
        let mut resume = false;
        for d in &burst {
            resume |= conn_flow.release(d.cost as usize);
        }
        assert!(resume || received.len() + burst.len() == 20);
        if resume {
            h.send(&group, ToBackend::Resume);
        }
        received.extend(burst);
    }
    let offs: Vec<u64> = received.iter().map(|d| d.record.offset).collect();
    assert_eq!(offs, (1..21).collect::<Vec<_>>(), "in order, each once");
}

#[test]
fn filters_route_by_device_and_channel() {
    let h = Harness::default();
    let mut shard = Shard::new(3);
    let group = GroupKey::client(APP, "c1");
    let filters = vec![
        topic("app/demo/+/temp", QoS::AtMostOnce, 1),
        topic("app/demo/d1/#", QoS::AtLeastOnce, 2),
    ];
    shard
        .join(&h, shard.conn(1), 1, &group, filters, flow())
        .ok();
    h.publish("d1", "temp");
    h.publish("d2", "temp");
    h.publish("d1", "hum/in");
    h.publish("d2", "hum");
    let mut no_subject = event("d1", "x");
    no_subject.subject = None;
    h.log.append_event(APP, no_subject).ok();
    let mut got = shard.collect(3);
    let topics = AppTopics::new("demo");
    got.sort_by(|a, b| {
        a.topic(topics.base(a.whole_app))
            .cmp(b.topic(topics.base(b.whole_app)))
    });
    let seen: Vec<(&str, QoS, Vec<u32>)> = got
        .iter()
        .map(|d| {
            (
                d.topic(topics.base(d.whole_app)),
                d.qos,
                d.subscription_ids.to_vec(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("app/demo/d1/hum/in", QoS::AtLeastOnce, vec![2]),
            ("app/demo/d1/temp", QoS::AtLeastOnce, vec![1, 2]),
            ("app/demo/d2/temp", QoS::AtMostOnce, vec![1]),
        ]
    );
    assert!(got.iter().all(|d| d.mode == Mode::Binary));
    assert!(shard.drain_quiet().is_empty());
    // Everything, matched or not, is consumed: only the in-flight QoS 1 events hold commits.
    let d1 = h.log.partition_of("d1") as usize;
    let c = h.wait_committed(&group, |c| {
        c.iter()
            .enumerate()
            .all(|(p, &o)| p == d1 || Some(o) == h.log.end_offsets(APP).map(|e| e[p]))
    });
    assert_eq!(c[d1], 0);
}

#[test]
fn whole_app_and_topic_filter_give_one_delivery_on_the_app_topic() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "c1");
    let filters = vec![
        topic("app/demo/d1/#", QoS::AtLeastOnce, 2),
        whole(QoS::AtMostOnce, Some(1)),
    ];
    shard
        .join(&h, shard.conn(1), 1, &group, filters, flow())
        .ok();
    h.publish("d1", "temp");
    let got = shard.collect(1);
    assert_eq!(got[0].topic(&"app/demo".into()), "app/demo");
    assert_eq!(got[0].qos, QoS::AtLeastOnce);
    assert_eq!(got[0].subscription_ids.as_slice(), [2, 1]);
    assert!(shard.drain_quiet().is_empty());
}

#[test]
fn retention_drops_old_records_and_a_reader_behind_skips_forward() {
    let h = Harness::new(EmbeddedOptions {
        retention_events: 4,
        ..options(1)
    });
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "slow");
    let conn = shard.conn(1);
    shard
        .join(
            &h,
            conn,
            1,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    h.leave(conn, &group);
    assert_eq!(h.wait_committed(&group, |c| c == [0]), [0]);
    for _ in 0..10 {
        h.publish("d1", "t");
    }
    assert_eq!(h.log.first_offsets(APP), Some(vec![6]));
    assert_eq!(h.log.end_offsets(APP), Some(vec![10]));
    assert_eq!(h.log.group_lag(), [("demo.slow".to_string(), 10)]);
    shard
        .join(
            &h,
            conn,
            2,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let got = shard.collect(4);
    assert_eq!(
        got.iter().map(|d| d.record.offset).collect::<Vec<_>>(),
        [6, 7, 8, 9]
    );
    assert_eq!(h.log.skipped_records(), 6);
    h.ack(&group, got.iter().map(|d| d.ack).collect());
    assert_eq!(h.wait_committed(&group, |c| c == [10]), [10]);
}

#[test]
fn retention_by_bytes() {
    let h = Harness::new(EmbeddedOptions {
        retention_bytes: 2000,
        ..options(2)
    });
    for _ in 0..100 {
        h.publish("d1", "t");
    }
    let p = h.log.partition_of("d1");
    let kept = h.log.read(APP, p, 0, usize::MAX).unwrap_or_default();
    let bytes: u64 = kept.iter().map(|r| u64::from(r.cost())).sum();
    assert!(
        !kept.is_empty() && bytes <= 1000,
        "{} records, {bytes} bytes",
        kept.len()
    );
    assert_eq!(kept.last().map(|r| r.offset), Some(99));
}

#[test]
fn an_ephemeral_reader_starts_at_the_end_and_commits_nothing() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let conn = shard.conn(1);
    let group = GroupKey::Ephemeral {
        app: APP.into(),
        conn,
    };
    h.publish("d1", "t");
    shard
        .join(
            &h,
            conn,
            1,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let sent: BTreeSet<_> = (0..2).map(|_| h.publish("d1", "t")).collect();
    let got = shard.collect(2);
    assert_eq!(offsets(&got).into_iter().collect::<BTreeSet<_>>(), sent);
    h.ack(&group, got.iter().map(|d| d.ack).collect());
    h.leave(conn, &group);
    std::thread::sleep(Duration::from_millis(50));
    assert!(h.log.group_lag().is_empty(), "no offsets stored");
    // Joining again starts at the end again: nothing replayed.
    shard
        .join(
            &h,
            conn,
            2,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    assert!(shard.drain_quiet().is_empty());
}

#[test]
fn a_connection_leaving_one_group_keeps_the_other() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let conn = shard.conn(1);
    let (g1, g2) = (GroupKey::shared(APP, "a"), GroupKey::shared(APP, "b"));
    shard
        .join(&h, conn, 1, &g1, vec![whole(QoS::AtMostOnce, None)], flow())
        .ok();
    shard
        .join(&h, conn, 2, &g2, vec![whole(QoS::AtMostOnce, None)], flow())
        .ok();
    h.leave(conn, &g1);
    // The leave is processed by g1's worker; wait until its offsets were stored at leave.
    std::thread::sleep(Duration::from_millis(50));
    h.publish("d1", "t");
    let got = shard.collect(1);
    assert_eq!(got[0].member, 2);
    assert!(shard.drain_quiet().is_empty());
}

#[test]
fn commands_are_appended_and_read_back() {
    let h = Harness::default();
    let producer = match &h.backend {
        Some(b) => b.producer.clone(),
        None => unreachable!("backend just started"),
    };
    assert!(producer.ready());
    let (tx, rx) = crossbeam_channel::unbounded();
    for device in ["d1", "d2", "d1"] {
        let tx = tx.clone();
        producer.send_command(
            APP,
            device,
            event(device, "reboot"),
            Box::new(move |r| drop(tx.send(r))),
        );
    }
    let tx2 = tx.clone();
    producer.send_command(
        "nope",
        "d1",
        event("d1", "reboot"),
        Box::new(move |r| drop(tx2.send(r))),
    );
    producer.publish_event(
        "nope",
        event("d1", "t"),
        Box::new(move |r| drop(tx.send(r))),
    );
    let results: Vec<_> = rx.iter().take(5).collect();
    assert_eq!(results[..3], [Ok(()), Ok(()), Ok(())]);
    assert_eq!(results[3], Err(BackendError::UnknownStream("nope".into())));
    assert_eq!(results[4], Err(BackendError::UnknownStream("nope".into())));
    assert_eq!(h.log.commands_appended(), 3);
    let all = h.log.commands_since(0);
    let devices: Vec<_> = all.iter().map(|r| r.event.device()).collect();
    assert_eq!(devices, [Some("d1"), Some("d2"), Some("d1")]);
    // Commands of one device share a partition and are numbered there in order.
    assert_eq!(all[0].partition, all[2].partition);
    assert_eq!(all[2].offset, all[0].offset + 1);
    assert_eq!(h.log.commands_since(2).len(), 1);
    assert!(h.log.commands_since(3).is_empty());
}

#[test]
fn shutdown_persists_offsets() {
    let mut h = Harness::default();
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "c1");
    shard
        .join(
            &h,
            shard.conn(1),
            1,
            &group,
            vec![whole(QoS::AtLeastOnce, None)],
            flow(),
        )
        .ok();
    let sent: Vec<_> = (0..8).map(|i| h.publish(&format!("d{i}"), "t")).collect();
    let got = shard.collect(sent.len());
    h.ack(&group, got.iter().map(|d| d.ack).collect());
    let end = h.log.end_offsets(APP).unwrap_or_default();
    h.shutdown();
    assert_eq!(h.committed(&group), end);
    assert_eq!(h.log.group_lag(), [("demo.c1".to_string(), 0)]);
}

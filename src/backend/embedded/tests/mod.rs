//! The embedded backend driven through its real channels by a fake shard: a crossbeam channel
//! and a counting [`Notify`], exactly what a shard hands the backend.

mod groups;
mod log;

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

    /// Joins the application with `filters` and no limit on the connection.
    fn join_filters(
        &mut self,
        h: &Harness,
        conn: ConnId,
        member: u32,
        group: &GroupKey,
        filters: Vec<MemberFilter>,
    ) -> Result<(), BackendError> {
        self.join(h, APP, conn, member, group, filters, flow())
    }

    /// Joins with one whole-application filter and no limit on the connection.
    fn join_whole(
        &mut self,
        h: &Harness,
        conn: ConnId,
        member: u32,
        group: &GroupKey,
        qos: QoS,
    ) -> Result<(), BackendError> {
        self.join_filters(h, conn, member, group, vec![whole(qos, None)])
    }

    /// Joins `app` and waits for the answer; no delivery for this member may come before it.
    #[allow(clippy::too_many_arguments)]
    fn join(
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

    /// Nothing arrives within `QUIET`.
    fn assert_quiet(&mut self, why: &str) {
        let late = self.drain_quiet();
        assert!(late.is_empty(), "{why}: {} more deliveries", late.len());
    }
}

/// A harness with the default options, shard 0, and `group`.
fn with_group(group: GroupKey) -> (Harness, Shard, GroupKey) {
    (Harness::default(), Shard::new(0), group)
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

//! Issue #17, item 1 on Kafka: a group's owner is kept in its committed offsets' metadata, so
//! every process sharing the broker refuses the same thieves; a group without an owner record
//! (Drogue Cloud's, an older version's) is adopted by its first joiner. Each test has a steady
//! subscriber on the side that must miss nothing.

mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/owners.rs"]
mod owners;

use std::io::Write;
use std::time::Duration;

use common::*;
use owners::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);
const NOT_AUTHORIZED: u8 = 0x87;
const V3_FAILURE: u8 = 0x80;

struct Setup {
    bootstrap: String,
    app: String,
    topic: String,
    users: Users,
    backend: String,
}

fn setup(prefix: &str) -> Setup {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique(prefix);
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 2);
    let backend = kafka::backend_toml(&bootstrap, &kafka::unique("cmd"));
    Setup {
        users: users(&app),
        bootstrap,
        app,
        topic,
        backend,
    }
}

impl Setup {
    fn service(&self) -> Service {
        Service::start_with(&self.backend, &self.users.toml, &[])
    }

    fn produce(&self, seqs: &[u64]) {
        let p = kafka::producer(&self.bootstrap);
        for &seq in seqs {
            kafka::produce_binary(&p, &self.topic, &self.app, "device1", seq);
        }
    }

    /// `client_id` subscribes `filter` on `svc` and leaves cleanly.
    fn subscribe_and_leave(
        &self,
        svc: &Service,
        client_id: &str,
        creds: Option<(&str, &str)>,
        filter: &str,
    ) {
        let (mut s, code) = connect_as(svc, 4, client_id, creds);
        assert_eq!(code, 0);
        assert_eq!(suback_code(&mut s, 4, filter), 1, "{}", svc.log());
        s.write_all(&[0xE0, 0x00]).unwrap();
        assert!(closed_within(&mut s, T));
        // The group's consumer leaves the Kafka group off the worker.
        std::thread::sleep(Duration::from_millis(500));
    }

    fn backlog_arrives(
        &self,
        svc: &Service,
        client_id: &str,
        creds: Option<(&str, &str)>,
        filter: &str,
        seqs: &[u64],
    ) {
        let (mut s, code) = connect_as(svc, 4, client_id, creds);
        assert_eq!(code, 0);
        assert_eq!(suback_code(&mut s, 4, filter), 1);
        let mut got = read_seqs(&mut s, seqs.len(), T);
        got.sort_unstable(); // two partitions
        assert_eq!(got, seqs, "the owner's backlog\n{}", svc.log());
    }
}

fn steady_seqs(v: &V5, n: usize) -> Vec<u64> {
    let mut got = collect_seqs(v, n, T);
    got.sort_unstable();
    got
}

#[test]
fn group_theft_is_refused_on_kafka() {
    let k = setup("own");
    let svc = k.service();
    let steady = steady(&svc, &k.app);
    let filter = format!("app/{}", k.app);
    let share = format!("$share/victim/app/{}", k.app);
    k.subscribe_and_leave(&svc, "victim", None, &filter);
    let backlog: Vec<u64> = (1..=20).collect();
    k.produce(&backlog);

    let (mut thief, _) = connect_as(&svc, 5, "thief", None);
    assert_eq!(suback_code(&mut thief, 5, &share), NOT_AUTHORIZED);
    let alice = ("alice", k.users.alice.as_str());
    let (mut thief3, _) = connect_as(&svc, 4, "thief-alice", Some(alice));
    assert_eq!(suback_code(&mut thief3, 4, &share), V3_FAILURE);

    k.backlog_arrives(&svc, "victim", None, &filter, &backlog);
    assert_eq!(steady_seqs(&steady, backlog.len()), backlog);
}

/// Two service processes on one broker: the owner written by one is read by the other.
#[test]
fn two_processes_agree_on_the_owner() {
    let k = setup("own2");
    let (a, b) = (k.service(), k.service());
    let steady = steady(&a, &k.app);
    let filter = format!("app/{}", k.app);
    let bob = ("bob", k.users.bob.as_str());
    k.subscribe_and_leave(&a, "bob-dev", Some(bob), &filter);
    let backlog: Vec<u64> = (1..=20).collect();
    k.produce(&backlog);

    let share = format!("$share/bob-dev/app/{}", k.app);
    let alice = ("alice", k.users.alice.as_str());
    for (who, creds) in [("anonymous", None), ("alice", Some(alice))] {
        let (mut s, _) = connect_as(&b, 5, &format!("thief-{who}"), creds);
        assert_eq!(suback_code(&mut s, 5, &share), NOT_AUTHORIZED, "{who}");
        // The client id is free on B, the group is not.
        let (mut s, code) = connect_as(&b, 5, "bob-dev", creds);
        assert_eq!(code, 0);
        assert_eq!(suback_code(&mut s, 5, &filter), NOT_AUTHORIZED, "{who}");
        s.write_all(&[0xE0, 0x00]).unwrap();
        assert!(closed_within(&mut s, T));
    }
    // Refused joins leave nothing open on B; A let the group go when bob left.
    assert_eq!(gauge(&b, "mqtt_integration_groups"), Some(0));
    assert_eq!(gauge(&a, "mqtt_integration_groups"), Some(0));
    // bob comes back on the other process and gets everything.
    k.backlog_arrives(&b, "bob-dev", Some(bob), &filter, &backlog);
    assert_eq!(steady_seqs(&steady, backlog.len()), backlog);
}

/// A group committed by another program (no owner record) is adopted by its first joiner, from
/// its committed offsets on; then it is that identity's.
#[test]
fn a_group_without_owner_is_adopted() {
    let k = setup("adopt");
    let svc = k.service();
    let steady = steady(&svc, &k.app);
    k.produce(&[1, 2, 3]);
    // Drogue Cloud's group `<app>.legacy` read everything so far (offsets without metadata).
    let group = format!("{}.legacy", k.app);
    let consumer: BaseConsumer = kafka::client_config(&k.bootstrap, &[])
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        let (_, high) = consumer
            .fetch_watermarks(&k.topic, p, Duration::from_secs(10))
            .unwrap();
        tpl.add_partition_offset(&k.topic, p, Offset::Offset(high))
            .unwrap();
    }
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
    drop(consumer);
    k.produce(&[4, 5]);

    // Adopted by alice (shared kind): she gets what Drogue had not read.
    let share = format!("$share/legacy/app/{}", k.app);
    let alice = ("alice", k.users.alice.as_str());
    k.backlog_arrives(&svc, "alice-1", Some(alice), &share, &[4, 5]);
    assert!(
        svc.log().contains("adopted by its first joiner"),
        "{}",
        svc.log()
    );
    let (mut s, _) = connect_as(&svc, 5, "anon", None);
    assert_eq!(suback_code(&mut s, 5, &share), NOT_AUTHORIZED);
    assert_eq!(steady_seqs(&steady, 5), [1, 2, 3, 4, 5]);
}

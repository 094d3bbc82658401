//! Consumer groups of the embedded log: start position, sharing, rebalances, acknowledgements,
//! flow control and routing.

use super::*;

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
        shard.join_filters(&h, conn, 7, &group, vec![whole(QoS::AtMostOnce, None)]),
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
    shard.assert_quiet("nothing more");
    assert!(
        shard.notify.0.load(Ordering::SeqCst) >= 2,
        "shard woken for Joined and deliveries"
    );
}

#[test]
fn unknown_application_is_refused() {
    let (h, mut shard, group) = with_group(GroupKey::client("nope", "c1"));
    let result = shard.join(&h, "nope", shard.conn(1), 1, &group, vec![], flow());
    assert_eq!(result, Err(BackendError::UnknownStream("nope".into())));
}

#[test]
fn a_shared_group_splits_by_partition_and_delivers_each_once() {
    let (h, mut shard, group) = with_group(GroupKey::shared(APP, "g"));
    let (a, b) = (shard.conn(1), shard.conn(2));
    shard.join_whole(&h, a, 1, &group, QoS::AtLeastOnce).ok();
    shard.join_whole(&h, b, 2, &group, QoS::AtLeastOnce).ok();
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
    shard.assert_quiet("nothing more");
}

#[test]
fn a_rebalance_redelivers_unacked_events_of_moved_partitions() {
    let (h, mut shard, group) = with_group(GroupKey::shared(APP, "g"));
    let (a, b) = (shard.conn(1), shard.conn(2));
    shard.join_whole(&h, a, 1, &group, QoS::AtLeastOnce).ok();
    let devices = devices_for_all_partitions(&h);
    for d in &devices {
        h.publish(d, "t");
    }
    let first = shard.collect(devices.len());
    assert!(first.iter().all(|d| d.conn == a && !d.dup));
    shard.join_whole(&h, b, 2, &group, QoS::AtLeastOnce).ok();
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
        .join_whole(&h, shard.conn(1), 1, &g1, QoS::AtMostOnce)
        .ok();
    shard
        .join_whole(&h, shard.conn(2), 2, &g2, QoS::AtMostOnce)
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
    let (h, mut shard, group) = with_group(GroupKey::client(APP, "c1"));
    let conn = shard.conn(1);
    shard
        .join_filters(
            &h,
            conn,
            1,
            &group,
            vec![topic("app/demo/d1/#", QoS::AtMostOnce, 1)],
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
        .join_filters(&h, conn, 2, &group, vec![whole(QoS::AtMostOnce, Some(5))])
        .ok();
    h.publish("d1", "t");
    h.publish("d2", "t");
    let got = shard.collect(2);
    assert!(got
        .iter()
        .all(|d| d.member == 2 && d.subscription_ids.as_slice() == [5] && !d.dup));
    shard.assert_quiet("no second stream, no replay");
}

#[test]
fn unacked_qos1_events_come_again_with_dup_after_rejoin() {
    let (h, mut shard, group) = with_group(GroupKey::client(APP, "c1"));
    let conn = shard.conn(1);
    shard.join_whole(&h, conn, 1, &group, QoS::AtLeastOnce).ok();
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
        .join_whole(&h, conn2, 2, &group, QoS::AtLeastOnce)
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
    shard.join_whole(&h, conn, 3, &group, QoS::AtLeastOnce).ok();
    shard.assert_quiet("acknowledged events are not redelivered");
}

#[test]
fn only_the_contiguous_acknowledged_prefix_is_committed() {
    let (h, mut shard, group) = with_group(GroupKey::client(APP, "c1"));
    shard
        .join_whole(&h, shard.conn(1), 1, &group, QoS::AtLeastOnce)
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
            APP,
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
        .join_filters(&h, shard.conn(1), 1, &group, filters)
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
    shard.assert_quiet("nothing more");
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
    let (h, mut shard, group) = with_group(GroupKey::client(APP, "c1"));
    let filters = vec![
        topic("app/demo/d1/#", QoS::AtLeastOnce, 2),
        whole(QoS::AtMostOnce, Some(1)),
    ];
    shard
        .join_filters(&h, shard.conn(1), 1, &group, filters)
        .ok();
    h.publish("d1", "temp");
    let got = shard.collect(1);
    assert_eq!(got[0].topic(&"app/demo".into()), "app/demo");
    assert_eq!(got[0].qos, QoS::AtLeastOnce);
    assert_eq!(got[0].subscription_ids.as_slice(), [2, 1]);
    shard.assert_quiet("nothing more");
}

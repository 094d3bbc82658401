//! The log under the groups: retention, ephemeral readers, commands, offsets at shutdown.

use super::*;

#[test]
fn retention_drops_old_records_and_a_reader_behind_skips_forward() {
    let h = Harness::new(EmbeddedOptions {
        retention_events: 4,
        ..options(1)
    });
    let mut shard = Shard::new(0);
    let group = GroupKey::client(APP, "slow");
    let conn = shard.conn(1);
    shard.join_whole(&h, conn, 1, &group, QoS::AtLeastOnce).ok();
    h.leave(conn, &group);
    assert_eq!(h.wait_committed(&group, |c| c == [0]), [0]);
    for _ in 0..10 {
        h.publish("d1", "t");
    }
    assert_eq!(h.log.first_offsets(APP), Some(vec![6]));
    assert_eq!(h.log.end_offsets(APP), Some(vec![10]));
    assert_eq!(h.log.group_lag(), [("demo.slow".to_string(), 10)]);
    shard.join_whole(&h, conn, 2, &group, QoS::AtLeastOnce).ok();
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
    shard.join_whole(&h, conn, 1, &group, QoS::AtLeastOnce).ok();
    let sent: BTreeSet<_> = (0..2).map(|_| h.publish("d1", "t")).collect();
    let got = shard.collect(2);
    assert_eq!(offsets(&got).into_iter().collect::<BTreeSet<_>>(), sent);
    h.ack(&group, got.iter().map(|d| d.ack).collect());
    h.leave(conn, &group);
    std::thread::sleep(Duration::from_millis(50));
    assert!(h.log.group_lag().is_empty(), "no offsets stored");
    // Joining again starts at the end again: nothing replayed.
    shard.join_whole(&h, conn, 2, &group, QoS::AtLeastOnce).ok();
    shard.assert_quiet("nothing more");
}

#[test]
fn a_connection_leaving_one_group_keeps_the_other() {
    let h = Harness::default();
    let mut shard = Shard::new(0);
    let conn = shard.conn(1);
    let (g1, g2) = (GroupKey::shared(APP, "a"), GroupKey::shared(APP, "b"));
    shard
        .join(
            &h,
            APP,
            conn,
            1,
            &g1,
            vec![whole(QoS::AtMostOnce, None)],
            flow(),
        )
        .ok();
    shard
        .join(
            &h,
            APP,
            conn,
            2,
            &g2,
            vec![whole(QoS::AtMostOnce, None)],
            flow(),
        )
        .ok();
    h.leave(conn, &g1);
    // The leave is processed by g1's worker; wait until its offsets were stored at leave.
    std::thread::sleep(Duration::from_millis(50));
    h.publish("d1", "t");
    let got = shard.collect(1);
    assert_eq!(got[0].member, 2);
    shard.assert_quiet("nothing more");
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
        .join_whole(&h, shard.conn(1), 1, &group, QoS::AtLeastOnce)
        .ok();
    let sent: Vec<_> = (0..8).map(|i| h.publish(&format!("d{i}"), "t")).collect();
    let got = shard.collect(sent.len());
    h.ack(&group, got.iter().map(|d| d.ack).collect());
    let end = h.log.end_offsets(APP).unwrap_or_default();
    h.shutdown();
    assert_eq!(h.committed(&group), end);
    assert_eq!(h.log.group_lag(), [("demo.c1".to_string(), 0)]);
}

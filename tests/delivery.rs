//! Delivery guarantees seen by real MQTT clients (rumqttc, MQTT 3.1.1 and 5): the QoS 1 window,
//! acknowledgement-driven commits and redelivery with DUP=1, resubscription, and two groups on one
//! connection.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(700);

/// Spec 2.4: with a 3.1.1 window of 5 and no PUBACKs, exactly 5 events are in flight; each PUBACK
/// lets one more through; after a reconnect with the same client id the unacknowledged ones come
/// again with DUP=1 and then the rest, without a gap.
#[test]
fn v311_window_commit_and_redelivery() {
    v311_window(false);
}

/// Spec 2.4 / MQTT 3.3.1.1: DUP=1 only on events that were sent before; events the service had
/// queued for the connection but never sent (held back by the window) must arrive with DUP=0.
#[test]
fn v311_never_sent_events_are_not_dup() {
    v311_window(true);
}

fn v311_window(strict_dup: bool) {
    use rumqttc::QoS;
    let svc = Service::start("[mqtt]\ndefault_receive_maximum = 5");
    let id = if strict_dup {
        "delivery-v311-strict"
    } else {
        "delivery-v311-window"
    };
    let mut o = v3_options(svc.mqtt, id);
    o.set_manual_acks(true);
    let c = V3::connect(o);
    assert_eq!(
        c.subscribe("app/demo", QoS::AtLeastOnce),
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );

    // One device = one partition: the order is fully defined.
    for n in 0..20 {
        svc.ingest_seq("device1", n);
    }
    let mut first = Vec::new();
    while first.len() < 5 {
        let p = c
            .next_publish(Duration::from_secs(5))
            .expect("fewer than 5 events arrived");
        first.push(p);
    }
    assert!(
        c.next_publish(QUIET).is_none(),
        "more than the window of 5 arrived without PUBACKs"
    );
    let seqs: Vec<u64> = first.iter().map(|p| seq_of(&p.payload)).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    assert!(first.iter().all(|p| p.qos == QoS::AtLeastOnce && !p.dup));

    c.client.ack(&first[0]).unwrap();
    c.client.ack(&first[1]).unwrap();
    let mut more = Vec::new();
    while more.len() < 2 {
        more.push(
            c.next_publish(Duration::from_secs(5))
                .expect("the window did not move after 2 PUBACKs"),
        );
    }
    assert!(
        c.next_publish(QUIET).is_none(),
        "more than 2 events arrived after 2 PUBACKs"
    );
    assert_eq!(
        more.iter().map(|p| seq_of(&p.payload)).collect::<Vec<_>>(),
        vec![5, 6]
    );

    c.client.disconnect().unwrap();
    assert!(
        c.wait_end(Duration::from_secs(5)).is_some(),
        "client did not disconnect"
    );
    drop(c);

    // Same client id again: resumes from the committed position (after seq 1).
    let c = V3::connect(v3_options(svc.mqtt, id));
    c.subscribe("app/demo", QoS::AtLeastOnce);
    let mut again = Vec::new();
    while again.last().map(|(s, _)| *s) != Some(19) {
        let p = c
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("resumed stream stopped after {again:?}\n{}", svc.log()));
        again.push((seq_of(&p.payload), p.dup));
        assert!(again.len() <= 40, "runaway redelivery: {again:?}");
    }
    assert_eq!(
        again.iter().map(|&(s, _)| s).collect::<Vec<_>>(),
        (2..20).collect::<Vec<_>>(),
        "order after resuming"
    );
    assert!(
        again[..5].iter().all(|&(_, dup)| dup),
        "the 5 unacknowledged events must come with DUP=1: {again:?}"
    );
    if strict_dup {
        let expected: Vec<(u64, bool)> = (2..20).map(|n| (n, n <= 6)).collect();
        assert_eq!(
            again,
            expected,
            "(seq, dup) after resuming: never-sent events must have DUP=0\n{}",
            svc.log()
        );
    }
    assert!(c.next_publish(QUIET).is_none());
}

/// Spec 2.4: an MQTT 5 client's Receive Maximum (3) bounds the events in flight; the union of
/// both sessions covers every event, and only unacknowledged ones come twice (with DUP=1).
#[test]
fn v5_receive_maximum_commit_and_redelivery() {
    v5_window(false);
}

#[test]
fn v5_never_sent_events_are_not_dup() {
    v5_window(true);
}

fn v5_window(strict_dup: bool) {
    use rumqttc::v5::mqttbytes::QoS;
    let svc = Service::start("[mqtt]\ndefault_receive_maximum = 50");
    let id = if strict_dup {
        "delivery-v5-strict"
    } else {
        "delivery-v5-recvmax"
    };
    let mut o = v5_options(svc.mqtt, id);
    o.set_manual_acks(true);
    o.set_receive_maximum(Some(3));
    let c = V5::connect(o);
    c.subscribe("app/demo", QoS::AtLeastOnce, None);

    let devices = ["device1", "device2", "device3", "device4"];
    for n in 0..12u64 {
        svc.ingest_seq(devices[n as usize % 4], n);
    }
    let mut first = Vec::new();
    while first.len() < 3 {
        first.push(
            c.next_publish(Duration::from_secs(5))
                .expect("fewer than 3 events arrived"),
        );
    }
    assert!(
        c.next_publish(QUIET).is_none(),
        "more than Receive Maximum 3 in flight"
    );
    c.client.ack(&first[0]).unwrap();
    let fourth = c
        .next_publish(Duration::from_secs(5))
        .expect("the window did not move after a PUBACK");
    assert!(
        c.next_publish(QUIET).is_none(),
        "more than 1 event after 1 PUBACK"
    );
    let acked = seq_of(&first[0].payload);
    let unacked: BTreeSet<u64> = first[1..]
        .iter()
        .chain(std::iter::once(&fourth))
        .map(|p| seq_of(&p.payload))
        .collect();
    assert_eq!(unacked.len(), 3);

    c.client.disconnect().unwrap();
    assert!(c.wait_end(Duration::from_secs(5)).is_some());
    drop(c);

    let c = V5::connect(v5_options(svc.mqtt, id));
    c.subscribe("app/demo", QoS::AtLeastOnce, None);
    let mut second: BTreeMap<u64, Vec<bool>> = BTreeMap::new();
    let mut union: BTreeSet<u64> = unacked.iter().copied().chain([acked]).collect();
    while union.len() < 12 || second.len() < 11 {
        let p = c.next_publish(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "resumed stream stopped; second session so far {second:?}\n{}",
                svc.log()
            )
        });
        let s = seq_of(&p.payload);
        union.insert(s);
        second.entry(s).or_default().push(p.dup);
    }
    assert!(c.next_publish(QUIET).is_none());
    assert_eq!(union, (0..12).collect::<BTreeSet<_>>(), "a gap");
    assert!(
        !second.contains_key(&acked),
        "the acknowledged event {acked} came again"
    );
    for (s, dups) in &second {
        assert_eq!(
            dups.len(),
            1,
            "seq {s} delivered {} times in one session",
            dups.len()
        );
        if unacked.contains(s) {
            assert!(dups[0], "unacknowledged seq {s} redelivered without DUP=1");
        } else if strict_dup {
            assert!(
                !dups[0],
                "seq {s} was never sent before but came with DUP=1 (unacked: {unacked:?})\n{}",
                svc.log()
            );
        }
    }
}

/// Spec 2.4 / MQTT 3.8.4: subscribing again to the same filter replaces the subscription (here
/// QoS 0 → QoS 1): each event arrives once, at the new QoS.
#[test]
fn resubscription_replaces() {
    use rumqttc::v5::mqttbytes::QoS;
    let svc = Service::start("");
    let c = V5::connect(v5_options(svc.mqtt, "delivery-resub"));
    c.subscribe("app/demo", QoS::AtMostOnce, None);
    c.subscribe("app/demo", QoS::AtLeastOnce, None);
    for n in 0..6u64 {
        svc.ingest_seq(["device1", "device2", "device3"][n as usize % 3], n);
    }
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    while seen.len() < 6 {
        let p = c
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("missing events: {seen:?}"));
        assert_eq!(p.qos, QoS::AtLeastOnce, "the replacing subscription's QoS");
        *seen.entry(seq_of(&p.payload)).or_default() += 1;
    }
    while let Some(p) = c.next_publish(QUIET) {
        *seen.entry(seq_of(&p.payload)).or_default() += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "an event came more than once: {seen:?}"
    );

    // v3.1.1 too.
    use rumqttc::QoS as Q3;
    let c3 = V3::connect(v3_options(svc.mqtt, "delivery-resub-v3"));
    c3.subscribe("app/demo", Q3::AtMostOnce);
    c3.subscribe("app/demo", Q3::AtLeastOnce);
    for n in 100..104u64 {
        svc.ingest_seq("device2", n);
    }
    let mut seen3 = Vec::new();
    while let Some(p) = c3.next_publish(if seen3.len() < 4 {
        Duration::from_secs(5)
    } else {
        QUIET
    }) {
        seen3.push(seq_of(&p.payload));
    }
    assert_eq!(seen3, vec![100, 101, 102, 103]);
}

/// Spec 2.1: `app/demo` and `$share/x/app/demo` are two groups: each event arrives once per
/// subscription, tagged with that subscription's identifier.
#[test]
fn two_groups_on_one_connection() {
    use rumqttc::v5::mqttbytes::QoS;
    let svc = Service::start("");
    let c = V5::connect(v5_options(svc.mqtt, "delivery-two-groups"));
    c.subscribe("app/demo", QoS::AtLeastOnce, Some(1));
    c.subscribe("$share/x/app/demo", QoS::AtLeastOnce, Some(2));
    for n in 0..4u64 {
        svc.ingest_seq(["device1", "device2", "device3", "device4"][n as usize], n);
    }
    let mut ids: BTreeMap<u64, Vec<Vec<usize>>> = BTreeMap::new();
    let mut count = 0;
    while count < 8 {
        let p = c
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("missing deliveries: {ids:?}"));
        assert_eq!(&p.topic[..], b"app/demo");
        let sub_ids = p
            .properties
            .map(|p| p.subscription_identifiers)
            .unwrap_or_default();
        ids.entry(seq_of(&p.payload)).or_default().push(sub_ids);
        count += 1;
    }
    assert!(
        c.next_publish(QUIET).is_none(),
        "more than two deliveries per event"
    );
    assert_eq!(ids.len(), 4);
    for (s, mut v) in ids {
        v.sort();
        assert_eq!(
            v,
            vec![vec![1], vec![2]],
            "subscription identifiers of seq {s}"
        );
    }
}

/// Spec 2.1: a client's non-shared subscriptions to one application share its group: an event
/// matching several is delivered once, with the highest QoS and every matching identifier.
#[test]
fn overlapping_subscriptions_deliver_once_with_all_identifiers() {
    use rumqttc::v5::mqttbytes::QoS;
    let svc = Service::start("");
    let c = V5::connect(v5_options(svc.mqtt, "delivery-overlap"));
    c.subscribe("app/demo", QoS::AtMostOnce, Some(1));
    c.subscribe("app/demo/device1/#", QoS::AtLeastOnce, Some(2));
    svc.ingest_seq("device1", 1);
    svc.ingest_seq("device2", 2);
    let mut got = BTreeMap::new();
    while let Some(p) = c.next_publish(if got.len() < 2 {
        Duration::from_secs(5)
    } else {
        QUIET
    }) {
        let mut ids = p
            .properties
            .clone()
            .map(|p| p.subscription_identifiers)
            .unwrap_or_default();
        ids.sort();
        assert!(
            got.insert(seq_of(&p.payload), (ids, p.qos)).is_none(),
            "seq delivered twice"
        );
    }
    assert_eq!(got[&1], (vec![1, 2], QoS::AtLeastOnce), "device1 event");
    assert_eq!(got[&2], (vec![1], QoS::AtMostOnce), "device2 event");
}

/// PUBACKs followed at once by DISCONNECT: the acknowledgements reach the group before the
/// session's leave does, so the group's last commit includes them and nothing acknowledged comes
/// again after a reconnect. (The shard batches acks per loop turn; it used to send the leave
/// first, and the acknowledged events were redelivered.)
#[test]
fn acks_right_before_disconnect_are_committed() {
    use std::io::Write;
    let svc = Service::start("");
    let client_id = "acks-then-bye";
    let mut s = raw_subscriber(&svc, client_id, "app/demo", Duration::from_secs(5));
    for n in 1..=4 {
        svc.ingest_seq("device1", n);
    }
    let mut acks = Vec::new();
    for n in 1..=4 {
        let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no PUBLISH");
        let (_, pkid, seq) = raw_publish(h, &body);
        assert_eq!(seq, n);
        acks.extend_from_slice(&packet(0x40, &pkid.to_be_bytes()));
    }
    // The four PUBACKs and the DISCONNECT in one write: one loop turn of the shard.
    acks.extend_from_slice(&[0xE0, 0x00]);
    s.write_all(&acks).unwrap();
    drop(s);
    std::thread::sleep(QUIET);

    let mut s = raw_subscriber(&svc, client_id, "app/demo", Duration::from_secs(5));
    svc.ingest_seq("device1", 5);
    let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no event 5");
    assert_eq!(raw_publish(h, &body).2, 5, "acknowledged events came again");
}

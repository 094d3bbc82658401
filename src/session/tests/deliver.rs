//! Deliveries: the QoS 1 window, binary mode, left groups, teardown, events that cannot be sent,
//! and what an idle session keeps.

use super::*;

#[test]
fn qos1_window_is_respected_and_refilled_on_puback() {
    let (mut c, member) = joined_demo(Some(2), QoS::AtLeastOnce);
    for offset in 0..4 {
        c.s.deliver(delivery(member, offset, QoS::AtLeastOnce, Mode::Structured));
    }
    let out = c.received();
    assert_eq!(out.len(), 2, "Receive Maximum 2: two in flight");
    let ids: Vec<u16> = out
        .iter()
        .map(|p| match p {
            Owned::Publish {
                packet_id: Some(id),
                qos: 1,
                content_type,
                ..
            } => {
                assert_eq!(content_type.as_deref(), Some(STRUCTURED_CONTENT_TYPE));
                *id
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(c.s.inflight_len(), 2);
    c.send(&Packet::PubAck(Ack {
        packet_id: ids[1],
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }));
    let events = c.events();
    assert!(
        matches!(&events[..], [SessionEvent::Ack(t)] if t.offset == 1),
        "{events:?}"
    );
    let out = c.received();
    assert!(
        matches!(&out[..], [Owned::Publish { payload, .. }] if String::from_utf8_lossy(payload).contains("\"n\":2")),
        "{out:?}"
    );
}

#[test]
fn binary_mode_sends_data_as_is_with_attributes_as_user_properties() {
    let (mut c, member) = joined_demo(None, QoS::AtMostOnce);
    let mut d = delivery(member, 0, QoS::AtMostOnce, Mode::Binary);
    d.subscription_ids.push(11);
    c.s.deliver(d);
    let out = c.received();
    let [Owned::Publish {
        payload,
        content_type,
        sub_ids,
        qos: 0,
        ..
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(payload, b"{\"n\":0}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(sub_ids, &vec![11]);
}

#[test]
fn deliveries_of_a_left_group_are_dropped_and_released() {
    let (mut c, member) = joined_demo(None, QoS::AtMostOnce);
    c.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: 3,
        properties: Properties::default(),
        filters: vec!["app/demo", "app/other"],
    }));
    let events = c.events();
    assert!(
        matches!(&events[..], [SessionEvent::Leave { group: g, .. }] if g.name() == Some("demo.c1")),
        "{events:?}"
    );
    assert_eq!(
        c.received(),
        vec![Owned::UnsubAck {
            packet_id: 3,
            codes: vec![0x00, 0x11]
        }]
    );
    c.s.deliver(delivery(member, 0, QoS::AtMostOnce, Mode::Structured));
    assert!(c.received().is_empty());
    assert_eq!(c.s.take_released(), 100);
}

/// Issue #5: what only subscribers and command senders need stays unallocated on an idle
/// connection, and a finished command gives its part back at the next trim.
#[test]
fn idle_sessions_keep_nothing_out_of_line() {
    let size = std::mem::size_of::<Session>();
    assert!(
        size <= 216,
        "Session is {size} bytes (728 with everything inline)"
    );
    let mut c = Client::connected(Version::V5, "c1", None);
    c.send(&Packet::PingReq);
    assert_eq!(c.received(), vec![Owned::PingResp]);
    c.s.trim();
    assert!(c.s.subscribed.is_none() && c.s.inbound.is_none());
    assert!(c.s.close_reason.is_none());

    c.send(&command(
        "command/demo/device1/set",
        QoS::AtLeastOnce,
        3,
        b"x",
    ));
    assert_eq!(c.events().len(), 1);
    c.s.trim();
    assert!(
        c.s.inbound.is_some(),
        "kept while the command is unanswered"
    );
    c.s.command_done(3, Ok(()));
    assert_eq!(c.received(), vec![Owned::PubAck(3, 0)]);
    c.s.trim();
    assert!(c.s.inbound.is_none() && c.s.subscribed.is_none());
    assert_eq!(c.s.subscription_count(), 0);
    assert_eq!(c.s.take_stats(), Stats::default());
}

#[test]
fn teardown_names_the_deliveries_that_were_never_sent() {
    let (mut c, member) = joined_demo(Some(1), QoS::AtLeastOnce);
    for offset in 0..3 {
        c.s.deliver(delivery(member, offset, QoS::AtLeastOnce, Mode::Structured));
    }
    assert_eq!(c.received().len(), 1, "window of one");
    let left = c.s.teardown();
    assert_eq!(left.len(), 1);
    let (group, unsent) = &left[0];
    assert_eq!(group.name(), Some("demo.c1"));
    let offsets: Vec<u64> = unsent.iter().map(|t| t.offset).collect();
    assert_eq!(
        offsets,
        vec![1, 2],
        "offset 0 was sent; 1 and 2 were held back"
    );
}

#[test]
fn an_event_that_cannot_be_encoded_is_acknowledged_not_held() {
    let (mut c, member) = joined_demo(None, QoS::AtLeastOnce);
    let mut d = delivery(member, 0, QoS::AtLeastOnce, Mode::Binary);
    // A content type longer than an MQTT string: the PUBLISH cannot be encoded.
    let mut r = record(0);
    Arc::get_mut(&mut r).unwrap().event.datacontenttype = Some("x".repeat(70_000).as_str().into());
    d.record = r;
    c.s.deliver(d);
    assert!(c.received().is_empty(), "nothing sent");
    let acked: Vec<u64> = c
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Ack(token) => Some(token.offset),
            _ => None,
        })
        .collect();
    assert_eq!(acked, [0], "skipped for good: its offset is acknowledged");
    assert_eq!(c.s.inflight_len(), 0, "its window slot is free again");
    // The next event goes out.
    c.s.deliver(delivery(member, 1, QoS::AtLeastOnce, Mode::Binary));
    let out = c.received();
    assert!(
        matches!(&out[..], [Owned::Publish { qos: 1, .. }]),
        "{out:?}"
    );
    assert!(!c.s.is_closed());
}

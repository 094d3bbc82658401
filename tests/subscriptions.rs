//! Spec 2.1 / 2.6: what a connection is told at CONNECT, shared subscriptions splitting the
//! stream, UNSUBSCRIBE, and ephemeral readers (empty client id).

mod common;

use common::*;
use rumqttc::v5::mqttbytes::v5::UnsubAckReason;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Event, Incoming};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(600);

#[test]
fn connack_v5_advertises_capabilities() {
    let svc = Service::start("max_packet_size = 4096");
    let c = V5::connect(v5_options(svc.mqtt, "subs-connack"));
    let ack = c.connack.clone().unwrap();
    assert!(!ack.session_present);
    let p = ack.properties.expect("CONNACK properties");
    assert_eq!(p.retain_available, Some(0), "Retain Available 0");
    assert_eq!(p.max_packet_size, Some(4096), "Maximum Packet Size");
    assert_ne!(p.wildcard_subscription_available, Some(0));
    assert_ne!(p.subscription_identifiers_available, Some(0));
    assert_ne!(p.shared_subscription_available, Some(0));
    assert!(matches!(p.topic_alias_max, None | Some(0)));
}

#[test]
fn shared_subscription_splits_the_stream() {
    let svc = Service::start("");
    let a = V5::connect(v5_options(svc.mqtt, "subs-share-a"));
    let b = V5::connect(v5_options(svc.mqtt, "subs-share-b"));
    a.subscribe("$share/workers/app/demo", QoS::AtLeastOnce, None);
    b.subscribe("$share/workers/app/demo", QoS::AtLeastOnce, None);
    let devices = ["device1", "device2", "device3", "device4"];
    for n in 0..40u64 {
        svc.ingest_seq(devices[n as usize % 4], n);
    }
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    let mut per = [0usize; 2];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count.len() < 40 && std::time::Instant::now() < deadline {
        for (i, c) in [&a, &b].into_iter().enumerate() {
            if let Some(p) = c.next_publish(Duration::from_millis(50)) {
                *count.entry(seq_of(&p.payload)).or_default() += 1;
                per[i] += 1;
            }
        }
    }
    for c in [&a, &b] {
        while let Some(p) = c.next_publish(QUIET) {
            *count.entry(seq_of(&p.payload)).or_default() += 1;
        }
    }
    assert_eq!(count.len(), 40, "events missing: {count:?}");
    assert!(
        count.values().all(|&n| n == 1),
        "an event went to both members: {count:?}"
    );
    assert!(
        per[0] > 0 && per[1] > 0,
        "one member got everything: {per:?}"
    );
}

#[test]
fn unsubscribe_stops_the_stream() {
    let svc = Service::start("");
    let c = V5::connect(v5_options(svc.mqtt, "subs-unsub"));
    c.subscribe("app/demo", QoS::AtLeastOnce, None);
    svc.ingest_seq("device1", 1);
    assert_eq!(
        seq_of(
            &c.next_publish(Duration::from_secs(5))
                .expect("event before UNSUBSCRIBE")
                .payload
        ),
        1
    );
    c.client.unsubscribe("app/demo").unwrap();
    match c.wait(Duration::from_secs(3), |e| {
        matches!(e, Event::Incoming(Incoming::UnsubAck(_)))
    }) {
        Some(Event::Incoming(Incoming::UnsubAck(u))) => {
            assert_eq!(u.reasons, vec![UnsubAckReason::Success])
        }
        _ => panic!("no UNSUBACK"),
    }
    svc.ingest_seq("device1", 2);
    assert!(
        c.next_publish(QUIET).is_none(),
        "an event after UNSUBSCRIBE"
    );
    // rumqttc reports a failure reason as the end of the connection.
    c.client.unsubscribe("app/readonly").unwrap();
    let end = c.wait_end(Duration::from_secs(3)).expect("no UNSUBACK");
    assert!(
        end.contains("NoSubscriptionExisted"),
        "UNSUBACK 0x11 expected: {end}"
    );
}

/// Empty client id: an ephemeral reader at the end of the log (nothing older is delivered).
#[test]
fn empty_client_id_reads_from_the_end() {
    let svc = Service::start("");
    svc.ingest_seq("device1", 1);
    let mut s = raw_connect(&svc, 5, "", 30);
    s.write_all(&subscribe_packet(5, 1, "app/demo", 0)).unwrap();
    let (h, b) = read_packet(&mut s, Duration::from_secs(3)).expect("SUBACK");
    assert_eq!((h, b.last().copied()), (0x90, Some(0)));
    svc.ingest_seq("device1", 2);
    let (h, b) =
        read_packet(&mut s, Duration::from_secs(5)).expect("no event for the ephemeral reader");
    assert_eq!(h & 0xF0, 0x30);
    // PUBLISH QoS 0: topic, property length, payload.
    let tlen = u16::from_be_bytes([b[0], b[1]]) as usize;
    assert_eq!(&b[2..2 + tlen], b"app/demo");
    let mut i = 2 + tlen;
    let mut plen = 0usize;
    let mut mult = 1;
    loop {
        plen += (b[i] & 0x7f) as usize * mult;
        mult *= 128;
        i += 1;
        if b[i - 1] & 0x80 == 0 {
            break;
        }
    }
    assert_eq!(
        seq_of(&b[i + plen..]),
        2,
        "the older event must not be delivered"
    );
    assert!(read_packet(&mut s, QUIET).is_none(), "more than one event");
}

/// SUBSCRIBE of several filters on a raw socket; returns the SUBACK reason codes.
fn raw_subscribe(s: &mut std::net::TcpStream, level: u8, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut b = 9u16.to_be_bytes().to_vec();
    if level == 5 {
        b.push(0);
    }
    for (f, qos) in filters {
        mqtt_str(f.as_bytes(), &mut b);
        b.push(*qos);
    }
    s.write_all(&packet(0x82, &b)).unwrap();
    let (h, body) = read_packet(s, Duration::from_secs(3)).expect("no SUBACK");
    assert_eq!(h, 0x90);
    assert_eq!(&body[..2], &9u16.to_be_bytes());
    let codes = if level == 5 {
        // v5: skip the property block (a refusal carries a Reason String, issue #12).
        let (props, len_bytes) = var_int(&body[2..]);
        &body[2 + len_bytes + props..]
    } else {
        &body[2..]
    };
    codes.to_vec()
}

/// Spec 2.1: failing filters get their own reason code and never break the others.
#[test]
fn subscribe_reason_codes_per_filter() {
    let svc = Service::start("");
    let filters = [
        ("app/private", 1), // not authorized
        ("app/+", 1),       // wildcard in the wrong place
        ("#", 0),           // bare #
        ("foo/bar", 1),     // not an application filter
        ("app/demo", 2),    // fine: granted QoS 1
        ("app/nosuchapp", 1),
    ];
    let mut s = raw_connect(&svc, 5, "subs-codes-v5", 30);
    let codes = raw_subscribe(&mut s, 5, &filters);
    assert_eq!(
        codes[..5],
        [0x87, 0xA2, 0xA2, 0x8F, 0x01],
        "v5 SUBACK codes (full: {codes:x?})"
    );
    assert!(
        matches!(codes[5], 0x87 | 0x8F),
        "unknown app: {:#x}",
        codes[5]
    );

    let mut s3 = raw_connect(&svc, 4, "subs-codes-v3", 30);
    let codes = raw_subscribe(&mut s3, 4, &filters);
    assert_eq!(
        codes,
        [0x80, 0x80, 0x80, 0x80, 0x01, 0x80],
        "v3.1.1 SUBACK codes"
    );

    // The good filter works on both.
    svc.ingest_seq("device4", 5);
    for (name, sock) in [("v5", &mut s), ("v3", &mut s3)] {
        let (h, _) =
            read_packet(sock, Duration::from_secs(5)).unwrap_or_else(|| panic!("{name}: no event"));
        assert_eq!(h & 0xF0, 0x30, "{name}: not a PUBLISH");
        assert_eq!(h & 0x06, 0x02, "{name}: QoS 1 expected");
    }
}

/// Spec 2.1: content-mode binary (v5 user property): payload = data, attributes as user
/// properties; an unknown content-mode fails with 0x83.
#[test]
fn binary_content_mode() {
    use rumqttc::v5::mqttbytes::v5::SubscribeProperties;
    let svc = Service::start("");
    let c = V5::connect(v5_options(svc.mqtt, "subs-binary"));
    let props = SubscribeProperties {
        id: None,
        user_properties: vec![("content-mode".into(), "binary".into())],
    };
    c.client
        .subscribe_with_properties("app/demo", QoS::AtLeastOnce, props)
        .unwrap();
    c.wait(Duration::from_secs(3), |e| {
        matches!(e, Event::Incoming(Incoming::SubAck(_)))
    })
    .expect("SUBACK");
    assert_eq!(
        svc.ingest("demo", "device2", "temp", "text/plain", b"21.5 C"),
        202
    );
    let p = c
        .next_publish(Duration::from_secs(5))
        .expect("no binary event");
    assert_eq!(&p.payload[..], b"21.5 C");
    let props = p.properties.expect("properties");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    let up: BTreeMap<_, _> = props.user_properties.into_iter().collect();
    assert_eq!(up.get("subject").map(String::as_str), Some("temp"));
    assert_eq!(up.get("device").map(String::as_str), Some("device2"));
    assert_eq!(up.get("application").map(String::as_str), Some("demo"));
    assert_eq!(up.get("specversion").map(String::as_str), Some("1.0"));
    assert!(
        up.contains_key("id")
            && up.contains_key("source")
            && up.contains_key("type")
            && up.contains_key("time"),
        "{up:?}"
    );

    let bad = SubscribeProperties {
        id: None,
        user_properties: vec![("content-mode".into(), "weird".into())],
    };
    c.client
        .subscribe_with_properties("app/readonly", QoS::AtLeastOnce, bad)
        .unwrap();
    let end = c.wait_end(Duration::from_secs(3)).expect("no SUBACK");
    assert!(
        end.contains("SubFail { reason: ImplementationSpecific }"),
        "0x83 expected: {end}"
    );
}

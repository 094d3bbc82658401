//! Replay (spec 2.1, issue #14 item 5): the MQTT 5 SUBSCRIBE user property `start` sets where a
//! group that does not exist yet begins; an existing group resumes and ignores it. Embedded
//! backend, real binary, real clients.

mod common;

use common::*;
use rumqttc::v5::mqttbytes::v5::{SubscribeProperties, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Event, Incoming};
use std::io::Write;
use std::time::{Duration, SystemTime};

/// Subscribes `filter` with `start=<value>` and waits for the SUBACK.
fn subscribe_from(c: &V5, filter: &str, value: &str) -> Vec<SubscribeReasonCode> {
    let props = SubscribeProperties {
        id: None,
        user_properties: vec![("start".into(), value.into())],
    };
    c.client
        .subscribe_with_properties(filter, QoS::AtLeastOnce, props)
        .unwrap();
    match c.wait(Duration::from_secs(5), |e| {
        matches!(e, Event::Incoming(Incoming::SubAck(_)))
    }) {
        Some(Event::Incoming(Incoming::SubAck(s))) => s.return_codes,
        _ => panic!("no SUBACK for {filter} start={value}"),
    }
}

/// The `data.seq` of every event delivered until none comes for `quiet`.
fn drain(c: &V5, quiet: Duration) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(p) = c.next_publish(quiet) {
        seqs.push(seq_of(&p.payload));
    }
    seqs
}

fn granted(codes: &[SubscribeReasonCode]) -> bool {
    codes
        .iter()
        .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
}

/// Old events 1..=3, a boundary time, newer events 4..=6; each new group sees what its `start`
/// selects, an existing group ignores `start`.
#[test]
fn start_selects_where_a_new_group_begins() {
    let svc = Service::start("");
    // One device: one partition, so the order is the ingest order.
    for n in 1..=3 {
        svc.ingest_seq("device1", n);
    }
    // Event times come from the ingest clock; keep a whole second either side of the boundary
    // so the boundary is strictly between the two batches even at second precision.
    std::thread::sleep(Duration::from_millis(1100));
    let boundary = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_millis(1100));
    for n in 4..=6 {
        svc.ingest_seq("device1", n);
    }
    let quiet = Duration::from_millis(1500);
    let all: Vec<u64> = (1..=6).collect();

    let c = V5::connect(v5_options(svc.mqtt, "replay-earliest"));
    assert!(granted(&subscribe_from(&c, "app/demo", "earliest")));
    assert_eq!(drain(&c, quiet), all, "earliest: everything retained");

    let c = V5::connect(v5_options(svc.mqtt, "replay-time"));
    assert!(granted(&subscribe_from(&c, "app/demo", &boundary)));
    assert_eq!(drain(&c, quiet), vec![4, 5, 6], "start={boundary}");

    let c = V5::connect(v5_options(svc.mqtt, "replay-ago"));
    assert!(granted(&subscribe_from(&c, "app/demo", "-1h")));
    assert_eq!(drain(&c, quiet), all, "start=-1h");

    let latest = V5::connect(v5_options(svc.mqtt, "replay-latest"));
    assert!(granted(&subscribe_from(&latest, "app/demo", "latest")));
    assert_eq!(
        drain(&latest, quiet),
        Vec::<u64>::new(),
        "latest: nothing old"
    );

    // Ephemeral readers (empty client id) have no committed offsets: `start` applies too.
    let e = V5::connect(v5_options(svc.mqtt, ""));
    assert!(granted(&subscribe_from(&e, "app/demo", "earliest")));
    assert_eq!(drain(&e, quiet), all, "ephemeral reader from earliest");

    // An existing group resumes at its committed offsets and ignores `start`.
    let first = V5::connect(v5_options(svc.mqtt, "replay-keep-1"));
    assert!(granted(&subscribe_from(
        &first,
        "$share/keep/app/demo",
        "latest"
    )));
    first.client.disconnect().unwrap();
    first
        .wait_end(Duration::from_secs(5))
        .expect("disconnected");
    svc.ingest_seq("device1", 7);
    assert_eq!(
        drain(&latest, quiet),
        vec![7],
        "a live group gets the new event"
    );
    let second = V5::connect(v5_options(svc.mqtt, "replay-keep-2"));
    assert!(granted(&subscribe_from(
        &second,
        "$share/keep/app/demo",
        "earliest"
    )));
    assert_eq!(
        drain(&second, quiet),
        vec![7],
        "the existing group resumed where it was, not at earliest"
    );
}

/// A v5 SUBSCRIBE of `filters` (QoS 1 each) carrying user property `start`.
fn subscribe_with_start(pkid: u16, filters: &[&str], start: &str) -> Vec<u8> {
    let mut props = vec![0x26];
    mqtt_str(b"start", &mut props);
    mqtt_str(start.as_bytes(), &mut props);
    let mut b = pkid.to_be_bytes().to_vec();
    varint(props.len(), &mut b);
    b.extend_from_slice(&props);
    for f in filters {
        mqtt_str(f.as_bytes(), &mut b);
        b.push(1);
    }
    packet(0x82, &b)
}

/// (reason codes, Reason String) of a v5 SUBACK body.
fn suback(body: &[u8]) -> (Vec<u8>, String) {
    let (len, used) = var_int(&body[2..]);
    let props = &body[2 + used..2 + used + len];
    let mut reason = String::new();
    if props.first() == Some(&0x1F) {
        let n = usize::from(u16::from_be_bytes([props[1], props[2]]));
        reason = String::from_utf8_lossy(&props[3..3 + n]).into_owned();
    }
    (body[2 + used + len..].to_vec(), reason)
}

/// Spec 2.1: any other value fails that SUBSCRIBE's filters with 0x83 and says the allowed
/// forms; the connection stays usable and a SUBSCRIBE without `start` is granted.
#[test]
fn invalid_start_is_refused_with_0x83() {
    let svc = Service::start("");
    let mut s = raw_connect(&svc, 5, "replay-bad", 30);
    for bad in ["yesterday", "-soon", "2026-12-07T17:00:00", "EARLIEST"] {
        s.write_all(&subscribe_with_start(
            1,
            &["app/demo", "app/demo/device1/seq"],
            bad,
        ))
        .unwrap();
        let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no SUBACK");
        assert_eq!(h, 0x90, "not a SUBACK: {body:?}");
        let (codes, reason) = suback(&body);
        assert_eq!(codes, vec![0x83, 0x83], "start={bad}");
        assert!(
            reason.contains(bad) && reason.contains("earliest") && reason.contains("RFC 3339"),
            "{reason}"
        );
    }
    s.write_all(&subscribe_packet(5, 2, "app/demo", 1)).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no SUBACK");
    assert_eq!(h, 0x90);
    assert_eq!(suback(&body).0, vec![0x01], "granted QoS 1 without start");
    // A valid `start` next to it on the same connection works as well.
    s.write_all(&subscribe_with_start(3, &["app/demo/device1/seq"], "-15m"))
        .unwrap();
    let (_, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no SUBACK");
    assert_eq!(suback(&body).0, vec![0x01]);
}

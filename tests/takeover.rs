//! Spec 2.6: a second connection with the same client id takes over; the first is closed
//! (MQTT 5: DISCONNECT 0x8E session taken over).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn v5_takeover() {
    use rumqttc::v5::mqttbytes::QoS;
    let svc = Service::start("");
    let id = "takeover-v5";
    let mut first = raw_connect(&svc, 5, id, 30);
    std::io::Write::write_all(&mut first, &subscribe_packet(5, 1, "app/demo", 1)).unwrap();
    let (h, _) = read_packet(&mut first, Duration::from_secs(3)).expect("no SUBACK");
    assert_eq!(h, 0x90);

    let second = V5::connect(v5_options(svc.mqtt, id));
    assert_eq!(
        expect_disconnect(&mut first, Duration::from_secs(3)),
        Some(0x8E),
        "DISCONNECT session taken over"
    );
    assert!(
        closed_within(&mut first, Duration::from_secs(2)),
        "first connection not closed"
    );

    second.subscribe("app/demo", QoS::AtLeastOnce, None);
    svc.ingest_seq("device1", 7);
    let p = second
        .next_publish(Duration::from_secs(5))
        .expect("the second connection got no event");
    assert_eq!(seq_of(&p.payload), 7);
    assert!(
        second.wait_end(Duration::from_millis(300)).is_none(),
        "the second connection ended"
    );
}

#[test]
fn v311_takeover() {
    use rumqttc::QoS;
    let svc = Service::start("");
    let id = "takeover-v311";
    let mut first = raw_connect(&svc, 4, id, 30);
    let second = V3::connect(v3_options(svc.mqtt, id));
    let (bytes, closed) = read_until_closed(&mut first, Duration::from_secs(3));
    assert!(closed, "first v3.1.1 connection not closed");
    assert!(
        bytes.is_empty(),
        "bytes sent to the first 3.1.1 connection: {bytes:?}"
    );

    second.subscribe("app/demo", QoS::AtLeastOnce);
    svc.ingest_seq("device2", 8);
    let p = second
        .next_publish(Duration::from_secs(5))
        .expect("the second connection got no event");
    assert_eq!(seq_of(&p.payload), 8);
}

/// Spec 2.4 + 2.6: what the first connection had not acknowledged comes to the one that took
/// over (same client id = same group), with DUP=1.
#[test]
fn v5_takeover_redelivers_unacked() {
    use rumqttc::v5::mqttbytes::QoS;
    let svc = Service::start("");
    let id = "takeover-v5-unacked";
    let mut first = raw_connect(&svc, 5, id, 30);
    std::io::Write::write_all(&mut first, &subscribe_packet(5, 1, "app/demo", 1)).unwrap();
    let (h, _) = read_packet(&mut first, Duration::from_secs(3)).expect("no SUBACK");
    assert_eq!(h, 0x90);
    svc.ingest_seq("device3", 41);
    let (h, _) =
        read_packet(&mut first, Duration::from_secs(5)).expect("first connection got no event");
    assert_eq!(h & 0xF0, 0x30, "not a PUBLISH: {h:#x}");
    // No PUBACK. Take over.
    let second = V5::connect(v5_options(svc.mqtt, id));
    assert_eq!(
        expect_disconnect(&mut first, Duration::from_secs(3)),
        Some(0x8E)
    );
    second.subscribe("app/demo", QoS::AtLeastOnce, None);
    let p = second
        .next_publish(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("unacked event not redelivered\n{}", svc.log()));
    assert_eq!(seq_of(&p.payload), 41);
    assert!(p.dup, "redelivered event without DUP=1");
}

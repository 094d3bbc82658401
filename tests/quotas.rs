//! Subscription quota (#17 item 4): one connection holds at most
//! `mqtt.max_subscriptions_per_connection` filters (default 1,000); beyond it SUBACK `0x97`
//! (v3.1.1 `0x80`), while other clients, and the filters granted, get every event.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use rumqttc::v5::mqttbytes::QoS;

/// A SUBSCRIBE of every filter in `filters` at `qos`.
fn subscribe_many(level: u8, pkid: u16, filters: &[String], qos: u8) -> Vec<u8> {
    let mut b = pkid.to_be_bytes().to_vec();
    if level == 5 {
        b.push(0);
    }
    for f in filters {
        mqtt_str(f.as_bytes(), &mut b);
        b.push(qos);
    }
    packet(0x82, &b)
}

/// The reason codes of a SUBACK read from `s`.
fn suback(s: &mut std::net::TcpStream, level: u8) -> Vec<u8> {
    let (h, body) = read_packet(s, Duration::from_secs(10)).expect("no SUBACK");
    assert_eq!(h, 0x90, "not a SUBACK: {h:#x}");
    // Packet id, then (v5) the property block: a refusal carries a Reason String.
    if level == 5 {
        let (props, len_bytes) = var_int(&body[2..]);
        body[2 + len_bytes + props..].to_vec()
    } else {
        body[2..].to_vec()
    }
}

/// The topics of the QoS 0 PUBLISHes read from `s` until it is quiet for `quiet`.
fn topics_until_quiet(s: &mut std::net::TcpStream, quiet: Duration) -> Vec<String> {
    let mut topics = Vec::new();
    while let Some((h, body)) = read_packet(s, quiet) {
        assert_eq!(h & 0xf0, 0x30, "not a PUBLISH: {h:#x}");
        let len = u16::from_be_bytes([body[0], body[1]]) as usize;
        topics.push(String::from_utf8(body[2..2 + len].to_vec()).unwrap());
    }
    topics
}

#[test]
fn eleven_hundred_filters_the_last_hundred_refused_and_a_steady_subscriber_misses_nothing() {
    let svc = Service::start("");
    let steady = V5::connect(v5_options(svc.mqtt, "quota-steady"));
    steady.subscribe("app/demo", QoS::AtLeastOnce, None);

    // device1 among the first thousand, device2 among the last hundred.
    let filters: Vec<String> = (0..1_100)
        .map(|i| match i {
            0 => "app/demo/device1/#".to_owned(),
            1_050 => "app/demo/device2/#".to_owned(),
            i => format!("app/demo/d{i}/#"),
        })
        .collect();
    let mut hostile = raw_connect(&svc, 5, "quota-hostile", 60);
    hostile
        .write_all(&subscribe_many(5, 1, &filters, 0))
        .unwrap();
    let codes = suback(&mut hostile, 5);
    assert_eq!(codes.len(), 1_100);
    assert!(
        codes[..1_000].iter().all(|&c| c == 0x00),
        "{:?}",
        &codes[..1_000]
    );
    assert!(
        codes[1_000..].iter().all(|&c| c == 0x97),
        "{:?}",
        &codes[1_000..]
    );

    // A held filter again is replaced (granted, not counted twice); a new one is refused.
    let again = vec!["app/demo/d5/#".to_owned(), "app/demo/d2000/#".to_owned()];
    hostile.write_all(&subscribe_many(5, 2, &again, 0)).unwrap();
    assert_eq!(suback(&mut hostile, 5), [0x00, 0x97]);

    // MQTT 3.1.1: the same quota, refused with 0x80.
    let mut v3 = raw_connect(&svc, 4, "quota-v3", 60);
    v3.write_all(&subscribe_many(4, 1, &filters, 0)).unwrap();
    let codes = suback(&mut v3, 4);
    assert!(codes[..1_000].iter().all(|&c| c == 0x00));
    assert!(
        codes[1_000..].iter().all(|&c| c == 0x80),
        "{:?}",
        &codes[1_000..]
    );
    drop(v3);

    for n in 0..20 {
        let device = if n % 2 == 0 { "device1" } else { "device2" };
        let status = svc.ingest(
            "demo",
            device,
            "seq",
            "application/json",
            format!("{{\"seq\":{n}}}").as_bytes(),
        );
        assert_eq!(status, 202);
    }
    // The steady subscriber gets all twenty, each once (in order per device: two devices are
    // two partitions).
    let mut got: Vec<u64> = (0..20)
        .map(|i| {
            let p = steady
                .next_publish(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("steady subscriber: event {i} missing"));
            seq_of(&p.payload)
        })
        .collect();
    for parity in [0, 1] {
        let of_device: Vec<u64> = got.iter().copied().filter(|n| n % 2 == parity).collect();
        assert!(of_device.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    }
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    // The hostile connection gets what its granted filters match: device1, not device2.
    let topics = topics_until_quiet(&mut hostile, Duration::from_secs(2));
    assert_eq!(topics, vec!["app/demo/device1/seq".to_owned(); 10]);
}

#[test]
fn the_quota_is_configurable() {
    let svc = Service::start("[mqtt]\nmax_subscriptions_per_connection = 2\n");
    let mut s = raw_connect(&svc, 5, "quota-small", 60);
    let filters: Vec<String> = ["device1", "device2", "device3"]
        .iter()
        .map(|d| format!("app/demo/{d}/#"))
        .collect();
    s.write_all(&subscribe_many(5, 1, &filters, 1)).unwrap();
    assert_eq!(suback(&mut s, 5), [0x01, 0x01, 0x97]);
}

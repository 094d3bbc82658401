//! Hostile and broken clients on raw sockets: garbage, malformed and oversized packets, half-sent
//! packets, silence, random bytes, an unsupported protocol level — while a normal subscriber keeps
//! receiving every event.

mod common;

use common::*;
use rumqttc::v5::mqttbytes::QoS;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// A QoS 1 subscriber to `app/demo`, connected before the hostile client.
fn subscriber(svc: &Service, id: &str) -> V5 {
    let c = V5::connect(v5_options(svc.mqtt, id));
    c.subscribe("app/demo", QoS::AtLeastOnce, None);
    c
}

/// Ingests `range` and asserts that `c` receives every one of them.
fn assert_receives(svc: &Service, c: &V5, range: std::ops::Range<u64>) {
    let want: BTreeSet<u64> = range.clone().collect();
    for n in range {
        svc.ingest_seq(
            ["device1", "device2", "device3", "device4"][n as usize % 4],
            n,
        );
    }
    let mut got = BTreeSet::new();
    while !want.is_subset(&got) {
        let p = c
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("subscriber got {got:?}, wanted {want:?}\n{}", svc.log()));
        got.insert(seq_of(&p.payload));
    }
}

fn assert_alive(svc: &mut Service) {
    assert!(
        matches!(svc.child.try_wait(), Ok(None)),
        "the service process died:\n{}",
        svc.log()
    );
    let r = ureq::get(&format!("http://{}/healthz", svc.http))
        .call()
        .expect("healthz");
    assert_eq!(r.status(), 200);
}

#[test]
fn garbage_before_connect_closes_only_that_connection() {
    let mut svc = Service::start("");
    let sub = subscriber(&svc, "rob-garbage-sub");
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        &[0x30, 0x02, 0, 0][..],
    ] {
        let mut s = svc.raw();
        s.write_all(garbage).unwrap();
        let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(3));
        assert!(closed, "connection sending {garbage:?} not closed");
        assert!(
            bytes.is_empty() || bytes[0] != 0x20,
            "a CONNACK for garbage {garbage:?}: {bytes:?}"
        );
    }
    assert_receives(&svc, &sub, 0..8);
    assert_alive(&mut svc);
}

#[test]
fn malformed_packet_after_connect() {
    let mut svc = Service::start("");
    let sub = subscriber(&svc, "rob-malformed-sub");
    // SUBSCRIBE with reserved flags 0000 instead of 0010.
    let mut bad = subscribe_packet(5, 1, "app/demo", 1);
    bad[0] = 0x80;
    let mut s = raw_connect(&svc, 5, "rob-malformed-v5", 30);
    s.write_all(&bad).unwrap();
    assert_eq!(
        expect_disconnect(&mut s, Duration::from_secs(3)),
        Some(0x81),
        "v5: DISCONNECT malformed packet"
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "v5: not closed after DISCONNECT"
    );

    let mut bad3 = subscribe_packet(4, 1, "app/demo", 1);
    bad3[0] = 0x80;
    let mut s = raw_connect(&svc, 4, "rob-malformed-v3", 30);
    s.write_all(&bad3).unwrap();
    let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(closed, "v3.1.1: not closed after a malformed packet");
    assert!(
        bytes.is_empty(),
        "v3.1.1: got bytes before the close: {bytes:?}"
    );

    assert_receives(&svc, &sub, 0..4);
    assert_alive(&mut svc);
}

#[test]
fn oversized_publish_is_refused_from_its_header() {
    let mut svc = Service::start("max_packet_size = 2048");
    let sub = subscriber(&svc, "rob-oversize-sub");
    let mut s = raw_connect(&svc, 5, "rob-oversize-v5", 30);
    // PUBLISH QoS 0 announcing 4096 bytes; only the fixed header is sent.
    let mut header = vec![0x30];
    varint(4096, &mut header);
    s.write_all(&header).unwrap();
    assert_eq!(
        expect_disconnect(&mut s, Duration::from_secs(3)),
        Some(0x95),
        "DISCONNECT packet too large"
    );
    assert!(closed_within(&mut s, Duration::from_secs(2)));

    // At the limit is fine: a 2048-byte QoS 0 command is accepted (no DISCONNECT).
    let topic = b"command/demo/device1/big";
    let mut body = Vec::new();
    mqtt_str(topic, &mut body);
    body.push(0); // no properties
    let total_header = 1 + 2; // first byte + 2-byte remaining length
    let payload_len = 2048 - total_header - body.len();
    body.extend(std::iter::repeat(b'x').take(payload_len));
    let p = packet(0x30, &body);
    assert_eq!(p.len(), 2048);
    let mut s = raw_connect(&svc, 5, "rob-atlimit-v5", 30);
    s.write_all(&p).unwrap();
    s.write_all(&[0xC0, 0]).unwrap();
    let (h, _) =
        read_packet(&mut s, Duration::from_secs(3)).expect("no answer after a packet at the limit");
    assert_eq!(
        h, 0xD0,
        "expected PINGRESP after a packet of exactly max_packet_size"
    );

    // v3.1.1: just closed.
    let mut s = raw_connect(&svc, 4, "rob-oversize-v3", 30);
    s.write_all(&header).unwrap();
    let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(
        closed && bytes.is_empty(),
        "v3.1.1 oversize: closed={closed} bytes={bytes:?}"
    );

    assert_receives(&svc, &sub, 0..4);
    assert_alive(&mut svc);
}

#[test]
fn half_sent_packets() {
    let mut svc = Service::start("connect_timeout = \"1s\"");
    let sub = subscriber(&svc, "rob-half-sub");

    // Half a CONNECT, a pause, the rest: a normal CONNACK.
    let connect = connect_packet(5, "rob-half-slow", 30);
    let mut s = svc.raw();
    let mid = connect.len() / 2;
    s.write_all(&connect[..mid]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&connect[mid..]).unwrap();
    let (h, body) =
        read_packet(&mut s, Duration::from_secs(3)).expect("no CONNACK after a split CONNECT");
    assert_eq!((h, body[1]), (0x20, 0));

    // Half a CONNECT, then nothing: closed by the connect timeout (1 s).
    let mut stall = svc.raw();
    let started = Instant::now();
    stall
        .write_all(&connect_packet(5, "rob-half-stall", 30)[..mid])
        .unwrap();
    // Meanwhile the others keep working.
    assert_receives(&svc, &sub, 0..4);
    let (bytes, closed) = read_until_closed(&mut stall, Duration::from_secs(4));
    let took = started.elapsed();
    assert!(closed, "a stalled half CONNECT was not closed within 4 s");
    assert!(
        took >= Duration::from_millis(800),
        "closed too early ({took:?})"
    );
    assert!(
        took <= Duration::from_millis(2500),
        "closed too late ({took:?})"
    );
    assert!(
        bytes.is_empty() || bytes[0] != 0x20,
        "got a CONNACK: {bytes:?}"
    );

    // The split-CONNECT connection is still alive.
    s.write_all(&[0xC0, 0]).unwrap();
    let (h, _) = read_packet(&mut s, Duration::from_secs(3)).expect("no PINGRESP");
    assert_eq!(h, 0xD0);
    assert_receives(&svc, &sub, 4..8);
    assert_alive(&mut svc);
}

#[test]
fn keep_alive_expiry_and_pings() {
    let svc = Service::start("");
    let mut silent = raw_connect(&svc, 5, "rob-ka-silent", 1);
    let connected = Instant::now();
    let mut pinger = raw_connect(&svc, 5, "rob-ka-pinger", 1);

    let p = std::thread::spawn(move || {
        // 3 s of PINGREQ every 500 ms: each answered, never disconnected.
        for i in 0..6 {
            pinger
                .write_all(&[0xC0, 0])
                .unwrap_or_else(|e| panic!("ping {i}: {e}"));
            let (h, b) = read_packet(&mut pinger, Duration::from_secs(2))
                .unwrap_or_else(|| panic!("no PINGRESP {i}"));
            assert_eq!(h, 0xD0, "ping {i}: got {h:#x} {b:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    });

    let reason = expect_disconnect(&mut silent, Duration::from_secs(4));
    let took = connected.elapsed();
    assert_eq!(reason, Some(0x8D), "DISCONNECT keep alive timeout");
    assert!(
        took >= Duration::from_millis(1400) && took <= Duration::from_millis(2600),
        "after {took:?}"
    );
    assert!(closed_within(&mut silent, Duration::from_secs(2)));
    p.join().expect("the pinging client was disturbed");
}

#[test]
fn many_connections_with_random_bytes() {
    let mut svc = Service::start("");
    let sub = subscriber(&svc, "rob-random-sub");
    let addr = svc.mqtt;
    let http = svc.http;
    // Ingest 40 events while 200 connections send random bytes.
    let ingester = std::thread::spawn(move || {
        for n in 0..40u64 {
            let url = format!(
                "http://{http}/api/v1/apps/demo/devices/device{}/events/seq",
                n % 4 + 1
            );
            let r = ureq::post(&url)
                .set("Content-Type", "application/json")
                .send_string(&format!("{{\"seq\":{n}}}"));
            assert_eq!(r.map(|r| r.status()).unwrap_or(0), 202);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut open = Vec::new();
    for i in 0..200 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let len = (rng.next() % 300) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        match i % 4 {
            // A plausible CONNECT start, then noise.
            0 => bytes
                .splice(0..0, connect_packet(5, "x", 10)[..8].iter().copied())
                .for_each(drop),
            // A whole CONNECT, then noise as packets.
            1 => bytes
                .splice(
                    0..0,
                    connect_packet(if i % 8 == 1 { 4 } else { 5 }, &format!("rnd{i}"), 10),
                )
                .for_each(drop),
            _ => {}
        }
        let _ = s.write_all(&bytes);
        if i % 3 == 0 {
            open.push(s); // leave some open (and silent) a while
        }
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    ingester.join().unwrap();
    let mut got = BTreeSet::new();
    while got.len() < 40 {
        let p = sub.next_publish(Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "subscriber got only {} of 40: {got:?}\n{}",
                got.len(),
                svc.log()
            )
        });
        got.insert(seq_of(&p.payload));
    }
    assert_eq!(got, (0..40).collect());
    drop(open);
    assert_receives(&svc, &sub, 100..104);
    assert_alive(&mut svc);
}

#[test]
fn unsupported_protocol_level() {
    let svc = Service::start("");
    // MQTT 3.1 (MQIsdp, level 3): CONNACK return code 1 (unacceptable protocol version), close.
    let mut b = Vec::new();
    mqtt_str(b"MQIsdp", &mut b);
    b.push(3);
    b.push(0x02);
    b.extend_from_slice(&30u16.to_be_bytes());
    mqtt_str(b"rob-mqisdp", &mut b);
    let mut s = svc.raw();
    s.write_all(&packet(0x10, &b)).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(3)).expect("no CONNACK");
    assert_eq!(
        (h, body.as_slice()),
        (0x20, &[0u8, 1][..]),
        "CONNACK return code 1"
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "not closed after refusing"
    );

    // "MQTT" with an unknown level 6: v5-style CONNACK 0x84 or 3.1.1 return code 1; closed.
    let mut s = svc.raw();
    let mut c = connect_packet(5, "rob-level6", 30);
    c[8] = 6;
    s.write_all(&c).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(3)).expect("no CONNACK for level 6");
    assert_eq!(h, 0x20);
    assert!(
        body == [0, 1] || body.get(1) == Some(&0x84),
        "CONNACK for level 6: {body:?}"
    );
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

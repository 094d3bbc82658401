//! 10,000 random, mutated and truncated packets from 100 connections, while a normal subscriber
//! keeps receiving every event: hostile input costs the sender its connection, nobody else
//! anything.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use mqtt_integration::protocol::{
    Ack, Packet, Properties, Publish, QoS, ReasonCode, Subscribe, SubscribeFilter,
    SubscribeOptions, Unsubscribe, Version,
};

const CONNECTIONS: usize = 100;
const PACKETS_PER_CONNECTION: usize = 100;
const EVENTS: u64 = 60;

/// One packet a hostile client might send: a valid one, a truncated one, a mutated one, or noise.
fn hostile_packet(rng: &mut Rng, version: Version) -> Vec<u8> {
    let topics = [
        "app/demo",
        "app/+",
        "#",
        "command/demo/device1/x",
        "app/demo/device1/#",
        "$share/h/app/demo",
        "a/b",
    ];
    let topic = topics[(rng.next() % topics.len() as u64) as usize];
    let packet_id = (rng.next() % 65535) as u16 + 1;
    let payload: Vec<u8> = (0..rng.next() % 64).map(|_| rng.next() as u8).collect();
    let packet = match rng.next() % 6 {
        0 => Packet::Subscribe(Subscribe {
            packet_id,
            properties: Properties::default(),
            filters: vec![SubscribeFilter {
                filter: topic,
                options: SubscribeOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscribeOptions::default()
                },
            }],
        }),
        1 => Packet::Publish(Publish {
            dup: false,
            qos: if rng.next() % 2 == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            },
            retain: false,
            topic: if topic.contains(['+', '#']) {
                "command/demo/device1/y"
            } else {
                topic
            },
            packet_id: None,
            properties: Properties::default(),
            payload: &payload,
        }),
        2 => Packet::Unsubscribe(Unsubscribe {
            packet_id,
            properties: Properties::default(),
            filters: vec![topic],
        }),
        3 => Packet::PubAck(Ack {
            packet_id,
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }),
        4 => Packet::PingReq,
        _ => return payload, // noise
    };
    let packet = match packet {
        Packet::Publish(mut p) if p.qos != QoS::AtMostOnce => {
            p.packet_id = Some(packet_id);
            Packet::Publish(p)
        }
        other => other,
    };
    let mut out = BytesMut::new();
    if packet.encode(version, &mut out).is_err() {
        return payload;
    }
    let mut bytes = out.to_vec();
    match rng.next() % 4 {
        0 => bytes.truncate((rng.next() as usize) % bytes.len().max(1)), // truncated
        1 => {
            let i = (rng.next() as usize) % bytes.len();
            bytes[i] ^= 1 << (rng.next() % 8); // one bit flipped
        }
        _ => {} // valid
    }
    bytes
}

/// Sends `PACKETS_PER_CONNECTION` hostile packets after a CONNECT, reconnecting whenever the
/// service closes the connection. Returns how many packets were sent.
fn attack(addr: SocketAddr, seed: u64, id: usize) -> usize {
    let mut rng = Rng(seed);
    let mut sent = 0;
    while sent < PACKETS_PER_CONNECTION {
        let Ok(mut s) = TcpStream::connect(addr) else {
            continue;
        };
        let version = if rng.next() % 2 == 0 {
            Version::V5
        } else {
            Version::V311
        };
        let level = if version == Version::V5 { 5 } else { 4 };
        if s.write_all(&connect_packet(level, &format!("hostile-{id}"), 0))
            .is_err()
        {
            continue;
        }
        while sent < PACKETS_PER_CONNECTION {
            let p = hostile_packet(&mut rng, version);
            sent += 1;
            if s.write_all(&p).is_err() {
                break; // closed by the service: reconnect
            }
        }
    }
    sent
}

#[test]
fn ten_thousand_hostile_packets_do_not_disturb_a_subscriber() {
    let svc = Service::start("[mqtt]\nmax_queued_bytes = 65536\n");
    let sub = V3::connect(v3_options(svc.mqtt, "hostile-watcher"));
    sub.subscribe("app/demo", rumqttc::QoS::AtLeastOnce);

    let addr = svc.mqtt;
    let attackers: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                (0..CONNECTIONS / 4)
                    .map(|c| attack(addr, 0x5eed_0000 + (t * 1000 + c) as u64, t * 1000 + c))
                    .sum::<usize>()
            })
        })
        .collect();
    for n in 0..EVENTS {
        svc.ingest_seq(&format!("device{}", n % 4 + 1), n);
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent: usize = attackers.into_iter().map(|a| a.join().unwrap()).sum();
    assert_eq!(sent, CONNECTIONS * PACKETS_PER_CONNECTION);

    let mut got = BTreeSet::new();
    while got.len() < EVENTS as usize {
        let p = sub
            .next_publish(Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "the subscriber got {} of {EVENTS}:\n{}",
                    got.len(),
                    svc.log()
                )
            });
        got.insert(seq_of(&p.payload));
    }
    assert_eq!(got, (0..EVENTS).collect(), "every event, none lost");
    assert!(
        ureq::get(&format!("http://{}/healthz", svc.http))
            .call()
            .is_ok(),
        "still alive"
    );
}

//! MQTT codec benchmarks: PUBLISH decode and encode in MQTT 3.1.1 and 5, and the outbound
//! hot path `encode_publish_header` with pre-encoded user properties.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mqtt_integration::protocol::{
    decode, encode_publish_header, encode_user_property, Packet, Properties, Publish,
    PublishHeader, PublishProperties, QoS, Version,
};

const PAYLOAD: [u8; 256] = [0x5A; 256];
const TOPIC: &str = "devices/d-0042/events/telemetry";

fn user_properties() -> Vec<(&'static str, &'static str)> {
    vec![
        ("specversion", "1.0"),
        ("id", "3f0b8a2c-6c1e-4b7e-9a51-0d5c2f7d9e11"),
        ("source", "devices/d-0042"),
        ("type", "io.example.telemetry"),
        ("time", "2024-05-01T12:00:00Z"),
        ("subject", "temperature"),
        ("dataschema", "https://example.com/schemas/telemetry"),
        ("application", "app-7"),
        ("device", "d-0042"),
        ("partition", "3"),
    ]
}

fn publish<'a>(user: &[(&'a str, &'a str)]) -> Publish<'a> {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TOPIC,
        packet_id: Some(4711),
        properties: Properties {
            content_type: Some("application/json"),
            subscription_identifiers: vec![17],
            user_properties: user.to_vec(),
            ..Properties::default()
        },
        payload: &PAYLOAD,
    }
}

fn bench_publish(c: &mut Criterion) {
    let user = user_properties();
    let mut group = c.benchmark_group("publish");
    for (name, version) in [("v311", Version::V311), ("v5", Version::V5)] {
        let packet = Packet::Publish(publish(&user));
        let mut wire = BytesMut::new();
        packet.encode(version, &mut wire).unwrap();
        group.throughput(Throughput::Bytes(wire.len() as u64));

        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| decode(black_box(&wire), Some(version)).unwrap())
        });

        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&packet).encode(version, &mut out).unwrap();
            })
        });
    }

    // Outbound hot path: user properties encoded once per event, shared by every subscriber.
    let mut raw = BytesMut::new();
    for (k, v) in &user {
        encode_user_property(k, v, &mut raw).unwrap();
    }
    let header = PublishHeader {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TOPIC,
        packet_id: Some(4711),
    };
    let props = PublishProperties {
        content_type: Some("application/json"),
        subscription_identifiers: &[17],
        raw: &raw,
        ..PublishProperties::default()
    };
    let mut out = BytesMut::with_capacity(4096);
    group.bench_function("encode_publish_header_v5_raw", |b| {
        b.iter(|| {
            out.clear();
            encode_publish_header(
                Version::V5,
                black_box(&header),
                black_box(&props),
                PAYLOAD.len(),
                &mut out,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_publish);
criterion_main!(benches);

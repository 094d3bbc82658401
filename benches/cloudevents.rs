//! Structured-mode encoding, ours against cloudevents-sdk + serde_json, binary-mode attribute
//! iteration, the JSON check that decides whether data is embedded as JSON, and reading events
//! in: a Kafka record's headers (the consumer worker's per-record work) and an ingest batch.
//!
//! `cargo bench --bench cloudevents`

use std::hint::black_box;
use std::time::SystemTime;

use bytes::Bytes;
use cloudevents::{EventBuilder, EventBuilderV10};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mqtt_integration::backend::kafka::codec::read_headers;
use mqtt_integration::cloudevents::{is_json, parse_batch, BatchContext, Event, ExtensionValue};

/// A typical telemetry payload, padded to 256 bytes of JSON.
fn json_256() -> Vec<u8> {
    let mut data = br#"{"temp":21.5,"hum":48,"battery":97,"location":{"lat":52.52,"lon":13.405},"tags":["indoor","floor-2","room-12"],"firmware":"1.4.2","pad":""#.to_vec();
    data.resize(254, b'x');
    data.extend_from_slice(b"\"}");
    assert_eq!(data.len(), 256);
    assert!(is_json(&data));
    data
}

fn binary_4k() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 31 % 251) as u8).collect()
}

fn ours(content_type: &str, data: &[u8]) -> Event {
    Event::new_device_event(
        "my-app",
        "device-0042",
        "sensors/environment",
        "gateway-7",
        "mqtt-integration-0",
        Some(content_type),
        Bytes::copy_from_slice(data),
        SystemTime::now(),
    )
}

/// The same event as cloudevents-sdk sees it. JSON data must become a `serde_json::Value` there,
/// which is what a service built on the sdk would have to do with the backend's bytes.
fn sdk(event: &Event) -> cloudevents::Event {
    let mut builder = EventBuilderV10::new()
        .id(event.id.clone())
        .source(event.source.clone())
        .ty(event.ty.clone())
        .subject(event.subject.clone().unwrap())
        .time(event.time.as_deref().unwrap().to_owned());
    for (name, value) in &event.extensions {
        builder = builder.extension(name, value.as_str().unwrap());
    }
    let content_type = event.datacontenttype.clone().unwrap();
    let builder = if content_type == "application/json" {
        builder.data(
            content_type,
            serde_json::from_slice::<serde_json::Value>(&event.data).unwrap(),
        )
    } else {
        builder.data(content_type, event.data.to_vec())
    };
    builder.build().unwrap()
}

fn structured(c: &mut Criterion) {
    for (name, content_type, data) in [
        ("json_256B", "application/json", json_256()),
        ("binary_4KiB", "application/octet-stream", binary_4k()),
    ] {
        let event = ours(content_type, &data);
        let sdk_event = sdk(&event);
        let mut group = c.benchmark_group(format!("structured/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        let mut out = Vec::new();
        group.bench_function("ours", |b| {
            b.iter(|| {
                out.clear();
                black_box(&event).write_structured(&mut out);
                black_box(out.len())
            })
        });
        group.bench_function("sdk_serialize", |b| {
            b.iter(|| {
                out.clear();
                serde_json::to_writer(&mut out, black_box(&sdk_event)).unwrap();
                black_box(out.len())
            })
        });
        group.bench_function("sdk_build_and_serialize", |b| {
            b.iter(|| {
                out.clear();
                serde_json::to_writer(&mut out, &sdk(black_box(&event))).unwrap();
                black_box(out.len())
            })
        });
        group.finish();
    }
}

fn binary_attributes(c: &mut Criterion) {
    let mut event = ours("application/json", &json_256());
    event
        .extensions
        .push(("count".into(), ExtensionValue::Integer(12345)));
    c.bench_function("binary_attributes", |b| {
        b.iter(|| {
            black_box(&event)
                .binary_attributes()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
        })
    });
}

/// Why `is_json` uses serde_json into `IgnoredAny` (after the UTF-8 check it needs): simd-json
/// needs a mutable copy and its tape buffers. `ours` is `serde_json_ignored_any` plus the
/// bracket count that guards nesting depth.
fn validate_json(c: &mut Criterion) {
    let data = json_256();
    let mut group = c.benchmark_group("validate_json/256B");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("ours", |b| b.iter(|| is_json(black_box(&data))));
    group.bench_function("serde_json_ignored_any", |b| {
        b.iter(|| {
            std::str::from_utf8(black_box(&data))
                .is_ok_and(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok())
        })
    });
    let mut buffers = simd_json::Buffers::new(data.len());
    let mut scratch = Vec::with_capacity(data.len());
    group.bench_function("simd_json_tape_with_copy", |b| {
        b.iter(|| {
            scratch.clear();
            scratch.extend_from_slice(black_box(&data));
            simd_json::to_tape_with_buffers(&mut scratch, &mut buffers).is_ok()
        })
    });
    group.finish();
}

/// A record as Drogue Cloud writes it to `events-<app>` (binary mode: `content-type` and eleven
/// `ce_*` headers, a UUID id) read into an event and dropped: what the Kafka worker does per
/// record besides polling.
fn kafka_decode(c: &mut Criterion) {
    let event = ours("application/json", &json_256());
    let mut headers: Vec<(String, Vec<u8>)> = event
        .binary_attributes()
        .map(|(n, v)| (format!("ce_{n}"), v.as_bytes().to_vec()))
        .collect();
    headers.push(("content-type".into(), b"application/json".to_vec()));
    let data = event.data.clone();
    c.bench_function("kafka_decode/drogue_record", |b| {
        b.iter(|| {
            let attributes = read_headers(
                black_box(&headers)
                    .iter()
                    .map(|(k, v)| (k.as_str(), Some(v.as_slice()))),
            )
            .unwrap();
            black_box(attributes.into_event(data.clone()).unwrap())
        })
    });
}

/// An ingest batch of 100 events of 256 bytes of JSON (device, subject, content type and data
/// given; id, time, type and source filled in) parsed into events, bound to the application,
/// and dropped: what batch ingest does before the backend.
fn ingest_batch(c: &mut Criterion) {
    let data = String::from_utf8(json_256()).unwrap();
    let element = format!(
        r#"{{"device":"device-0042","subject":"sensors/environment","datacontenttype":"application/json","data":{data}}}"#
    );
    let body = format!("[{}]", vec![element; 100].join(","));
    let ok = |_: &str| Ok(());
    let ctx = BatchContext {
        app: "my-app",
        instance: "mqtt-integration-0",
        now: SystemTime::now(),
        check_device: &ok,
    };
    let mut group = c.benchmark_group("ingest_batch");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100x256B", |b| {
        b.iter(|| black_box(parse_batch(black_box(body.as_bytes()), &ctx).unwrap()))
    });
    group.finish();
}

criterion_group!(
    benches,
    structured,
    binary_attributes,
    validate_json,
    kafka_decode,
    ingest_batch
);
criterion_main!(benches);

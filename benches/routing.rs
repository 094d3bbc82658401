//! What routing one event costs when connections hold many filters (#17 item 4): 100
//! connections (members) with 1,000 filters each, the event routed through every member, with
//! the filter index (`route`) and with the plain scan every filter used to get (`route_scan`).
//!
//! Each connection's filters are the shapes of spec 2.1 in equal parts, each naming devices
//! and channels of its own: `app/demo/<d>/#`, `app/demo/+/<c>`, `app/demo/<d>/<c>`,
//! `app/demo/<d>/+`. The event `device7/ch7` matches a few filters of every tenth connection
//! ("match"), or none anywhere ("miss"). A fresh record per iteration, as each record of the
//! log is routed once: its concrete topic is formatted in both variants.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use mqtt_integration::cloudevents::Event;
use mqtt_integration::protocol::QoS;
use mqtt_integration::seam::{
    route, route_scan, MemberFilter, MemberFilters, Mode, Record, Selector,
};

const CONNECTIONS: usize = 100;
const FILTERS: usize = 1_000;

fn filter(f: String) -> MemberFilter {
    MemberFilter {
        filter: f.as_str().into(),
        selector: Selector::Topic(f.into()),
        qos: QoS::AtLeastOnce,
        subscription_id: None,
        mode: Mode::Structured,
    }
}

/// Connection `c`'s filters; connections 0, 10, 20, … name `device7` and `ch7` too.
fn filters_of(c: usize) -> Vec<MemberFilter> {
    (0..FILTERS)
        .map(|i| {
            let (d, ch) = if c % 10 == 0 && i < 4 {
                ("device7".to_owned(), "ch7".to_owned())
            } else {
                (format!("dev-{c}-{i}"), format!("ch-{c}-{i}"))
            };
            filter(match i % 4 {
                0 => format!("app/demo/{d}/#"),
                1 => format!("app/demo/+/{ch}"),
                2 => format!("app/demo/{d}/{ch}"),
                _ => format!("app/demo/{d}/+"),
            })
        })
        .collect()
}

fn record(device: &str) -> Record {
    let channel = if device == "device7" { "ch7" } else { "other" };
    let event = Event::new_device_event(
        "demo",
        device,
        channel,
        device,
        "bench",
        Some("application/json"),
        Bytes::from_static(b"{\"n\":1}"),
        SystemTime::UNIX_EPOCH,
    );
    Record::new(event, 0, 0)
}

fn bench(c: &mut Criterion) {
    let plain: Vec<Vec<MemberFilter>> = (0..CONNECTIONS).map(filters_of).collect();
    let indexed: Vec<MemberFilters> = plain.iter().cloned().map(MemberFilters::new).collect();
    let app_topic: Arc<str> = "app/demo".into();

    // Both answer the same, and the event matches where it should.
    for device in ["device7", "device8"] {
        let r = record(device);
        let a: Vec<_> = indexed.iter().map(|f| route(f, &r, &app_topic)).collect();
        let b: Vec<_> = plain
            .iter()
            .map(|f| route_scan(f, &r, &app_topic))
            .collect();
        assert_eq!(a, b);
        let routed = a.iter().flatten().count();
        assert_eq!(routed, if device == "device7" { 10 } else { 0 });
    }

    let mut g = c.benchmark_group("route 1 event, 100 connections x 1000 filters");
    for (case, device) in [("match", "device7"), ("miss", "device8")] {
        g.bench_with_input(BenchmarkId::new("indexed", case), &device, |b, d| {
            b.iter_batched(
                || record(d),
                |r| {
                    indexed
                        .iter()
                        .filter_map(|f| route(f, &r, &app_topic))
                        .count()
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("scan", case), &device, |b, d| {
            b.iter_batched(
                || record(d),
                |r| {
                    plain
                        .iter()
                        .filter_map(|f| route_scan(f, &r, &app_topic))
                        .count()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

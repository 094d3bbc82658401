//! A subscriber that stops reading: its group pauses (bounded memory), other groups go on at
//! full speed, and when it reads again it gets every event — nothing is dropped (spec 2.4).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const EVENTS: usize = 4000;
const DATA: usize = 4000;
const LIMIT: usize = 64 * 1024;

fn subscriber(svc: &Service, id: &str) -> TcpStream {
    let mut s = raw_connect(svc, 4, id, 0);
    s.write_all(&subscribe_packet(4, 1, "app/demo", 0)).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("SUBACK");
    assert_eq!((h, body[2]), (0x90, 0), "SUBACK granted QoS 0");
    s
}

/// Reads PUBLISH packets until `n` arrived or `timeout` passed; returns the count.
fn count_publishes(s: &mut TcpStream, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut count = 0;
    while count < n && Instant::now() < deadline {
        match read_packet(s, Duration::from_secs(2)) {
            Some((h, _)) if h & 0xF0 == 0x30 => count += 1,
            Some(_) => {}
            None => break,
        }
    }
    count
}

fn gauge(metrics: &str, line_prefix: &str) -> Option<i64> {
    metrics
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_subscriber_that_stops_reading_pauses_only_its_own_group_and_loses_nothing() {
    let svc = Service::start(&format!("[mqtt]\nmax_queued_bytes = {LIMIT}\n"));
    let mut slow = subscriber(&svc, "bp-slow");
    let mut fast = subscriber(&svc, "bp-fast");
    let fast_reader =
        std::thread::spawn(move || count_publishes(&mut fast, EVENTS, Duration::from_secs(60)));

    // ~16 MB of events: more than the kernel's socket buffers can hide.
    let url = format!("http://{}/api/v1/apps/demo/events", svc.http);
    let pad = "x".repeat(DATA);
    for batch in 0..EVENTS / 100 {
        let events: Vec<String> = (0..100)
            .map(|i| {
                let device = format!("device{}", 1 + (batch * 100 + i) % 4);
                format!(r#"{{"device":"{device}","subject":"bp","datacontenttype":"text/plain","data":"{pad}"}}"#)
            })
            .collect();
        let body = format!("[{}]", events.join(","));
        let r = ureq::post(&url)
            .set("Content-Type", "application/cloudevents-batch+json")
            .send_string(&body);
        assert_eq!(r.map(|r| r.status()).unwrap_or(0), 202);
    }

    assert_eq!(
        fast_reader.join().unwrap(),
        EVENTS,
        "the fast group got everything while the slow one was stuck"
    );

    // The slow group is paused: it lags, and what the service holds for it stays near the limit.
    let metrics = svc.metrics();
    let lag = gauge(
        &metrics,
        "mqtt_integration_group_lag{group=\"demo.bp-slow\"}",
    )
    .expect("lag of the slow group");
    assert!(lag > 0, "the slow group should be behind:\n{metrics}");
    let queued = gauge(&metrics, "mqtt_integration_queued_bytes").expect("queued bytes gauge");
    assert!(
        queued <= (LIMIT + 2 * (DATA + 1024)) as i64,
        "queued {queued} bytes, limit {LIMIT}"
    );

    // Reading again, the slow subscriber gets every event: paused, never dropped.
    assert_eq!(
        count_publishes(&mut slow, EVENTS, Duration::from_secs(60)),
        EVENTS
    );
    assert!(
        eventually(Duration::from_secs(5), || gauge(
            &svc.metrics(),
            "mqtt_integration_group_lag{group=\"demo.bp-slow\"}"
        ) == Some(0)),
        "lag back to 0"
    );
}

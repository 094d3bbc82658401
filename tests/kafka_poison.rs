//! Poison records (#17 item 3): records another producer wrote to Kafka whose device or subject
//! cannot form an MQTT topic (U+0000, a wildcard, a control character) reach whole-application
//! subscribers on `app/<a>`, and are skipped for filter subscribers: acknowledged, counted, never
//! sent on a topic a client refuses, never redelivered.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::time::Duration;

use common::*;
use rdkafka::message::{Header, OwnedHeaders};
use rumqttc::v5::mqttbytes::QoS;

/// A Drogue binary-mode record `{"seq":N}` with `device` and `subject` as given.
fn produce(
    p: &rdkafka::producer::BaseProducer,
    topic: &str,
    app: &str,
    device: &str,
    subject: &str,
    seq: u64,
) {
    let h = |hs: OwnedHeaders, k: &str, v: &str| {
        hs.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    };
    let mut hs = OwnedHeaders::new();
    hs = h(hs, "ce_specversion", "1.0");
    hs = h(hs, "ce_id", &format!("id-{seq}"));
    hs = h(hs, "ce_source", &format!("drogue://{app}/x"));
    hs = h(hs, "ce_type", "io.drogue.event.v1");
    hs = h(hs, "ce_subject", subject);
    hs = h(hs, "content-type", "application/json");
    hs = h(hs, "ce_application", app);
    hs = h(hs, "ce_device", device);
    // One key: one partition, so that the order of the records is the order produced.
    let body = format!("{{\"seq\":{seq}}}");
    kafka::send(p, topic, "k", body.as_bytes(), hs);
}

fn seqs_of(v: &V5, timeout: Duration, n: usize, binary: bool) -> Vec<(String, u64)> {
    (0..n)
        .map(|i| {
            let p = v
                .next_publish(timeout)
                .unwrap_or_else(|| panic!("event {i} of {n} missing"));
            let topic = String::from_utf8(p.topic.to_vec()).unwrap();
            let seq = if binary {
                serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            } else {
                cloudevent(&p.payload)["data"]["seq"].as_u64().unwrap()
            };
            (topic, seq)
        })
        .collect()
}

#[test]
fn poison_records_reach_whole_application_subscribers_and_are_skipped_for_filters() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("poison");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 2);
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );

    // The steady filter subscriber (QoS 1, durable group of its client id), a whole-application
    // subscriber in structured mode, and one in binary mode (the subject is a user property).
    let filtered = V5::connect(v5_options(svc.mqtt, "poison-filter"));
    assert_eq!(
        filtered
            .subscribe(&format!("app/{app}/+/#"), QoS::AtLeastOnce, None)
            .len(),
        1
    );
    let whole = V5::connect(v5_options(svc.mqtt, "poison-whole"));
    whole.subscribe(&format!("app/{app}"), QoS::AtLeastOnce, None);
    let binary = V5::connect(v5_options(svc.mqtt, "poison-binary"));
    binary
        .client
        .subscribe_with_properties(
            format!("app/{app}"),
            QoS::AtLeastOnce,
            rumqttc::v5::mqttbytes::v5::SubscribeProperties {
                id: None,
                user_properties: vec![("content-mode".into(), "binary".into())],
            },
        )
        .unwrap();
    assert!(binary
        .wait(Duration::from_secs(10), |e| matches!(
            e,
            rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::SubAck(_))
        ))
        .is_some());

    let p = kafka::producer(&bootstrap);
    let records = [
        ("device1", "temp", 1),
        ("device1", "a\0b", 2),
        ("dev\0ice", "temp", 3),
        ("device1", "+", 4),
        ("dev#", "temp", 5),
        ("device1", "bell\u{7}", 6),
        ("device2", "hum", 7),
        ("device1", "a//b", 8),
        ("device3", "temp/in", 9),
    ];
    for (device, subject, seq) in records {
        produce(&p, &topic, &app, device, subject, seq);
    }

    // The filter subscriber gets the good ones, in order, on their concrete topics: no
    // disconnect (next_publish panics when the connection ends), and nothing more.
    let t = Duration::from_secs(20);
    assert_eq!(
        seqs_of(&filtered, t, 3, false),
        [
            (format!("app/{app}/device1/temp"), 1),
            (format!("app/{app}/device2/hum"), 7),
            (format!("app/{app}/device3/temp/in"), 9),
        ]
    );
    // Whole-application subscribers get every record, on `app/<a>`.
    let all: Vec<(String, u64)> = (1..=9).map(|s| (format!("app/{app}"), s)).collect();
    assert_eq!(seqs_of(&whole, t, 9, false), all);
    assert_eq!(seqs_of(&binary, t, 9, true), all);
    assert!(
        filtered.next_publish(Duration::from_secs(2)).is_none(),
        "nothing redelivered"
    );

    // Counted (once per record), logged once.
    assert!(
        eventually(Duration::from_secs(10), || {
            let m = svc.metrics();
            m.lines()
                .find_map(|l| l.strip_prefix("mqtt_integration_records_skipped_total "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|n| n >= 6)
        }),
        "{}",
        svc.metrics()
    );
    let log = svc.log();
    assert_eq!(
        log.matches("cannot form an MQTT topic").count(),
        1,
        "logged once: {log}"
    );
    assert!(!log.contains("cannot encode event"), "{log}");

    // The poison records were acknowledged: the filter subscriber's group moved past them, so a
    // new connection with the same client id gets nothing again, and then new events.
    drop(filtered);
    std::thread::sleep(Duration::from_millis(500));
    let again = V5::connect(v5_options(svc.mqtt, "poison-filter"));
    again.subscribe(&format!("app/{app}/+/#"), QoS::AtLeastOnce, None);
    produce(&p, &topic, &app, "device4", "temp", 10);
    assert_eq!(
        seqs_of(&again, t, 1, false),
        [(format!("app/{app}/device4/temp"), 10)]
    );
    assert!(
        again.next_publish(Duration::from_secs(2)).is_none(),
        "nothing redelivered"
    );
}

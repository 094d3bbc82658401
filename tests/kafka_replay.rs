//! Replay on the Kafka backend (spec 2.1, issue #14 item 5): the MQTT 5 SUBSCRIBE user property
//! `start` sets where a new group begins (low watermark, offsets for times, or the end); an
//! existing group resumes at its committed offsets and ignores it; an ephemeral reader with a
//! `start` reads through a consumer of its own. Needs `KAFKA_BOOTSTRAP`.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::time::{Duration, SystemTime};

use common::*;
use rumqttc::v5::mqttbytes::v5::{SubscribeProperties, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Event, Incoming};

/// Subscribes `filter` with `start=<value>`; the SUBACK's reason codes.
fn subscribe_from(c: &V5, filter: &str, value: &str) -> Vec<SubscribeReasonCode> {
    let props = SubscribeProperties {
        id: None,
        user_properties: vec![("start".into(), value.into())],
    };
    c.client
        .subscribe_with_properties(filter, QoS::AtLeastOnce, props)
        .unwrap();
    match c.wait(Duration::from_secs(20), |e| {
        matches!(e, Event::Incoming(Incoming::SubAck(_)))
    }) {
        Some(Event::Incoming(Incoming::SubAck(s))) => s.return_codes,
        _ => panic!("no SUBACK for {filter} start={value}"),
    }
}

/// `data.seq` of every event delivered until none comes for two seconds.
fn drain(c: &V5) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(p) = c.next_publish(Duration::from_secs(2)) {
        seqs.push(seq_of(&p.payload));
    }
    seqs.sort_unstable();
    seqs
}

fn granted(codes: &[SubscribeReasonCode]) -> bool {
    codes
        .iter()
        .all(|c| matches!(c, SubscribeReasonCode::Success(_)))
}

#[test]
fn start_selects_where_a_new_group_begins() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("replay");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 2);
    let p = kafka::producer(&bootstrap);
    for n in 1..=3 {
        kafka::produce_binary(&p, &topic, &app, "device1", n);
    }
    // Record timestamps are the producer's clock (milliseconds): a gap either side of the
    // boundary keeps it strictly between the two batches.
    std::thread::sleep(Duration::from_millis(1100));
    let boundary = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_millis(1100));
    for n in 4..=6 {
        kafka::produce_binary(&p, &topic, &app, "device2", n);
    }
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );
    let filter = format!("app/{app}");
    let all: Vec<u64> = (1..=6).collect();

    let c = V5::connect(v5_options(svc.mqtt, &kafka::unique("r-earliest")));
    assert!(granted(&subscribe_from(&c, &filter, "earliest")));
    assert_eq!(drain(&c), all, "earliest: everything");

    let c = V5::connect(v5_options(svc.mqtt, &kafka::unique("r-time")));
    assert!(granted(&subscribe_from(&c, &filter, &boundary)));
    assert_eq!(drain(&c), vec![4, 5, 6], "start={boundary}");

    let c = V5::connect(v5_options(svc.mqtt, &kafka::unique("r-ago")));
    assert!(granted(&subscribe_from(&c, &filter, "-1h")));
    assert_eq!(drain(&c), all, "start=-1h");

    let latest = V5::connect(v5_options(svc.mqtt, &kafka::unique("r-latest")));
    assert!(granted(&subscribe_from(&latest, &filter, "latest")));
    assert_eq!(drain(&latest), Vec::<u64>::new(), "latest: nothing old");

    // Ephemeral readers have no committed offsets: `start` applies (a consumer of their own).
    let e = V5::connect(v5_options(svc.mqtt, ""));
    assert!(granted(&subscribe_from(&e, &filter, &boundary)));
    assert_eq!(drain(&e), vec![4, 5, 6], "ephemeral reader from {boundary}");
    // …and it keeps reading new events.
    kafka::produce_binary(&p, &topic, &app, "device1", 7);
    assert_eq!(drain(&e), vec![7], "ephemeral reader goes on");
    assert_eq!(drain(&latest), vec![7], "a live group gets the new event");

    // An existing group resumes at its committed offsets and ignores `start`.
    let shared = format!("$share/{}/app/{app}", kafka::unique("keep"));
    let first = V5::connect(v5_options(svc.mqtt, &kafka::unique("r-keep1")));
    assert!(granted(&subscribe_from(&first, &shared, "latest")));
    first.client.disconnect().unwrap();
    first
        .wait_end(Duration::from_secs(5))
        .expect("disconnected");
    kafka::produce_binary(&p, &topic, &app, "device1", 8);
    let second = V5::connect(v5_options(svc.mqtt, &kafka::unique("r-keep2")));
    assert!(granted(&subscribe_from(&second, &shared, "earliest")));
    assert_eq!(
        drain(&second),
        vec![8],
        "the existing group resumed where it was, not at earliest"
    );

    // An ephemeral reader already on the tail that subscribes again with `start` is not
    // rewound (nor read twice): `start` is only where a reader begins.
    let t = V5::connect(v5_options(svc.mqtt, ""));
    assert!(granted(&subscribe_from(&t, &filter, "latest")));
    assert!(granted(&subscribe_from(&t, &filter, "earliest")));
    assert_eq!(
        drain(&t),
        Vec::<u64>::new(),
        "no replay for a reader already here"
    );
    kafka::produce_binary(&p, &topic, &app, "device2", 9);
    assert_eq!(drain(&t), vec![9], "once");
}

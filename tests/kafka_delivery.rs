//! Kafka backend: events written to `events-<app>` in Drogue Cloud's record formats (binary and
//! structured mode) reach MQTT 3.1.1 and 5 subscribers, structured and binary, intact.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::io::Write;
use std::time::Duration;

use common::*;

fn user_property<'a>(p: &'a rumqttc::v5::mqttbytes::v5::Publish, name: &str) -> Option<&'a str> {
    p.properties
        .as_ref()?
        .user_properties
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Subscribes `filter` at QoS 1 in binary content mode and waits for the SUBACK.
fn subscribe_binary(c: &V5, filter: &str) {
    c.client
        .subscribe_with_properties(
            filter,
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            rumqttc::v5::mqttbytes::v5::SubscribeProperties {
                id: None,
                user_properties: vec![("content-mode".into(), "binary".into())],
            },
        )
        .unwrap();
    assert!(c
        .wait(Duration::from_secs(10), |e| matches!(
            e,
            rumqttc::v5::Event::Incoming(rumqttc::v5::Incoming::SubAck(_))
        ))
        .is_some());
}

#[test]
fn records_reach_v3_and_v5_subscribers_intact() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("deliv");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 4);
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );

    let v3 = V3::connect(v3_options(svc.mqtt, "deliv-v3"));
    assert_eq!(
        v3.subscribe(&format!("app/{app}"), rumqttc::QoS::AtLeastOnce),
        [rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    let v5s = V5::connect(v5_options(svc.mqtt, "deliv-v5s"));
    v5s.subscribe(
        &format!("app/{app}"),
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        None,
    );
    let v5b = V5::connect(v5_options(svc.mqtt, "deliv-v5b"));
    subscribe_binary(&v5b, &format!("app/{app}"));

    // SUBACK came after the start position was fixed: these are all delivered.
    let p = kafka::producer(&bootstrap);
    kafka::produce_binary(&p, &topic, &app, "device1", 1);
    kafka::produce_structured(&p, &topic, &app, "device1", 2);

    // 3.1.1: structured JSON with every attribute.
    for want in [1u64, 2] {
        let got = v3
            .next_publish(Duration::from_secs(20))
            .expect("v3: no event");
        assert_eq!(got.topic, format!("app/{app}"));
        let ce = cloudevent(&got.payload);
        assert_eq!(ce["data"]["seq"], want, "{ce}");
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["type"], "io.drogue.event.v1");
        assert_eq!(ce["source"], format!("drogue://{app}/device1"));
        assert_eq!(ce["subject"], "telemetry");
        assert_eq!(ce["time"], "2024-01-02T03:04:05.678Z");
        assert_eq!(ce["device"], "device1");
        assert_eq!(ce["application"], app);
        assert_eq!(ce["id"], if want == 1 { "id-1" } else { "sid-2" });
    }
    // 5, structured (default).
    for want in [1u64, 2] {
        let got = v5s
            .next_publish(Duration::from_secs(20))
            .expect("v5: no event");
        assert_eq!(seq_of(&got.payload), want);
        let props = got.properties.as_ref().expect("properties");
        assert_eq!(
            props.content_type.as_deref(),
            Some("application/cloudevents+json; charset=utf-8")
        );
    }
    // 5, binary: the data byte for byte, attributes as user properties.
    for want in [1u64, 2] {
        let got = v5b
            .next_publish(Duration::from_secs(20))
            .expect("v5 binary: no event");
        assert_eq!(&got.payload[..], format!("{{\"seq\":{want}}}").as_bytes());
        assert_eq!(
            got.properties
                .as_ref()
                .and_then(|p| p.content_type.as_deref()),
            Some("application/json")
        );
        assert_eq!(user_property(&got, "device"), Some("device1"));
        assert_eq!(user_property(&got, "subject"), Some("telemetry"));
        assert_eq!(user_property(&got, "specversion"), Some("1.0"));
        assert_eq!(
            user_property(&got, "id"),
            Some(if want == 1 { "id-1" } else { "sid-2" })
        );
    }
}

#[test]
fn invalid_records_are_skipped_and_counted() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("skip");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 1);
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );
    let v3 = V3::connect(v3_options(svc.mqtt, "skip-v3"));
    v3.subscribe(&format!("app/{app}"), rumqttc::QoS::AtLeastOnce);
    let p = kafka::producer(&bootstrap);
    kafka::send(
        &p,
        &topic,
        "device1",
        b"garbage",
        rdkafka::message::OwnedHeaders::new(),
    );
    kafka::produce_binary(&p, &topic, &app, "device1", 7);
    let got = v3.next_publish(Duration::from_secs(20)).expect("no event");
    assert_eq!(
        seq_of(&got.payload),
        7,
        "the invalid record is skipped, the next delivered"
    );
    assert!(
        eventually(Duration::from_secs(5), || svc
            .metrics()
            .contains("mqtt_integration_records_skipped_total 1")),
        "{}",
        svc.metrics()
    );
    assert!(svc.log().contains("not a valid CloudEvent"));
}

#[test]
fn missing_topic_fails_the_subscription() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("notopic");
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );
    let mut s = raw_connect(&svc, 5, "notopic-v5", 30);
    std::io::Write::write_all(&mut s, &subscribe_packet(5, 1, &format!("app/{app}"), 1)).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(15)).expect("no SUBACK");
    assert_eq!(h, 0x90);
    let code = *body.last().unwrap();
    assert!(
        code >= 0x80,
        "SUBACK reason {code:#x}: the subscription must fail"
    );
    assert!(
        svc.log().contains(&format!("events-{app}")),
        "the log names the topic"
    );
}

#[test]
fn ephemeral_reader_starts_at_the_end() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("eph");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 2);
    let p = kafka::producer(&bootstrap);
    kafka::produce_binary(&p, &topic, &app, "device1", 1); // before: never delivered
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );
    let c = V5::connect(v5_options(svc.mqtt, ""));
    c.subscribe(
        &format!("app/{app}"),
        rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        None,
    );
    kafka::produce_binary(&p, &topic, &app, "device2", 2);
    let got = c.next_publish(Duration::from_secs(20)).expect("no event");
    assert_eq!(seq_of(&got.payload), 2);
    assert!(c.next_publish(Duration::from_millis(500)).is_none());
}

/// The last member of a group leaves without acknowledging; the group's consumer is retired. When
/// the client comes back, the group is opened anew and the unacknowledged events come again: as
/// redeliveries, with DUP set (the service remembers what it handed out). Once acknowledged and
/// committed, they do not come again.
#[test]
fn redeliveries_after_the_group_is_reopened_carry_dup() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("dup");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 1);
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );
    let client_id = kafka::unique("dup-client");
    let filter = format!("app/{app}");
    let p = kafka::producer(&bootstrap);

    let mut s = raw_subscriber(&svc, &client_id, &filter, Duration::from_secs(20));
    for seq in 1..=3 {
        kafka::produce_binary(&p, &topic, &app, "device1", seq);
    }
    for seq in 1..=3 {
        let (h, body) = read_packet(&mut s, Duration::from_secs(20)).expect("no PUBLISH");
        let (dup, _, got) = raw_publish(h, &body);
        assert_eq!((dup, got), (false, seq), "first delivery");
    }
    // Gone without a PUBACK: nothing is acknowledged, nothing committed past.
    drop(s);
    std::thread::sleep(Duration::from_millis(500));

    let mut s = raw_subscriber(&svc, &client_id, &filter, Duration::from_secs(30));
    kafka::produce_binary(&p, &topic, &app, "device1", 4);
    for seq in 1..=4 {
        let (h, body) = read_packet(&mut s, Duration::from_secs(30)).expect("no redelivery");
        let (dup, pkid, got) = raw_publish(h, &body);
        assert_eq!(got, seq);
        // 1..=3 were handed out before; 4 is new.
        assert_eq!(dup, seq <= 3, "event {seq}: DUP {dup}");
        s.write_all(&packet(0x40, &pkid.to_be_bytes())).unwrap();
    }
    // Everything acknowledged, then gone: the group's last commit (made off the worker, before
    // its consumer leaves the Kafka group) lets the next session start after event 4.
    // At once (before any interval commit): the PUBACKs and the DISCONNECT arrive in order.
    s.write_all(&[0xE0, 0x00]).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
    let mut s = raw_subscriber(&svc, &client_id, &filter, Duration::from_secs(30));
    kafka::produce_binary(&p, &topic, &app, "device1", 5);
    let (h, body) = read_packet(&mut s, Duration::from_secs(30)).expect("no event 5");
    assert_eq!(
        raw_publish(h, &body).2,
        5,
        "acknowledged events came again; log:\n{}",
        svc.log()
    );
}

/// Issue #12: a Drogue record with an empty value keeps its (empty) data, as Drogue Cloud's
/// integration sends it: `"data_base64": ""` in structured mode, an empty payload in binary mode.
#[test]
fn empty_data_stays_present() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("empty");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 1);
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &kafka::unique("cmd")),
        &kafka::apps_toml(&app),
        &[],
    );
    let v3 = V3::connect(v3_options(svc.mqtt, "empty-v3"));
    v3.subscribe(&format!("app/{app}"), rumqttc::QoS::AtLeastOnce);
    let v5b = V5::connect(v5_options(svc.mqtt, "empty-v5b"));
    subscribe_binary(&v5b, &format!("a/{app}"));

    let p = kafka::producer(&bootstrap);
    kafka::send(
        &p,
        &topic,
        "device1",
        b"",
        kafka::drogue_headers(&app, "device1", "empty-1", "application/octet-stream"),
    );

    let got = v3
        .next_publish(Duration::from_secs(20))
        .expect("v3: no event");
    let ce = cloudevent(&got.payload);
    assert_eq!(ce["data_base64"], "", "{ce}");
    assert!(ce.get("data").is_none(), "{ce}");
    assert_eq!(ce["datacontenttype"], "application/octet-stream");

    let got = v5b
        .next_publish(Duration::from_secs(20))
        .expect("v5 binary: no event");
    // The alias filter's own topic (issue #12), and the empty data as an empty payload.
    assert_eq!(got.topic, format!("a/{app}"));
    assert!(got.payload.is_empty(), "{:?}", got.payload);
    assert_eq!(
        got.properties
            .as_ref()
            .and_then(|p| p.content_type.as_deref()),
        Some("application/octet-stream")
    );
    assert_eq!(user_property(&got, "id"), Some("empty-1"));
}

//! Kafka backend, writing side: MQTT commands land in the command topic as CloudEvents binary
//! records keyed `<app>/<device>` (PUBACK only after Kafka acknowledged them), and HTTP ingest
//! lands in `events-<app>` (202 only after Kafka acknowledged it).

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::time::Duration;

use common::*;
use rdkafka::message::Message;
use rumqttc::v5::mqttbytes::v5::PubAckReason;

#[test]
fn commands_and_ingest_reach_kafka() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("cmds");
    let command_topic = kafka::unique("iot-commands");
    kafka::create_topic(&bootstrap, &command_topic, 2);
    kafka::create_topic(&bootstrap, &format!("events-{app}"), 2);
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, &command_topic),
        &kafka::apps_toml(&app),
        &[],
    );

    let c = V5::connect(v5_options(svc.mqtt, "cmds-v5"));
    // PUBACK comes after the delivery report: from then on the record is in Kafka.
    let reason = c.publish_acked(
        &format!("command/{app}/device2/set-light"),
        b"on",
        Some("text/plain"),
        Duration::from_secs(30),
    );
    assert_eq!(reason, PubAckReason::Success);
    let records = kafka::read_topic(&bootstrap, &command_topic, 1, Duration::from_secs(10));
    assert_eq!(records.len(), 1, "the PUBACKed command is in Kafka");
    let r = &records[0];
    assert_eq!(r.key(), Some(format!("{app}/device2").as_bytes()));
    assert_eq!(r.payload(), Some(&b"on"[..]));
    assert_eq!(
        kafka::header(r, "content-type").as_deref(),
        Some("text/plain")
    );
    assert_eq!(kafka::header(r, "ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(kafka::header(r, "ce_subject").as_deref(), Some("set-light"));
    assert_eq!(
        kafka::header(r, "ce_application").as_deref(),
        Some(app.as_str())
    );
    assert_eq!(kafka::header(r, "ce_device").as_deref(), Some("device2"));
    // Drogue Cloud's addressing (issue #12): its device endpoints route a command to the
    // connection named in `sender`, keyed `<app>/<sender>`; who sent it is `issuedby`.
    assert_eq!(kafka::header(r, "ce_sender").as_deref(), Some("device2"));
    assert_eq!(
        kafka::header(r, "ce_partitionkey").as_deref(),
        Some(format!("{app}/device2").as_str())
    );
    assert_eq!(
        kafka::header(r, "ce_issuedby").as_deref(),
        Some("anonymous")
    );
    assert_eq!(
        kafka::header(r, "ce_source").as_deref(),
        Some(format!("drogue://{app}/device2").as_str())
    );
    assert!(kafka::header(r, "ce_id").is_some_and(|id| !id.is_empty()));
    assert!(kafka::header(r, "ce_type").is_some());
    assert!(kafka::header(r, "ce_time").is_some());

    // HTTP ingest: 202 after Kafka acknowledged; key = device.
    let status = svc.ingest(&app, "device3", "temp", "application/json", b"{\"t\":21}");
    assert_eq!(status, 202);
    let events = kafka::read_topic(
        &bootstrap,
        &format!("events-{app}"),
        1,
        Duration::from_secs(10),
    );
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.key(), Some(&b"device3"[..]));
    assert_eq!(e.payload(), Some(&b"{\"t\":21}"[..]));
    assert_eq!(kafka::header(e, "ce_subject").as_deref(), Some("temp"));
    assert_eq!(
        kafka::header(e, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(kafka::header(e, "ce_device").as_deref(), Some("device3"));
}

#[test]
fn readiness_follows_the_broker() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("ready");
    // The service comes up ready only once Kafka answered (Service::start waits for /readyz).
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, "iot-commands"),
        &kafka::apps_toml(&app),
        &[],
    );
    let r = ureq::get(&format!("http://{}/readyz", svc.http)).call();
    assert!(r.is_ok_and(|r| r.status() == 200));
    // An unreachable broker: not ready, and the service still answers at once.
    let port = free_port();
    let bad = kafka::start_unready(
        &kafka::backend_toml(&format!("127.0.0.1:{port}"), "iot-commands"),
        &kafka::apps_toml(&app),
    );
    let t = std::time::Instant::now();
    let status = match ureq::get(&format!("http://{}/readyz", bad.http)).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 503);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "readyz must not block"
    );
}

/// Issue #15: a device long-polling one instance gets the command an application published on
/// another (every instance reads the command topic for the devices waiting on it).
#[test]
fn a_device_waiting_on_one_instance_gets_a_command_published_on_another() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("devcmds");
    let command_topic = kafka::unique("iot-commands");
    kafka::create_topic(&bootstrap, &command_topic, 2);
    kafka::create_topic(&bootstrap, &format!("events-{app}"), 1);
    let backend = kafka::backend_toml(&bootstrap, &command_topic);
    let apps = kafka::apps_toml(&app);
    let waits_here = Service::start_with(&backend, &apps, &[]);
    let publishes_here = Service::start_with(&backend, &apps, &[]);
    assert!(
        eventually(Duration::from_secs(30), || waits_here
            .log()
            .contains("reading the command topic")),
        "{}",
        waits_here.log()
    );
    let poll = |device: &str, wait: u64| {
        let url = format!(
            "http://{}/api/v1/apps/{app}/devices/{device}/commands?wait={wait}",
            waits_here.http
        );
        match ureq::get(&url).call() {
            Ok(r) => (
                r.status(),
                r.header("command").map(str::to_owned),
                r.into_string().unwrap(),
            ),
            Err(ureq::Error::Status(code, r)) => (code, None, r.into_string().unwrap()),
            Err(e) => panic!("long poll: {e}"),
        }
    };
    let c = V5::connect(v5_options(publishes_here.mqtt, "cmds-elsewhere"));
    let got = std::thread::scope(|s| {
        let waiting = s.spawn(|| poll("device1", 20));
        std::thread::sleep(Duration::from_millis(500));
        let topic = format!("command/{app}/device1/reboot");
        let reason = c.publish_acked(&topic, b"now", None, Duration::from_secs(30));
        assert_eq!(reason, PubAckReason::Success);
        waiting.join().unwrap()
    });
    assert_eq!(got, (200, Some("reboot".to_owned()), "now".to_owned()));
    // With Kafka, a command for a device that is not waiting is not kept by the instance that
    // read it: the device asks too late.
    assert_eq!(poll("device1", 1).0, 204);
}

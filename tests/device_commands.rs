//! Commands to devices over HTTP (issue #15), with the real binary and the embedded backend: a
//! device that ingests with `?ct=<seconds>` or long-polls `GET …/commands?wait=<seconds>` gets
//! the commands MQTT applications publish for it, in order; without one, `202` / `204`; commands
//! nobody asks for expire and are counted.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rumqttc::v5::mqttbytes::v5::PubAckReason;

/// What a device saw: status, the `command` header, the content type and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    command: Option<String>,
    content_type: String,
    body: String,
    headers: Vec<(String, String)>,
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let r = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = r.header(&n).unwrap_or_default().to_owned();
            (n, v)
        })
        .collect();
    Answer {
        status: r.status(),
        command: r.header("command").map(str::to_owned),
        content_type: r.content_type().to_owned(),
        headers,
        body: r.into_string().unwrap(),
    }
}

/// `POST …/events/<channel>?ct=<ct>` as `device` of `demo`.
fn ingest_waiting(svc: &Service, device: &str, ct: u64) -> Answer {
    let url = format!(
        "http://{}/api/v1/apps/demo/devices/{device}/events/state?ct={ct}",
        svc.http
    );
    answer(
        ureq::post(&url)
            .set("Content-Type", "application/json")
            .send_string("{\"temp\":21}"),
    )
}

/// `GET …/commands?wait=<wait>` as `device` of `demo`.
fn poll(svc: &Service, device: &str, wait: u64) -> Answer {
    let url = format!(
        "http://{}/api/v1/apps/demo/devices/{device}/commands?wait={wait}",
        svc.http
    );
    answer(ureq::get(&url).call())
}

/// An MQTT 5 application publishes `command` for `device` (QoS 1) and gets a successful PUBACK.
fn publish_command(app: &V5, device: &str, command: &str, payload: &str) {
    let topic = format!("command/demo/{device}/{command}");
    let reason = app.publish_acked(
        &topic,
        payload.as_bytes(),
        Some("text/plain"),
        Duration::from_secs(10),
    );
    assert_eq!(reason, PubAckReason::Success);
}

#[test]
fn a_device_waiting_with_ct_gets_the_command_published_for_it() {
    let svc = Service::start("");
    let app = V5::connect(v5_options(svc.mqtt, "application"));
    let (a, took) = std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let started = Instant::now();
            (ingest_waiting(&svc, "device1", 10), started.elapsed())
        });
        // The device is waiting (or its event is stored and the command kept for it: either
        // way it gets it).
        std::thread::sleep(Duration::from_millis(300));
        publish_command(&app, "device1", "set-light", "on");
        waiting.join().unwrap()
    });
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.command.as_deref(), Some("set-light"));
    assert_eq!(a.content_type, "text/plain");
    assert_eq!(a.body, "on");
    let header = |name: &str| {
        a.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("ce-specversion"), Some("1.0"));
    assert_eq!(header("ce-subject"), Some("set-light"));
    assert_eq!(header("ce-application"), Some("demo"));
    assert_eq!(header("ce-device"), Some("device1"));
    assert!(header("ce-id").is_some_and(|id| !id.is_empty()));
    assert!(
        took < Duration::from_secs(10),
        "answered when the command came"
    );
    // The event itself was stored, as without `ct`.
    assert!(svc
        .metrics()
        .contains("mqtt_integration_ingested_events_total 1\n"));
}

#[test]
fn commands_arrive_in_order_and_no_command_means_202_or_204() {
    let svc = Service::start("");
    let app = V5::connect(v5_options(svc.mqtt, "application"));
    // Nobody waits yet: the commands are kept for the device (backend.embedded.command_ttl).
    for (i, name) in ["first", "second", "third"].iter().enumerate() {
        publish_command(&app, "device2", name, &i.to_string());
    }
    let a = ingest_waiting(&svc, "device2", 5);
    assert_eq!((a.status, a.command.as_deref()), (200, Some("first")));
    let a = poll(&svc, "device2", 5);
    assert_eq!((a.status, a.command.as_deref()), (200, Some("second")));
    let a = poll(&svc, "device2", 0);
    assert_eq!(
        (a.status, a.command.as_deref(), a.body.as_str()),
        (200, Some("third"), "2")
    );

    // None left: `ct` answers the ingest's 202 after the wait, the long poll 204.
    let started = Instant::now();
    let a = ingest_waiting(&svc, "device2", 1);
    assert_eq!(a.status, 202, "{a:?}");
    assert!(a.body.contains("\"accepted\":1"), "{a:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    let started = Instant::now();
    let a = poll(&svc, "device2", 1);
    assert_eq!((a.status, a.body.as_str()), (204, ""));
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    // Another device's command is not this one's.
    publish_command(&app, "device3", "other", "x");
    assert_eq!(poll(&svc, "device2", 1).status, 204);
    assert_eq!(poll(&svc, "device3", 1).command.as_deref(), Some("other"));
}

#[test]
fn the_long_poll_is_authorized_like_ingest_and_checks_its_wait() {
    let svc = Service::start("");
    // `readonly` lets anonymous clients read only: no write permission, no commands.
    let url = format!(
        "http://{}/api/v1/apps/readonly/devices/device1/commands?wait=1",
        svc.http
    );
    assert_eq!(answer(ureq::get(&url).call()).status, 403);
    let url = format!(
        "http://{}/api/v1/apps/nope/devices/device1/commands",
        svc.http
    );
    assert_eq!(answer(ureq::get(&url).call()).status, 404);
    let url = format!(
        "http://{}/api/v1/apps/demo/devices/device1/commands?wait=soon",
        svc.http
    );
    let a = answer(ureq::get(&url).call());
    assert_eq!(a.status, 400);
    assert!(a.body.contains("whole number of seconds"), "{a:?}");
    let url = format!(
        "http://{}/api/v1/apps/demo/devices/device1/events/x?ct=-1",
        svc.http
    );
    assert_eq!(answer(ureq::post(&url).send_string("{}")).status, 400);
    let url = format!(
        "http://{}/api/v1/apps/demo/devices/device1/commands",
        svc.http
    );
    assert_eq!(answer(ureq::post(&url).send_string("")).status, 405);
}

#[test]
fn a_command_nobody_asks_for_expires_and_is_counted() {
    let svc = Service::start_with(
        "",
        APPS,
        &[("MQTT_INTEGRATION__BACKEND__EMBEDDED__COMMAND_TTL", "1s")],
    );
    let app = V5::connect(v5_options(svc.mqtt, "application"));
    publish_command(&app, "device4", "too-late", "x");
    assert!(
        eventually(Duration::from_secs(5), || svc
            .metrics()
            .contains("mqtt_integration_commands_expired_total 1\n")),
        "{}",
        svc.metrics()
    );
    assert_eq!(
        poll(&svc, "device4", 1).status,
        204,
        "dropped, not delivered late"
    );
}

#[test]
fn many_devices_wait_at_once_and_each_gets_its_own_command() {
    let svc = Service::start("");
    let app = V5::connect(v5_options(svc.mqtt, "application"));
    let devices = ["device1", "device2", "device3", "device4"];
    std::thread::scope(|s| {
        let waiting: Vec<_> = devices
            .iter()
            .map(|d| s.spawn(|| poll(&svc, d, 10)))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        for d in devices.iter().rev() {
            publish_command(&app, d, &format!("for-{d}"), d);
        }
        for (d, w) in devices.iter().zip(waiting) {
            let a = w.join().unwrap();
            assert_eq!(a.status, 200, "{d}: {a:?}");
            assert_eq!(a.command, Some(format!("for-{d}")));
            assert_eq!(a.body, *d);
        }
    });
}

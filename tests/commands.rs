//! Spec 2.5: commands published over MQTT reach the command stream (read back from the embedded
//! log of an in-process server), refused ones never do.

mod common;

use mqtt_integration::cloudevents::ExtensionValue;
use mqtt_integration::config::Config;
use mqtt_integration::server::Server;
use rumqttc::v5::mqttbytes::v5::{PubAckReason, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Event, Incoming};
use std::time::Duration;

fn start() -> Server {
    let text = format!(
        "[server]\nthreads = 1\nshutdown_timeout = \"2s\"\n\n[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:0\"\n\n[http]\nbind = \"127.0.0.1:0\"\n\n[backend.embedded]\nstorage = \"memory\"\n{}",
        common::APPS
    );
    let config = Config::from_toml_str(&text, "test", Vec::new()).expect("config");
    Server::start(&config).expect("server start")
}

fn client(server: &Server, id: &str) -> common::V5 {
    common::V5::connect(common::v5_options(server.mqtt_addrs()[0], id))
}

fn ext<'a>(e: &'a mqtt_integration::cloudevents::Event, name: &str) -> Option<&'a str> {
    match e.extension(name) {
        Some(ExtensionValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// Publishes at QoS 1 and returns the PUBACK reason (rumqttc ends the connection on a failure
/// reason and reports it as `PubAckFail`).
fn publish_qos1(
    c: &common::V5,
    topic: &str,
    payload: &[u8],
    props: Option<PublishProperties>,
) -> String {
    match props {
        Some(p) => c
            .client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.to_vec(), p)
            .unwrap(),
        None => c
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .unwrap(),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.rx.recv_timeout(left) {
            Ok(common::Seen::Event(Event::Incoming(Incoming::PubAck(a)))) => {
                return format!("{:?}", a.reason)
            }
            Ok(common::Seen::Event(_)) => {}
            Ok(common::Seen::Ended(e)) => return e,
            Err(_) => panic!("no PUBACK for {topic}"),
        }
    }
}

#[test]
fn commands_reach_the_command_stream() {
    let server = start();
    let log = server.embedded_log().expect("embedded backend").clone();
    let c = client(&server, "cmd-ok");

    // JSON payload, no content type.
    let before = log.commands_appended();
    assert_eq!(
        publish_qos1(
            &c,
            "command/demo/device1/setTemperature",
            br#"{"value":1.23}"#,
            None
        ),
        format!("{:?}", PubAckReason::Success)
    );
    let cmds = log.commands_since(before);
    assert_eq!(cmds.len(), 1, "one command record");
    let e = &cmds[0].event;
    assert_eq!(e.subject.as_deref(), Some("setTemperature"));
    assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(&e.data[..], br#"{"value":1.23}"#);
    assert_eq!(ext(e, "application"), Some("demo"));
    assert_eq!(ext(e, "device"), Some("device1"));
    // Addressed as Drogue Cloud's integration addresses commands (issue #12).
    assert_eq!(ext(e, "sender"), Some("device1"));
    assert_eq!(ext(e, "partitionkey"), Some("demo/device1"));
    assert_eq!(ext(e, "issuedby"), Some("anonymous"));
    assert_eq!(e.ty, "io.drogue.event.v1");
    assert_eq!(e.source, "drogue://demo/device1");

    // A v5 Content Type property becomes datacontenttype.
    let before = log.commands_appended();
    let props = PublishProperties {
        content_type: Some("text/plain; charset=utf-8".into()),
        ..Default::default()
    };
    assert_eq!(
        publish_qos1(&c, "command/demo/device2/say", b"hello", Some(props)),
        "Success"
    );
    let cmds = log.commands_since(before);
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        cmds[0].event.datacontenttype.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(&cmds[0].event.data[..], b"hello");
    assert_eq!(ext(&cmds[0].event, "device"), Some("device2"));

    // Not JSON, no content type: application/octet-stream.
    let before = log.commands_appended();
    assert_eq!(
        publish_qos1(
            &c,
            "command/demo/device1/raw",
            &[0xde, 0xad, 0xbe, 0xef],
            None
        ),
        "Success"
    );
    let cmds = log.commands_since(before);
    assert_eq!(cmds.len(), 1);
    assert_eq!(
        cmds[0].event.datacontenttype.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(&cmds[0].event.data[..], &[0xde, 0xad, 0xbe, 0xef]);

    // QoS 0 is written too.
    let before = log.commands_appended();
    c.client
        .publish(
            "command/demo/device3/q0",
            QoS::AtMostOnce,
            false,
            b"{\"q\":0}".to_vec(),
        )
        .unwrap();
    assert!(
        common::eventually(Duration::from_secs(3), || log.commands_appended() > before),
        "QoS 0 command not written"
    );
    let cmds = log.commands_since(before);
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].event.subject.as_deref(), Some("q0"));
    assert_eq!(ext(&cmds[0].event, "device"), Some("device3"));

    // Refused: each on a fresh client (rumqttc drops the connection on a failure reason).
    let before = log.commands_appended();
    for (i, (topic, want)) in [
        ("command/demo/off/x", PubAckReason::NotAuthorized),
        ("command/demo/nosuchdevice/x", PubAckReason::NotAuthorized),
        ("command/nosuchapp/device1/x", PubAckReason::NotAuthorized),
        ("command/readonly/device1/x", PubAckReason::NotAuthorized),
        ("command/demo/device1", PubAckReason::TopicNameInvalid),
    ]
    .into_iter()
    .enumerate()
    {
        let c = client(&server, &format!("cmd-refused-{i}"));
        let got = publish_qos1(&c, topic, br#"{"value":1}"#, None);
        assert!(
            got.contains(&format!("{want:?}")),
            "{topic}: expected {want:?}, got {got}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let leaked = log.commands_since(before);
    assert!(
        leaked.is_empty(),
        "refused commands were written: {:?}",
        leaked.iter().map(|r| &r.event).collect::<Vec<_>>()
    );

    drop(c);
    server.shutdown();
}

#[test]
fn qos2_command_written_once() {
    let server = start();
    let log = server.embedded_log().expect("embedded backend").clone();
    let c = client(&server, "cmd-qos2");
    let before = log.commands_appended();
    c.client
        .publish(
            "command/demo/device4/exactly",
            QoS::ExactlyOnce,
            false,
            br#"{"once":true}"#.to_vec(),
        )
        .unwrap();
    let rec = c.wait(Duration::from_secs(5), |e| {
        matches!(e, Event::Incoming(Incoming::PubRec(_)))
    });
    match rec {
        Some(Event::Incoming(Incoming::PubRec(r))) => {
            assert_eq!(r.reason, rumqttc::v5::mqttbytes::v5::PubRecReason::Success)
        }
        _ => panic!("no PUBREC"),
    }
    assert!(
        c.wait(Duration::from_secs(5), |e| matches!(
            e,
            Event::Incoming(Incoming::PubComp(_))
        ))
        .is_some(),
        "no PUBCOMP"
    );
    std::thread::sleep(Duration::from_millis(200));
    let cmds = log.commands_since(before);
    assert_eq!(cmds.len(), 1, "QoS 2 command written {} times", cmds.len());
    assert_eq!(cmds[0].event.subject.as_deref(), Some("exactly"));
    assert_eq!(&cmds[0].event.data[..], br#"{"once":true}"#);
    drop(c);
    server.shutdown();
}

/// MQTT 4.3.3: a QoS 2 PUBLISH sent again (DUP=1, same packet id) before PUBREL is the same
/// message: written once. Raw socket, so the retransmission is under the test's control.
#[test]
fn qos2_retransmission_written_once() {
    use std::io::Write;
    let server = start();
    let log = server.embedded_log().expect("embedded backend").clone();
    let mut s = std::net::TcpStream::connect(server.mqtt_addrs()[0]).unwrap();
    s.write_all(&common::connect_packet(5, "cmd-qos2-raw", 30))
        .unwrap();
    let (h, b) = common::read_packet(&mut s, Duration::from_secs(3)).expect("CONNACK");
    assert_eq!((h, b[1]), (0x20, 0));
    let before = log.commands_appended();
    let mut body = Vec::new();
    common::mqtt_str(b"command/demo/device2/twice", &mut body);
    body.extend_from_slice(&7u16.to_be_bytes());
    body.push(0);
    body.extend_from_slice(b"{\"n\":2}");
    s.write_all(&common::packet(0x34, &body)).unwrap();
    let (h, b) = common::read_packet(&mut s, Duration::from_secs(3)).expect("PUBREC");
    assert_eq!((h, &b[..2]), (0x50, &7u16.to_be_bytes()[..]));
    assert!(b.len() == 2 || b[2] == 0, "PUBREC reason {b:?}");
    s.write_all(&common::packet(0x3C, &body)).unwrap(); // DUP=1
    let (h, b) = common::read_packet(&mut s, Duration::from_secs(3)).expect("second PUBREC");
    assert_eq!((h, &b[..2]), (0x50, &7u16.to_be_bytes()[..]));
    s.write_all(&[0x62, 0x02, 0, 7]).unwrap(); // PUBREL
    let (h, b) = common::read_packet(&mut s, Duration::from_secs(3)).expect("PUBCOMP");
    assert_eq!((h, &b[..2]), (0x70, &7u16.to_be_bytes()[..]));
    std::thread::sleep(Duration::from_millis(200));
    let cmds = log.commands_since(before);
    assert_eq!(
        cmds.len(),
        1,
        "QoS 2 retransmission written {} times",
        cmds.len()
    );
    drop(s);
    server.shutdown();
}

/// Spec 2.5: MQTT 3.1.1 has no failure PUBACK: a refused command closes the connection.
#[test]
fn v311_refused_command_closes() {
    use std::io::Write;
    let server = start();
    let log = server.embedded_log().expect("embedded backend").clone();
    let before = log.commands_appended();
    for topic in [
        "command/demo/off/x",
        "command/readonly/device1/x",
        "command/demo/device1",
        "other/topic",
    ] {
        let mut s = std::net::TcpStream::connect(server.mqtt_addrs()[0]).unwrap();
        s.write_all(&common::connect_packet(4, "cmd-v311-refused", 30))
            .unwrap();
        let (h, b) = common::read_packet(&mut s, Duration::from_secs(3)).expect("CONNACK");
        assert_eq!((h, b[1]), (0x20, 0));
        let mut body = Vec::new();
        common::mqtt_str(topic.as_bytes(), &mut body);
        body.extend_from_slice(&1u16.to_be_bytes());
        body.extend_from_slice(b"{}");
        s.write_all(&common::packet(0x32, &body)).unwrap();
        let (bytes, closed) = common::read_until_closed(&mut s, Duration::from_secs(3));
        assert!(closed, "{topic}: v3.1.1 connection not closed");
        assert!(bytes.is_empty(), "{topic}: v3.1.1 got {bytes:?}");
    }
    assert_eq!(
        log.commands_appended(),
        before,
        "a refused command was written"
    );
    server.shutdown();
}

/// Issue #12: a command from an authenticated user is addressed to the device (`sender`,
/// `partitionkey` `<app>/<device>`, as Drogue Cloud's integration writes it), and `issuedby`
/// names the user who sent it.
#[test]
fn commands_name_the_user_who_sent_them() {
    let carol = mqtt_integration::auth::generate_api_key().expect("random source");
    let text = format!(
        "[server]\nthreads = 1\nshutdown_timeout = \"2s\"\n\n[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:0\"\n\n[http]\nbind = \"127.0.0.1:0\"\n\n[backend.embedded]\nstorage = \"memory\"\n\n[[user]]\nname = \"carol\"\napi_keys = [\"{}\"]\n\n[[app]]\nname = \"owned\"\nowner = \"carol\"\ndevices = [ {{ name = \"valve\" }} ]\n",
        carol.hash
    );
    let config = Config::from_toml_str(&text, "test", Vec::new()).expect("config");
    let server = Server::start(&config).expect("server start");
    let log = server.embedded_log().expect("embedded backend").clone();
    let mut options = common::v5_options(server.mqtt_addrs()[0], "carol-cmd");
    options.set_credentials("carol", carol.key.as_str());
    let c = common::V5::connect(options);
    let before = log.commands_appended();
    assert_eq!(
        publish_qos1(&c, "command/owned/valve/open", b"{}", None),
        format!("{:?}", PubAckReason::Success)
    );
    let cmds = log.commands_since(before);
    assert_eq!(cmds.len(), 1);
    let e = &cmds[0].event;
    assert_eq!(ext(e, "sender"), Some("valve"));
    assert_eq!(ext(e, "partitionkey"), Some("owned/valve"));
    assert_eq!(ext(e, "issuedby"), Some("carol"));
}

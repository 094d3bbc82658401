//! Commands: acknowledgements in order, Receive Maximum, QoS 2, refusals and their Reason Strings.

use super::*;

#[test]
fn commands_are_acknowledged_in_order_with_their_reason_codes() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let publish = |topic: &'static str, packet_id: u16| {
        command(topic, QoS::AtLeastOnce, packet_id, b"{\"v\":1}")
    };
    c.send(&publish("command/demo/device1/set", 1));
    c.send(&publish("command/demo/off/set", 2));
    c.send(&publish("command/nope/device1/set", 3));
    c.send(&publish("command/readonly/device1/set", 4));
    c.send(&publish("command/demo/device1", 5));
    c.send(&publish("other/topic", 6));
    let events = c.events();
    let SessionEvent::Command(cmd) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (
            cmd.app.as_str(),
            cmd.device.as_str(),
            cmd.command.as_str(),
            cmd.packet_id
        ),
        ("demo", "device1", "set", 1)
    );
    assert_eq!(events.len(), 6, "one command and five refusals: {events:?}");
    assert!(
        c.received().is_empty(),
        "acks wait for the first command [MQTT-4.6.0-2]"
    );
    c.s.command_done(1, Ok(()));
    assert_eq!(
        c.received(),
        vec![
            Owned::PubAck(1, 0x00),
            Owned::PubAck(2, 0x87),
            Owned::PubAck(3, 0x87),
            Owned::PubAck(4, 0x87),
            Owned::PubAck(5, 0x90),
            Owned::PubAck(6, 0x90),
        ]
    );
    c.send(&publish("command/demo/device1/set", 7));
    c.events();
    c.s.command_done(7, Err(BackendError::Unavailable("down".into())));
    assert_eq!(c.received(), vec![Owned::PubAck(7, 0x80)]);
}

#[test]
fn more_unacknowledged_commands_than_receive_maximum_disconnect() {
    let mut c = Client::connected(Version::V5, "c1", None);
    for packet_id in 1..=9 {
        c.send(&command(
            "command/demo/device1/set",
            QoS::AtLeastOnce,
            packet_id,
            b"1",
        ));
    }
    assert!(c.s.is_closed());
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x93 }]);
}

#[test]
fn qos2_command_flow() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let publish = command("command/demo/device1/set", QoS::ExactlyOnce, 10, b"x");
    c.send(&publish);
    assert_eq!(c.events().len(), 1);
    c.s.command_done(10, Ok(()));
    assert_eq!(c.received(), vec![Owned::PubRec(10, 0)]);
    c.send(&publish);
    assert!(
        c.events().is_empty(),
        "a re-sent QoS 2 command is not written twice"
    );
    assert_eq!(c.received(), vec![Owned::PubRec(10, 0)]);
    c.send(&Packet::PubRel(Ack {
        packet_id: 10,
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }));
    assert_eq!(c.received(), vec![Owned::PubComp(10, 0)]);
}

#[test]
fn v311_refused_command_closes_the_connection() {
    let mut c = Client::connected(Version::V311, "c1", None);
    c.send(&command("command/demo/off/set", QoS::AtLeastOnce, 1, b"x"));
    assert!(c.s.is_closed());
    assert!(matches!(
        c.s.close_reason(),
        Some(CloseReason::CommandFailed(_))
    ));
}

/// Issue #12: v5 refusals say why in a Reason String, unless the client asked for no problem
/// information ([MQTT-3.1.2-29]); the text is the same for an unknown application and a missing
/// right, so that names cannot be probed.
#[test]
fn refusals_carry_a_reason_string_when_the_client_wants_one() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(
        1,
        &[
            ("app/demo", QoS::AtMostOnce),
            ("app/private", QoS::AtMostOnce),
        ],
        vec![],
        None,
    );
    c.accept_join();
    assert_eq!(
        c.reason_strings(),
        vec![Some(
            "app/private: not authorized: no read permission on application private".into()
        )]
    );
    c.subscribe(2, &[("app/nope", QoS::AtMostOnce)], vec![], None);
    assert_eq!(
        c.reason_strings(),
        vec![Some(
            "app/nope: not authorized: no read permission on application nope".into()
        )]
    );
    let publish =
        |topic: &'static str, packet_id: u16| command(topic, QoS::AtLeastOnce, packet_id, b"x");
    c.send(&publish("command/readonly/device1/set", 3));
    c.send(&publish("command/nope/device1/set", 4));
    c.send(&publish("other/topic", 5));
    c.send(&publish("command/demo/device1/set", 6));
    c.events();
    c.s.command_done(6, Err(BackendError::Unavailable("broker down".into())));
    assert_eq!(
        c.reason_strings(),
        vec![
            Some(
                "not authorized: no write permission for device device1 of application readonly"
                    .into()
            ),
            Some(
                "not authorized: no write permission for device device1 of application nope".into()
            ),
            Some("not a command topic: command/<application>/<device>/<command>".into()),
            Some("event backend unavailable: broker down".into()),
        ]
    );

    // Request Problem Information 0: codes only.
    let mut c = Client::new(Version::V5);
    c.send(&connect(
        Version::V5,
        "quiet",
        true,
        10,
        Properties {
            request_problem_information: Some(0),
            ..Properties::default()
        },
    ));
    c.events();
    c.s.accept_connect(c.now, Identity::Anonymous);
    c.received();
    c.subscribe(1, &[("app/private", QoS::AtMostOnce)], vec![], None);
    c.send(&publish("command/readonly/device1/set", 2));
    c.events();
    assert_eq!(c.reason_strings(), vec![None, None]);
}

#[test]
fn a_v5_publish_with_a_subscription_identifier_is_a_protocol_error() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "command/demo/device1/set",
        packet_id: Some(1),
        properties: Properties {
            subscription_identifiers: vec![7],
            ..Properties::default()
        },
        payload: b"1",
    }));
    assert!(c.s.is_closed());
    // [MQTT-3.3.4-6] not acknowledged: the only answer is DISCONNECT 0x82, no command goes out.
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x82 }]);
    assert!(!c
        .events()
        .iter()
        .any(|e| matches!(e, SessionEvent::Command(_))));
}

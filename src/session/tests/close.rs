//! Closing: keep-alive, connect timeout, malformed and partial packets, take-over and shutdown.

use super::*;

#[test]
fn keep_alive_closes_at_one_and_a_half_times() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.s.handle_timeout(c.now + Duration::from_millis(14_900));
    assert!(!c.s.is_closed());
    c.s.handle_timeout(c.now + Duration::from_millis(15_100));
    assert!(c.s.is_closed());
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x8D }]);
}

#[test]
fn connect_timeout() {
    let mut c = Client::new(Version::V5);
    c.s.handle_timeout(c.now + Duration::from_secs(6));
    assert_eq!(c.s.close_reason(), Some(&CloseReason::ConnectTimeout));
}

#[test]
fn malformed_and_oversized_packets_disconnect_with_the_reason() {
    let mut c = Client::connected(Version::V5, "c1", None);
    // SUBSCRIBE with reserved flags 0000 instead of 0010 [MQTT-3.8.1-1].
    c.send_raw(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a']);
    assert!(c.s.is_closed());
    assert!(matches!(
        &c.received()[..],
        [Owned::Disconnect { code: 0x81 }]
    ));

    let mut c = Client::connected(Version::V5, "c1", None);
    // A PUBLISH announcing 100,000 bytes, over the 4096-byte maximum: refused from its header.
    c.send_raw(&[0x30, 0xA0, 0x8D, 0x06]);
    assert!(c.s.is_closed());
    assert!(matches!(
        &c.received()[..],
        [Owned::Disconnect { code: 0x95 }]
    ));
}

#[test]
fn half_sent_packet_waits_for_the_rest() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let mut buf = BytesMut::new();
    Packet::PingReq.encode(Version::V5, &mut buf).unwrap();
    assert_eq!(c.s.handle_input(c.now, &buf[..1]), 0);
    assert_eq!(c.s.handle_input(c.now, &buf), 2);
    assert_eq!(c.received(), vec![Owned::PingResp]);
}

#[test]
fn takeover_and_shutdown_tell_v5_clients_why() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.s.taken_over();
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x8E }]);
    let mut c = Client::connected(Version::V5, "c1", None);
    c.s.shutdown();
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x8B }]);
    let mut c = Client::connected(Version::V311, "c1", None);
    c.s.shutdown();
    assert!(c.received().is_empty(), "3.1.1 has no server DISCONNECT");
}

/// The fixture's applications with `readonly` no longer readable by anonymous clients.
fn registry_without_readonly_readers() -> Registry {
    let apps = APPS.replace(
        "name = \"readonly\"\nmembers = { anonymous = \"reader\" }",
        "name = \"readonly\"",
    );
    assert_ne!(apps, APPS, "the fixture changed: update this test");
    Registry::from_config(&Config::from_toml_str(&apps, "test", Vec::new()).unwrap())
}

#[test]
fn a_reload_that_revokes_reading_disconnects_only_the_readers_it_concerns() {
    let revoked = registry_without_readonly_readers();
    for version in [Version::V5, Version::V311] {
        let mut reader = Client::connected(version, "reader", None);
        join(&mut reader, "app/demo/#", QoS::AtMostOnce);
        join(&mut reader, "app/readonly/#", QoS::AtMostOnce);
        reader.received();
        let mut other = Client::connected(version, "other", None);
        join(&mut other, "app/demo/#", QoS::AtMostOnce);
        other.received();
        let mut idle = Client::connected(version, "idle", None);

        // The registry in force still allows everything: nothing happens.
        assert!(!reader.s.recheck_rights(&reader.s.config.registry.load()));

        assert!(reader.s.recheck_rights(&revoked));
        assert!(reader.s.is_closed());
        assert!(matches!(
            reader.s.close_reason(),
            Some(CloseReason::RightsRevoked { app }) if app == "readonly"
        ));
        let told = reader.received();
        match version {
            Version::V5 => assert_eq!(told, vec![Owned::Disconnect { code: 0x87 }]),
            // MQTT 3.1.1 has no DISCONNECT from the server: the connection just closes.
            _ => assert_eq!(told, vec![]),
        }
        assert!(!other.s.recheck_rights(&revoked));
        assert!(!idle.s.recheck_rights(&revoked));
        assert!(!other.s.is_closed() && !idle.s.is_closed());
    }
}

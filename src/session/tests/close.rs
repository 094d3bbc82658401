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

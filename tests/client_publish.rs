//! What a client may put in a PUBLISH (#17 item 7).

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

/// [MQTT-3.3.4-6] a PUBLISH from a client must not carry a Subscription Identifier: DISCONNECT
/// 0x82 Protocol Error, and no PUBACK.
#[test]
fn a_v5_publish_with_a_subscription_identifier_is_a_protocol_error() {
    let svc = Service::start("");
    let mut s = raw_connect(&svc, 5, "pub-subid", 60);
    let mut b = Vec::new();
    mqtt_str(b"command/demo/device1/set", &mut b);
    b.extend_from_slice(&1u16.to_be_bytes());
    b.extend_from_slice(&[2, 0x0B, 7]); // properties: Subscription Identifier 7
    b.extend_from_slice(b"{}");
    s.write_all(&packet(0x32, &b)).unwrap();
    let (h, body) = read_packet(&mut s, Duration::from_secs(5)).expect("no answer");
    assert_eq!(
        h, 0xE0,
        "expected DISCONNECT (no PUBACK), got {h:#x} {body:?}"
    );
    assert_eq!(disconnect_reason(&body), 0x82);
    assert!(closed_within(&mut s, Duration::from_secs(5)));
}

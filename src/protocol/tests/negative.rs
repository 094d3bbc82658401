//! One test per validation rule: each asserts the error variant and reason code.

use bytes::BytesMut;

use super::*;

const V3: Option<Version> = Some(Version::V311);
const V5: Option<Version> = Some(Version::V5);

/// A CONNECT frame: protocol name, level, flags, keep alive 60, `props` (whole property block,
/// MQTT 5 only) and `payload`.
fn connect(name: &str, level: u8, flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, name.len() as u8];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(&[level, flags, 0x00, 0x3C]);
    body.extend_from_slice(props);
    body.extend_from_slice(payload);
    frame(0x10, &body)
}

/// A minimal valid MQTT 5 CONNECT with the given property block (contents only).
fn connect_v5_props(props: &[u8]) -> Vec<u8> {
    let mut block = vec![props.len() as u8];
    block.extend_from_slice(props);
    connect("MQTT", 5, 0x02, &block, &[0x00, 0x00])
}

/// A QoS 0 MQTT 5 PUBLISH to "t" with the given property block (contents only).
fn publish_v5_props(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, b't', props.len() as u8];
    body.extend_from_slice(props);
    frame(0x30, &body)
}

/// An MQTT 5 SUBSCRIBE of "a" with the given property block (contents only).
fn subscribe_v5_props(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, props.len() as u8];
    body.extend_from_slice(props);
    body.extend_from_slice(&[0x00, 0x01, b'a', 0x00]);
    frame(0x82, &body)
}

// ---- frame_len -------------------------------------------------------------------------

#[test]
fn frame_len_needs_more_bytes() {
    assert_eq!(frame_len(&[], 100), Ok(None));
    assert_eq!(frame_len(&[0x30], 100), Ok(None));
    assert_eq!(frame_len(&[0x30, 0x80], 100), Ok(None));
    assert_eq!(frame_len(&[0x30, 0x05, 0x00, 0x01], 100), Ok(None));
    assert_eq!(frame_len(&[0xC0, 0x00, 0xD0], 100), Ok(Some(2)));
}

#[test]
fn frame_len_refuses_oversized_packet_before_body() {
    // Remaining length 2,097,151: the body has not arrived, the size is already known.
    let e = frame_len(&[0x30, 0xFF, 0xFF, 0x7F], 1000).unwrap_err();
    assert_eq!(
        e,
        DecodeError::PacketTooLarge {
            size: 1 + 3 + 2_097_151,
            max: 1000
        }
    );
    assert_eq!(e.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    // Exactly at the limit is fine.
    assert_eq!(frame_len(&[0xC0, 0x00], 2), Ok(Some(2)));
    assert!(frame_len(&[0xC0, 0x00], 1).is_err());
}

#[test]
fn variable_byte_integer_longer_than_four_bytes() {
    // 1.5.5: at most four bytes.
    let bytes = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    assert!(matches!(
        frame_len(&bytes, u32::MAX),
        Err(DecodeError::MalformedPacket { .. })
    ));
    assert_malformed(&bytes, V5);
}

#[test]
fn variable_byte_integer_not_shortest_form() {
    // [MQTT-1.5.5-1]: 0x80 0x00 encodes 0 in two bytes.
    assert!(frame_len(&[0xC0, 0x80, 0x00], u32::MAX).is_err());
    assert_malformed(&[0xC0, 0x80, 0x00], V5);
}

// ---- fixed header ----------------------------------------------------------------------

#[test]
fn remaining_length_must_match_frame() {
    // 2.1.4: PINGREQ announcing one byte that is not there / trailing byte.
    assert_malformed(&[0xC0, 0x01], V5);
    assert_malformed(&[0xC0, 0x00, 0x00], V5);
    // PINGREQ has no body at all (3.12).
    assert_malformed(&[0xC0, 0x01, 0x00], V3);
    // PUBACK with a trailing byte in 3.1.1 (Remaining Length must be 2).
    assert_malformed(&[0x40, 0x03, 0x00, 0x01, 0x00], V3);
    // UNSUBACK 3.1.1 with a payload.
    assert_malformed(&[0xB0, 0x03, 0x00, 0x01, 0x00], V3);
    // DISCONNECT 3.1.1 with a body.
    assert_malformed(&[0xE0, 0x01, 0x00], V3);
    // CONNACK with an extra byte.
    assert_malformed(&[0x20, 0x03, 0x00, 0x00, 0x00], V3);
}

#[test]
fn reserved_fixed_header_flags() {
    // [MQTT-2.2.2-1], [MQTT-2.2.2-2]: PUBREL, SUBSCRIBE, UNSUBSCRIBE use 0b0010.
    for version in [V3, V5] {
        assert_malformed(&[0x60, 0x02, 0x00, 0x01], version);
        assert_malformed(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00], version);
        assert_malformed(&[0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, b'a'], version);
        // ... and the others 0.
        assert_malformed(&[0x42, 0x02, 0x00, 0x01], version);
        assert_malformed(&[0x52, 0x02, 0x00, 0x01], version);
        assert_malformed(&[0x72, 0x02, 0x00, 0x01], version);
        assert_malformed(&[0xC1, 0x00], version);
        assert_malformed(&[0xD8, 0x00], version);
        assert_malformed(&[0xE4, 0x00], version);
        assert_malformed(&[0x21, 0x02, 0x00, 0x00], version);
    }
    let mut c = connect("MQTT", 4, 0x02, &[], &[0x00, 0x00]);
    c[0] = 0x11;
    assert_malformed(&c, None);
}

#[test]
fn reserved_packet_types() {
    // 2.1.2: type 0 is reserved; type 15 (AUTH) does not exist in 3.1.1.
    assert_malformed(&[0x00, 0x00], V5);
    assert_malformed(&[0xF0, 0x00], V3);
    assert_eq!(decode(&[0xF0, 0x00], V5), Ok(Packet::Auth(Auth::default())));
}

#[test]
fn first_packet_must_be_connect() {
    // [MQTT-3.1.0-1].
    assert_protocol_error(&[0xC0, 0x00], None);
    assert_protocol_error(&[0x30, 0x03, 0x00, 0x01, b't'], None);
}

// ---- PUBLISH ----------------------------------------------------------------------------

#[test]
fn publish_qos_3() {
    // [MQTT-3.3.1-4].
    assert_malformed(&[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01], V3);
}

#[test]
fn publish_dup_with_qos_0() {
    // [MQTT-3.3.1-2], enforced for MQTT 5.
    assert_malformed(&[0x38, 0x04, 0x00, 0x01, b't', 0x00], V5);
    assert!(decode(&[0x38, 0x03, 0x00, 0x01, b't'], V3).is_ok());
}

#[test]
fn publish_topic_with_wildcard() {
    // [MQTT-3.3.2-2].
    for topic in [&b"a/+"[..], b"a/#", b"+", b"#"] {
        let mut body = vec![0x00, topic.len() as u8];
        body.extend_from_slice(topic);
        let e = decode_err(&frame(0x30, &body), V3);
        assert!(matches!(e, DecodeError::TopicNameInvalid { .. }), "{e:?}");
        assert_eq!(e.reason_code(), ReasonCode::TOPIC_NAME_INVALID);
    }
}

#[test]
fn publish_empty_topic() {
    // 3.1.1 [MQTT-4.7.3-1].
    let e = decode_err(&[0x30, 0x02, 0x00, 0x00], V3);
    assert!(matches!(e, DecodeError::TopicNameInvalid { .. }));
    // MQTT 5 3.3.2.3.4: allowed only with a Topic Alias.
    assert_protocol_error(&[0x30, 0x03, 0x00, 0x00, 0x00], V5);
    assert!(decode(&[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01], V5).is_ok());
}

#[test]
fn string_not_utf8() {
    // [MQTT-1.5.4-1]: 0xC3 0x28 is an invalid sequence.
    assert_malformed(&[0x30, 0x04, 0x00, 0x02, 0xC3, 0x28], V3);
    // Surrogate half U+D800 encoded as ED A0 80.
    assert_malformed(&[0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80], V3);
}

#[test]
fn string_with_null_character() {
    // [MQTT-1.5.4-2].
    assert_malformed(&[0x30, 0x04, 0x00, 0x02, b'a', 0x00], V3);
}

#[test]
fn string_longer_than_packet() {
    assert_malformed(&[0x30, 0x03, 0x00, 0x05, b'a'], V3);
}

// ---- packet identifiers -----------------------------------------------------------------

#[test]
fn packet_id_zero() {
    // [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]).
    for version in [V3, V5] {
        assert_malformed(&[0x32, 0x05, 0x00, 0x01, b't', 0x00, 0x00], version);
        assert_malformed(&[0x40, 0x02, 0x00, 0x00], version);
        assert_malformed(&[0x50, 0x02, 0x00, 0x00], version);
        assert_malformed(&[0x62, 0x02, 0x00, 0x00], version);
        assert_malformed(&[0x70, 0x02, 0x00, 0x00], version);
        assert_malformed(&[0x90, 0x03, 0x00, 0x00, 0x00], version);
        assert_malformed(&[0xB0, 0x02, 0x00, 0x00], version);
    }
    assert_malformed(&[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00], V3);
    assert_malformed(&[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, b'a'], V3);
    assert_malformed(&[0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, b'a', 0x00], V5);
    assert_malformed(&[0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, b'a'], V5);
}

// ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------

#[test]
fn subscribe_without_filters() {
    // [MQTT-3.8.3-2].
    assert_protocol_error(&[0x82, 0x02, 0x00, 0x01], V3);
    assert_protocol_error(&[0x82, 0x03, 0x00, 0x01, 0x00], V5);
}

#[test]
fn unsubscribe_without_filters() {
    // [MQTT-3.10.3-2].
    assert_protocol_error(&[0xA2, 0x02, 0x00, 0x01], V3);
    assert_protocol_error(&[0xA2, 0x03, 0x00, 0x01, 0x00], V5);
}

#[test]
fn subscribe_option_reserved_bits() {
    // 3.1.1 [MQTT-3-8.3-4]: upper six bits of Requested QoS reserved (No Local is 5.0 only).
    assert_malformed(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04], V3);
    // [MQTT-3.8.3-5]: bits 6 and 7 reserved.
    assert_malformed(&[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40], V5);
    assert_malformed(&[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x80], V5);
}

#[test]
fn subscribe_qos_3() {
    // 3.8.3.1.
    assert_malformed(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03], V3);
    assert_malformed(&[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03], V5);
}

#[test]
fn subscribe_retain_handling_3() {
    // 3.8.3.1: Retain Handling 3 is a Protocol Error.
    assert_protocol_error(&[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30], V5);
}

#[test]
fn subscribe_no_local_on_shared_subscription() {
    // [MQTT-3.8.3-4].
    let mut body = vec![0x00, 0x01, 0x00, 0x00, 0x0B];
    body.extend_from_slice(b"$share/g/a/");
    body.push(0x04);
    assert_protocol_error(&frame(0x82, &body), V5);
}

#[test]
fn subscribe_invalid_filters_are_left_to_suback() {
    // Filters are checked by the server (SUBACK 0x8F), not by the decoder.
    for filter in [&b"a/#/b"[..], b"", b"a+", b"##"] {
        let mut body = vec![0x00, 0x01, 0x00, 0x00, filter.len() as u8];
        body.extend_from_slice(filter);
        body.push(0x01);
        let bytes = frame(0x82, &body);
        let Packet::Subscribe(s) = decode(&bytes, V5).unwrap() else {
            panic!("not SUBSCRIBE")
        };
        assert!(!super::super::topic::valid_filter(s.filters[0].filter));
    }
}

// ---- CONNECT ----------------------------------------------------------------------------

#[test]
fn connect_protocol_name() {
    // [MQTT-3.1.2-1].
    assert_malformed(&connect("MQTX", 4, 0x02, &[], &[0x00, 0x00]), None);
}

#[test]
fn connect_unsupported_levels() {
    // [MQTT-3.1.2-2]; MQTT 3.1 ("MQIsdp", level 3) is not supported either.
    for (name, level) in [("MQTT", 3), ("MQTT", 6), ("MQTT", 0), ("MQIsdp", 3)] {
        let e = decode_err(&connect(name, level, 0x02, &[], &[0x00, 0x00]), None);
        assert_eq!(e, DecodeError::UnsupportedProtocolVersion { level });
        assert_eq!(e.reason_code(), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
    }
}

#[test]
fn connect_reserved_flag() {
    // [MQTT-3.1.2-3].
    assert_malformed(&connect("MQTT", 4, 0x03, &[], &[0x00, 0x00]), None);
    assert_malformed(&connect("MQTT", 5, 0x01, &[0x00], &[0x00, 0x00]), None);
}

#[test]
fn connect_will_flags_inconsistent() {
    // [MQTT-3.1.2-11], [MQTT-3.1.2-13]: Will QoS / Will Retain without the Will Flag.
    assert_malformed(&connect("MQTT", 4, 0x0A, &[], &[0x00, 0x00]), None);
    assert_malformed(&connect("MQTT", 4, 0x22, &[], &[0x00, 0x00]), None);
    // [MQTT-3.1.2-12]: Will QoS 3.
    let will = [0x00, 0x00, 0x00, 0x01, b'w', 0x00, 0x00];
    assert_malformed(&connect("MQTT", 4, 0x1E, &[], &will), None);
    // The same Will with QoS 2 is fine.
    assert!(decode(&connect("MQTT", 4, 0x16, &[], &will), None).is_ok());
}

#[test]
fn connect_will_topic_with_wildcard() {
    let will = [0x00, 0x00, 0x00, 0x01, b'#', 0x00, 0x00];
    let e = decode_err(&connect("MQTT", 4, 0x06, &[], &will), None);
    assert!(matches!(e, DecodeError::TopicNameInvalid { .. }));
}

#[test]
fn connect_v311_password_without_username() {
    // 3.1.1 [MQTT-3.1.2-22].
    let payload = [0x00, 0x00, 0x00, 0x01, b'p'];
    assert_malformed(&connect("MQTT", 4, 0x42, &[], &payload), None);
    // MQTT 5 allows it (3.1.2.9).
    assert!(decode(&connect("MQTT", 5, 0x42, &[0x00], &payload), None).is_ok());
}

#[test]
fn connect_truncated() {
    let full = connect(
        "MQTT",
        4,
        0xC2,
        &[],
        &[0x00, 0x00, 0x00, 0x01, b'u', 0x00, 0x01, b'p'],
    );
    // Drop the password but keep the remaining length consistent.
    let body = &full[2..full.len() - 3];
    assert_malformed(&frame(0x10, body), None);
}

// ---- properties -------------------------------------------------------------------------

#[test]
fn property_not_allowed_in_packet() {
    // 2.2.2.2: Topic Alias (0x23) is a PUBLISH property.
    assert_malformed(&connect_v5_props(&[0x23, 0x00, 0x01]), None);
    // Will Delay Interval (0x18) only in the Will properties.
    assert_malformed(&publish_v5_props(&[0x18, 0x00, 0x00, 0x00, 0x01]), V5);
    // Reason String not in UNSUBSCRIBE.
    assert_malformed(
        &[
            0xA2, 0x09, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, b'x', 0x00, 0x00,
        ],
        V5,
    );
}

#[test]
fn property_unknown_identifier() {
    for (bytes, version) in [
        (connect_v5_props(&[0x7F, 0x00]), None),
        (publish_v5_props(&[0x04, 0x00]), V5),
    ] {
        assert_malformed(&bytes, version);
    }
}

#[test]
fn property_length_beyond_packet() {
    assert_malformed(&[0x30, 0x05, 0x00, 0x01, b't', 0x09, 0x01], V5);
}

#[test]
fn property_duplicate() {
    // 2.2.2.2 / 3.1.2.11.2: the same property twice is a Protocol Error.
    let sei = [0x11, 0x00, 0x00, 0x00, 0x0A];
    assert_protocol_error(&connect_v5_props(&[sei, sei].concat()), None);
    assert_protocol_error(&publish_v5_props(&[0x01, 0x00, 0x01, 0x01]), V5);
    assert_protocol_error(&publish_v5_props(&[0x23, 0x00, 0x01, 0x23, 0x00, 0x02]), V5);
}

#[test]
fn property_user_property_repeats() {
    // 3.3.2.3.7: User Property may appear more than once.
    let up = [0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'];
    let bytes = publish_v5_props(&[up, up].concat());
    let Packet::Publish(p) = decode(&bytes, V5).unwrap() else {
        panic!("not PUBLISH")
    };
    assert_eq!(p.properties.user_properties, vec![("k", "v"), ("k", "v")]);
}

#[test]
fn property_subscription_identifier_repeats() {
    // 3.3.2.3.8: PUBLISH may carry several; 3.8.2.1.2: SUBSCRIBE only one.
    let bytes = publish_v5_props(&[0x0B, 0x01, 0x0B, 0x02]);
    let Packet::Publish(p) = decode(&bytes, V5).unwrap() else {
        panic!("not PUBLISH")
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
    assert_protocol_error(&subscribe_v5_props(&[0x0B, 0x01, 0x0B, 0x02]), V5);
    assert!(decode(&subscribe_v5_props(&[0x0B, 0x01]), V5).is_ok());
}

/// Property values the spec refuses, each a Protocol Error.
#[test]
fn property_values_out_of_range() {
    for (bytes, version) in [
        // 3.8.2.1.2: a Subscription Identifier of 0.
        (subscribe_v5_props(&[0x0B, 0x00]), V5),
        (publish_v5_props(&[0x0B, 0x00]), V5),
        // 3.1.2.11.3: Receive Maximum 0.
        (connect_v5_props(&[0x21, 0x00, 0x00]), None),
        // 3.1.2.11.4: Maximum Packet Size 0.
        (connect_v5_props(&[0x27, 0x00, 0x00, 0x00, 0x00]), None),
        // 3.1.2.11.7: Request Problem Information other than 0 or 1.
        (connect_v5_props(&[0x17, 0x02]), None),
        // [MQTT-3.3.2-14]: a wildcard in the Response Topic.
        (publish_v5_props(&[0x08, 0x00, 0x01, b'#']), V5),
    ] {
        assert_protocol_error(&bytes, version);
    }
}

// ---- reason codes -----------------------------------------------------------------------

#[test]
fn reason_code_not_allowed_in_packet() {
    // 3.4.2.1: 0x05 is no PUBACK reason code; 0x10 is no PUBREL one.
    assert_malformed(&[0x40, 0x03, 0x00, 0x01, 0x05], V5);
    assert_malformed(&[0x62, 0x03, 0x00, 0x01, 0x10], V5);
    // 3.1.1 3.2.2.3: CONNACK return codes stop at 5.
    assert_malformed(&[0x20, 0x02, 0x00, 0x06], V3);
    // 3.1.1 3.9.3: SUBACK return codes 0, 1, 2, 0x80.
    assert_malformed(&[0x90, 0x03, 0x00, 0x01, 0x87], V3);
    assert_malformed(&[0xE0, 0x01, 0x01], V5);
    assert_malformed(&[0xF0, 0x01, 0x01], V5);
}

#[test]
fn connack_reserved_flags_and_session_present() {
    // [MQTT-3.2.2-1].
    assert_malformed(&[0x20, 0x02, 0x02, 0x00], V3);
    // [MQTT-3.2.2-6]: Session Present with a refusal.
    assert_protocol_error(&[0x20, 0x02, 0x01, 0x05], V3);
}

// ---- encoding ---------------------------------------------------------------------------

#[test]
fn encode_auth_in_v311() {
    let mut out = BytesMut::new();
    let e = Packet::Auth(Auth::default())
        .encode(Version::V311, &mut out)
        .unwrap_err();
    assert!(matches!(e, EncodeError::NotInVersion { .. }));
    assert!(out.is_empty());
}

#[test]
fn encode_string_too_long() {
    let long = "x".repeat(65_536);
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: &long,
        packet_id: None,
        properties: Properties::default(),
        payload: &[],
    });
    let mut out = BytesMut::new();
    let e = p.encode(Version::V5, &mut out).unwrap_err();
    assert!(
        matches!(e, EncodeError::FieldTooLong { len: 65_536, .. }),
        "{e:?}"
    );
    assert!(out.is_empty());
    assert!(encode_user_property(&long, "v", &mut out).is_err());
}

#[test]
fn encode_packet_too_large() {
    let header = PublishHeader {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: None,
    };
    let mut out = BytesMut::new();
    let e = encode_publish_header(
        Version::V311,
        &header,
        &PublishProperties::default(),
        MAX_VAR_INT as usize,
        &mut out,
    )
    .unwrap_err();
    assert!(matches!(e, EncodeError::PacketTooLarge { .. }));
}

#[test]
fn encode_inconsistent_publish() {
    let mut out = BytesMut::new();
    let header = PublishHeader {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "t",
        packet_id: None,
    };
    let props = PublishProperties::default();
    assert!(encode_publish_header(Version::V5, &header, &props, 0, &mut out).is_err());
    let header = PublishHeader {
        qos: QoS::AtMostOnce,
        packet_id: Some(1),
        ..header
    };
    assert!(encode_publish_header(Version::V5, &header, &props, 0, &mut out).is_err());
    let header = PublishHeader {
        packet_id: None,
        topic: "a/#",
        ..header
    };
    assert!(encode_publish_header(Version::V5, &header, &props, 0, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn encode_property_not_allowed() {
    let p = Packet::PubAck(Ack {
        properties: Properties {
            topic_alias: Some(1),
            ..Properties::default()
        },
        ..Ack::new(1)
    });
    let mut out = BytesMut::new();
    assert!(matches!(
        p.encode(Version::V5, &mut out),
        Err(EncodeError::Invalid { .. })
    ));
}

//! Byte vectors taken from the examples of the MQTT 3.1.1 and MQTT 5.0 specifications.

use bytes::BytesMut;

use super::super::primitives::{read_var_int, write_string, Reader, VarInt};
use super::*;

/// `p` is the packet with first byte `first`, packet id 10 and `payload`, in MQTT 3.1.1 and in
/// MQTT 5 (with an empty property block): it decodes from those bytes and encodes to them.
fn assert_both_versions(p: &Packet<'_>, first: u8, payload: &[u8]) {
    for (version, header) in [
        (Version::V311, &[0x00, 0x0A][..]),
        (Version::V5, &[0x00, 0x0A, 0x00][..]),
    ] {
        let bytes = frame(first, &[header, payload].concat());
        assert_eq!(&decode(&bytes, Some(version)).unwrap(), p);
        assert_eq!(encode(p, version), bytes);
    }
}

/// MQTT 5 1.5.5 / 3.1.1 2.2.3 table "Size of Variable Byte Integer": the boundary values.
#[test]
fn variable_byte_integer_table() {
    let table: &[(usize, &[u8])] = &[
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for &(value, bytes) in table {
        let mut out = BytesMut::new();
        primitives::write_var_int(&mut out, value);
        assert_eq!(&out[..], bytes, "encoding {value}");
        assert_eq!(var_int_len(value), bytes.len());
        assert_eq!(
            read_var_int(bytes),
            VarInt::Value {
                value: value as u32,
                len: bytes.len()
            }
        );
    }
}

/// MQTT 5 1.5.4 (3.1.1 1.5.3) "UTF-8 Encoded String example": "A" followed by U+2A6D4.
#[test]
fn utf8_string_example() {
    let bytes = [0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94];
    let mut r = Reader::new(&bytes, "test");
    assert_eq!(r.string().unwrap(), "A\u{2A6D4}");
    assert!(r.is_empty());
    let mut out = BytesMut::new();
    write_string(&mut out, "A\u{2A6D4}");
    assert_eq!(&out[..], &bytes);
}

/// 3.1.1 section 3.1.2.10 "Variable header non normative example": protocol name MQTT, level
/// 4, flags 0xCE (user name, password, Will QoS 1, Will flag, Clean Session), keep alive 10.
const CONNECT_V311_VARIABLE_HEADER: [u8; 10] =
    [0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xCE, 0x00, 0x0A];

/// MQTT 5 section 3.1.2.12 "Variable Header non-normative example": as above with level 5 and
/// a property block of length 5 holding Session Expiry Interval (0x11) = 10.
const CONNECT_V5_VARIABLE_HEADER: [u8; 16] = [
    0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0xCE, 0x00, 0x0A, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A,
];

/// Payload used with the CONNECT examples: client id "cid", Will topic "w", Will payload "x",
/// user name "u", password "p".
fn connect_payload(will_props: bool) -> Vec<u8> {
    let mut v = vec![0x00, 0x03, b'c', b'i', b'd'];
    if will_props {
        v.push(0x00); // Will Properties: length 0
    }
    v.extend_from_slice(&[
        0x00, 0x01, b'w', 0x00, 0x01, b'x', 0x00, 0x01, b'u', 0x00, 0x01, b'p',
    ]);
    v
}

fn example_connect(version: Version) -> Packet<'static> {
    Packet::Connect(Connect {
        version,
        clean_start: true,
        keep_alive: 10,
        client_id: "cid",
        will: Some(Will {
            topic: "w",
            payload: b"x",
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        }),
        username: Some("u"),
        password: Some(b"p"),
        properties: Properties {
            session_expiry_interval: (version == Version::V5).then_some(10),
            ..Properties::default()
        },
    })
}

/// The CONNECT examples of both versions: (version, variable header, remaining length).
#[test]
fn connect_examples() {
    for (version, header, remaining_length) in [
        (Version::V311, &CONNECT_V311_VARIABLE_HEADER[..], 0x1B),
        (Version::V5, &CONNECT_V5_VARIABLE_HEADER[..], 0x22),
    ] {
        let mut body = header.to_vec();
        body.extend(connect_payload(version == Version::V5));
        let bytes = frame(0x10, &body);
        assert_eq!(bytes[1], remaining_length);
        let expected = example_connect(version);
        assert_eq!(decode(&bytes, None).unwrap(), expected);
        assert_eq!(encode(&expected, version), bytes);
    }
}

/// 3.1.1 section 3.2 / MQTT 5 3.2: CONNACK accepted, no session (3.1.1 fixed form 20 02 00 00).
#[test]
fn connack_examples() {
    let v3 = [0x20, 0x02, 0x00, 0x00];
    let p = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    });
    assert_eq!(decode(&v3, Some(Version::V311)).unwrap(), p);
    assert_eq!(encode(&p, Version::V311), v3);
    // MQTT 5 adds a Property Length of 0.
    let v5 = [0x20, 0x03, 0x00, 0x00, 0x00];
    assert_eq!(decode(&v5, Some(Version::V5)).unwrap(), p);
    assert_eq!(encode(&p, Version::V5), v5);
}

/// 3.1.1 section 3.3.2.3 / MQTT 5 3.3.2.3 "Publish Packet variable header non normative
/// example": Topic Name "a/b", Packet Identifier 10 (MQTT 5: then Property Length 0).
#[test]
fn publish_variable_header_example() {
    let v3_header = [0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x0A];
    let v5_header = [0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x0A, 0x00];
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "a/b",
        packet_id: Some(10),
        properties: Properties::default(),
        payload: b"hi",
    });
    for (version, header) in [
        (Version::V311, &v3_header[..]),
        (Version::V5, &v5_header[..]),
    ] {
        let mut body = header.to_vec();
        body.extend_from_slice(b"hi");
        let bytes = frame(0x32, &body);
        assert_eq!(decode(&bytes, Some(version)).unwrap(), p);
        assert_eq!(encode(&p, version), bytes);
    }
}

/// 3.1.1 section 3.4 / 3.5 / 3.6 / 3.7: PUBACK, PUBREC, PUBREL (flags 0010), PUBCOMP for
/// packet id 10; MQTT 5 3.4.2.1 lets Success without properties use the same 2-byte form.
#[test]
fn ack_examples() {
    type MakeAck = fn(Ack<'static>) -> Packet<'static>;
    let cases: [(u8, MakeAck); 4] = [
        (0x40, Packet::PubAck),
        (0x50, Packet::PubRec),
        (0x62, Packet::PubRel),
        (0x70, Packet::PubComp),
    ];
    for (first, make) in cases {
        let bytes = [first, 0x02, 0x00, 0x0A];
        let p = make(Ack::new(10));
        for version in [Version::V311, Version::V5] {
            assert_eq!(decode(&bytes, Some(version)).unwrap(), p);
            assert_eq!(encode(&p, version), bytes);
        }
    }
    // MQTT 5: reason code without properties (Remaining Length 3).
    let bytes = [0x40, 0x03, 0x00, 0x0A, 0x10];
    let p = Packet::PubAck(Ack {
        code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..Ack::new(10)
    });
    assert_eq!(decode(&bytes, Some(Version::V5)).unwrap(), p);
    assert_eq!(encode(&p, Version::V5), bytes);
}

/// The examples of SUBSCRIBE, SUBACK and UNSUBSCRIBE, packet id 10: (first byte, payload, packet).
#[test]
fn subscribe_suback_unsubscribe_examples() {
    let subscribe = |filter, qos| SubscribeFilter {
        filter,
        options: SubscribeOptions {
            qos,
            ..SubscribeOptions::default()
        },
    };
    let examples = [
        // 3.1.1 section 3.8.2 / 3.8.3.1 (MQTT 5 3.8.2, 3.8.3): "a/b" QoS 1, "c/d" QoS 2.
        (
            0x82,
            &[
                0x00, 0x03, 0x61, 0x2F, 0x62, 0x01, 0x00, 0x03, 0x63, 0x2F, 0x64, 0x02,
            ][..],
            Packet::Subscribe(Subscribe {
                packet_id: 10,
                properties: Properties::default(),
                filters: vec![
                    subscribe("a/b", QoS::AtLeastOnce),
                    subscribe("c/d", QoS::ExactlyOnce),
                ],
            }),
        ),
        // 3.1.1 section 3.9.3 "Payload byte format non normative example": Success QoS 0,
        // Success QoS 1, Success QoS 2, Failure (MQTT 5 3.9.3: the same bytes as reason codes).
        (
            0x90,
            &[0x00, 0x01, 0x02, 0x80],
            Packet::SubAck(SubAck {
                codes: vec![
                    ReasonCode::GRANTED_QOS_0,
                    ReasonCode::GRANTED_QOS_1,
                    ReasonCode::GRANTED_QOS_2,
                    ReasonCode::UNSPECIFIED_ERROR,
                ],
                packet_id: 10,
                properties: Properties::default(),
            }),
        ),
        // 3.1.1 section 3.10.3 "Payload byte format non normative example": "a/b", "c/d".
        (
            0xA2,
            &[0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x03, 0x63, 0x2F, 0x64],
            Packet::Unsubscribe(Unsubscribe {
                filters: vec!["a/b", "c/d"],
                packet_id: 10,
                properties: Properties::default(),
            }),
        ),
    ];
    for (first, payload, p) in examples {
        assert_both_versions(&p, first, payload);
    }
}

/// 3.1.1 section 3.11: UNSUBACK is just the packet id; MQTT 5 3.11.3 adds reason codes.
#[test]
fn unsuback_examples() {
    let v3 = [0xB0, 0x02, 0x00, 0x0A];
    let p3 = Packet::UnsubAck(UnsubAck {
        packet_id: 10,
        properties: Properties::default(),
        codes: vec![],
    });
    assert_eq!(decode(&v3, Some(Version::V311)).unwrap(), p3);
    assert_eq!(encode(&p3, Version::V311), v3);
    let v5 = [0xB0, 0x05, 0x00, 0x0A, 0x00, 0x00, 0x11];
    let p5 = Packet::UnsubAck(UnsubAck {
        packet_id: 10,
        properties: Properties::default(),
        codes: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
    });
    assert_eq!(decode(&v5, Some(Version::V5)).unwrap(), p5);
    assert_eq!(encode(&p5, Version::V5), v5);
}

/// 3.12, 3.13, 3.14 (both versions): PINGREQ C0 00, PINGRESP D0 00, DISCONNECT E0 00.
#[test]
fn fixed_header_only_packets() {
    for version in [Version::V311, Version::V5] {
        assert_eq!(
            decode(&[0xC0, 0x00], Some(version)).unwrap(),
            Packet::PingReq
        );
        assert_eq!(
            decode(&[0xD0, 0x00], Some(version)).unwrap(),
            Packet::PingResp
        );
        let d = Packet::Disconnect(Disconnect::default());
        assert_eq!(decode(&[0xE0, 0x00], Some(version)).unwrap(), d);
        assert_eq!(encode(&d, version), [0xE0, 0x00]);
        assert_eq!(encode(&Packet::PingReq, version), [0xC0, 0x00]);
        assert_eq!(encode(&Packet::PingResp, version), [0xD0, 0x00]);
    }
    // MQTT 5 3.14.2.1: a reason code alone (Remaining Length 1).
    let bytes = [0xE0, 0x01, 0x8E];
    let d = Packet::Disconnect(Disconnect {
        code: ReasonCode::SESSION_TAKEN_OVER,
        properties: Properties::default(),
    });
    assert_eq!(decode(&bytes, Some(Version::V5)).unwrap(), d);
    assert_eq!(encode(&d, Version::V5), bytes);
    // MQTT 5 3.15.2.1: AUTH with Remaining Length 0 is Success.
    assert_eq!(
        decode(&[0xF0, 0x00], Some(Version::V5)).unwrap(),
        Packet::Auth(Auth::default())
    );
}

/// 3.3.2.3 properties in a PUBLISH as written by the hot path: user properties pre-encoded in
/// `raw` decode like ordinary ones.
#[test]
fn publish_header_with_raw_properties() {
    let mut raw = BytesMut::new();
    encode_user_property("k", "v", &mut raw).unwrap();
    assert_eq!(&raw[..], &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v']);
    let header = PublishHeader {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "t",
        packet_id: None,
    };
    let props = PublishProperties {
        content_type: Some("text/plain"),
        subscription_identifiers: &[7],
        raw: &raw,
        ..PublishProperties::default()
    };
    let mut out = BytesMut::new();
    let size = encode_publish_header(Version::V5, &header, &props, 3, &mut out).unwrap();
    out.extend_from_slice(b"abc");
    assert_eq!(size, out.len());
    assert_eq!(publish_packet_size(Version::V5, &header, &props, 3), size);
    assert_eq!(frame_len(&out, u32::MAX).unwrap(), Some(size));
    let Packet::Publish(p) = decode(&out, Some(Version::V5)).unwrap() else {
        panic!("not a PUBLISH")
    };
    assert_eq!(p.topic, "t");
    assert!(p.retain);
    assert_eq!(p.payload, b"abc");
    assert_eq!(p.properties.content_type, Some("text/plain"));
    assert_eq!(p.properties.subscription_identifiers, vec![7]);
    assert_eq!(p.properties.user_properties, vec![("k", "v")]);
}

#[test]
fn reason_code_names() {
    assert_eq!(ReasonCode::MALFORMED_PACKET.to_string(), "Malformed Packet");
    assert_eq!(
        format!("{:?}", ReasonCode::PACKET_TOO_LARGE),
        "Packet too large (0x95)"
    );
    assert_eq!(ReasonCode(0x03).to_string(), "unknown reason code 0x03");
    assert_eq!(
        ReasonCode::NOT_AUTHORIZED.to_v3_connack(),
        ReasonCode::V3_NOT_AUTHORIZED
    );
    assert_eq!(
        ReasonCode::QUOTA_EXCEEDED.to_v3_suback(),
        ReasonCode::V3_SUBACK_FAILURE
    );
}

//! proptest: valid packets of every type round-trip in both versions; arbitrary, truncated and
//! mutated bytes never make the decoder panic; `frame_len` agrees with `decode`.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

use super::super::primitives::{read_var_int, VarInt};
use super::super::properties::allowed;
use super::super::reason;
use super::*;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

fn text() -> impl Strategy<Value = &'static str> + Clone {
    "[^\\x00]{0,8}".prop_map(leak_str)
}

fn bin() -> impl Strategy<Value = &'static [u8]> + Clone {
    vec(any::<u8>(), 0..12).prop_map(leak_bytes)
}

fn topic_name() -> impl Strategy<Value = &'static str> + Clone {
    "[a-z0-9/$ é]{1,12}".prop_map(leak_str)
}

fn filter() -> impl Strategy<Value = &'static str> + Clone {
    "[a-z0-9/+#]{0,12}".prop_map(leak_str)
}

fn qos() -> impl Strategy<Value = QoS> + Clone {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn versions() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V311), Just(Version::V5)]
}

fn code(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> + Clone {
    proptest::sample::select(codes).prop_map(ReasonCode)
}

fn flag() -> impl Strategy<Value = Option<u8>> + Clone {
    of(0u8..=1)
}

/// Any properties allowed in `ctx` (for 3.1.1: none).
fn props(ctx: PropertyContext, version: Version) -> BoxedStrategy<Properties<'static>> {
    if version == Version::V311 {
        return Just(Properties::default()).boxed();
    }
    let g1 = (
        flag(),
        of(any::<u32>()),
        of(text()),
        of(topic_name()),
        of(bin()),
        vec(1..=MAX_VAR_INT, 0..3),
        of(any::<u32>()),
        of(text()),
        of(any::<u16>()),
        of(text()),
        of(bin()),
        flag(),
    );
    let g2 = (
        of(any::<u32>()),
        flag(),
        of(text()),
        of(text()),
        of(text()),
        of(1..=u16::MAX),
        of(any::<u16>()),
        of(1..=u16::MAX),
        flag(),
        flag(),
        vec((text(), text()), 0..3),
        of(1..=u32::MAX),
    );
    let g3 = (flag(), flag(), flag());
    (g1, g2, g3)
        .prop_map(move |(g1, g2, g3)| {
            use super::super::properties::id::*;
            let on = |identifier: u8| allowed(identifier) & ctx.bit() != 0;
            Properties {
                payload_format_indicator: g1.0.filter(|_| on(PAYLOAD_FORMAT_INDICATOR)),
                message_expiry_interval: g1.1.filter(|_| on(MESSAGE_EXPIRY_INTERVAL)),
                content_type: g1.2.filter(|_| on(CONTENT_TYPE)),
                response_topic: g1.3.filter(|_| on(RESPONSE_TOPIC)),
                correlation_data: g1.4.filter(|_| on(CORRELATION_DATA)),
                subscription_identifiers: match ctx {
                    PropertyContext::Publish => g1.5,
                    PropertyContext::Subscribe => g1.5.into_iter().take(1).collect(),
                    _ => vec![],
                },
                session_expiry_interval: g1.6.filter(|_| on(SESSION_EXPIRY_INTERVAL)),
                assigned_client_identifier: g1.7.filter(|_| on(ASSIGNED_CLIENT_IDENTIFIER)),
                server_keep_alive: g1.8.filter(|_| on(SERVER_KEEP_ALIVE)),
                authentication_method: g1.9.filter(|_| on(AUTHENTICATION_METHOD)),
                authentication_data: g1.10.filter(|_| on(AUTHENTICATION_DATA)),
                request_problem_information: g1.11.filter(|_| on(REQUEST_PROBLEM_INFORMATION)),
                will_delay_interval: g2.0.filter(|_| on(WILL_DELAY_INTERVAL)),
                request_response_information: g2.1.filter(|_| on(REQUEST_RESPONSE_INFORMATION)),
                response_information: g2.2.filter(|_| on(RESPONSE_INFORMATION)),
                server_reference: g2.3.filter(|_| on(SERVER_REFERENCE)),
                reason_string: g2.4.filter(|_| on(REASON_STRING)),
                receive_maximum: g2.5.filter(|_| on(RECEIVE_MAXIMUM)),
                topic_alias_maximum: g2.6.filter(|_| on(TOPIC_ALIAS_MAXIMUM)),
                topic_alias: g2.7.filter(|_| on(TOPIC_ALIAS)),
                maximum_qos: g2.8.filter(|_| on(MAXIMUM_QOS)),
                retain_available: g2.9.filter(|_| on(RETAIN_AVAILABLE)),
                // Allowed in every packet with properties (2.2.2.2).
                user_properties: g2.10,
                maximum_packet_size: g2.11.filter(|_| on(MAXIMUM_PACKET_SIZE)),
                wildcard_subscription_available: g3
                    .0
                    .filter(|_| on(WILDCARD_SUBSCRIPTION_AVAILABLE)),
                subscription_identifier_available: g3
                    .1
                    .filter(|_| on(SUBSCRIPTION_IDENTIFIER_AVAILABLE)),
                shared_subscription_available: g3.2.filter(|_| on(SHARED_SUBSCRIPTION_AVAILABLE)),
            }
        })
        .boxed()
}

fn will(version: Version) -> impl Strategy<Value = Will<'static>> {
    (
        topic_name(),
        bin(),
        qos(),
        any::<bool>(),
        props(PropertyContext::Will, version),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect(version: Version) -> impl Strategy<Value = Packet<'static>> {
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        of(will(version)),
        of(text()),
        of(bin()),
        props(PropertyContext::Connect, version),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // 3.1.1 [MQTT-3.1.2-22]: no password without a user name.
                let password = password.filter(|_| version == Version::V5 || username.is_some());
                Packet::Connect(Connect {
                    version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn connack(version: Version) -> impl Strategy<Value = Packet<'static>> {
    let codes = by_version(version, reason::V3_CONNACK_CODES, reason::CONNACK_CODES);
    (
        any::<bool>(),
        code(codes),
        props(PropertyContext::ConnAck, version),
    )
        .prop_map(|(session_present, code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: session_present && code == ReasonCode::SUCCESS,
                code,
                properties,
            })
        })
}

fn publish(version: Version) -> impl Strategy<Value = Packet<'static>> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic_name(),
        1..=u16::MAX,
        props(PropertyContext::Publish, version),
        bin(),
    )
        .prop_map(|(dup, qos, retain, topic, id, properties, payload)| {
            let qos0 = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !qos0,
                qos,
                retain,
                topic,
                packet_id: (!qos0).then_some(id),
                properties,
                payload,
            })
        })
}

fn ack(version: Version) -> impl Strategy<Value = Packet<'static>> {
    let make = |codes: &'static [u8], kind: fn(Ack<'static>) -> Packet<'static>| {
        (
            1..=u16::MAX,
            code(codes),
            props(PropertyContext::Ack, version),
        )
            .prop_map(move |(packet_id, code, properties)| {
                kind(Ack {
                    packet_id,
                    code: v5_only(version, code),
                    properties,
                })
            })
    };
    prop_oneof![
        make(reason::PUBACK_CODES, Packet::PubAck),
        make(reason::PUBACK_CODES, Packet::PubRec),
        make(reason::PUBREL_CODES, Packet::PubRel),
        make(reason::PUBREL_CODES, Packet::PubComp),
    ]
}

/// The packet `$kind` from [`with_id_and_props`]'s parts, the list being its field `$list`.
macro_rules! list_packet {
    ($kind:ident, $list:ident) => {
        |(packet_id, properties, $list)| {
            Packet::$kind($kind {
                packet_id,
                properties,
                $list,
            })
        }
    };
}

fn subscribe(version: Version) -> impl Strategy<Value = Packet<'static>> {
    let options =
        (qos(), any::<bool>(), any::<bool>(), 0u8..=2).prop_map(move |(qos, nl, rap, rh)| {
            if version == Version::V311 {
                SubscribeOptions {
                    qos,
                    ..SubscribeOptions::default()
                }
            } else {
                SubscribeOptions {
                    qos,
                    no_local: nl,
                    retain_as_published: rap,
                    retain_handling: rh,
                }
            }
        });
    let filters = vec(
        (filter(), options).prop_map(|(filter, options)| SubscribeFilter { filter, options }),
        1..4,
    );
    with_id_and_props(version, PropertyContext::Subscribe, filters)
        .prop_map(list_packet!(Subscribe, filters))
}

fn suback(version: Version) -> impl Strategy<Value = Packet<'static>> {
    let codes = by_version(version, reason::V3_SUBACK_CODES, reason::SUBACK_CODES);
    let codes = vec(code(codes), 1..4);
    with_id_and_props(version, PropertyContext::SubAck, codes).prop_map(list_packet!(SubAck, codes))
}

fn unsubscribe(version: Version) -> impl Strategy<Value = Packet<'static>> {
    let filters = vec(filter(), 1..4);
    with_id_and_props(version, PropertyContext::Unsubscribe, filters)
        .prop_map(list_packet!(Unsubscribe, filters))
}

fn unsuback(version: Version) -> impl Strategy<Value = Packet<'static>> {
    // MQTT 3.1.1's UNSUBACK has no codes (3.11.3).
    let n = if version == Version::V5 { 1..4 } else { 0..1 };
    let codes = vec(code(reason::UNSUBACK_CODES), n);
    with_id_and_props(version, PropertyContext::UnsubAck, codes)
        .prop_map(list_packet!(UnsubAck, codes))
}

/// A packet id, properties allowed in `ctx` and a list: what SUBSCRIBE, SUBACK, UNSUBSCRIBE and
/// UNSUBACK are made of.
fn with_id_and_props<T: std::fmt::Debug>(
    version: Version,
    ctx: PropertyContext,
    list: impl Strategy<Value = Vec<T>>,
) -> impl Strategy<Value = (u16, Properties<'static>, Vec<T>)> {
    (1..=u16::MAX, props(ctx, version), list)
}

/// The reason codes of a packet in `version`.
fn by_version(version: Version, v3: &'static [u8], v5: &'static [u8]) -> &'static [u8] {
    match version {
        Version::V311 => v3,
        Version::V5 => v5,
    }
}

/// `code` in MQTT 5; Success in 3.1.1, whose packet has no reason code.
fn v5_only(version: Version, code: ReasonCode) -> ReasonCode {
    match version {
        Version::V311 => ReasonCode::SUCCESS,
        Version::V5 => code,
    }
}

fn disconnect(version: Version) -> impl Strategy<Value = Packet<'static>> {
    (
        code(reason::DISCONNECT_CODES),
        props(PropertyContext::Disconnect, version),
    )
        .prop_map(move |(code, properties)| {
            Packet::Disconnect(Disconnect {
                code: v5_only(version, code),
                properties,
            })
        })
}

fn auth() -> impl Strategy<Value = Packet<'static>> {
    (
        code(reason::AUTH_CODES),
        props(PropertyContext::Auth, Version::V5),
    )
        .prop_map(|(code, properties)| Packet::Auth(Auth { code, properties }))
}

fn packet(version: Version) -> BoxedStrategy<Packet<'static>> {
    let common = prop_oneof![
        connect(version),
        connack(version),
        publish(version),
        ack(version),
        subscribe(version),
        suback(version),
        unsubscribe(version),
        unsuback(version),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(version),
    ];
    match version {
        Version::V311 => common.boxed(),
        Version::V5 => prop_oneof![10 => common, 1 => auth()].boxed(),
    }
}

fn any_version_packet() -> impl Strategy<Value = (Version, Packet<'static>)> {
    prop_oneof![
        packet(Version::V311).prop_map(|p| (Version::V311, p)),
        packet(Version::V5).prop_map(|p| (Version::V5, p)),
    ]
}

fn check_round_trip(version: Version, p: &Packet<'static>) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    p.encode(version, &mut out).expect("valid packet encodes");
    prop_assert_eq!(p.encoded_size(version).unwrap(), out.len());
    prop_assert_eq!(frame_len(&out, u32::MAX).unwrap(), Some(out.len()));
    // A following packet in the buffer does not change the frame.
    let mut two = out.to_vec();
    two.extend_from_slice(&[0xC0, 0x00]);
    prop_assert_eq!(frame_len(&two, u32::MAX).unwrap(), Some(out.len()));
    let decoded = decode(&out, Some(version));
    prop_assert_eq!(decoded.as_ref(), Ok(p));
    if let Packet::Connect(_) = p {
        let decoded = decode(&out, None);
        prop_assert_eq!(decoded.as_ref(), Ok(p));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_v311(p in packet(Version::V311)) {
        check_round_trip(Version::V311, &p)?;
    }

    #[test]
    fn round_trip_v5(p in packet(Version::V5)) {
        check_round_trip(Version::V5, &p)?;
    }

    /// The hot path agrees with the general encoder and with `publish_packet_size`.
    #[test]
    fn publish_header_matches_general_encoder(
        version in versions(),
        p in publish(Version::V5),
        content_type in of(text()),
        pfi in flag(),
        sub_ids in vec(1..=MAX_VAR_INT, 0..3),
        user in vec((text(), text()), 0..3),
        raw_user in vec((text(), text()), 0..3),
    ) {
        let Packet::Publish(p) = p else { unreachable!() };
        let mut raw = BytesMut::new();
        for (k, v) in &raw_user {
            encode_user_property(k, v, &mut raw).unwrap();
        }
        let header = PublishHeader { dup: p.dup, qos: p.qos, retain: p.retain, topic: p.topic, packet_id: p.packet_id };
        let props = PublishProperties {
            payload_format_indicator: pfi,
            content_type,
            subscription_identifiers: &sub_ids,
            user_properties: &user,
            raw: &raw,
        };
        let mut out = BytesMut::new();
        let size = encode_publish_header(version, &header, &props, p.payload.len(), &mut out).unwrap();
        out.extend_from_slice(p.payload);
        prop_assert_eq!(size, out.len());
        prop_assert_eq!(publish_packet_size(version, &header, &props, p.payload.len()), size);

        let mut expected = Publish { properties: Properties::default(), ..p };
        if version == Version::V5 {
            expected.properties = Properties {
                payload_format_indicator: pfi,
                content_type,
                subscription_identifiers: sub_ids.clone(),
                user_properties: user.iter().chain(raw_user.iter()).copied().collect(),
                ..Properties::default()
            };
        }
        let mut general = BytesMut::new();
        Packet::Publish(expected.clone()).encode(version, &mut general).unwrap();
        prop_assert_eq!(&general[..], &out[..]);
        prop_assert_eq!(decode(&out, Some(version)), Ok(Packet::Publish(expected)));
    }

    /// Arbitrary bytes never panic, and whatever decodes is exactly one frame.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..64), version in of(versions())) {
        let framed = frame_len(&bytes, u32::MAX);
        if let Ok(Some(n)) = framed {
            let _ = decode(&bytes[..n], version);
        }
        if decode(&bytes, version).is_ok() {
            prop_assert_eq!(framed, Ok(Some(bytes.len())));
        }
    }

    /// Arbitrary bodies behind every fixed header byte never panic.
    #[test]
    fn arbitrary_bodies_never_panic(first in any::<u8>(), body in vec(any::<u8>(), 0..48), version in of(versions())) {
        let bytes = frame(first, &body);
        prop_assert_eq!(frame_len(&bytes, u32::MAX), Ok(Some(bytes.len())));
        let _ = decode(&bytes, version);
    }

    /// Truncations and single-byte mutations of valid packets never panic; a decodable
    /// truncation is a whole frame by `frame_len` too.
    #[test]
    fn truncated_and_mutated_packets_never_panic(
        (version, p) in any_version_packet(),
        cut in any::<prop::sample::Index>(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let bytes = encode(&p, version);
        let n = cut.index(bytes.len());
        let prefix = &bytes[..n];
        prop_assert_eq!(frame_len(prefix, u32::MAX), Ok(None));
        prop_assert!(decode(prefix, Some(version)).is_err());
        // Re-framed truncated bodies: the remaining length agrees, the content is cut short.
        if let VarInt::Value { len, .. } = read_var_int(bytes.get(1..).unwrap_or_default()) {
            let body = &bytes[1 + len..];
            let reframed = frame(bytes[0], &body[..cut.index(body.len() + 1).min(body.len())]);
            let _ = decode(&reframed, Some(version));
        }
        let mut mutated = bytes.clone();
        let i = pos.index(mutated.len());
        mutated[i] = byte;
        let framed = frame_len(&mutated, u32::MAX);
        if let Ok(Some(len)) = framed {
            let _ = decode(&mutated[..len], Some(version));
        }
        if decode(&mutated, Some(version)).is_ok() {
            prop_assert_eq!(framed, Ok(Some(mutated.len())));
        }
    }
}

/// One round-trip property per packet type, each drawing both versions.
macro_rules! round_trip_per_type {
    ($($name:ident => $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            $(
                #[test]
                fn $name((version, p) in versions().prop_flat_map(|v| ($strategy)(v).prop_map(move |p| (v, p)))) {
                    check_round_trip(version, &p)?;
                }
            )*
        }
    };
}

round_trip_per_type! {
    round_trip_connect => connect;
    round_trip_connack => connack;
    round_trip_publish => publish;
    round_trip_pub_acks => ack;
    round_trip_subscribe => subscribe;
    round_trip_suback => suback;
    round_trip_unsubscribe => unsubscribe;
    round_trip_unsuback => unsuback;
    round_trip_disconnect => disconnect;
    round_trip_pings => |_| prop_oneof![Just(Packet::PingReq), Just(Packet::PingResp)];
}

proptest! {
    #[test]
    fn round_trip_auth(p in auth()) {
        // AUTH exists in MQTT 5 only (3.15).
        check_round_trip(Version::V5, &p)?;
    }
}

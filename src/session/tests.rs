//! Whole conversations with a session, no sockets and no clock: the test plays the client
//! (encoding its packets with the codec), the shard (acting on session events) and time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::cloudevents::{Event, STRUCTURED_CONTENT_TYPE};
use crate::config::Config;
use crate::protocol::{
    Ack, Auth, Connect, Properties, Publish, QoS, Subscribe, SubscribeFilter, SubscribeOptions,
    Unsubscribe,
};
use crate::seam::{AppAlias, BackendError, Delivery, Mode, Record, Selector};

const APPS: &str = r#"
[[app]]
name = "demo"
members = { anonymous = "manager" }
devices = [ { name = "device1" }, { name = "off", enabled = false } ]

[[app]]
name = "readonly"
members = { anonymous = "reader" }
devices = [ { name = "device1" } ]

[[app]]
name = "private"
owner = "alice"
devices = [ { name = "device1" } ]
"#;

const CONN: ConnId = ConnId {
    shard: 0,
    slot: 7,
    generation: 1,
};

fn config() -> Arc<SessionConfig> {
    let config = Config::from_toml_str(APPS, "test", Vec::new()).expect("test config");
    Arc::new(SessionConfig {
        max_packet_size: 4096,
        default_receive_maximum: 3,
        server_receive_maximum: 8,
        max_inflight: 1024,
        connect_timeout: Duration::from_secs(5),
        server_keep_alive: None,
        max_subscriptions: 4,
        registry: Arc::new(Registry::from_config(&config)),
    })
}

/// The client side of a conversation.
struct Client {
    s: Session,
    version: Version,
    now: Instant,
}

impl Client {
    fn new(version: Version) -> Client {
        let now = Instant::now();
        Client {
            s: Session::new(CONN, config(), now),
            version,
            now,
        }
    }

    /// A client that connected anonymously with `client_id` and `receive_maximum` (v5).
    fn connected(version: Version, client_id: &str, receive_maximum: Option<u16>) -> Client {
        let mut c = Client::new(version);
        let props = Properties {
            receive_maximum,
            ..Properties::default()
        };
        c.send(&Packet::Connect(Connect {
            version,
            clean_start: true,
            keep_alive: 10,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: props,
        }));
        match c.s.poll_event() {
            Some(SessionEvent::Connect(req)) => assert!(!req.client_id.is_empty()),
            other => panic!("expected Connect event, got {other:?}"),
        }
        c.s.accept_connect(c.now, Identity::Anonymous);
        let out = c.received();
        assert!(
            matches!(&out[..], [Owned::ConnAck { code: 0, .. }]),
            "{out:?}"
        );
        c
    }

    fn send(&mut self, p: &Packet<'_>) {
        let mut buf = BytesMut::new();
        p.encode(self.version, &mut buf)
            .expect("client packet encodes");
        self.send_raw(&buf);
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let n = self.s.handle_input(self.now, bytes);
        if !self.s.is_closed() && self.s.is_connected() {
            assert_eq!(n, bytes.len(), "whole packets are consumed");
        }
    }

    fn subscribe(
        &mut self,
        packet_id: u16,
        filters: &[(&str, QoS)],
        user_properties: Vec<(&str, &str)>,
        sub_id: Option<u32>,
    ) {
        let properties = Properties {
            user_properties,
            subscription_identifiers: sub_id.into_iter().collect(),
            ..Properties::default()
        };
        let filters = filters
            .iter()
            .map(|(f, qos)| SubscribeFilter {
                filter: f,
                options: SubscribeOptions {
                    qos: *qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                },
            })
            .collect();
        self.send(&Packet::Subscribe(Subscribe {
            packet_id,
            properties,
            filters,
        }));
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    /// Everything the session queued for the socket, decoded.
    fn received(&mut self) -> Vec<Owned> {
        self.received_with(|p| Owned::from(p))
    }

    /// The Reason String of every packet the session queued (None where it has none).
    fn reason_strings(&mut self) -> Vec<Option<String>> {
        self.received_with(|p| {
            let props = match &p {
                Packet::SubAck(s) => &s.properties,
                Packet::PubAck(a) | Packet::PubRec(a) => &a.properties,
                _ => return None,
            };
            props.reason_string.map(str::to_owned)
        })
    }

    /// Everything the session queued for the socket, each packet decoded and mapped by `f`.
    fn received_with<T>(&mut self, f: impl Fn(Packet<'_>) -> T) -> Vec<T> {
        let mut bytes = Vec::new();
        loop {
            let out = self.s.out();
            let mut slices = [std::io::IoSlice::new(&[]); 16];
            let n = out.io_slices(&mut slices);
            if n == 0 {
                break;
            }
            let mut written = 0;
            for s in &slices[..n] {
                bytes.extend_from_slice(s);
                written += s.len();
            }
            out.consume(written);
        }
        let mut packets = Vec::new();
        let mut rest = &bytes[..];
        while let Some(len) = protocol::frame_len(rest, u32::MAX).expect("server output frames") {
            let p =
                protocol::decode(&rest[..len], Some(self.version)).expect("server output decodes");
            packets.push(f(p));
            rest = &rest[len..];
        }
        assert!(rest.is_empty(), "partial packet in server output");
        packets
    }
}

/// Server packets with what the tests look at, owned.
#[derive(Debug, Clone, PartialEq)]
enum Owned {
    ConnAck {
        code: u8,
        props: String,
    },
    SubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    UnsubAck {
        packet_id: u16,
        codes: Vec<u8>,
    },
    Publish {
        topic: String,
        qos: u8,
        dup: bool,
        packet_id: Option<u16>,
        sub_ids: Vec<u32>,
        payload: Vec<u8>,
        content_type: Option<String>,
    },
    PubAck {
        packet_id: u16,
        code: u8,
    },
    PubRec {
        packet_id: u16,
        code: u8,
    },
    PubComp {
        packet_id: u16,
        code: u8,
    },
    Disconnect {
        code: u8,
    },
    PingResp,
    Other(String),
}

impl From<Packet<'_>> for Owned {
    fn from(p: Packet<'_>) -> Owned {
        match p {
            Packet::ConnAck(c) => Owned::ConnAck {
                code: c.code.0,
                props: format!("{:?}", c.properties),
            },
            Packet::SubAck(s) => Owned::SubAck {
                packet_id: s.packet_id,
                codes: s.codes.iter().map(|c| c.0).collect(),
            },
            Packet::UnsubAck(s) => Owned::UnsubAck {
                packet_id: s.packet_id,
                codes: s.codes.iter().map(|c| c.0).collect(),
            },
            Packet::Publish(p) => Owned::Publish {
                topic: p.topic.to_owned(),
                qos: p.qos as u8,
                dup: p.dup,
                packet_id: p.packet_id,
                sub_ids: p.properties.subscription_identifiers.clone(),
                payload: p.payload.to_vec(),
                content_type: p.properties.content_type.map(str::to_owned),
            },
            Packet::PubAck(a) => Owned::PubAck {
                packet_id: a.packet_id,
                code: a.code.0,
            },
            Packet::PubRec(a) => Owned::PubRec {
                packet_id: a.packet_id,
                code: a.code.0,
            },
            Packet::PubComp(a) => Owned::PubComp {
                packet_id: a.packet_id,
                code: a.code.0,
            },
            Packet::Disconnect(d) => Owned::Disconnect { code: d.code.0 },
            Packet::PingResp => Owned::PingResp,
            other => Owned::Other(format!("{other:?}")),
        }
    }
}

fn record(offset: u64) -> Arc<Record> {
    let event = Event::new_device_event(
        "demo",
        "device1",
        "temp",
        "device1",
        "test",
        Some("application/json"),
        Bytes::from(format!("{{\"n\":{offset}}}")),
        std::time::SystemTime::UNIX_EPOCH,
    );
    Arc::new(Record::new(event, 0, offset))
}

fn delivery(member: u32, offset: u64, qos: QoS, mode: Mode) -> Delivery {
    Delivery {
        conn: CONN,
        member,
        record: record(offset),
        whole_app: Some(AppAlias::App),
        qos,
        mode,
        subscription_ids: Default::default(),
        dup: false,
        cost: 100,
        ack: AckToken {
            worker: 0,
            group: 1,
            partition: 0,
            epoch: 0,
            offset,
        },
    }
}

/// Subscribes and answers the join; returns the member id.
fn join(c: &mut Client, filter: &str, qos: QoS) -> u32 {
    c.subscribe(1, &[(filter, qos)], vec![], None);
    let (member, request) = match &c.events()[..] {
        [SessionEvent::Join {
            member, request, ..
        }] => (*member, *request),
        other => panic!("expected one Join, got {other:?}"),
    };
    c.s.joined(member, request, Ok(()));
    c.received();
    member
}

#[test]
fn connack_advertises_the_capabilities_of_spec_2_6() {
    let mut c = Client::new(Version::V5);
    c.send(&Packet::Connect(Connect {
        version: Version::V5,
        clean_start: false,
        keep_alive: 30,
        client_id: "",
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }));
    let Some(SessionEvent::Connect(req)) = c.s.poll_event() else {
        panic!("no Connect event")
    };
    assert!(
        req.client_id.starts_with("auto-"),
        "an empty client id gets one assigned"
    );
    c.s.accept_connect(c.now, Identity::Anonymous);
    let out = c.received();
    let [Owned::ConnAck { code: 0, props }] = &out[..] else {
        panic!("{out:?}")
    };
    for expected in [
        "receive_maximum: Some(8)",
        "maximum_packet_size: Some(4096)",
        "topic_alias_maximum: Some(0)",
        "retain_available: Some(0)",
        "wildcard_subscription_available: Some(1)",
        "subscription_identifier_available: Some(1)",
        "shared_subscription_available: Some(1)",
        "assigned_client_identifier: Some(\"auto-",
    ] {
        assert!(
            props.contains(expected),
            "CONNACK lacks {expected}: {props}"
        );
    }
}

#[test]
fn first_packet_must_be_connect() {
    let mut c = Client::new(Version::V5);
    c.send(&Packet::PingReq);
    assert!(c.s.is_closed());
    assert!(c.received().is_empty());
}

#[test]
fn v311_empty_client_id_needs_clean_session() {
    let mut c = Client::new(Version::V311);
    c.send(&Packet::Connect(Connect {
        version: Version::V311,
        clean_start: false,
        keep_alive: 0,
        client_id: "",
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }));
    assert!(matches!(
        &c.received()[..],
        [Owned::ConnAck { code: 2, .. }]
    ));
    assert!(c.s.is_closed());
}

#[test]
fn suback_waits_for_the_join_and_grants_qos_1_for_2() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(9, &[("app/demo", QoS::ExactlyOnce)], vec![], Some(5));
    let events = c.events();
    let [SessionEvent::Join {
        member,
        request,
        app,
        group,
        filters,
        start,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*start, crate::seam::StartAt::Latest, "the default");
    assert_eq!(&**app, "demo");
    assert_eq!(group, &GroupKey::client("demo", "c1"));
    assert_eq!(filters.len(), 1);
    assert_eq!(
        (filters[0].qos, filters[0].subscription_id, filters[0].mode),
        (QoS::AtLeastOnce, Some(5), Mode::Structured)
    );
    assert!(
        c.received().is_empty(),
        "no SUBACK before the start position is fixed"
    );
    c.s.joined(*member, *request, Ok(()));
    assert_eq!(
        c.received(),
        vec![Owned::SubAck {
            packet_id: 9,
            codes: vec![1]
        }]
    );
}

#[test]
fn refused_filters_get_their_reason_codes_without_breaking_the_others() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(
        2,
        &[
            ("#", QoS::AtMostOnce),
            ("foo/bar", QoS::AtMostOnce),
            ("app/demo", QoS::AtMostOnce),
            ("app/private", QoS::AtMostOnce),
            ("app/+", QoS::AtLeastOnce),
            ("app/nope", QoS::AtMostOnce),
        ],
        vec![],
        None,
    );
    let events = c.events();
    let [SessionEvent::Join {
        member, request, ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    c.s.joined(*member, *request, Ok(()));
    assert_eq!(
        c.received(),
        vec![Owned::SubAck {
            packet_id: 2,
            codes: vec![0xA2, 0x8F, 0x00, 0x87, 0xA2, 0x87]
        }]
    );

    let mut c = Client::connected(Version::V311, "c3", None);
    c.subscribe(
        3,
        &[
            ("#", QoS::AtMostOnce),
            ("foo/bar", QoS::AtMostOnce),
            ("app/private", QoS::AtMostOnce),
        ],
        vec![],
        None,
    );
    assert!(c.events().is_empty());
    assert_eq!(
        c.received(),
        vec![Owned::SubAck {
            packet_id: 3,
            codes: vec![0x80, 0x80, 0x80]
        }]
    );
}

#[test]
fn content_mode_property() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(
        4,
        &[("app/demo", QoS::AtMostOnce)],
        vec![("content-mode", "binary")],
        None,
    );
    let events = c.events();
    let [SessionEvent::Join {
        filters,
        member,
        request,
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(filters[0].mode, Mode::Binary);
    c.s.joined(*member, *request, Ok(()));
    assert_eq!(
        c.received(),
        vec![Owned::SubAck {
            packet_id: 4,
            codes: vec![0]
        }]
    );

    c.subscribe(
        5,
        &[("app/readonly", QoS::AtMostOnce)],
        vec![("content-mode", "fancy")],
        None,
    );
    assert!(c.events().is_empty());
    assert_eq!(
        c.received(),
        vec![Owned::SubAck {
            packet_id: 5,
            codes: vec![0x83]
        }]
    );
}

/// Spec 2.1 `start`: parsed into the Join; any other value refuses every filter of that
/// SUBSCRIBE with 0x83 and asks nothing of the backend.
#[test]
fn start_property_reaches_the_join_or_refuses() {
    use crate::seam::StartAt;
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(
        4,
        &[("app/demo", QoS::AtLeastOnce)],
        vec![("start", "-15m")],
        None,
    );
    let events = c.events();
    let [SessionEvent::Join {
        start,
        member,
        request,
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*start, StartAt::Ago(std::time::Duration::from_secs(900)));
    c.s.joined(*member, *request, Ok(()));
    assert_eq!(
        c.received(),
        vec![Owned::SubAck {
            packet_id: 4,
            codes: vec![1]
        }]
    );

    c.subscribe(
        5,
        &[
            ("app/demo", QoS::AtMostOnce),
            ("app/readonly", QoS::AtMostOnce),
        ],
        vec![("start", "tomorrow")],
        None,
    );
    assert!(c.events().is_empty());
    assert_eq!(
        c.received(),
        vec![Owned::SubAck {
            packet_id: 5,
            codes: vec![0x83, 0x83]
        }]
    );
}

#[test]
fn resubscribing_replaces_and_shares_one_group_per_application() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let member = join(&mut c, "app/demo", QoS::AtMostOnce);
    c.subscribe(
        2,
        &[
            ("app/demo", QoS::AtLeastOnce),
            ("app/demo/device1/#", QoS::AtMostOnce),
        ],
        vec![],
        Some(3),
    );
    let events = c.events();
    let [SessionEvent::Join {
        member: m2,
        filters,
        ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*m2, member, "same group, same member");
    assert_eq!(
        filters.len(),
        2,
        "the first app/demo was replaced, not duplicated"
    );
    assert!(filters
        .iter()
        .any(|f| f.selector == Selector::Topic(Arc::from("app/demo/device1/#"))));
}

#[test]
fn shared_and_ephemeral_groups() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(1, &[("$share/g/app/demo", QoS::AtMostOnce)], vec![], None);
    let events = c.events();
    let [SessionEvent::Join { group, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(group.name(), Some("demo.g"));

    let mut c = Client::new(Version::V311);
    c.send(&Packet::Connect(Connect {
        version: Version::V311,
        clean_start: true,
        keep_alive: 0,
        client_id: "",
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }));
    c.events();
    c.s.accept_connect(c.now, Identity::Anonymous);
    c.subscribe(1, &[("app/demo", QoS::AtMostOnce)], vec![], None);
    let events = c.events();
    let [SessionEvent::Join { group, .. }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(group.name(), None, "empty client id: ephemeral reader");
}

#[test]
fn qos1_window_is_respected_and_refilled_on_puback() {
    let mut c = Client::connected(Version::V5, "c1", Some(2));
    let member = join(&mut c, "app/demo", QoS::AtLeastOnce);
    for offset in 0..4 {
        c.s.deliver(delivery(member, offset, QoS::AtLeastOnce, Mode::Structured));
    }
    let out = c.received();
    assert_eq!(out.len(), 2, "Receive Maximum 2: two in flight");
    let ids: Vec<u16> = out
        .iter()
        .map(|p| match p {
            Owned::Publish {
                packet_id: Some(id),
                qos: 1,
                content_type,
                ..
            } => {
                assert_eq!(content_type.as_deref(), Some(STRUCTURED_CONTENT_TYPE));
                *id
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(c.s.inflight_len(), 2);
    c.send(&Packet::PubAck(Ack {
        packet_id: ids[1],
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }));
    let events = c.events();
    assert!(
        matches!(&events[..], [SessionEvent::Ack(t)] if t.offset == 1),
        "{events:?}"
    );
    let out = c.received();
    assert!(
        matches!(&out[..], [Owned::Publish { payload, .. }] if String::from_utf8_lossy(payload).contains("\"n\":2")),
        "{out:?}"
    );
}

#[test]
fn binary_mode_sends_data_as_is_with_attributes_as_user_properties() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let member = join(&mut c, "app/demo", QoS::AtMostOnce);
    let mut d = delivery(member, 0, QoS::AtMostOnce, Mode::Binary);
    d.subscription_ids.push(11);
    c.s.deliver(d);
    let out = c.received();
    let [Owned::Publish {
        payload,
        content_type,
        sub_ids,
        qos: 0,
        ..
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(payload, b"{\"n\":0}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(sub_ids, &vec![11]);
}

#[test]
fn deliveries_of_a_left_group_are_dropped_and_released() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let member = join(&mut c, "app/demo", QoS::AtMostOnce);
    c.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: 3,
        properties: Properties::default(),
        filters: vec!["app/demo", "app/other"],
    }));
    let events = c.events();
    assert!(
        matches!(&events[..], [SessionEvent::Leave { group: g, .. }] if g.name() == Some("demo.c1")),
        "{events:?}"
    );
    assert_eq!(
        c.received(),
        vec![Owned::UnsubAck {
            packet_id: 3,
            codes: vec![0x00, 0x11]
        }]
    );
    c.s.deliver(delivery(member, 0, QoS::AtMostOnce, Mode::Structured));
    assert!(c.received().is_empty());
    assert_eq!(c.s.take_released(), 100);
}

#[test]
fn commands_are_acknowledged_in_order_with_their_reason_codes() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let publish = |topic: &'static str, packet_id: u16| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic,
            packet_id: Some(packet_id),
            properties: Properties::default(),
            payload: b"{\"v\":1}",
        })
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
            Owned::PubAck {
                packet_id: 1,
                code: 0x00
            },
            Owned::PubAck {
                packet_id: 2,
                code: 0x87
            },
            Owned::PubAck {
                packet_id: 3,
                code: 0x87
            },
            Owned::PubAck {
                packet_id: 4,
                code: 0x87
            },
            Owned::PubAck {
                packet_id: 5,
                code: 0x90
            },
            Owned::PubAck {
                packet_id: 6,
                code: 0x90
            },
        ]
    );
    c.send(&publish("command/demo/device1/set", 7));
    c.events();
    c.s.command_done(7, Err(BackendError::Unavailable("down".into())));
    assert_eq!(
        c.received(),
        vec![Owned::PubAck {
            packet_id: 7,
            code: 0x80
        }]
    );
}

#[test]
fn more_unacknowledged_commands_than_receive_maximum_disconnect() {
    let mut c = Client::connected(Version::V5, "c1", None);
    for packet_id in 1..=9 {
        c.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "command/demo/device1/set",
            packet_id: Some(packet_id),
            properties: Properties::default(),
            payload: b"1",
        }));
    }
    assert!(c.s.is_closed());
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x93 }]);
}

#[test]
fn qos2_command_flow() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: "command/demo/device1/set",
        packet_id: Some(10),
        properties: Properties::default(),
        payload: b"x",
    });
    c.send(&publish);
    assert_eq!(c.events().len(), 1);
    c.s.command_done(10, Ok(()));
    assert_eq!(
        c.received(),
        vec![Owned::PubRec {
            packet_id: 10,
            code: 0
        }]
    );
    c.send(&publish);
    assert!(
        c.events().is_empty(),
        "a re-sent QoS 2 command is not written twice"
    );
    assert_eq!(
        c.received(),
        vec![Owned::PubRec {
            packet_id: 10,
            code: 0
        }]
    );
    c.send(&Packet::PubRel(Ack {
        packet_id: 10,
        code: ReasonCode::SUCCESS,
        properties: Properties::default(),
    }));
    assert_eq!(
        c.received(),
        vec![Owned::PubComp {
            packet_id: 10,
            code: 0
        }]
    );
}

/// Issue #5: what only subscribers and command senders need stays unallocated on an idle
/// connection, and a finished command gives its part back at the next trim.
#[test]
fn idle_sessions_keep_nothing_out_of_line() {
    let size = std::mem::size_of::<Session>();
    assert!(
        size <= 216,
        "Session is {size} bytes (728 with everything inline)"
    );
    let mut c = Client::connected(Version::V5, "c1", None);
    c.send(&Packet::PingReq);
    assert_eq!(c.received(), vec![Owned::PingResp]);
    c.s.trim();
    assert!(c.s.subscribed.is_none() && c.s.inbound.is_none());
    assert!(c.s.close_reason.is_none());

    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "command/demo/device1/set",
        packet_id: Some(3),
        properties: Properties::default(),
        payload: b"x",
    }));
    assert_eq!(c.events().len(), 1);
    c.s.trim();
    assert!(
        c.s.inbound.is_some(),
        "kept while the command is unanswered"
    );
    c.s.command_done(3, Ok(()));
    assert_eq!(
        c.received(),
        vec![Owned::PubAck {
            packet_id: 3,
            code: 0
        }]
    );
    c.s.trim();
    assert!(c.s.inbound.is_none() && c.s.subscribed.is_none());
    assert_eq!(c.s.subscription_count(), 0);
    assert_eq!(c.s.take_stats(), Stats::default());
}

#[test]
fn v311_refused_command_closes_the_connection() {
    let mut c = Client::connected(Version::V311, "c1", None);
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "command/demo/off/set",
        packet_id: Some(1),
        properties: Properties::default(),
        payload: b"x",
    }));
    assert!(c.s.is_closed());
    assert!(matches!(
        c.s.close_reason(),
        Some(CloseReason::CommandFailed(_))
    ));
}

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

#[test]
fn teardown_names_the_deliveries_that_were_never_sent() {
    let mut c = Client::connected(Version::V5, "c1", Some(1));
    let member = join(&mut c, "app/demo", QoS::AtLeastOnce);
    for offset in 0..3 {
        c.s.deliver(delivery(member, offset, QoS::AtLeastOnce, Mode::Structured));
    }
    assert_eq!(c.received().len(), 1, "window of one");
    let left = c.s.teardown();
    assert_eq!(left.len(), 1);
    let (group, unsent) = &left[0];
    assert_eq!(group.name(), Some("demo.c1"));
    let offsets: Vec<u64> = unsent.iter().map(|t| t.offset).collect();
    assert_eq!(
        offsets,
        vec![1, 2],
        "offset 0 was sent; 1 and 2 were held back"
    );
}

#[test]
fn token_expiry_disconnects_unless_auth_renews() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.s.set_auth_deadline(Some(c.now + Duration::from_secs(5)));
    assert_eq!(
        c.s.poll_timeout(),
        Some(c.now + Duration::from_secs(5)),
        "the token expires before keep-alive"
    );
    let auth = |method: &'static str, token: &'static [u8]| {
        Packet::Auth(Auth {
            code: ReasonCode::RE_AUTHENTICATE,
            properties: Properties {
                authentication_method: Some(method),
                authentication_data: Some(token),
                ..Properties::default()
            },
        })
    };
    c.send(&auth("oauth2", b"fresh"));
    let events = c.events();
    assert!(
        matches!(&events[..], [SessionEvent::Reauthenticate { token }] if token == "fresh"),
        "{events:?}"
    );
    c.s.reauthenticated(Ok(Some(c.now + Duration::from_secs(60))));
    let out = c.received();
    assert!(
        matches!(&out[..], [Owned::Other(p)] if p.contains("Auth")),
        "AUTH Success: {out:?}"
    );
    c.s.handle_timeout(c.now + Duration::from_secs(6));
    assert!(!c.s.is_closed(), "renewed");
    c.s.handle_timeout(c.now + Duration::from_secs(61));
    assert_eq!(c.s.close_reason(), Some(&CloseReason::TokenExpired));
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0xA0 }]);

    let mut c = Client::connected(Version::V5, "c2", None);
    c.send(&auth("kerberos", b"x"));
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x82 }]);

    let mut c = Client::connected(Version::V5, "c3", None);
    c.send(&auth("oauth2", b"stale"));
    c.events();
    c.s.reauthenticated(Err(()));
    assert_eq!(c.received(), vec![Owned::Disconnect { code: 0x87 }]);
}

#[test]
fn connect_with_oauth2_method_hands_the_token_over() {
    let mut c = Client::new(Version::V5);
    c.send(&Packet::Connect(Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 0,
        client_id: "c1",
        will: None,
        username: None,
        password: None,
        properties: Properties {
            authentication_method: Some("oauth2"),
            authentication_data: Some(b"the-token"),
            ..Properties::default()
        },
    }));
    let Some(SessionEvent::Connect(req)) = c.s.poll_event() else {
        panic!("no Connect event")
    };
    assert_eq!(req.oauth2_token.as_deref(), Some("the-token"));
    c.s.accept_connect(c.now, Identity::Anonymous);
    let out = c.received();
    let [Owned::ConnAck { code: 0, props }] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(
        props.contains("authentication_method: Some(\"oauth2\")"),
        "{props}"
    );
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
    let events = c.events();
    let [SessionEvent::Join {
        member, request, ..
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    c.s.joined(*member, *request, Ok(()));
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
    let publish = |topic: &'static str, packet_id: u16| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic,
            packet_id: Some(packet_id),
            properties: Properties::default(),
            payload: b"x",
        })
    };
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
    c.send(&Packet::Connect(Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 10,
        client_id: "quiet",
        will: None,
        username: None,
        password: None,
        properties: Properties {
            request_problem_information: Some(0),
            ..Properties::default()
        },
    }));
    c.events();
    c.s.accept_connect(c.now, Identity::Anonymous);
    c.received();
    c.subscribe(1, &[("app/private", QoS::AtMostOnce)], vec![], None);
    c.send(&publish("command/readonly/device1/set", 2));
    c.events();
    assert_eq!(c.reason_strings(), vec![None, None]);
}

#[test]
fn filters_beyond_the_quota_are_refused_alone_and_held_ones_do_not_count_twice() {
    // The test config allows 4 filters per connection.
    for (version, quota_code) in [(Version::V5, 0x97), (Version::V311, 0x80)] {
        let mut c = Client::connected(version, "q1", None);
        let filters: Vec<String> = (0..3).map(|i| format!("app/demo/d{i}/#")).collect();
        let held: Vec<(&str, QoS)> = filters.iter().map(|f| (&**f, QoS::AtLeastOnce)).collect();
        c.subscribe(1, &held, vec![], None);
        for e in c.events() {
            if let SessionEvent::Join {
                member, request, ..
            } = e
            {
                c.s.joined(member, request, Ok(()));
            }
        }
        assert_eq!(
            c.received(),
            vec![Owned::SubAck {
                packet_id: 1,
                codes: vec![1, 1, 1]
            }]
        );
        // One held filter again (replaced, not counted), one new (the 4th), two beyond, one
        // invalid (its own code), and a held one last: only the two beyond get Quota exceeded.
        c.subscribe(
            2,
            &[
                ("app/demo/d0/#", QoS::AtMostOnce),
                ("app/demo/d3/#", QoS::AtLeastOnce),
                ("app/demo/d4/#", QoS::AtLeastOnce),
                ("foo/bar", QoS::AtLeastOnce),
                ("app/demo/d5/#", QoS::AtLeastOnce),
                ("app/demo/d1/#", QoS::AtLeastOnce),
            ],
            vec![],
            None,
        );
        let events = c.events();
        let [SessionEvent::Join {
            member,
            request,
            filters,
            ..
        }] = &events[..]
        else {
            panic!("{events:?}")
        };
        assert_eq!(filters.len(), 4, "{filters:?}");
        c.s.joined(*member, *request, Ok(()));
        let invalid = if version == Version::V5 { 0x8F } else { 0x80 };
        assert_eq!(
            c.received(),
            vec![Owned::SubAck {
                packet_id: 2,
                codes: vec![0, 1, quota_code, invalid, quota_code, 1]
            }]
        );
        assert_eq!(c.s.subscription_count(), 4);
    }
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

#[test]
fn an_event_that_cannot_be_encoded_is_acknowledged_not_held() {
    let mut c = Client::connected(Version::V5, "c1", None);
    let member = join(&mut c, "app/demo", QoS::AtLeastOnce);
    let mut d = delivery(member, 0, QoS::AtLeastOnce, Mode::Binary);
    // A content type longer than an MQTT string: the PUBLISH cannot be encoded.
    let mut r = record(0);
    Arc::get_mut(&mut r).unwrap().event.datacontenttype = Some("x".repeat(70_000).as_str().into());
    d.record = r;
    c.s.deliver(d);
    assert!(c.received().is_empty(), "nothing sent");
    let acked: Vec<u64> = c
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Ack(token) => Some(token.offset),
            _ => None,
        })
        .collect();
    assert_eq!(acked, [0], "skipped for good: its offset is acknowledged");
    assert_eq!(c.s.inflight_len(), 0, "its window slot is free again");
    // The next event goes out.
    c.s.deliver(delivery(member, 1, QoS::AtLeastOnce, Mode::Binary));
    let out = c.received();
    assert!(
        matches!(&out[..], [Owned::Publish { qos: 1, .. }]),
        "{out:?}"
    );
    assert!(!c.s.is_closed());
}

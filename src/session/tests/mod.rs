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
use crate::registry::Registry;
use crate::seam::{AppAlias, BackendError, Delivery, Mode, Record, Selector};

/// The applications every test configuration starts from: `demo` (open to anonymous clients,
/// with a disabled device `off`), `readonly` and `private` (alice's).
const APPS: &str = include_str!("../../../tests/fixtures/apps.toml");

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
        registry: Arc::new(Registry::from_config(&config).into()),
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
        c.send(&connect(version, client_id, true, 10, props));
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
    /// (packet id, reason code)
    PubAck(u16, u8),
    /// (packet id, reason code)
    PubRec(u16, u8),
    /// (packet id, reason code)
    PubComp(u16, u8),
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
            Packet::PubAck(a) => Owned::PubAck(a.packet_id, a.code.0),
            Packet::PubRec(a) => Owned::PubRec(a.packet_id, a.code.0),
            Packet::PubComp(a) => Owned::PubComp(a.packet_id, a.code.0),
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

/// A command PUBLISH from the client, without properties.
fn command<'a>(topic: &'a str, qos: QoS, packet_id: u16, payload: &'a [u8]) -> Packet<'a> {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: Some(packet_id),
        properties: Properties::default(),
        payload,
    })
}

/// A CONNECT without will or credentials.
fn connect<'a>(
    version: Version,
    client_id: &'a str,
    clean_start: bool,
    keep_alive: u16,
    properties: Properties<'a>,
) -> Packet<'a> {
    Packet::Connect(Connect {
        version,
        clean_start,
        keep_alive,
        client_id,
        will: None,
        username: None,
        password: None,
        properties,
    })
}

impl Client {
    /// The events queued, which must be exactly one Join.
    fn the_join(&mut self) -> JoinRequest {
        match <[SessionEvent; 1]>::try_from(self.events()) {
            Ok([SessionEvent::Join(join)]) => join,
            Ok(other) => panic!("expected one Join, got {other:?}"),
            Err(other) => panic!("expected one Join, got {other:?}"),
        }
    }

    /// Answers the one Join queued: the backend joined.
    fn accept_join(&mut self) -> JoinRequest {
        let join = self.the_join();
        self.s.joined(join.member, join.request, Ok(()));
        join
    }
}

/// The SUBACK the client should read, alone.
fn suback(packet_id: u16, codes: &[u8]) -> Vec<Owned> {
    vec![Owned::SubAck {
        packet_id,
        codes: codes.to_vec(),
    }]
}

/// A v5 client `c1` (with `receive_maximum`) that joined `app/demo` at `qos`, and its member id.
fn joined_demo(receive_maximum: Option<u16>, qos: QoS) -> (Client, u32) {
    let mut c = Client::connected(Version::V5, "c1", receive_maximum);
    let member = join(&mut c, "app/demo", qos);
    (c, member)
}

/// The filters of a SUBSCRIBE and the codes of its SUBACK, from (filter, QoS, code) rows.
fn split<'a>(rows: &[(&'a str, QoS, u8)]) -> (Vec<(&'a str, QoS)>, Vec<u8>) {
    rows.iter().map(|&(f, qos, code)| ((f, qos), code)).unzip()
}

/// Subscribes and answers the join; returns the member id.
fn join(c: &mut Client, filter: &str, qos: QoS) -> u32 {
    c.subscribe(1, &[(filter, qos)], vec![], None);
    let member = c.accept_join().member;
    c.received();
    member
}

mod close;
mod commands;
mod connect;
mod deliver;
mod subscribe;

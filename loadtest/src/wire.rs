//! The MQTT bytes the rig writes and reads on its hot paths, without allocating: PUBLISH encode
//! for producers, PUBLISH decode for subscribers. CONNECT and SUBSCRIBE (once per connection) go
//! through the service's own codec.

use bytes::BytesMut;
use mqtt_integration::protocol::{
    Connect, Packet, Properties, QoS, Subscribe, SubscribeFilter, SubscribeOptions, Version,
};

/// One inbound PUBLISH, borrowed from the read buffer.
pub struct InPublish<'a> {
    pub qos: u8,
    pub packet_id: u16,
    pub payload: &'a [u8],
}

/// Parses a whole PUBLISH frame (3.3): fixed header, topic, packet id (QoS > 0), properties (v5,
/// skipped), payload.
pub fn parse_publish(frame: &[u8], v5: bool) -> Option<InPublish<'_>> {
    let qos = (frame.first()? >> 1) & 3;
    let mut at = 1;
    // Remaining length (2.1.4): up to four bytes, already checked by `frame_len`.
    while frame.get(at)? & 0x80 != 0 {
        at += 1;
    }
    at += 1;
    let topic_len = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]) as usize;
    at += 2 + topic_len;
    let mut packet_id = 0;
    if qos > 0 {
        packet_id = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        at += 2;
    }
    if v5 {
        let (len, n) = var_int(frame.get(at..)?)?;
        at += n + len;
    }
    Some(InPublish {
        qos,
        packet_id,
        payload: frame.get(at..)?,
    })
}

fn var_int(b: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for (i, byte) in b.iter().take(4).enumerate() {
        v |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn put_var_int(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            break;
        }
    }
}

/// Appends a PUBLISH of `payload` to `topic` (no properties) to `out`.
pub fn put_publish(
    out: &mut Vec<u8>,
    v5: bool,
    qos: u8,
    packet_id: u16,
    topic: &str,
    payload: &[u8],
) {
    let remaining = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + usize::from(v5) + payload.len();
    out.push(0x30 | (qos << 1));
    put_var_int(out, remaining);
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&packet_id.to_be_bytes());
    }
    if v5 {
        out.push(0);
    }
    out.extend_from_slice(payload);
}

/// Appends a PUBACK (3.4; v5 with the short form: reason Success, no properties, 3.4.2.1).
pub fn put_puback(out: &mut Vec<u8>, packet_id: u16) {
    out.push(0x40);
    out.push(2);
    out.extend_from_slice(&packet_id.to_be_bytes());
}

pub const PINGREQ: [u8; 2] = [0xC0, 0];

/// What a connection says when it opens.
pub struct Hello<'a> {
    pub v5: bool,
    pub client_id: &'a str,
    pub keep_alive: u16,
    pub receive_maximum: u16,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

/// CONNECT, and SUBSCRIBE to `filter` when given (pipelined: a server reads them in order).
pub fn hello(h: &Hello<'_>, subscribe: Option<(&str, u8, bool)>) -> Vec<u8> {
    let version = if h.v5 { Version::V5 } else { Version::V311 };
    let mut out = BytesMut::new();
    let encoded = Packet::Connect(Connect {
        version,
        clean_start: true,
        keep_alive: h.keep_alive,
        client_id: h.client_id,
        will: None,
        username: h.username,
        password: h.password.map(str::as_bytes),
        properties: Properties {
            receive_maximum: h.v5.then_some(h.receive_maximum),
            ..Properties::default()
        },
    })
    .encode(version, &mut out);
    debug_assert!(encoded.is_ok());
    if let Some((filter, qos, binary)) = subscribe {
        let user_properties = if binary {
            vec![("content-mode", "binary")]
        } else {
            vec![]
        };
        let encoded = Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties {
                user_properties,
                ..Properties::default()
            },
            filters: vec![SubscribeFilter {
                filter,
                options: SubscribeOptions {
                    qos: QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce),
                    ..SubscribeOptions::default()
                },
            }],
        })
        .encode(version, &mut out);
        debug_assert!(encoded.is_ok());
    }
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_integration::protocol::{decode, frame_len};

    #[test]
    fn publish_round_trips_through_the_service_codec() {
        for (v5, qos) in [(false, 0), (false, 1), (true, 0), (true, 1)] {
            let mut out = Vec::new();
            put_publish(&mut out, v5, qos, 7, "app/demo", &[b'y'; 300]);
            let len = frame_len(&out, u32::MAX).unwrap().unwrap();
            assert_eq!(len, out.len());
            let version = if v5 { Version::V5 } else { Version::V311 };
            let Packet::Publish(p) = decode(&out, Some(version)).unwrap() else {
                panic!("not a PUBLISH")
            };
            assert_eq!(p.topic, "app/demo");
            let fast = parse_publish(&out, v5).unwrap();
            assert_eq!(fast.payload, p.payload);
            assert_eq!(fast.qos, qos);
            assert_eq!(p.packet_id, (qos > 0).then_some(fast.packet_id));
        }
    }
}

//! The MQTT 3.1.1 / MQTT 5 codec, sans-IO: it turns bytes into [`Packet`]s and back and knows
//! nothing of sockets, clocks or threads.
//!
//! Reading is two steps: [`frame_len`] looks at the fixed header of buffered bytes and says
//! whether a whole packet has arrived (and refuses oversized ones before their body arrives);
//! [`decode`] then parses exactly that frame, borrowing strings and payloads from it.
//! Writing is [`Packet::encode`], plus the allocation-free outbound PUBLISH path
//! [`encode_publish_header`] / [`publish_packet_size`].
//!
//! Section numbers in comments refer to the MQTT 5.0 specification unless marked 3.1.1;
//! `[MQTT-x.y.z-n]` tags are the normative statements of the relevant specification.
//!
//! Owns: the packets, their encoding and decoding, reason codes and properties, and the rules
//! that can be checked on one packet alone. Must not touch: sockets, clocks, threads, the
//! session's state (rules that need a connection's history are the session's) or any other
//! module of the crate: it imports none.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod error;
mod primitives;
mod properties;
mod publish;
mod reason;
mod suback;
mod subscribe;
pub mod topic;
mod unsuback;
mod unsubscribe;
mod version;

#[cfg(test)]
mod tests;

use bytes::BytesMut;

pub use ack::Ack;
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use error::{DecodeError, EncodeError};
pub use primitives::{var_int_len, MAX_FIELD_LEN, MAX_VAR_INT};
pub use properties::{id as property_id, Properties, PropertyContext};
pub use publish::{
    encode_publish_header, encode_user_property, publish_packet_size, Publish, PublishHeader,
    PublishProperties,
};
pub use reason::ReasonCode;
pub use suback::SubAck;
pub use subscribe::{Subscribe, SubscribeFilter, SubscribeOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;
pub use version::Version;

use primitives::{field_len, packet_size, read_var_int, write_fixed_header, Reader, VarInt};

/// Largest possible MQTT packet: 1 byte of packet type, 4 bytes of remaining length, and a
/// remaining length of 268,435,455 (2.2.3).
pub const MAX_PACKET_SIZE: usize = 1 + 4 + MAX_VAR_INT as usize;

/// Quality of Service (4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a two-bit value; `None` for 3, which is never valid.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// One MQTT control packet (2.1.2).
// CONNECT carries two property sets and is much larger than the others; the variants are kept
// unboxed because packets live briefly on the stack and boxing would allocate per decode.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    ConnAck(ConnAck<'a>),
    Publish(Publish<'a>),
    PubAck(Ack<'a>),
    PubRec(Ack<'a>),
    PubRel(Ack<'a>),
    PubComp(Ack<'a>),
    Subscribe(Subscribe<'a>),
    SubAck(SubAck<'a>),
    Unsubscribe(Unsubscribe<'a>),
    UnsubAck(UnsubAck<'a>),
    PingReq,
    PingResp,
    Disconnect(Disconnect<'a>),
    Auth(Auth<'a>),
}

// Control packet types (2.1.2).
pub(crate) const CONNECT: u8 = 1;
pub(crate) const CONNACK: u8 = 2;
pub(crate) const PUBLISH: u8 = 3;
pub(crate) const PUBACK: u8 = 4;
pub(crate) const PUBREC: u8 = 5;
pub(crate) const PUBREL: u8 = 6;
pub(crate) const PUBCOMP: u8 = 7;
pub(crate) const SUBSCRIBE: u8 = 8;
pub(crate) const SUBACK: u8 = 9;
pub(crate) const UNSUBSCRIBE: u8 = 10;
pub(crate) const UNSUBACK: u8 = 11;
pub(crate) const PINGREQ: u8 = 12;
pub(crate) const PINGRESP: u8 = 13;
pub(crate) const DISCONNECT: u8 = 14;
pub(crate) const AUTH: u8 = 15;

/// Name of a packet type for error messages.
fn type_name(packet_type: u8) -> &'static str {
    match packet_type {
        CONNECT => "CONNECT",
        CONNACK => "CONNACK",
        PUBLISH => "PUBLISH",
        PUBACK => "PUBACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBSCRIBE => "SUBSCRIBE",
        SUBACK => "SUBACK",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBACK => "UNSUBACK",
        PINGREQ => "PINGREQ",
        PINGRESP => "PINGRESP",
        DISCONNECT => "DISCONNECT",
        AUTH => "AUTH",
        _ => "reserved packet type",
    }
}

/// Looks at the fixed header (2.1.1) at the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some(n))` when a whole packet of `n` bytes
/// is at the front of `buf`, and `Err(PacketTooLarge)` as soon as the remaining length is known
/// and the packet would exceed `max_packet_size` (pass `u32::MAX` for no limit beyond the
/// protocol's own). A remaining length longer than four bytes or not in its shortest form is
/// malformed (1.5.5).
pub fn frame_len(buf: &[u8], max_packet_size: u32) -> Result<Option<usize>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    match read_var_int(rest) {
        VarInt::Incomplete => Ok(None),
        VarInt::Malformed(reason) => Err(DecodeError::malformed(type_name(first >> 4), reason)),
        VarInt::Value { value, len } => {
            let size = 1 + len + value as usize;
            if size > max_packet_size as usize {
                return Err(DecodeError::PacketTooLarge {
                    size,
                    max: max_packet_size,
                });
            }
            Ok((buf.len() >= size).then_some(size))
        }
    }
}

/// Decodes exactly one complete frame (as delimited by [`frame_len`]), borrowing from it.
///
/// `version` is `None` before CONNECT has been received: then only CONNECT is acceptable
/// ([MQTT-3.1.0-1]) and it states its own version. Whether a second CONNECT is acceptable is up
/// to the caller ([MQTT-3.1.0-2]); the codec decodes it.
pub fn decode(frame: &[u8], version: Option<Version>) -> Result<Packet<'_>, DecodeError> {
    let Some((&first, rest)) = frame.split_first() else {
        return Err(DecodeError::malformed("packet", "empty frame"));
    };
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    let name = type_name(packet_type);
    let (remaining, len) = match read_var_int(rest) {
        VarInt::Value { value, len } => (value as usize, len),
        VarInt::Incomplete => {
            return Err(DecodeError::malformed(
                name,
                "frame ends inside the remaining length",
            ))
        }
        VarInt::Malformed(reason) => return Err(DecodeError::malformed(name, reason)),
    };
    // 2.1.4: the remaining length counts exactly the bytes after the fixed header.
    let body = rest.get(len..).unwrap_or_default();
    if body.len() != remaining {
        return Err(DecodeError::malformed(
            name,
            "remaining length does not match the frame length (2.1.4)",
        ));
    }
    let version = match version {
        Some(v) => v,
        None if packet_type == CONNECT => {
            check_flags(name, flags, 0)?;
            return Ok(Packet::Connect(Connect::decode(Reader::new(body, name))?));
        }
        None => {
            return Err(DecodeError::protocol(
                name,
                "the first packet must be CONNECT [MQTT-3.1.0-1]",
            ))
        }
    };
    let r = Reader::new(body, name);
    // [MQTT-2.1.3-1] / 3.1.1 [MQTT-2.2.2-1], [MQTT-2.2.2-2]: reserved flag bits must carry the
    // values of the 2.1.3 table; PUBREL, SUBSCRIBE and UNSUBSCRIBE use 0b0010, PUBLISH its own.
    match packet_type {
        PUBLISH => {}
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => check_flags(name, flags, 0b0010)?,
        _ => check_flags(name, flags, 0)?,
    }
    let packet = match packet_type {
        CONNECT => Packet::Connect(Connect::decode(r)?),
        CONNACK => Packet::ConnAck(ConnAck::decode(r, version)?),
        PUBLISH => Packet::Publish(Publish::decode(flags, r, version)?),
        PUBACK => Packet::PubAck(Ack::decode(r, version, reason::PUBACK_CODES)?),
        PUBREC => Packet::PubRec(Ack::decode(r, version, reason::PUBACK_CODES)?),
        PUBREL => Packet::PubRel(Ack::decode(r, version, reason::PUBREL_CODES)?),
        PUBCOMP => Packet::PubComp(Ack::decode(r, version, reason::PUBREL_CODES)?),
        SUBSCRIBE => Packet::Subscribe(Subscribe::decode(r, version)?),
        SUBACK => Packet::SubAck(SubAck::decode(r, version)?),
        UNSUBSCRIBE => Packet::Unsubscribe(Unsubscribe::decode(r, version)?),
        UNSUBACK => Packet::UnsubAck(UnsubAck::decode(r, version)?),
        PINGREQ | PINGRESP => {
            // 3.12.1 / 3.13.1: no variable header and no payload.
            r.finish()?;
            if packet_type == PINGREQ {
                Packet::PingReq
            } else {
                Packet::PingResp
            }
        }
        DISCONNECT => Packet::Disconnect(Disconnect::decode(r, version)?),
        AUTH if version == Version::V5 => Packet::Auth(Auth::decode(r)?),
        // 2.1.2: 0 is reserved, and so is 15 in MQTT 3.1.1.
        _ => return Err(DecodeError::malformed(name, "reserved packet type (2.1.2)")),
    };
    Ok(packet)
}

fn check_flags(packet: &'static str, flags: u8, expected: u8) -> Result<(), DecodeError> {
    if flags != expected {
        return Err(DecodeError::malformed(
            packet,
            "invalid reserved flags in the fixed header [MQTT-2.1.3-1]",
        ));
    }
    Ok(())
}

/// Lengths computed before writing, so nothing is measured twice and nothing is written when
/// the packet cannot be encoded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sizes {
    /// Remaining length (2.1.4).
    pub remaining: usize,
    /// Content length of the packet's property block (without its length prefix).
    pub props: usize,
    /// Content length of the Will property block (CONNECT only).
    pub will_props: usize,
}

impl Sizes {
    /// `fixed` bytes, then (MQTT 5 only) `properties` as a block of `ctx`, length prefix
    /// included: the variable header of every packet but CONNECT and PUBLISH.
    pub(crate) fn with_properties(
        version: Version,
        fixed: usize,
        properties: &Properties<'_>,
        packet: &'static str,
        ctx: PropertyContext,
    ) -> Result<Sizes, EncodeError> {
        let mut sizes = Sizes {
            remaining: fixed,
            ..Sizes::default()
        };
        if version == Version::V5 {
            sizes.props = properties.content_len(packet, ctx)?;
            sizes.remaining += var_int_len(sizes.props) + sizes.props;
        }
        Ok(sizes)
    }

    /// SUBSCRIBE and UNSUBSCRIBE: a packet identifier and properties, then topic filters of
    /// `lens` bytes, each followed by `per_filter` more (SUBSCRIBE's options byte); at least one
    /// filter, or `empty` names the rule broken.
    pub(crate) fn with_filters(
        version: Version,
        properties: &Properties<'_>,
        (packet, ctx): (&'static str, PropertyContext),
        empty: &'static str,
        lens: impl Iterator<Item = usize>,
        per_filter: usize,
    ) -> Result<Sizes, EncodeError> {
        let mut lens = lens.peekable();
        if lens.peek().is_none() {
            return Err(EncodeError::Invalid {
                packet,
                reason: empty,
            });
        }
        let mut sizes = Sizes::with_properties(version, 2, properties, packet, ctx)?;
        for len in lens {
            sizes.remaining += field_len(packet, "topic filter", len)? + per_filter;
        }
        Ok(sizes)
    }
}

impl Packet<'_> {
    /// The packet's name, as used in errors ("PUBLISH", "CONNACK", ...).
    pub fn name(&self) -> &'static str {
        type_name(self.packet_type())
    }

    fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => CONNECT,
            Packet::ConnAck(_) => CONNACK,
            Packet::Publish(_) => PUBLISH,
            Packet::PubAck(_) => PUBACK,
            Packet::PubRec(_) => PUBREC,
            Packet::PubRel(_) => PUBREL,
            Packet::PubComp(_) => PUBCOMP,
            Packet::Subscribe(_) => SUBSCRIBE,
            Packet::SubAck(_) => SUBACK,
            Packet::Unsubscribe(_) => UNSUBSCRIBE,
            Packet::UnsubAck(_) => UNSUBACK,
            Packet::PingReq => PINGREQ,
            Packet::PingResp => PINGRESP,
            Packet::Disconnect(_) => DISCONNECT,
            Packet::Auth(_) => AUTH,
        }
    }

    /// Appends the packet in wire form to `out`. For MQTT 3.1.1, properties and MQTT 5-only
    /// fields are left out (see each packet type); AUTH cannot be encoded in 3.1.1.
    pub fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), EncodeError> {
        if let Packet::Publish(p) = self {
            return p.encode(version, out);
        }
        let sizes = self.sizes(version)?;
        let total = packet_size(self.name(), sizes.remaining)?;
        out.reserve(total);
        let first = match self {
            Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => {
                (self.packet_type() << 4) | 0b0010
            }
            _ => self.packet_type() << 4,
        };
        write_fixed_header(out, first, sizes.remaining);
        match self {
            Packet::Connect(p) => p.write(version, &sizes, out),
            Packet::ConnAck(p) => p.write(version, &sizes, out),
            Packet::Publish(_) => {}
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.write(version, &sizes, out)
            }
            Packet::Subscribe(p) => p.write(version, &sizes, out),
            Packet::SubAck(p) => p.write(version, &sizes, out),
            Packet::Unsubscribe(p) => p.write(version, &sizes, out),
            Packet::UnsubAck(p) => p.write(version, &sizes, out),
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(p) => p.write(version, &sizes, out),
            Packet::Auth(p) => p.write(&sizes, out),
        }
        Ok(())
    }

    /// Size in bytes of the whole packet [`Packet::encode`] would write.
    pub fn encoded_size(&self, version: Version) -> Result<usize, EncodeError> {
        let sizes = self.sizes(version)?;
        packet_size(self.name(), sizes.remaining)
    }

    fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        match self {
            Packet::Connect(p) => p.sizes(version),
            Packet::ConnAck(p) => p.sizes(version),
            Packet::Publish(p) => p.sizes(version),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.sizes(self.name(), version)
            }
            Packet::Subscribe(p) => p.sizes(version),
            Packet::SubAck(p) => p.sizes(version),
            Packet::Unsubscribe(p) => p.sizes(version),
            Packet::UnsubAck(p) => p.sizes(version),
            Packet::PingReq | Packet::PingResp => Ok(Sizes::default()),
            Packet::Disconnect(p) => p.sizes(version),
            Packet::Auth(p) => p.sizes(version),
        }
    }
}

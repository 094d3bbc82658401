//! PUBLISH (3.3; 3.1.1 section 3.3), including the allocation-free outbound path
//! ([`encode_publish_header`]) the general encoder also goes through.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{
    field_len, packet_size, var_int_len, write_fixed_header, write_string, write_var_int, Reader,
    MAX_VAR_INT,
};
use super::properties::{id, sub_id_len, write_user_property, Properties, PropertyContext};
use super::{topic, QoS, Sizes, Version, PUBLISH};

const NAME: &str = "PUBLISH";

/// A PUBLISH packet. `packet_id` is `Some` exactly when `qos` is above 0 (2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in MQTT 5 when the Topic Alias property stands in for it (3.3.2.3.4).
    pub topic: &'a str,
    pub packet_id: Option<u16>,
    pub properties: Properties<'a>,
    pub payload: &'a [u8],
}

/// The fixed and variable header fields of an outbound PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishHeader<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: &'a str,
    pub packet_id: Option<u16>,
}

/// The properties a server puts on an outbound PUBLISH (MQTT 5 only; ignored for 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishProperties<'a> {
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<&'a str>,
    pub subscription_identifiers: &'a [u32],
    pub user_properties: &'a [(&'a str, &'a str)],
    /// Properties already encoded (identifier + value bytes), appended as-is; lets a caller
    /// encode an event's user properties once and share them across many subscribers.
    pub raw: &'a [u8],
}

// Fixed header flags of PUBLISH (3.3.1).
const DUP: u8 = 0x08;
const RETAIN: u8 = 0x01;
const QOS_SHIFT: u8 = 1;

impl<'a> Publish<'a> {
    pub(crate) fn decode(
        flags: u8,
        mut r: Reader<'a>,
        version: Version,
    ) -> Result<Self, DecodeError> {
        // [MQTT-3.3.1-4] a PUBLISH must not have both QoS bits set.
        let qos = QoS::from_u8((flags >> QOS_SHIFT) & 0x03)
            .ok_or_else(|| r.malformed("QoS 3 [MQTT-3.3.1-4]"))?;
        let dup = flags & DUP != 0;
        // [MQTT-3.3.1-2] DUP must be 0 for QoS 0 (enforced for MQTT 5 only: some 3.1.1
        // clients get this wrong and it is harmless).
        if version == Version::V5 && dup && qos == QoS::AtMostOnce {
            return Err(r.malformed("DUP set on a QoS 0 message [MQTT-3.3.1-2]"));
        }
        let topic = r.string()?;
        // [MQTT-3.3.2-2] the Topic Name must not contain wildcard characters.
        if topic::has_wildcard(topic) {
            return Err(DecodeError::TopicNameInvalid {
                packet: NAME,
                reason: "Topic Name contains a wildcard [MQTT-3.3.2-2]",
            });
        }
        let packet_id = if qos == QoS::AtMostOnce {
            None
        } else {
            Some(r.packet_id()?)
        };
        let properties = match version {
            Version::V5 => Properties::decode(&mut r, PropertyContext::Publish)?,
            Version::V311 => Properties::default(),
        };
        if topic.is_empty() {
            match version {
                // 3.1.1 [MQTT-4.7.3-1]: topic names are at least one character long.
                Version::V311 => {
                    return Err(DecodeError::TopicNameInvalid {
                        packet: NAME,
                        reason: "empty Topic Name [MQTT-4.7.3-1]",
                    })
                }
                // 3.3.2.3.4: an empty Topic Name without a Topic Alias is a Protocol Error.
                Version::V5 if properties.topic_alias.is_none() => {
                    return Err(r.protocol("empty Topic Name without Topic Alias (3.3.2.3.4)"))
                }
                Version::V5 => {}
            }
        }
        // 3.3.3: the payload is the rest of the packet.
        let payload = r.rest();
        Ok(Publish {
            dup,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            packet_id,
            properties,
            payload,
        })
    }

    fn header(&self) -> PublishHeader<'a> {
        PublishHeader {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.topic,
            packet_id: self.packet_id,
        }
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        let props = match version {
            Version::V5 => Some(
                self.properties
                    .content_len(NAME, PropertyContext::Publish)?,
            ),
            Version::V311 => None,
        };
        let remaining = header_remaining(&self.header(), props, self.payload.len())?;
        Ok(Sizes {
            remaining,
            props: props.unwrap_or(0),
            will_props: 0,
        })
    }

    pub(crate) fn encode(&self, version: Version, out: &mut BytesMut) -> Result<(), EncodeError> {
        let sizes = self.sizes(version)?;
        let total = packet_size(NAME, sizes.remaining)?;
        out.reserve(total);
        write_header_start(&self.header(), sizes.remaining, out);
        if version == Version::V5 {
            self.properties.write(sizes.props, out);
        }
        out.put_slice(self.payload);
        Ok(())
    }
}

/// Checks the header fields and returns the remaining length: topic, packet identifier, the
/// property block when `props` (its content length) is given, and the payload.
fn header_remaining(
    header: &PublishHeader<'_>,
    props: Option<usize>,
    payload_len: usize,
) -> Result<usize, EncodeError> {
    // 2.2.1: a packet identifier exactly when QoS > 0.
    if (header.qos == QoS::AtMostOnce) != header.packet_id.is_none() {
        return Err(EncodeError::Invalid {
            packet: NAME,
            reason: "packet identifier must be present exactly when QoS > 0 (2.2.1)",
        });
    }
    if header.packet_id == Some(0) {
        return Err(EncodeError::Invalid {
            packet: NAME,
            reason: "packet identifier 0 [MQTT-2.2.1-3]",
        });
    }
    if header.dup && header.qos == QoS::AtMostOnce {
        return Err(EncodeError::Invalid {
            packet: NAME,
            reason: "DUP set on a QoS 0 message [MQTT-3.3.1-2]",
        });
    }
    if topic::has_wildcard(header.topic) || (props.is_none() && header.topic.is_empty()) {
        return Err(EncodeError::Invalid {
            packet: NAME,
            reason: "Topic Name is empty or contains a wildcard [MQTT-3.3.2-2]",
        });
    }
    let mut remaining = field_len(NAME, "topic name", header.topic.len())?;
    if header.packet_id.is_some() {
        remaining += 2;
    }
    if let Some(props) = props {
        remaining += var_int_len(props) + props;
    }
    Ok(remaining.saturating_add(payload_len))
}

/// Writes the fixed header, Topic Name and Packet Identifier.
fn write_header_start(header: &PublishHeader<'_>, remaining: usize, out: &mut BytesMut) {
    let mut first = (PUBLISH << 4) | ((header.qos as u8) << QOS_SHIFT);
    if header.dup {
        first |= DUP;
    }
    if header.retain {
        first |= RETAIN;
    }
    write_fixed_header(out, first, remaining);
    write_string(out, header.topic);
    if let Some(id) = header.packet_id {
        out.put_u16(id);
    }
}

/// Content length of a [`PublishProperties`] block (unchecked sizes).
fn publish_props_len(props: &PublishProperties<'_>) -> usize {
    let mut len = props.raw.len();
    if props.payload_format_indicator.is_some() {
        len += 2;
    }
    if let Some(ct) = props.content_type {
        len += 3 + ct.len();
    }
    for &id in props.subscription_identifiers {
        len += 1 + var_int_len(id as usize);
    }
    for (k, v) in props.user_properties {
        len += 5 + k.len() + v.len();
    }
    len
}

/// Checks the field sizes of a [`PublishProperties`] and returns its content length.
fn checked_publish_props_len(props: &PublishProperties<'_>) -> Result<usize, EncodeError> {
    if let Some(ct) = props.content_type {
        field_len(NAME, "content type", ct.len())?;
    }
    for &id in props.subscription_identifiers {
        sub_id_len(NAME, id)?;
    }
    for (k, v) in props.user_properties {
        field_len(NAME, "user property", k.len())?;
        field_len(NAME, "user property", v.len())?;
    }
    let len = publish_props_len(props);
    if len > MAX_VAR_INT as usize {
        return Err(EncodeError::PacketTooLarge {
            packet: NAME,
            size: len,
        });
    }
    Ok(len)
}

/// Writes the fixed header, variable header and properties of a PUBLISH whose payload of
/// `payload_len` bytes the caller appends afterwards (so a payload can be handed to a vectored
/// write without copying). Returns the total packet size (header + payload).
///
/// For MQTT 3.1.1 `props` is ignored. Nothing is written when an error is returned.
pub fn encode_publish_header(
    version: Version,
    header: &PublishHeader<'_>,
    props: &PublishProperties<'_>,
    payload_len: usize,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let props_len = match version {
        Version::V5 => Some(checked_publish_props_len(props)?),
        Version::V311 => None,
    };
    let remaining = header_remaining(header, props_len, payload_len)?;
    let total = packet_size(NAME, remaining)?;
    out.reserve(total - payload_len);
    write_header_start(header, remaining, out);
    if let Some(len) = props_len {
        write_var_int(out, len);
        if let Some(v) = props.payload_format_indicator {
            out.put_u8(id::PAYLOAD_FORMAT_INDICATOR);
            out.put_u8(v);
        }
        if let Some(ct) = props.content_type {
            out.put_u8(id::CONTENT_TYPE);
            write_string(out, ct);
        }
        for &sub_id in props.subscription_identifiers {
            out.put_u8(id::SUBSCRIPTION_IDENTIFIER);
            write_var_int(out, sub_id as usize);
        }
        for (k, v) in props.user_properties {
            write_user_property(out, k, v);
        }
        out.put_slice(props.raw);
    }
    Ok(total)
}

/// Appends one User Property (0x26) in wire form to `out`, for building
/// [`PublishProperties::raw`].
pub fn encode_user_property(key: &str, value: &str, out: &mut BytesMut) -> Result<(), EncodeError> {
    let len = 1
        + field_len(NAME, "user property", key.len())?
        + field_len(NAME, "user property", value.len())?;
    out.reserve(len);
    write_user_property(out, key, value);
    Ok(())
}

/// Size in bytes of the whole PUBLISH that [`encode_publish_header`] would produce, payload
/// included (so the server can compare it with the client's Maximum Packet Size before
/// encoding). Field length limits are not checked here.
pub fn publish_packet_size(
    version: Version,
    header: &PublishHeader<'_>,
    props: &PublishProperties<'_>,
    payload_len: usize,
) -> usize {
    let mut remaining = 2 + header.topic.len() + payload_len;
    if header.packet_id.is_some() {
        remaining += 2;
    }
    if version == Version::V5 {
        let len = publish_props_len(props);
        remaining += var_int_len(len) + len;
    }
    1 + var_int_len(remaining) + remaining
}

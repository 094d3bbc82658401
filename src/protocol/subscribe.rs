//! SUBSCRIBE (3.8; 3.1.1 section 3.8).

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{write_string, Reader};
use super::properties::{Properties, PropertyContext};
use super::{QoS, Sizes, Version};

const NAME: &str = "SUBSCRIBE";

/// A SUBSCRIBE packet. Topic filters are not validated by the decoder: an invalid one is
/// answered with a SUBACK reason code (see [`super::topic::valid_filter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub filters: Vec<SubscribeFilter<'a>>,
}

/// One Topic Filter of a SUBSCRIBE with its Subscription Options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter<'a> {
    pub filter: &'a str,
    pub options: SubscribeOptions,
}

/// Subscription Options (3.8.3.1). In MQTT 3.1.1 only `qos` exists (the Requested QoS byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0 = send retained messages at subscribe, 1 = only for new subscriptions, 2 = never.
    pub retain_handling: u8,
}

impl SubscribeOptions {
    fn decode(r: &Reader<'_>, byte: u8, version: Version) -> Result<Self, DecodeError> {
        let reserved = match version {
            // 3.1.1 [MQTT-3.8.3-4]: the upper 6 bits of the Requested QoS byte are reserved.
            Version::V311 => 0xFC,
            // [MQTT-3.8.3-5]: bits 6 and 7 of the Subscription Options are reserved.
            Version::V5 => 0xC0,
        };
        if byte & reserved != 0 {
            return Err(r.malformed("reserved subscription option bits are not 0 [MQTT-3.8.3-5]"));
        }
        // 3.8.3.1: QoS 3 is a Malformed Packet (3.1.1 [MQTT-3-8.3-4]).
        let qos =
            QoS::from_u8(byte & 0x03).ok_or_else(|| r.malformed("subscription QoS 3 (3.8.3.1)"))?;
        let retain_handling = (byte >> 4) & 0x03;
        // 3.8.3.1: Retain Handling 3 is a Protocol Error.
        if retain_handling == 3 {
            return Err(r.protocol("Retain Handling 3 (3.8.3.1)"));
        }
        Ok(SubscribeOptions {
            qos,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        })
    }

    fn to_byte(self, version: Version) -> u8 {
        let mut b = self.qos as u8;
        if version == Version::V5 {
            if self.no_local {
                b |= 0x04;
            }
            if self.retain_as_published {
                b |= 0x08;
            }
            b |= (self.retain_handling & 0x03) << 4;
        }
        b
    }
}

impl<'a> Subscribe<'a> {
    pub(crate) fn decode(mut r: Reader<'a>, version: Version) -> Result<Self, DecodeError> {
        let (packet_id, properties, filters) = decode_filters(
            &mut r,
            (version, PropertyContext::Subscribe),
            // [MQTT-3.8.3-2]: at least one Topic Filter and Subscription Options pair.
            "no topic filter [MQTT-3.8.3-2]",
            |r| {
                let filter = r.string()?;
                let byte = r.u8()?;
                let options = SubscribeOptions::decode(r, byte, version)?;
                // [MQTT-3.8.3-4]: No Local on a Shared Subscription is a Protocol Error.
                if options.no_local && filter.starts_with("$share/") {
                    return Err(r.protocol("No Local set on a Shared Subscription [MQTT-3.8.3-4]"));
                }
                Ok(SubscribeFilter { filter, options })
            },
        )?;
        Ok(Subscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        Sizes::with_filters(
            version,
            &self.properties,
            (NAME, PropertyContext::Subscribe),
            "no topic filter [MQTT-3.8.3-2]",
            self.filters.iter().map(|f| f.filter.len()),
            1,
        )
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        self.properties.write_for(version, sizes.props, out);
        for f in &self.filters {
            write_string(out, f.filter);
            out.put_u8(f.options.to_byte(version));
        }
    }
}

/// SUBSCRIBE and UNSUBSCRIBE after the fixed header: the packet identifier, the properties, and
/// filters read by `filter` until the packet ends; at least one, or `empty` names the rule.
pub(super) fn decode_filters<'a, F>(
    r: &mut Reader<'a>,
    (version, ctx): (Version, PropertyContext),
    empty: &'static str,
    mut filter: impl FnMut(&mut Reader<'a>) -> Result<F, DecodeError>,
) -> Result<(u16, Properties<'a>, Vec<F>), DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = Properties::decode_for(r, version, ctx)?;
    if r.is_empty() {
        return Err(r.protocol(empty));
    }
    let mut filters = Vec::with_capacity(1);
    while !r.is_empty() {
        filters.push(filter(r)?);
    }
    Ok((packet_id, properties, filters))
}

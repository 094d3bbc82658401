//! UNSUBACK (3.11; 3.1.1 section 3.11).

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::Reader;
use super::properties::{Properties, PropertyContext};
use super::reason::{self, ReasonCode};
use super::{Sizes, Version};

const NAME: &str = "UNSUBACK";

/// An UNSUBACK. In MQTT 3.1.1 it has no payload: `codes` is empty and not encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub codes: Vec<ReasonCode>,
}

impl<'a> UnsubAck<'a> {
    pub(crate) fn decode(mut r: Reader<'a>, version: Version) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let mut ack = UnsubAck {
            packet_id,
            properties: Properties::default(),
            codes: Vec::new(),
        };
        if version == Version::V5 {
            ack.properties = Properties::decode(&mut r, PropertyContext::UnsubAck)?;
            // 3.11.3: one code for each Topic Filter, so at least one.
            if r.is_empty() {
                return Err(r.protocol("no reason code (3.11.3)"));
            }
            ack.codes.reserve(r.remaining());
            for &c in r.rest() {
                if !reason::UNSUBACK_CODES.contains(&c) {
                    return Err(DecodeError::malformed(
                        NAME,
                        "reason code not allowed in UNSUBACK (3.11.3)",
                    ));
                }
                ack.codes.push(ReasonCode(c));
            }
        }
        // 3.1.1 3.11.1: the Remaining Length is exactly 2.
        r.finish()?;
        Ok(ack)
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        // MQTT 3.1.1's UNSUBACK has no payload (3.11.3): its codes exist only in v5.
        let codes = if version == Version::V5 {
            self.codes.len()
        } else {
            0
        };
        Sizes::with_properties(
            version,
            2 + codes,
            &self.properties,
            NAME,
            PropertyContext::UnsubAck,
        )
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        if version == Version::V5 {
            self.properties.write(sizes.props, out);
            for c in &self.codes {
                out.put_u8(c.0);
            }
        }
    }
}

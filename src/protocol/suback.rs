//! SUBACK (3.9; 3.1.1 section 3.9).

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::Reader;
use super::properties::{Properties, PropertyContext};
use super::reason::{self, ReasonCode};
use super::{Sizes, Version};

const NAME: &str = "SUBACK";

/// A SUBACK: one code per filter of the SUBSCRIBE, in order. In MQTT 3.1.1 the codes are the
/// return codes 0, 1, 2 and 0x80 (see [`ReasonCode::to_v3_suback`]) and there are no properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub codes: Vec<ReasonCode>,
}

impl<'a> SubAck<'a> {
    pub(crate) fn decode(mut r: Reader<'a>, version: Version) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let (properties, allowed) = match version {
            Version::V5 => (
                Properties::decode(&mut r, PropertyContext::SubAck)?,
                reason::SUBACK_CODES,
            ),
            Version::V311 => (Properties::default(), reason::V3_SUBACK_CODES),
        };
        // 3.9.3: one code for each Topic Filter, so at least one.
        if r.is_empty() {
            return Err(r.protocol("no reason code (3.9.3)"));
        }
        let mut codes = Vec::with_capacity(r.remaining());
        for &c in r.rest() {
            if !allowed.contains(&c) {
                return Err(DecodeError::malformed(
                    NAME,
                    "reason code not allowed in SUBACK (3.9.3)",
                ));
            }
            codes.push(ReasonCode(c));
        }
        Ok(SubAck {
            packet_id,
            properties,
            codes,
        })
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        Sizes::with_properties(
            version,
            2 + self.codes.len(),
            &self.properties,
            NAME,
            PropertyContext::SubAck,
        )
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        self.properties.write_for(version, sizes.props, out);
        for c in &self.codes {
            out.put_u8(c.0);
        }
    }
}

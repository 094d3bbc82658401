//! PUBACK, PUBREC, PUBREL and PUBCOMP (3.4 - 3.7; 3.1.1 sections 3.4 - 3.7): the QoS 1 and 2
//! acknowledgements share one layout and one struct.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{var_int_len, Reader};
use super::properties::{Properties, PropertyContext};
use super::reason::ReasonCode;
use super::{Sizes, Version};

/// A PUBACK, PUBREC, PUBREL or PUBCOMP. In MQTT 3.1.1 only `packet_id` is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack<'a> {
    pub packet_id: u16,
    pub code: ReasonCode,
    pub properties: Properties<'a>,
}

impl<'a> Ack<'a> {
    /// A successful acknowledgement without properties.
    pub fn new(packet_id: u16) -> Self {
        Ack {
            packet_id,
            code: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(
        mut r: Reader<'a>,
        version: Version,
        allowed: &[u8],
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let mut ack = Ack::new(packet_id);
        if version == Version::V5 {
            // 3.4.2.1: the Reason Code may be omitted (Remaining Length 2) for Success with no
            // properties; 3.4.2.2: the Property Length may be omitted when the Remaining Length
            // is less than 4.
            (ack.code, ack.properties) = decode_code_and_properties(
                &mut r,
                ack.code,
                allowed,
                "reason code not allowed in this packet (3.4.2.1)",
                PropertyContext::Ack,
            )?;
        }
        // 3.1.1: the Remaining Length is exactly 2.
        r.finish()?;
        Ok(ack)
    }

    pub(crate) fn sizes(
        &self,
        packet: &'static str,
        version: Version,
    ) -> Result<Sizes, EncodeError> {
        let mut sizes = Sizes {
            remaining: 2,
            ..Sizes::default()
        };
        if version == Version::V5 {
            sizes.props = self.properties.content_len(packet, PropertyContext::Ack)?;
            if sizes.props > 0 {
                sizes.remaining += 1 + var_int_len(sizes.props) + sizes.props;
            } else if self.code != ReasonCode::SUCCESS {
                sizes.remaining += 1;
            }
        }
        Ok(sizes)
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        if version == Version::V5 && sizes.remaining > 2 {
            out.put_u8(self.code.0);
            if sizes.remaining > 3 {
                self.properties.write(sizes.props, out);
            }
        }
    }
}

/// The end of a packet whose Reason Code may be omitted (then it is `code`) and whose
/// properties may be omitted after it: the PUBACK family (3.4.2.1), DISCONNECT (3.14.2.1) and
/// AUTH (3.15.2.1). A code not in `allowed` is malformed, `why` says where.
pub(super) fn decode_code_and_properties<'a>(
    r: &mut Reader<'a>,
    mut code: ReasonCode,
    allowed: &[u8],
    why: &'static str,
    ctx: PropertyContext,
) -> Result<(ReasonCode, Properties<'a>), DecodeError> {
    if !r.is_empty() {
        code = ReasonCode(r.u8()?);
        if !allowed.contains(&code.0) {
            return Err(r.malformed(why));
        }
    }
    let mut properties = Properties::default();
    if !r.is_empty() {
        properties = Properties::decode(r, ctx)?;
    }
    Ok((code, properties))
}

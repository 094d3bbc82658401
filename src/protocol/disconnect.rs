//! DISCONNECT (3.14; 3.1.1 section 3.14).

use bytes::{BufMut, BytesMut};

use super::ack::decode_code_and_properties;
use super::error::{DecodeError, EncodeError};
use super::primitives::{var_int_len, Reader};
use super::properties::{Properties, PropertyContext};
use super::reason::{self, ReasonCode};
use super::{Sizes, Version};

const NAME: &str = "DISCONNECT";

/// A DISCONNECT. In MQTT 3.1.1 it is empty: `code` and `properties` are not encoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect<'a> {
    pub code: ReasonCode,
    pub properties: Properties<'a>,
}

impl<'a> Disconnect<'a> {
    pub(crate) fn decode(mut r: Reader<'a>, version: Version) -> Result<Self, DecodeError> {
        let mut d = Disconnect::default();
        if version == Version::V5 {
            // 3.14.2.1: the Reason Code may be omitted (Remaining Length 0) for Normal
            // disconnection; 3.14.2.2: the Property Length too when the Remaining Length is < 2.
            (d.code, d.properties) = decode_code_and_properties(
                &mut r,
                d.code,
                reason::DISCONNECT_CODES,
                "reason code not allowed in DISCONNECT (3.14.2.1)",
                PropertyContext::Disconnect,
            )?;
        }
        // 3.1.1 3.14.1: the Remaining Length is 0.
        r.finish()?;
        Ok(d)
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        let mut sizes = Sizes::default();
        if version == Version::V5 {
            sizes.props = self
                .properties
                .content_len(NAME, PropertyContext::Disconnect)?;
            if sizes.props > 0 {
                sizes.remaining = 1 + var_int_len(sizes.props) + sizes.props;
            } else if self.code != ReasonCode::NORMAL_DISCONNECTION {
                sizes.remaining = 1;
            }
        }
        Ok(sizes)
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        if version == Version::V5 && sizes.remaining > 0 {
            out.put_u8(self.code.0);
            if sizes.remaining > 1 {
                self.properties.write(sizes.props, out);
            }
        }
    }
}

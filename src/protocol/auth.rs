//! AUTH (3.15): MQTT 5 only.

use bytes::{BufMut, BytesMut};

use super::ack::decode_code_and_properties;
use super::error::{DecodeError, EncodeError};
use super::primitives::{var_int_len, Reader};
use super::properties::{Properties, PropertyContext};
use super::reason::{self, ReasonCode};
use super::{Sizes, Version};

const NAME: &str = "AUTH";

/// An AUTH packet (extended authentication exchange, 4.12).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth<'a> {
    pub code: ReasonCode,
    pub properties: Properties<'a>,
}

impl<'a> Auth<'a> {
    pub(crate) fn decode(mut r: Reader<'a>) -> Result<Self, DecodeError> {
        let mut a = Auth::default();
        // 3.15.2.1: Reason Code and Property Length may be omitted (Remaining Length 0) for
        // Success without properties.
        (a.code, a.properties) = decode_code_and_properties(
            &mut r,
            a.code,
            reason::AUTH_CODES,
            "reason code not allowed in AUTH (3.15.2.1)",
            PropertyContext::Auth,
        )?;
        r.finish()?;
        Ok(a)
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        if version != Version::V5 {
            return Err(EncodeError::NotInVersion {
                packet: NAME,
                version,
            });
        }
        let mut sizes = Sizes {
            props: self.properties.content_len(NAME, PropertyContext::Auth)?,
            ..Sizes::default()
        };
        if sizes.props > 0 || self.code != ReasonCode::SUCCESS {
            sizes.remaining = 1 + var_int_len(sizes.props) + sizes.props;
        }
        Ok(sizes)
    }

    pub(crate) fn write(&self, sizes: &Sizes, out: &mut BytesMut) {
        if sizes.remaining > 0 {
            out.put_u8(self.code.0);
            self.properties.write(sizes.props, out);
        }
    }
}

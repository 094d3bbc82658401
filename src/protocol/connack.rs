//! CONNACK (3.2; 3.1.1 section 3.2): the server's answer to CONNECT.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::Reader;
use super::properties::{Properties, PropertyContext};
use super::reason::{self, ReasonCode};
use super::{Sizes, Version};

const NAME: &str = "CONNACK";

/// A CONNACK packet. In MQTT 3.1.1 `code` is the return code 0..=5 (see the `V3_*` constants
/// of [`ReasonCode`] and [`ReasonCode::to_v3_connack`]) and `properties` is not encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck<'a> {
    pub session_present: bool,
    pub code: ReasonCode,
    pub properties: Properties<'a>,
}

impl<'a> ConnAck<'a> {
    pub(crate) fn decode(mut r: Reader<'a>, version: Version) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        // [MQTT-3.2.2-1] (3.1.1 3.2.2.1): bits 7-1 of the Acknowledge Flags are reserved.
        if flags & 0xFE != 0 {
            return Err(r.malformed("reserved acknowledge flags are not 0 [MQTT-3.2.2-1]"));
        }
        let session_present = flags & 0x01 != 0;
        let code = ReasonCode(r.u8()?);
        let allowed = match version {
            Version::V311 => reason::V3_CONNACK_CODES,
            Version::V5 => reason::CONNACK_CODES,
        };
        if !allowed.contains(&code.0) {
            return Err(r.malformed("return code not allowed in CONNACK (3.2.2.2)"));
        }
        // [MQTT-3.2.2-6] (3.1.1 [MQTT-3.2.2-4]): a refused connection has no session.
        if session_present && code != ReasonCode::SUCCESS {
            return Err(
                r.protocol("Session Present set with a non-zero reason code [MQTT-3.2.2-6]")
            );
        }
        let properties = Properties::decode_for(&mut r, version, PropertyContext::ConnAck)?;
        r.finish()?;
        Ok(ConnAck {
            session_present,
            code,
            properties,
        })
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        Sizes::with_properties(version, 2, &self.properties, NAME, PropertyContext::ConnAck)
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        out.put_u8(u8::from(self.session_present));
        out.put_u8(self.code.0);
        self.properties.write_for(version, sizes.props, out);
    }
}

//! UNSUBSCRIBE (3.10; 3.1.1 section 3.10).

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{write_string, Reader};
use super::properties::{Properties, PropertyContext};
use super::subscribe::decode_filters;
use super::{Sizes, Version};

const NAME: &str = "UNSUBSCRIBE";

/// An UNSUBSCRIBE packet. Filters are not validated (an UNSUBACK code answers bad ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub filters: Vec<&'a str>,
}

impl<'a> Unsubscribe<'a> {
    pub(crate) fn decode(mut r: Reader<'a>, version: Version) -> Result<Self, DecodeError> {
        let (packet_id, properties, filters) = decode_filters(
            &mut r,
            (version, PropertyContext::Unsubscribe),
            // [MQTT-3.10.3-2]: at least one Topic Filter.
            "no topic filter [MQTT-3.10.3-2]",
            |r| r.string(),
        )?;
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        Sizes::with_filters(
            version,
            &self.properties,
            (NAME, PropertyContext::Unsubscribe),
            "no topic filter [MQTT-3.10.3-2]",
            self.filters.iter().map(|f| f.len()),
            0,
        )
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        self.properties.write_for(version, sizes.props, out);
        for f in &self.filters {
            write_string(out, f);
        }
    }
}

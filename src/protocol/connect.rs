//! CONNECT (3.1; 3.1.1 section 3.1): the first packet a client sends.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{field_len, var_int_len, write_binary, write_string, Reader};
use super::properties::{Properties, PropertyContext};
use super::{topic, QoS, Sizes, Version};

const NAME: &str = "CONNECT";

/// A CONNECT packet. `version` is the protocol level the client asked for; the encoder writes
/// the level of the `version` it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    /// Clean Start (MQTT 5) / Clean Session (3.1.1).
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub properties: Properties<'a>,
}

/// The Will Message of a CONNECT (3.1.2.5, 3.1.3.2 - 3.1.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
    pub properties: Properties<'a>,
}

// Connect Flags (3.1.2.3).
const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL_FLAG: u8 = 0x04;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

impl<'a> Connect<'a> {
    pub(crate) fn decode(mut r: Reader<'a>) -> Result<Self, DecodeError> {
        // 3.1.2.1 Protocol Name, 3.1.2.2 Protocol Version.
        let name = r.string()?;
        let level = r.u8()?;
        let version = match (name, level) {
            ("MQTT", 4) => Version::V311,
            ("MQTT", 5) => Version::V5,
            // [MQTT-3.1.2-2] unsupported level; MQTT 3.1 used "MQIsdp" with level 3.
            ("MQTT", _) | ("MQIsdp", _) => {
                return Err(DecodeError::UnsupportedProtocolVersion { level })
            }
            // [MQTT-3.1.2-1] the server must not go on processing this CONNECT.
            _ => return Err(r.malformed("protocol name is not \"MQTT\" [MQTT-3.1.2-1]")),
        };
        let flags = r.u8()?;
        // [MQTT-3.1.2-3] the reserved flag must be 0.
        if flags & RESERVED != 0 {
            return Err(r.malformed("reserved connect flag is not 0 [MQTT-3.1.2-3]"));
        }
        let will_flag = flags & WILL_FLAG != 0;
        let will_qos = (flags >> WILL_QOS_SHIFT) & 0x03;
        let will_retain = flags & WILL_RETAIN != 0;
        if !will_flag && (will_qos != 0 || will_retain) {
            // [MQTT-3.1.2-11] / [MQTT-3.1.2-13] (3.1.1: -13, -15): without a Will, Will QoS
            // and Will Retain must be 0.
            return Err(
                r.malformed("Will QoS or Will Retain set without the Will Flag [MQTT-3.1.2-11]")
            );
        }
        // [MQTT-3.1.2-12] (3.1.1: -14): Will QoS 3 is invalid.
        let will_qos =
            QoS::from_u8(will_qos).ok_or_else(|| r.malformed("Will QoS 3 [MQTT-3.1.2-12]"))?;
        let has_username = flags & USERNAME != 0;
        let has_password = flags & PASSWORD != 0;
        // 3.1.1 [MQTT-3.1.2-22]: a password requires a user name (MQTT 5 lifted this).
        if version == Version::V311 && has_password && !has_username {
            return Err(r.malformed("password without user name [MQTT-3.1.2-22]"));
        }
        let keep_alive = r.u16()?;
        let properties = Properties::decode_for(&mut r, version, PropertyContext::Connect)?;
        // 3.1.3.1: the Client Identifier is always present (it may be empty; whether an empty
        // one is acceptable is the server's decision, [MQTT-3.1.3-6] / [MQTT-3.1.3-8]).
        let client_id = r.string()?;
        let will = if will_flag {
            let properties = Properties::decode_for(&mut r, version, PropertyContext::Will)?;
            let topic = r.string()?;
            // 3.1.3.3: the Will Topic is a topic name, so no wildcards and not empty.
            if !topic::valid_topic_name(topic) {
                return Err(DecodeError::TopicNameInvalid {
                    packet: NAME,
                    reason: "Will Topic is empty or contains a wildcard (3.1.3.3)",
                });
            }
            let payload = r.binary()?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        // The payload goes on in field order: user name, then password.
        let connect = Connect {
            version,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username: has_username.then(|| r.string()).transpose()?,
            password: has_password.then(|| r.binary()).transpose()?,
            properties,
        };
        r.finish()?;
        Ok(connect)
    }

    pub(crate) fn sizes(&self, version: Version) -> Result<Sizes, EncodeError> {
        if version == Version::V311 && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::Invalid {
                packet: NAME,
                reason: "MQTT 3.1.1 password without user name [MQTT-3.1.2-22]",
            });
        }
        let mut sizes = Sizes::default();
        // Protocol name "MQTT" (6), level (1), flags (1), keep alive (2).
        let mut remaining = 10 + field_len(NAME, "client identifier", self.client_id.len())?;
        if version == Version::V5 {
            sizes.props = self
                .properties
                .content_len(NAME, PropertyContext::Connect)?;
            remaining += var_int_len(sizes.props) + sizes.props;
        }
        if let Some(will) = &self.will {
            if version == Version::V5 {
                sizes.will_props = will.properties.content_len(NAME, PropertyContext::Will)?;
                remaining += var_int_len(sizes.will_props) + sizes.will_props;
            }
            remaining += field_len(NAME, "will topic", will.topic.len())?;
            remaining += field_len(NAME, "will payload", will.payload.len())?;
        }
        if let Some(username) = self.username {
            remaining += field_len(NAME, "user name", username.len())?;
        }
        if let Some(password) = self.password {
            remaining += field_len(NAME, "password", password.len())?;
        }
        sizes.remaining = remaining;
        Ok(sizes)
    }

    pub(crate) fn write(&self, version: Version, sizes: &Sizes, out: &mut BytesMut) {
        write_string(out, "MQTT");
        out.put_u8(version.level());
        let mut flags = 0;
        if self.clean_start {
            flags |= CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= WILL_FLAG | ((will.qos as u8) << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        if version == Version::V5 {
            self.properties.write(sizes.props, out);
        }
        write_string(out, self.client_id);
        if let Some(will) = &self.will {
            if version == Version::V5 {
                will.properties.write(sizes.will_props, out);
            }
            write_string(out, will.topic);
            write_binary(out, will.payload);
        }
        if let Some(username) = self.username {
            write_string(out, username);
        }
        if let Some(password) = self.password {
            write_binary(out, password);
        }
    }
}

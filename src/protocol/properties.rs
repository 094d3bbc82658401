//! MQTT 5 properties (2.2.2, 3.x.2.x): decoding with per-packet allow lists and duplicate
//! checks, and encoding with the lengths computed before anything is written.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{
    field_len, var_int_len, write_binary, write_string, write_var_int, Reader, MAX_VAR_INT,
};

/// Every MQTT 5 property as an `Option` (plus `Vec`s for the repeatable ones); `Default` = none
/// set. Which ones may appear depends on the packet (2.2.2.2 table).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties<'a> {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<&'a str>,
    pub response_topic: Option<&'a str>,
    pub correlation_data: Option<&'a [u8]>,
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<&'a str>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<&'a str>,
    pub authentication_data: Option<&'a [u8]>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<&'a str>,
    pub server_reference: Option<&'a str>,
    pub reason_string: Option<&'a str>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user_properties: Vec<(&'a str, &'a str)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

/// Property identifiers (2.2.2.2).
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Where a property block sits; decides which identifiers are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    pub(crate) const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

const fn mask(ctxs: &[PropertyContext]) -> u16 {
    let mut m = 0;
    let mut i = 0;
    while i < ctxs.len() {
        m |= ctxs[i].bit();
        i += 1;
    }
    m
}

/// The packets each property may appear in (2.2.2.2 table); 0 = unknown identifier.
pub(crate) const fn allowed(identifier: u8) -> u16 {
    use PropertyContext::*;
    match identifier {
        id::PAYLOAD_FORMAT_INDICATOR
        | id::MESSAGE_EXPIRY_INTERVAL
        | id::CONTENT_TYPE
        | id::RESPONSE_TOPIC
        | id::CORRELATION_DATA => mask(&[Publish, Will]),
        id::SUBSCRIPTION_IDENTIFIER => mask(&[Publish, Subscribe]),
        id::SESSION_EXPIRY_INTERVAL => mask(&[Connect, ConnAck, Disconnect]),
        id::ASSIGNED_CLIENT_IDENTIFIER | id::SERVER_KEEP_ALIVE => mask(&[ConnAck]),
        id::AUTHENTICATION_METHOD | id::AUTHENTICATION_DATA => mask(&[Connect, ConnAck, Auth]),
        id::REQUEST_PROBLEM_INFORMATION | id::REQUEST_RESPONSE_INFORMATION => mask(&[Connect]),
        id::WILL_DELAY_INTERVAL => mask(&[Will]),
        id::RESPONSE_INFORMATION => mask(&[ConnAck]),
        id::SERVER_REFERENCE => mask(&[ConnAck, Disconnect]),
        id::REASON_STRING => mask(&[ConnAck, Ack, SubAck, UnsubAck, Disconnect, Auth]),
        id::RECEIVE_MAXIMUM | id::TOPIC_ALIAS_MAXIMUM | id::MAXIMUM_PACKET_SIZE => {
            mask(&[Connect, ConnAck])
        }
        id::TOPIC_ALIAS => mask(&[Publish]),
        id::MAXIMUM_QOS
        | id::RETAIN_AVAILABLE
        | id::WILDCARD_SUBSCRIPTION_AVAILABLE
        | id::SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | id::SHARED_SUBSCRIPTION_AVAILABLE => mask(&[ConnAck]),
        id::USER_PROPERTY => mask(&[
            Connect,
            Will,
            ConnAck,
            Publish,
            Ack,
            Subscribe,
            SubAck,
            Unsubscribe,
            UnsubAck,
            Disconnect,
            Auth,
        ]),
        _ => 0,
    }
}

/// Sets an `Option` once; a second occurrence is a Protocol Error (2.2.2.2: "It is a Protocol
/// Error to include the same property more than once", except User Property).
fn set_once<T>(
    r: &Reader<'_>,
    slot: &mut Option<T>,
    value: T,
    reason: &'static str,
) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(r.protocol(reason));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads a byte property whose only values are 0 and 1.
fn bool_byte(r: &mut Reader<'_>, reason: &'static str) -> Result<u8, DecodeError> {
    let v = r.u8()?;
    if v > 1 {
        return Err(r.protocol(reason));
    }
    Ok(v)
}

impl<'a> Properties<'a> {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Reads a property block: Property Length (Variable Byte Integer) then the properties
    /// (2.2.2.1), checking each identifier is allowed in `ctx`.
    pub(crate) fn decode(r: &mut Reader<'a>, ctx: PropertyContext) -> Result<Self, DecodeError> {
        let len = r.var_int()? as usize;
        let mut p = r.sub(len, "property length exceeds the packet (2.2.2.1)")?;
        let mut props = Properties::default();
        while !p.is_empty() {
            // The identifier is a Variable Byte Integer, but every defined one fits in one byte.
            let identifier = p.var_int()?;
            let identifier = u8::try_from(identifier)
                .map_err(|_| p.malformed("unknown property identifier (2.2.2.2)"))?;
            let allowed = allowed(identifier);
            if allowed == 0 {
                return Err(p.malformed("unknown property identifier (2.2.2.2)"));
            }
            if allowed & ctx.bit() == 0 {
                return Err(p.malformed("property not allowed in this packet (2.2.2.2)"));
            }
            props.read_one(&mut p, identifier, ctx)?;
        }
        Ok(props)
    }

    fn read_one(
        &mut self,
        r: &mut Reader<'a>,
        identifier: u8,
        ctx: PropertyContext,
    ) -> Result<(), DecodeError> {
        match identifier {
            id::PAYLOAD_FORMAT_INDICATOR => {
                let v = bool_byte(r, "Payload Format Indicator not 0 or 1 (3.3.2.3.2)")?;
                set_once(
                    r,
                    &mut self.payload_format_indicator,
                    v,
                    "Payload Format Indicator repeated",
                )
            }
            id::MESSAGE_EXPIRY_INTERVAL => {
                let v = r.u32()?;
                set_once(
                    r,
                    &mut self.message_expiry_interval,
                    v,
                    "Message Expiry Interval repeated",
                )
            }
            id::CONTENT_TYPE => {
                let v = r.string()?;
                set_once(r, &mut self.content_type, v, "Content Type repeated")
            }
            id::RESPONSE_TOPIC => {
                let v = r.string()?;
                // [MQTT-3.3.2-14] the Response Topic must not contain wildcards.
                if super::topic::has_wildcard(v) {
                    return Err(r.protocol("Response Topic contains a wildcard [MQTT-3.3.2-14]"));
                }
                set_once(r, &mut self.response_topic, v, "Response Topic repeated")
            }
            id::CORRELATION_DATA => {
                let v = r.binary()?;
                set_once(
                    r,
                    &mut self.correlation_data,
                    v,
                    "Correlation Data repeated",
                )
            }
            id::SUBSCRIPTION_IDENTIFIER => {
                let v = r.var_int()?;
                // 3.3.2.3.8 / 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error.
                if v == 0 {
                    return Err(r.protocol("Subscription Identifier 0 (3.8.2.1.2)"));
                }
                // 3.8.2.1.2: more than one in SUBSCRIBE is a Protocol Error; PUBLISH may carry
                // several (3.3.2.3.8).
                if ctx != PropertyContext::Publish && !self.subscription_identifiers.is_empty() {
                    return Err(r.protocol("Subscription Identifier repeated (3.8.2.1.2)"));
                }
                self.subscription_identifiers.push(v);
                Ok(())
            }
            id::SESSION_EXPIRY_INTERVAL => {
                let v = r.u32()?;
                set_once(
                    r,
                    &mut self.session_expiry_interval,
                    v,
                    "Session Expiry Interval repeated",
                )
            }
            id::ASSIGNED_CLIENT_IDENTIFIER => {
                let v = r.string()?;
                set_once(
                    r,
                    &mut self.assigned_client_identifier,
                    v,
                    "Assigned Client Identifier repeated",
                )
            }
            id::SERVER_KEEP_ALIVE => {
                let v = r.u16()?;
                set_once(
                    r,
                    &mut self.server_keep_alive,
                    v,
                    "Server Keep Alive repeated",
                )
            }
            id::AUTHENTICATION_METHOD => {
                let v = r.string()?;
                set_once(
                    r,
                    &mut self.authentication_method,
                    v,
                    "Authentication Method repeated",
                )
            }
            id::AUTHENTICATION_DATA => {
                let v = r.binary()?;
                set_once(
                    r,
                    &mut self.authentication_data,
                    v,
                    "Authentication Data repeated",
                )
            }
            id::REQUEST_PROBLEM_INFORMATION => {
                let v = bool_byte(r, "Request Problem Information not 0 or 1 (3.1.2.11.7)")?;
                set_once(
                    r,
                    &mut self.request_problem_information,
                    v,
                    "Request Problem Information repeated",
                )
            }
            id::WILL_DELAY_INTERVAL => {
                let v = r.u32()?;
                set_once(
                    r,
                    &mut self.will_delay_interval,
                    v,
                    "Will Delay Interval repeated",
                )
            }
            id::REQUEST_RESPONSE_INFORMATION => {
                let v = bool_byte(r, "Request Response Information not 0 or 1 (3.1.2.11.6)")?;
                set_once(
                    r,
                    &mut self.request_response_information,
                    v,
                    "Request Response Information repeated",
                )
            }
            id::RESPONSE_INFORMATION => {
                let v = r.string()?;
                set_once(
                    r,
                    &mut self.response_information,
                    v,
                    "Response Information repeated",
                )
            }
            id::SERVER_REFERENCE => {
                let v = r.string()?;
                set_once(
                    r,
                    &mut self.server_reference,
                    v,
                    "Server Reference repeated",
                )
            }
            id::REASON_STRING => {
                let v = r.string()?;
                set_once(r, &mut self.reason_string, v, "Reason String repeated")
            }
            id::RECEIVE_MAXIMUM => {
                let v = r.u16()?;
                // 3.1.2.11.3 / 3.2.2.3.3: a Receive Maximum of 0 is a Protocol Error.
                if v == 0 {
                    return Err(r.protocol("Receive Maximum 0 (3.1.2.11.3)"));
                }
                set_once(r, &mut self.receive_maximum, v, "Receive Maximum repeated")
            }
            id::TOPIC_ALIAS_MAXIMUM => {
                let v = r.u16()?;
                set_once(
                    r,
                    &mut self.topic_alias_maximum,
                    v,
                    "Topic Alias Maximum repeated",
                )
            }
            id::TOPIC_ALIAS => {
                // A Topic Alias of 0 or above the negotiated maximum is answered with 0x94 by
                // the session, which knows the maximum ([MQTT-3.3.2-8], [MQTT-3.3.2-9]).
                let v = r.u16()?;
                set_once(r, &mut self.topic_alias, v, "Topic Alias repeated")
            }
            id::MAXIMUM_QOS => {
                let v = bool_byte(r, "Maximum QoS not 0 or 1 (3.2.2.3.4)")?;
                set_once(r, &mut self.maximum_qos, v, "Maximum QoS repeated")
            }
            id::RETAIN_AVAILABLE => {
                let v = bool_byte(r, "Retain Available not 0 or 1 (3.2.2.3.5)")?;
                set_once(
                    r,
                    &mut self.retain_available,
                    v,
                    "Retain Available repeated",
                )
            }
            id::USER_PROPERTY => {
                // 3.1.2.11.8: User Property may appear more than once.
                let k = r.string()?;
                let v = r.string()?;
                self.user_properties.push((k, v));
                Ok(())
            }
            id::MAXIMUM_PACKET_SIZE => {
                let v = r.u32()?;
                // 3.1.2.11.4 / 3.2.2.3.6: a Maximum Packet Size of 0 is a Protocol Error.
                if v == 0 {
                    return Err(r.protocol("Maximum Packet Size 0 (3.1.2.11.4)"));
                }
                set_once(
                    r,
                    &mut self.maximum_packet_size,
                    v,
                    "Maximum Packet Size repeated",
                )
            }
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                let v = bool_byte(r, "Wildcard Subscription Available not 0 or 1 (3.2.2.3.11)")?;
                set_once(
                    r,
                    &mut self.wildcard_subscription_available,
                    v,
                    "Wildcard Subscription Available repeated",
                )
            }
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                let v = bool_byte(
                    r,
                    "Subscription Identifier Available not 0 or 1 (3.2.2.3.12)",
                )?;
                set_once(
                    r,
                    &mut self.subscription_identifier_available,
                    v,
                    "Subscription Identifier Available repeated",
                )
            }
            id::SHARED_SUBSCRIPTION_AVAILABLE => {
                let v = bool_byte(r, "Shared Subscription Available not 0 or 1 (3.2.2.3.13)")?;
                set_once(
                    r,
                    &mut self.shared_subscription_available,
                    v,
                    "Shared Subscription Available repeated",
                )
            }
            _ => Err(r.malformed("unknown property identifier (2.2.2.2)")),
        }
    }

    /// Length of the property contents (without the Property Length prefix), checking that every
    /// set property is allowed in `ctx` and every field fits.
    pub(crate) fn content_len(
        &self,
        packet: &'static str,
        ctx: PropertyContext,
    ) -> Result<usize, EncodeError> {
        let mut len = 0usize;
        let mut check = |identifier: u8, size: usize| -> Result<(), EncodeError> {
            if allowed(identifier) & ctx.bit() == 0 {
                return Err(EncodeError::Invalid {
                    packet,
                    reason: "property not allowed in this packet (2.2.2.2)",
                });
            }
            len += 1 + size;
            Ok(())
        };
        let s = |field, v: &str| field_len(packet, field, v.len());
        let b = |field, v: &[u8]| field_len(packet, field, v.len());
        if self.payload_format_indicator.is_some() {
            check(id::PAYLOAD_FORMAT_INDICATOR, 1)?;
        }
        if self.message_expiry_interval.is_some() {
            check(id::MESSAGE_EXPIRY_INTERVAL, 4)?;
        }
        if let Some(v) = self.content_type {
            check(id::CONTENT_TYPE, s("content type", v)?)?;
        }
        if let Some(v) = self.response_topic {
            check(id::RESPONSE_TOPIC, s("response topic", v)?)?;
        }
        if let Some(v) = self.correlation_data {
            check(id::CORRELATION_DATA, b("correlation data", v)?)?;
        }
        for &v in &self.subscription_identifiers {
            check(id::SUBSCRIPTION_IDENTIFIER, sub_id_len(packet, v)?)?;
        }
        if self.session_expiry_interval.is_some() {
            check(id::SESSION_EXPIRY_INTERVAL, 4)?;
        }
        if let Some(v) = self.assigned_client_identifier {
            check(
                id::ASSIGNED_CLIENT_IDENTIFIER,
                s("assigned client identifier", v)?,
            )?;
        }
        if self.server_keep_alive.is_some() {
            check(id::SERVER_KEEP_ALIVE, 2)?;
        }
        if let Some(v) = self.authentication_method {
            check(id::AUTHENTICATION_METHOD, s("authentication method", v)?)?;
        }
        if let Some(v) = self.authentication_data {
            check(id::AUTHENTICATION_DATA, b("authentication data", v)?)?;
        }
        if self.request_problem_information.is_some() {
            check(id::REQUEST_PROBLEM_INFORMATION, 1)?;
        }
        if self.will_delay_interval.is_some() {
            check(id::WILL_DELAY_INTERVAL, 4)?;
        }
        if self.request_response_information.is_some() {
            check(id::REQUEST_RESPONSE_INFORMATION, 1)?;
        }
        if let Some(v) = self.response_information {
            check(id::RESPONSE_INFORMATION, s("response information", v)?)?;
        }
        if let Some(v) = self.server_reference {
            check(id::SERVER_REFERENCE, s("server reference", v)?)?;
        }
        if let Some(v) = self.reason_string {
            check(id::REASON_STRING, s("reason string", v)?)?;
        }
        if self.receive_maximum.is_some() {
            check(id::RECEIVE_MAXIMUM, 2)?;
        }
        if self.topic_alias_maximum.is_some() {
            check(id::TOPIC_ALIAS_MAXIMUM, 2)?;
        }
        if self.topic_alias.is_some() {
            check(id::TOPIC_ALIAS, 2)?;
        }
        if self.maximum_qos.is_some() {
            check(id::MAXIMUM_QOS, 1)?;
        }
        if self.retain_available.is_some() {
            check(id::RETAIN_AVAILABLE, 1)?;
        }
        for (k, v) in &self.user_properties {
            check(
                id::USER_PROPERTY,
                s("user property", k)? + s("user property", v)?,
            )?;
        }
        if self.maximum_packet_size.is_some() {
            check(id::MAXIMUM_PACKET_SIZE, 4)?;
        }
        if self.wildcard_subscription_available.is_some() {
            check(id::WILDCARD_SUBSCRIPTION_AVAILABLE, 1)?;
        }
        if self.subscription_identifier_available.is_some() {
            check(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE, 1)?;
        }
        if self.shared_subscription_available.is_some() {
            check(id::SHARED_SUBSCRIPTION_AVAILABLE, 1)?;
        }
        Ok(len)
    }

    /// Writes the Property Length and the properties, in identifier order. `content_len` must
    /// come from [`Properties::content_len`].
    pub(crate) fn write(&self, content_len: usize, out: &mut BytesMut) {
        write_var_int(out, content_len);
        if let Some(v) = self.payload_format_indicator {
            out.put_u8(id::PAYLOAD_FORMAT_INDICATOR);
            out.put_u8(v);
        }
        if let Some(v) = self.message_expiry_interval {
            out.put_u8(id::MESSAGE_EXPIRY_INTERVAL);
            out.put_u32(v);
        }
        if let Some(v) = self.content_type {
            out.put_u8(id::CONTENT_TYPE);
            write_string(out, v);
        }
        if let Some(v) = self.response_topic {
            out.put_u8(id::RESPONSE_TOPIC);
            write_string(out, v);
        }
        if let Some(v) = self.correlation_data {
            out.put_u8(id::CORRELATION_DATA);
            write_binary(out, v);
        }
        for &v in &self.subscription_identifiers {
            out.put_u8(id::SUBSCRIPTION_IDENTIFIER);
            write_var_int(out, v as usize);
        }
        if let Some(v) = self.session_expiry_interval {
            out.put_u8(id::SESSION_EXPIRY_INTERVAL);
            out.put_u32(v);
        }
        if let Some(v) = self.assigned_client_identifier {
            out.put_u8(id::ASSIGNED_CLIENT_IDENTIFIER);
            write_string(out, v);
        }
        if let Some(v) = self.server_keep_alive {
            out.put_u8(id::SERVER_KEEP_ALIVE);
            out.put_u16(v);
        }
        if let Some(v) = self.authentication_method {
            out.put_u8(id::AUTHENTICATION_METHOD);
            write_string(out, v);
        }
        if let Some(v) = self.authentication_data {
            out.put_u8(id::AUTHENTICATION_DATA);
            write_binary(out, v);
        }
        if let Some(v) = self.request_problem_information {
            out.put_u8(id::REQUEST_PROBLEM_INFORMATION);
            out.put_u8(v);
        }
        if let Some(v) = self.will_delay_interval {
            out.put_u8(id::WILL_DELAY_INTERVAL);
            out.put_u32(v);
        }
        if let Some(v) = self.request_response_information {
            out.put_u8(id::REQUEST_RESPONSE_INFORMATION);
            out.put_u8(v);
        }
        if let Some(v) = self.response_information {
            out.put_u8(id::RESPONSE_INFORMATION);
            write_string(out, v);
        }
        if let Some(v) = self.server_reference {
            out.put_u8(id::SERVER_REFERENCE);
            write_string(out, v);
        }
        if let Some(v) = self.reason_string {
            out.put_u8(id::REASON_STRING);
            write_string(out, v);
        }
        if let Some(v) = self.receive_maximum {
            out.put_u8(id::RECEIVE_MAXIMUM);
            out.put_u16(v);
        }
        if let Some(v) = self.topic_alias_maximum {
            out.put_u8(id::TOPIC_ALIAS_MAXIMUM);
            out.put_u16(v);
        }
        if let Some(v) = self.topic_alias {
            out.put_u8(id::TOPIC_ALIAS);
            out.put_u16(v);
        }
        if let Some(v) = self.maximum_qos {
            out.put_u8(id::MAXIMUM_QOS);
            out.put_u8(v);
        }
        if let Some(v) = self.retain_available {
            out.put_u8(id::RETAIN_AVAILABLE);
            out.put_u8(v);
        }
        for (k, v) in &self.user_properties {
            write_user_property(out, k, v);
        }
        if let Some(v) = self.maximum_packet_size {
            out.put_u8(id::MAXIMUM_PACKET_SIZE);
            out.put_u32(v);
        }
        if let Some(v) = self.wildcard_subscription_available {
            out.put_u8(id::WILDCARD_SUBSCRIPTION_AVAILABLE);
            out.put_u8(v);
        }
        if let Some(v) = self.subscription_identifier_available {
            out.put_u8(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE);
            out.put_u8(v);
        }
        if let Some(v) = self.shared_subscription_available {
            out.put_u8(id::SHARED_SUBSCRIPTION_AVAILABLE);
            out.put_u8(v);
        }
    }
}

/// Encoded size of a Subscription Identifier value (3.3.2.3.8: 1 to 268,435,455).
pub(crate) fn sub_id_len(packet: &'static str, v: u32) -> Result<usize, EncodeError> {
    if v == 0 || v > MAX_VAR_INT {
        return Err(EncodeError::Invalid {
            packet,
            reason: "Subscription Identifier outside 1..=268435455 (3.3.2.3.8)",
        });
    }
    Ok(var_int_len(v as usize))
}

/// Writes one User Property (identifier 0x26, then a UTF-8 String Pair, 1.5.7). Lengths must
/// already be checked.
pub(crate) fn write_user_property(out: &mut BytesMut, key: &str, value: &str) {
    out.put_u8(id::USER_PROPERTY);
    write_string(out, key);
    write_string(out, value);
}

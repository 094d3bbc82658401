//! MQTT 5 properties (2.2.2, 3.x.2.x): decoding with per-packet allow lists and duplicate
//! checks, and encoding with the lengths computed before anything is written.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::primitives::{var_int_len, write_string, write_var_int, Reader, MAX_VAR_INT};

/// The property table (2.2.2.2), in identifier order: each property once, with its field, its
/// identifier, the kind of its value (which gives the field's type, see [`slot!`]), and the
/// packets it may appear in. The struct, the
/// identifiers, the allow list, the decoder and the encoder are all generated from it, so a
/// property is named in one place (as `reason_codes!` does for reason codes).
///
/// Kinds (module [`kind`]): `Flag` (a byte that must be 0 or 1), `U16`, `U32`, `NonZeroU16` and
/// `NonZeroU32` (0 is a Protocol Error), `Str`, `Topic` (a string without wildcards), `Bin`,
/// `SubIds` (Subscription Identifiers: repeatable in PUBLISH only, never 0) and `Pairs` (User
/// Property, repeatable). The section after the name is cited in the decode error.
macro_rules! properties {
    ($(
        $field:ident = $id:ident($value:literal) $kind:ident($name:literal, $section:literal)
            in [$($ctx:ident),+];
    )+) => {
        /// Every MQTT 5 property as an `Option` (plus `Vec`s for the repeatable ones); `Default` =
        /// none set. Which ones may appear depends on the packet (2.2.2.2 table).
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct Properties<'a> {
            $(pub $field: slot!('a, $kind),)+
        }

        /// Property identifiers (2.2.2.2).
        pub mod id {
            $(pub const $id: u8 = $value;)+
        }

        /// The packets each property may appear in (2.2.2.2 table); 0 = unknown identifier.
        pub(crate) const fn allowed(identifier: u8) -> u16 {
            use PropertyContext::*;
            match identifier {
                $(id::$id => mask(&[$($ctx),+]),)+
                _ => 0,
            }
        }

        impl<'a> Properties<'a> {
            fn read_one(
                &mut self,
                r: &mut Reader<'a>,
                identifier: u8,
                ctx: PropertyContext,
            ) -> Result<(), DecodeError> {
                match identifier {
                    $(id::$id => kind::$kind::read(r, ctx, &mut self.$field, &kind::Text {
                        repeated: concat!($name, " repeated (2.2.2.2)"),
                        invalid: invalid_text!($kind, $name, $section),
                    }),)+
                    _ => Err(r.malformed("unknown property identifier (2.2.2.2)")),
                }
            }

            /// Length of the property contents (without the Property Length prefix), checking
            /// that every set property is allowed in `ctx` and every field fits.
            pub(crate) fn content_len(
                &self,
                packet: &'static str,
                ctx: PropertyContext,
            ) -> Result<usize, EncodeError> {
                let mut len = 0usize;
                $(
                    let (count, size) = kind::$kind::size(&self.$field, packet, $name)?;
                    if count > 0 && allowed(id::$id) & ctx.bit() == 0 {
                        return Err(EncodeError::Invalid {
                            packet,
                            reason: "property not allowed in this packet (2.2.2.2)",
                        });
                    }
                    // One identifier byte per occurrence.
                    len += count + size;
                )+
                Ok(len)
            }

            /// Writes the Property Length and the properties, in identifier order.
            /// `content_len` must come from [`Properties::content_len`].
            pub(crate) fn write(&self, content_len: usize, out: &mut BytesMut) {
                write_var_int(out, content_len);
                $(kind::$kind::write(&self.$field, id::$id, out);)+
            }
        }
    };
}

/// The field type of each kind of property: an `Option`, or a `Vec` for the repeatable ones.
macro_rules! slot {
    ($a:lifetime, Flag) => { Option<u8> };
    ($a:lifetime, U16) => { Option<u16> };
    ($a:lifetime, NonZeroU16) => { Option<u16> };
    ($a:lifetime, U32) => { Option<u32> };
    ($a:lifetime, NonZeroU32) => { Option<u32> };
    ($a:lifetime, Str) => { Option<&$a str> };
    ($a:lifetime, Topic) => { Option<&$a str> };
    ($a:lifetime, Bin) => { Option<&$a [u8]> };
    ($a:lifetime, SubIds) => { Vec<u32> };
    ($a:lifetime, Pairs) => { Vec<(&$a str, &$a str)> };
}

/// The decode error for a value its kind does not allow.
macro_rules! invalid_text {
    (Flag, $name:literal, $section:literal) => {
        concat!($name, " not 0 or 1 (", $section, ")")
    };
    (NonZeroU16, $name:literal, $section:literal) => {
        concat!($name, " 0 (", $section, ")")
    };
    (NonZeroU32, $name:literal, $section:literal) => {
        concat!($name, " 0 (", $section, ")")
    };
    (SubIds, $name:literal, $section:literal) => {
        concat!($name, " 0 or repeated outside PUBLISH (", $section, ")")
    };
    (Topic, $name:literal, $section:literal) => {
        concat!($name, " contains a wildcard [", $section, "]")
    };
    ($kind:ident, $name:literal, $section:literal) => {
        concat!($name, " invalid (", $section, ")")
    };
}

properties! {
    payload_format_indicator = PAYLOAD_FORMAT_INDICATOR(0x01)
        Flag("Payload Format Indicator", "3.3.2.3.2") in [Publish, Will];
    message_expiry_interval = MESSAGE_EXPIRY_INTERVAL(0x02)
        U32("Message Expiry Interval", "3.3.2.3.3") in [Publish, Will];
    content_type = CONTENT_TYPE(0x03)
        Str("Content Type", "3.3.2.3.9") in [Publish, Will];
    response_topic = RESPONSE_TOPIC(0x08)
        Topic("Response Topic", "MQTT-3.3.2-14") in [Publish, Will];
    correlation_data = CORRELATION_DATA(0x09)
        Bin("Correlation Data", "3.3.2.3.6") in [Publish, Will];
    subscription_identifiers = SUBSCRIPTION_IDENTIFIER(0x0B)
        SubIds("Subscription Identifier", "3.8.2.1.2") in [Publish, Subscribe];
    session_expiry_interval = SESSION_EXPIRY_INTERVAL(0x11)
        U32("Session Expiry Interval", "3.1.2.11.2") in [Connect, ConnAck, Disconnect];
    assigned_client_identifier = ASSIGNED_CLIENT_IDENTIFIER(0x12)
        Str("Assigned Client Identifier", "3.2.2.3.7") in [ConnAck];
    server_keep_alive = SERVER_KEEP_ALIVE(0x13)
        U16("Server Keep Alive", "3.2.2.3.14") in [ConnAck];
    authentication_method = AUTHENTICATION_METHOD(0x15)
        Str("Authentication Method", "3.1.2.11.9") in [Connect, ConnAck, Auth];
    authentication_data = AUTHENTICATION_DATA(0x16)
        Bin("Authentication Data", "3.1.2.11.10") in [Connect, ConnAck, Auth];
    request_problem_information = REQUEST_PROBLEM_INFORMATION(0x17)
        Flag("Request Problem Information", "3.1.2.11.7") in [Connect];
    will_delay_interval = WILL_DELAY_INTERVAL(0x18)
        U32("Will Delay Interval", "3.1.3.2.2") in [Will];
    request_response_information = REQUEST_RESPONSE_INFORMATION(0x19)
        Flag("Request Response Information", "3.1.2.11.6") in [Connect];
    response_information = RESPONSE_INFORMATION(0x1A)
        Str("Response Information", "3.2.2.3.15") in [ConnAck];
    server_reference = SERVER_REFERENCE(0x1C)
        Str("Server Reference", "3.2.2.3.16") in [ConnAck, Disconnect];
    reason_string = REASON_STRING(0x1F)
        Str("Reason String", "3.2.2.3.9") in [ConnAck, Ack, SubAck, UnsubAck, Disconnect, Auth];
    receive_maximum = RECEIVE_MAXIMUM(0x21)
        NonZeroU16("Receive Maximum", "3.1.2.11.3") in [Connect, ConnAck];
    topic_alias_maximum = TOPIC_ALIAS_MAXIMUM(0x22)
        U16("Topic Alias Maximum", "3.1.2.11.5") in [Connect, ConnAck];
    // A Topic Alias of 0 or above the negotiated maximum is answered with 0x94 by the session,
    // which knows the maximum ([MQTT-3.3.2-8], [MQTT-3.3.2-9]).
    topic_alias = TOPIC_ALIAS(0x23)
        U16("Topic Alias", "3.3.2.3.4") in [Publish];
    maximum_qos = MAXIMUM_QOS(0x24)
        Flag("Maximum QoS", "3.2.2.3.4") in [ConnAck];
    retain_available = RETAIN_AVAILABLE(0x25)
        Flag("Retain Available", "3.2.2.3.5") in [ConnAck];
    user_properties = USER_PROPERTY(0x26)
        Pairs("User Property", "3.1.2.11.8")
        in [Connect, Will, ConnAck, Publish, Ack, Subscribe, SubAck, Unsubscribe, UnsubAck,
            Disconnect, Auth];
    maximum_packet_size = MAXIMUM_PACKET_SIZE(0x27)
        NonZeroU32("Maximum Packet Size", "3.1.2.11.4") in [Connect, ConnAck];
    wildcard_subscription_available = WILDCARD_SUBSCRIPTION_AVAILABLE(0x28)
        Flag("Wildcard Subscription Available", "3.2.2.3.11") in [ConnAck];
    subscription_identifier_available = SUBSCRIPTION_IDENTIFIER_AVAILABLE(0x29)
        Flag("Subscription Identifier Available", "3.2.2.3.12") in [ConnAck];
    shared_subscription_available = SHARED_SUBSCRIPTION_AVAILABLE(0x2A)
        Flag("Shared Subscription Available", "3.2.2.3.13") in [ConnAck];
}

/// How each kind of property value is read, sized and written (1.5 data representation). Each
/// kind has `read` (into its slot, refusing a second occurrence where the kind is not
/// repeatable: "It is a Protocol Error to include the same property more than once", 2.2.2.2),
/// `size` (occurrences and their encoded bytes, checking each field fits) and `write`.
mod kind {
    use bytes::{BufMut, BytesMut};

    use super::super::error::{DecodeError, EncodeError};
    use super::super::primitives::{field_len, write_binary, write_string, write_var_int, Reader};
    use super::{sub_id_len, write_user_property, PropertyContext};

    /// The texts of a property's decode errors, made by the table.
    pub struct Text {
        pub repeated: &'static str,
        pub invalid: &'static str,
    }

    type Size = Result<(usize, usize), EncodeError>;

    /// Stores `v`, unless it is `invalid` or the property came before: both Protocol Errors.
    fn set_valid_once<T>(
        r: &Reader<'_>,
        slot: &mut Option<T>,
        v: T,
        invalid: bool,
        t: &Text,
    ) -> Result<(), DecodeError> {
        if invalid {
            return Err(r.protocol(t.invalid));
        }
        if slot.is_some() {
            return Err(r.protocol(t.repeated));
        }
        *slot = Some(v);
        Ok(())
    }

    fn fixed<T>(slot: &Option<T>, bytes: usize) -> Size {
        Ok(slot.as_ref().map_or((0, 0), |_| (1, bytes)))
    }

    /// A fixed-size integer property, optionally refusing some values.
    macro_rules! integer {
        ($kind:ident, $t:ty, $read:ident, $put:ident, $bytes:literal, |$v:ident| $invalid:expr) => {
            pub struct $kind;
            impl $kind {
                pub fn read(
                    r: &mut Reader<'_>,
                    _: PropertyContext,
                    slot: &mut Option<$t>,
                    t: &Text,
                ) -> Result<(), DecodeError> {
                    let $v = r.$read()?;
                    let invalid = $invalid;
                    set_valid_once(r, slot, $v, invalid, t)
                }
                pub fn size(slot: &Option<$t>, _: &'static str, _: &'static str) -> Size {
                    fixed(slot, $bytes)
                }
                pub fn write(slot: &Option<$t>, id: u8, out: &mut BytesMut) {
                    if let Some(v) = *slot {
                        out.put_u8(id);
                        out.$put(v);
                    }
                }
            }
        };
    }

    integer!(Flag, u8, u8, put_u8, 1, |v| v > 1);
    integer!(U16, u16, u16, put_u16, 2, |v| false);
    integer!(U32, u32, u32, put_u32, 4, |v| false);
    integer!(NonZeroU16, u16, u16, put_u16, 2, |v| v == 0);
    integer!(NonZeroU32, u32, u32, put_u32, 4, |v| v == 0);

    /// A length-prefixed property (a UTF-8 string or binary data), optionally refusing some
    /// values.
    macro_rules! prefixed {
        ($kind:ident, $t:ty, $read:ident, $write:ident, |$v:ident| $invalid:expr) => {
            pub struct $kind;
            impl $kind {
                pub fn read<'a>(
                    r: &mut Reader<'a>,
                    _: PropertyContext,
                    slot: &mut Option<&'a $t>,
                    t: &Text,
                ) -> Result<(), DecodeError> {
                    let $v = r.$read()?;
                    let invalid = $invalid;
                    set_valid_once(r, slot, $v, invalid, t)
                }
                pub fn size(slot: &Option<&$t>, packet: &'static str, name: &'static str) -> Size {
                    match slot {
                        Some(v) => Ok((1, field_len(packet, name, v.len())?)),
                        None => Ok((0, 0)),
                    }
                }
                pub fn write(slot: &Option<&$t>, id: u8, out: &mut BytesMut) {
                    if let Some(v) = *slot {
                        out.put_u8(id);
                        $write(out, v);
                    }
                }
            }
        };
    }

    prefixed!(Str, str, string, write_string, |v| false);
    prefixed!(Topic, str, string, write_string, |v| {
        super::super::topic::has_wildcard(v)
    });
    prefixed!(Bin, [u8], binary, write_binary, |v| false);

    /// Subscription Identifiers: several in a PUBLISH (3.3.2.3.8), at most one in a SUBSCRIBE
    /// (3.8.2.1.2), never 0 in either.
    pub struct SubIds;
    impl SubIds {
        pub fn read(
            r: &mut Reader<'_>,
            ctx: PropertyContext,
            slot: &mut Vec<u32>,
            t: &Text,
        ) -> Result<(), DecodeError> {
            let v = r.var_int()?;
            if v == 0 || (ctx != PropertyContext::Publish && !slot.is_empty()) {
                return Err(r.protocol(t.invalid));
            }
            slot.push(v);
            Ok(())
        }
        pub fn size(slot: &[u32], packet: &'static str, _: &'static str) -> Size {
            let mut size = 0;
            for &v in slot {
                size += sub_id_len(packet, v)?;
            }
            Ok((slot.len(), size))
        }
        pub fn write(slot: &[u32], id: u8, out: &mut BytesMut) {
            for &v in slot {
                out.put_u8(id);
                write_var_int(out, v as usize);
            }
        }
    }

    /// User Properties: UTF-8 String Pairs, as many as the packet holds (3.1.2.11.8).
    pub struct Pairs;
    impl Pairs {
        pub fn read<'a>(
            r: &mut Reader<'a>,
            _: PropertyContext,
            slot: &mut Vec<(&'a str, &'a str)>,
            _: &Text,
        ) -> Result<(), DecodeError> {
            let k = r.string()?;
            let v = r.string()?;
            slot.push((k, v));
            Ok(())
        }
        pub fn size(slot: &[(&str, &str)], packet: &'static str, name: &'static str) -> Size {
            let mut size = 0;
            for (k, v) in slot {
                size += field_len(packet, name, k.len())? + field_len(packet, name, v.len())?;
            }
            Ok((slot.len(), size))
        }
        pub fn write(slot: &[(&str, &str)], _: u8, out: &mut BytesMut) {
            for (k, v) in slot {
                write_user_property(out, k, v);
            }
        }
    }
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

impl<'a> Properties<'a> {
    /// The property block of a packet in `version`: MQTT 3.1.1 has none.
    pub(crate) fn decode_for(
        r: &mut Reader<'a>,
        version: super::Version,
        ctx: PropertyContext,
    ) -> Result<Self, DecodeError> {
        match version {
            super::Version::V5 => Properties::decode(r, ctx),
            super::Version::V311 => Ok(Properties::default()),
        }
    }

    /// Writes the block (MQTT 5 only) whose content length `sizes` computed.
    pub(crate) fn write_for(
        &self,
        version: super::Version,
        content_len: usize,
        out: &mut BytesMut,
    ) {
        if version == super::Version::V5 {
            self.write(content_len, out);
        }
    }

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

//! Reason codes (MQTT 5, 2.4) as a newtype over the wire byte, plus the MQTT 3.1.1 CONNACK
//! return codes (3.1.1 section 3.2.2.3) and SUBACK return codes.

use std::fmt;

/// A reason code byte. The constants name every MQTT 5 reason code; several names share a value
/// (0x00 is Success, Normal disconnection and Granted QoS 0), [`ReasonCode::name`] gives the
/// first one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ReasonCode(pub u8);

macro_rules! reason_codes {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        impl ReasonCode {
            $(pub const $name: ReasonCode = ReasonCode($value);)*

            /// The specification's name for this code (the first one listed when names share a
            /// value), or `None` for a byte that is not an MQTT 5 reason code.
            pub fn name(self) -> Option<&'static str> {
                #[allow(unreachable_patterns)]
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    SUCCESS = 0x00, "Success";
    NORMAL_DISCONNECTION = 0x00, "Normal disconnection";
    GRANTED_QOS_0 = 0x00, "Granted QoS 0";
    GRANTED_QOS_1 = 0x01, "Granted QoS 1";
    GRANTED_QOS_2 = 0x02, "Granted QoS 2";
    DISCONNECT_WITH_WILL_MESSAGE = 0x04, "Disconnect with Will Message";
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers";
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed";
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication";
    RE_AUTHENTICATE = 0x19, "Re-authenticate";
    UNSPECIFIED_ERROR = 0x80, "Unspecified error";
    MALFORMED_PACKET = 0x81, "Malformed Packet";
    PROTOCOL_ERROR = 0x82, "Protocol Error";
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error";
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version";
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid";
    BAD_USER_NAME_OR_PASSWORD = 0x86, "Bad User Name or Password";
    NOT_AUTHORIZED = 0x87, "Not authorized";
    SERVER_UNAVAILABLE = 0x88, "Server unavailable";
    SERVER_BUSY = 0x89, "Server busy";
    BANNED = 0x8A, "Banned";
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down";
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method";
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout";
    SESSION_TAKEN_OVER = 0x8E, "Session taken over";
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid";
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid";
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use";
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found";
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded";
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid";
    PACKET_TOO_LARGE = 0x95, "Packet too large";
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high";
    QUOTA_EXCEEDED = 0x97, "Quota exceeded";
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action";
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid";
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported";
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported";
    USE_ANOTHER_SERVER = 0x9C, "Use another server";
    SERVER_MOVED = 0x9D, "Server moved";
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported";
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded";
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time";
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported";
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported";
}

impl ReasonCode {
    // MQTT 3.1.1 CONNACK return codes (3.1.1 section 3.2.2.3).
    /// 3.1.1: Connection accepted.
    pub const V3_CONNECTION_ACCEPTED: ReasonCode = ReasonCode(0x00);
    /// 3.1.1: unacceptable protocol version.
    pub const V3_UNACCEPTABLE_PROTOCOL_VERSION: ReasonCode = ReasonCode(0x01);
    /// 3.1.1: identifier rejected.
    pub const V3_IDENTIFIER_REJECTED: ReasonCode = ReasonCode(0x02);
    /// 3.1.1: server unavailable.
    pub const V3_SERVER_UNAVAILABLE: ReasonCode = ReasonCode(0x03);
    /// 3.1.1: bad user name or password.
    pub const V3_BAD_USER_NAME_OR_PASSWORD: ReasonCode = ReasonCode(0x04);
    /// 3.1.1: not authorized.
    pub const V3_NOT_AUTHORIZED: ReasonCode = ReasonCode(0x05);
    /// 3.1.1 SUBACK: failure (3.1.1 section 3.9.3).
    pub const V3_SUBACK_FAILURE: ReasonCode = ReasonCode(0x80);

    /// True for codes below 0x80 (2.4: values of 0x80 or greater indicate failure).
    pub fn is_success(self) -> bool {
        self.0 < 0x80
    }

    /// The nearest MQTT 3.1.1 CONNACK return code for an MQTT 5 CONNACK reason code.
    pub fn to_v3_connack(self) -> ReasonCode {
        match self {
            ReasonCode::SUCCESS => ReasonCode::V3_CONNECTION_ACCEPTED,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => {
                ReasonCode::V3_UNACCEPTABLE_PROTOCOL_VERSION
            }
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => ReasonCode::V3_IDENTIFIER_REJECTED,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD | ReasonCode::BAD_AUTHENTICATION_METHOD => {
                ReasonCode::V3_BAD_USER_NAME_OR_PASSWORD
            }
            ReasonCode::NOT_AUTHORIZED | ReasonCode::BANNED => ReasonCode::V3_NOT_AUTHORIZED,
            _ => ReasonCode::V3_SERVER_UNAVAILABLE,
        }
    }

    /// The MQTT 3.1.1 SUBACK return code for an MQTT 5 SUBACK reason code.
    pub fn to_v3_suback(self) -> ReasonCode {
        if self.0 <= 2 {
            self
        } else {
            ReasonCode::V3_SUBACK_FAILURE
        }
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:02X})", self.0),
            None => write!(f, "ReasonCode(0x{:02X})", self.0),
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown reason code 0x{:02X}", self.0),
        }
    }
}

// Reason codes each MQTT 5 packet may carry (the tables in 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1,
// 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1). Anything else is a Malformed Packet.
pub(crate) const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
pub(crate) const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
pub(crate) const PUBREL_CODES: &[u8] = &[0x00, 0x92];
pub(crate) const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
pub(crate) const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
pub(crate) const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
pub(crate) const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];
// MQTT 3.1.1 (3.2.2.3, 3.9.3).
pub(crate) const V3_CONNACK_CODES: &[u8] = &[0, 1, 2, 3, 4, 5];
pub(crate) const V3_SUBACK_CODES: &[u8] = &[0, 1, 2, 0x80];

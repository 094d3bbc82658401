//! Decode and encode errors. Every decode error names the packet and the rule it broke, and maps
//! to the MQTT 5 reason code a server sends back (CONNACK or DISCONNECT).

use super::reason::ReasonCode;
use super::version::Version;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes do not follow the packet grammar (reason code 0x81).
    #[error("malformed {packet}: {reason}")]
    MalformedPacket {
        packet: &'static str,
        reason: &'static str,
    },
    /// The packet is well-formed but not allowed here (reason code 0x82).
    #[error("protocol error in {packet}: {reason}")]
    ProtocolError {
        packet: &'static str,
        reason: &'static str,
    },
    /// The announced packet size exceeds the maximum we accept (reason code 0x95).
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: u32 },
    /// CONNECT asks for a protocol level other than 4 (3.1.1) or 5 (reason code 0x84; a 3.1.1
    /// server answers with CONNACK return code 0x01).
    #[error("unsupported protocol level {level}")]
    UnsupportedProtocolVersion { level: u8 },
    /// A PUBLISH (or Will) topic name that is not a valid topic name (reason code 0x90).
    #[error("invalid topic name in {packet}: {reason}")]
    TopicNameInvalid {
        packet: &'static str,
        reason: &'static str,
    },
}

impl DecodeError {
    /// The MQTT 5 reason code that reports this error to the peer.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::MalformedPacket { .. } => ReasonCode::MALFORMED_PACKET,
            DecodeError::ProtocolError { .. } => ReasonCode::PROTOCOL_ERROR,
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion { .. } => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            DecodeError::TopicNameInvalid { .. } => ReasonCode::TOPIC_NAME_INVALID,
        }
    }

    pub(crate) fn malformed(packet: &'static str, reason: &'static str) -> Self {
        DecodeError::MalformedPacket { packet, reason }
    }

    pub(crate) fn protocol(packet: &'static str, reason: &'static str) -> Self {
        DecodeError::ProtocolError { packet, reason }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A UTF-8 string or binary field longer than 65,535 bytes ([MQTT-1.5.4], 1.5.6).
    #[error("{packet}: {field} is {len} bytes, more than 65535")]
    FieldTooLong {
        packet: &'static str,
        field: &'static str,
        len: usize,
    },
    /// The remaining length would exceed 268,435,455 (2.2.3).
    #[error("{packet}: packet of {size} bytes exceeds the protocol limit")]
    PacketTooLarge { packet: &'static str, size: usize },
    /// The packet does not exist in this protocol version (AUTH in 3.1.1).
    #[error("{packet} does not exist in MQTT {version:?}")]
    NotInVersion {
        packet: &'static str,
        version: Version,
    },
    /// The packet's fields are inconsistent; the encoded bytes would be refused by a decoder.
    #[error("{packet}: {reason}")]
    Invalid {
        packet: &'static str,
        reason: &'static str,
    },
}

//! Codec tests: the specifications' own byte examples, one negative test per validation rule,
//! topic rules, and proptest round trips and robustness checks.

mod negative;
mod roundtrip;
mod topic;
mod vectors;

use bytes::BytesMut;

use super::*;

/// Builds a frame: first byte, remaining length, body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    primitives::write_var_int(&mut out, body.len());
    let mut v = vec![first];
    v.extend_from_slice(&out);
    v.extend_from_slice(body);
    v
}

fn encode(packet: &Packet<'_>, version: Version) -> Vec<u8> {
    let mut out = BytesMut::new();
    packet.encode(version, &mut out).expect("encodable packet");
    out.to_vec()
}

fn decode_err(bytes: &[u8], version: Option<Version>) -> DecodeError {
    match decode(bytes, version) {
        Ok(p) => panic!("expected an error, decoded {p:?}"),
        Err(e) => e,
    }
}

fn assert_malformed(bytes: &[u8], version: Option<Version>) {
    assert_decode_error(bytes, version, ReasonCode::MALFORMED_PACKET);
}

fn assert_protocol_error(bytes: &[u8], version: Option<Version>) {
    assert_decode_error(bytes, version, ReasonCode::PROTOCOL_ERROR);
}

/// Decoding fails with the error variant that `code` names, and that error maps back to `code`.
fn assert_decode_error(bytes: &[u8], version: Option<Version>, code: ReasonCode) {
    let e = decode_err(bytes, version);
    let variant_matches = match e {
        DecodeError::MalformedPacket { .. } => code == ReasonCode::MALFORMED_PACKET,
        DecodeError::ProtocolError { .. } => code == ReasonCode::PROTOCOL_ERROR,
        _ => false,
    };
    assert!(variant_matches, "expected {code:?}, got {e:?}");
    assert_eq!(e.reason_code(), code);
}

//! Data representations (MQTT 5 section 1.5, 3.1.1 section 1.5): Two Byte Integer, Four Byte
//! Integer, Variable Byte Integer, UTF-8 Encoded String, Binary Data, String Pair.
//!
//! Reading goes through [`Reader`], a cursor that never indexes out of range and reports errors
//! against the packet being decoded. Writing appends to a `BytesMut` that the caller has sized.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};

/// Largest value a Variable Byte Integer can carry (1.5.5): 268,435,455.
pub const MAX_VAR_INT: u32 = 268_435_455;
/// Largest UTF-8 string or binary field (1.5.4, 1.5.6).
pub const MAX_FIELD_LEN: usize = 65_535;

/// A cursor over one packet's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    packet: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], packet: &'static str) -> Self {
        Reader { buf, packet }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn malformed(&self, reason: &'static str) -> DecodeError {
        DecodeError::malformed(self.packet, reason)
    }

    pub(crate) fn protocol(&self, reason: &'static str) -> DecodeError {
        DecodeError::protocol(self.packet, reason)
    }

    /// Takes `n` bytes, or fails with `reason` if fewer remain.
    pub(crate) fn take(&mut self, n: usize, reason: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(self.malformed(reason));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Splits off the next `n` bytes as their own reader (a property block).
    pub(crate) fn sub(
        &mut self,
        n: usize,
        reason: &'static str,
    ) -> Result<Reader<'a>, DecodeError> {
        let bytes = self.take(n, reason)?;
        Ok(Reader::new(bytes, self.packet))
    }

    /// Fails unless every byte was consumed (the remaining length must match the content).
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("unexpected bytes after the end of the packet"))
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.buf.split_first() {
            Some((&b, tail)) => {
                self.buf = tail;
                Ok(b)
            }
            None => Err(self.malformed("packet ends inside a byte field")),
        }
    }

    /// Two Byte Integer, big-endian (1.5.2).
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2, "packet ends inside a two byte integer")?;
        match b {
            [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
            _ => Err(self.malformed("packet ends inside a two byte integer")),
        }
    }

    /// Four Byte Integer, big-endian (1.5.3).
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4, "packet ends inside a four byte integer")?;
        match b {
            [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(self.malformed("packet ends inside a four byte integer")),
        }
    }

    /// Variable Byte Integer (1.5.5).
    pub(crate) fn var_int(&mut self) -> Result<u32, DecodeError> {
        match read_var_int(self.buf) {
            VarInt::Value { value, len } => {
                self.buf = self.buf.get(len..).unwrap_or_default();
                Ok(value)
            }
            VarInt::Incomplete => Err(self.malformed("packet ends inside a variable byte integer")),
            VarInt::Malformed(reason) => Err(self.malformed(reason)),
        }
    }

    /// A packet identifier, which must be non-zero ([MQTT-2.2.1-3] / 3.1.1 [MQTT-2.3.1-1]).
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        let id = self.u16()?;
        if id == 0 {
            return Err(self.malformed("packet identifier 0 [MQTT-2.2.1-3]"));
        }
        Ok(id)
    }

    /// UTF-8 Encoded String (1.5.4): two byte length, then well-formed UTF-8
    /// ([MQTT-1.5.4-1]) without U+0000 ([MQTT-1.5.4-2]).
    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.u16()?;
        let bytes = self.take(usize::from(len), "packet ends inside a UTF-8 string")?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| self.malformed("string is not well-formed UTF-8 [MQTT-1.5.4-1]"))?;
        if bytes.contains(&0) {
            return Err(self.malformed("string contains U+0000 [MQTT-1.5.4-2]"));
        }
        Ok(s)
    }

    /// Binary Data (1.5.6): two byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len), "packet ends inside binary data")
    }
}

/// Outcome of reading a Variable Byte Integer from the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarInt {
    Value { value: u32, len: usize },
    Incomplete,
    Malformed(&'static str),
}

/// Reads a Variable Byte Integer (1.5.5): at most four bytes, seven bits each, least
/// significant group first; the high bit says another byte follows.
pub(crate) fn read_var_int(buf: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // [MQTT-1.5.5-1] the encoded value must use the minimum number of bytes.
            if i > 0 && byte == 0 {
                return VarInt::Malformed(
                    "variable byte integer not in its shortest form [MQTT-1.5.5-1]",
                );
            }
            return VarInt::Value { value, len: i + 1 };
        }
    }
    if buf.len() >= 4 {
        VarInt::Malformed("variable byte integer longer than four bytes (1.5.5)")
    } else {
        VarInt::Incomplete
    }
}

/// Number of bytes the Variable Byte Integer encoding of `value` takes.
pub const fn var_int_len(value: usize) -> usize {
    if value < 128 {
        1
    } else if value < 16_384 {
        2
    } else if value < 2_097_152 {
        3
    } else {
        4
    }
}

/// Writes a Variable Byte Integer (1.5.5). `value` must be at most [`MAX_VAR_INT`]; callers
/// check that while computing lengths.
pub fn write_var_int(out: &mut BytesMut, value: usize) {
    let mut v = value;
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// Writes a UTF-8 Encoded String (1.5.4). The length must already be checked with
/// [`field_len`].
pub fn write_string(out: &mut BytesMut, s: &str) {
    write_binary(out, s.as_bytes());
}

/// Writes Binary Data (1.5.6). The length must already be checked with [`field_len`].
pub fn write_binary(out: &mut BytesMut, b: &[u8]) {
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

/// Encoded size (length prefix included) of a string or binary field, or an error when it does
/// not fit the two byte length.
pub(crate) fn field_len(
    packet: &'static str,
    field: &'static str,
    len: usize,
) -> Result<usize, EncodeError> {
    if len > MAX_FIELD_LEN {
        return Err(EncodeError::FieldTooLong { packet, field, len });
    }
    Ok(2 + len)
}

/// Checks the remaining length fits a Variable Byte Integer and returns the size of the whole
/// packet (fixed header included).
pub(crate) fn packet_size(packet: &'static str, remaining: usize) -> Result<usize, EncodeError> {
    if remaining > MAX_VAR_INT as usize {
        return Err(EncodeError::PacketTooLarge {
            packet,
            size: 1 + 4 + remaining,
        });
    }
    Ok(1 + var_int_len(remaining) + remaining)
}

/// Writes the fixed header (2.1.1): packet type and flags, then the remaining length.
pub(crate) fn write_fixed_header(out: &mut BytesMut, first_byte: u8, remaining: usize) {
    out.put_u8(first_byte);
    write_var_int(out, remaining);
}

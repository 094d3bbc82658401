//! CloudEvents Kafka protocol binding (spec 4): binary mode is written (`ce_` headers,
//! `content-type`); binary and structured mode (`content-type: application/cloudevents+json`)
//! are read.

use std::borrow::Cow;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};

use super::payload::{payload_bytes, raw_headers, LiveMessages};
use crate::cloudevents::event::extension_name;
use crate::cloudevents::{Event, ExtensionValue, SpecVersion, Text, KAFKA_STRUCTURED_CONTENT_TYPE};

/// The headers of a binary-mode record for `event` (its data is the record's value).
pub fn encode_headers(event: &Event) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(8 + event.extensions.len());
    let put = |h: OwnedHeaders, key: &str, value: &str| {
        h.insert(Header {
            key,
            value: Some(value.as_bytes()),
        })
    };
    h = put(h, "ce_specversion", event.specversion.as_str());
    h = put(h, "ce_id", &event.id);
    h = put(h, "ce_source", &event.source);
    h = put(h, "ce_type", &event.ty);
    if let Some(s) = &event.subject {
        h = put(h, "ce_subject", s);
    }
    if let Some(t) = &event.time {
        h = put(h, "ce_time", t);
    }
    if let Some(s) = &event.dataschema {
        h = put(h, "ce_dataschema", s);
    }
    if let Some(ct) = &event.datacontenttype {
        h = put(h, "content-type", ct);
    }
    for (name, value) in &event.extensions {
        h = put(h, &format!("ce_{name}"), &value.as_text());
    }
    h
}

/// Why a record is not a CloudEvent.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("binary mode: header `{0}` is missing")]
    Missing(&'static str),
    #[error("binary mode: header `{0}` is not UTF-8")]
    NotUtf8(String),
    #[error("binary mode: specversion `{0}` is not supported (only 1.0)")]
    SpecVersion(String),
    #[error("the record's headers are malformed (header {0})")]
    MalformedHeaders(usize),
    #[error("structured mode: {0}")]
    Structured(#[from] crate::cloudevents::EventError),
}

/// What decoding took: whether the data is a view of the record (binary mode, no copy).
pub struct Decoded {
    pub event: Event,
    pub zero_copy: bool,
}

/// Decodes one record. The message is consumed: in binary mode it becomes the owner of the
/// event's data (see [`super::payload`]).
pub(crate) fn decode(
    message: BorrowedMessage<'_>,
    live: &LiveMessages,
) -> Result<Decoded, DecodeError> {
    // Read from the record's own bytes: librdkafka's header list would copy every header into
    // an allocation of its own first (see `raw_headers.c`).
    let attributes = read_wire_headers(raw_headers(&message))?;
    if attributes.is_structured() {
        let mut json = message.payload().unwrap_or(&[]).to_vec();
        drop(message);
        let event = Event::from_structured_json(&mut json)?;
        return Ok(Decoded {
            event,
            zero_copy: false,
        });
    }
    let data: Bytes = payload_bytes(message, live);
    let zero_copy = !data.is_empty();
    Ok(Decoded {
        event: attributes.into_event(data)?,
        zero_copy,
    })
}

/// The CloudEvents attributes a record's headers carry (Kafka binding, binary mode), and its
/// `content-type`.
#[derive(Debug, Default)]
pub struct RecordAttributes {
    content_type: Option<Text>,
    /// Borrowed when it is "1.0" (the only version there is): no allocation per record.
    specversion: Option<Cow<'static, str>>,
    id: Option<Text>,
    source: Option<Text>,
    ty: Option<Text>,
    subject: Option<Text>,
    time: Option<Text>,
    dataschema: Option<Text>,
    extensions: Vec<(Cow<'static, str>, ExtensionValue)>,
}

/// Reads the `ce_*` and `content-type` headers (key, value) of a record. Separate from
/// librdkafka so that it can be fuzzed (`fuzz/`: `kafka_record`).
pub fn read_headers<'h>(
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> Result<RecordAttributes, DecodeError> {
    read_raw_headers(headers.into_iter().map(|(k, v)| (k.as_bytes(), v)))
}

/// The headers of a record as Kafka stores them (record format v2): a varint count, then per
/// header a varint key length, the key, a varint value length (-1: null) and the value; varints
/// are zigzag-encoded. Yields (key, value) and stops at the first malformed header
/// ([`WireHeaders::malformed`]). Bytes after the last header are ignored (librdkafka hands
/// them over up to the record's end).
pub struct WireHeaders<'h> {
    rest: &'h [u8],
    left: i64,
    read: usize,
    malformed: bool,
}

impl<'h> WireHeaders<'h> {
    pub fn new(bytes: &'h [u8]) -> WireHeaders<'h> {
        let mut w = WireHeaders {
            rest: bytes,
            left: 0,
            read: 0,
            malformed: false,
        };
        if !bytes.is_empty() {
            match w.varint() {
                Some(n) if n >= 0 => w.left = n,
                _ => w.malformed = true,
            }
        }
        w
    }

    /// The index of the header that was malformed, if one was.
    pub fn malformed(&self) -> Option<usize> {
        self.malformed.then_some(self.read)
    }

    fn varint(&mut self) -> Option<i64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.rest.split_first()?;
            self.rest = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        None
    }

    fn bytes(&mut self, len: i64) -> Option<&'h [u8]> {
        let (head, tail) = self.rest.split_at_checked(usize::try_from(len).ok()?)?;
        self.rest = tail;
        Some(head)
    }

    fn header(&mut self) -> Option<(&'h [u8], Option<&'h [u8]>)> {
        let key_len = self.varint()?;
        let key = self.bytes(key_len)?;
        let value = match self.varint()? {
            -1 => None,
            len => Some(self.bytes(len)?),
        };
        Some((key, value))
    }
}

impl<'h> Iterator for WireHeaders<'h> {
    type Item = (&'h [u8], Option<&'h [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left <= 0 || self.malformed {
            return None;
        }
        let header = self.header();
        match header {
            Some(_) => {
                self.left -= 1;
                self.read += 1;
            }
            None => self.malformed = true,
        }
        header
    }
}

/// [`read_headers`] over a record's header bytes ([`WireHeaders`]).
pub fn read_wire_headers(bytes: &[u8]) -> Result<RecordAttributes, DecodeError> {
    let mut wire = WireHeaders::new(bytes);
    let attributes = read_raw_headers(&mut wire)?;
    match wire.malformed() {
        Some(i) => Err(DecodeError::MalformedHeaders(i)),
        None => Ok(attributes),
    }
}

/// Which attribute a header carries.
enum Slot<'h> {
    ContentType,
    SpecVersion,
    Id,
    Source,
    Type,
    Subject,
    Time,
    DataSchema,
    Extension(&'h [u8]),
}

/// [`read_headers`] over keys as librdkafka has them (bytes): a key is only checked to be
/// UTF-8 when it names an extension (other headers are ignored whatever their key).
pub(crate) fn read_raw_headers<'h>(
    headers: impl IntoIterator<Item = (&'h [u8], Option<&'h [u8]>)>,
) -> Result<RecordAttributes, DecodeError> {
    let mut a = RecordAttributes::default();
    for (key, value) in headers {
        let Some(value) = value else { continue };
        let slot = if key.eq_ignore_ascii_case(b"content-type") {
            Slot::ContentType
        } else if let Some(name) = key.strip_prefix(b"ce_") {
            match name {
                b"specversion" => Slot::SpecVersion,
                b"id" => Slot::Id,
                b"source" => Slot::Source,
                b"type" => Slot::Type,
                b"subject" => Slot::Subject,
                b"time" => Slot::Time,
                b"dataschema" => Slot::DataSchema,
                b"datacontenttype" => Slot::ContentType,
                _ => Slot::Extension(name),
            }
        } else {
            continue;
        };
        let not_utf8 = || DecodeError::NotUtf8(String::from_utf8_lossy(key).into_owned());
        let value = std::str::from_utf8(value).map_err(|_| not_utf8())?;
        match slot {
            Slot::SpecVersion if value == "1.0" => a.specversion = Some(Cow::Borrowed("1.0")),
            Slot::SpecVersion => a.specversion = Some(Cow::Owned(value.to_owned())),
            Slot::ContentType => a.content_type = Some(Text::from(value)),
            Slot::Id => a.id = Some(Text::from(value)),
            Slot::Source => a.source = Some(Text::from(value)),
            Slot::Type => a.ty = Some(Text::from(value)),
            Slot::Subject => a.subject = Some(Text::from(value)),
            Slot::Time => a.time = Some(Text::from(value)),
            Slot::DataSchema => a.dataschema = Some(Text::from(value)),
            Slot::Extension(name) => {
                let name = std::str::from_utf8(name).map_err(|_| not_utf8())?;
                a.extensions.push((
                    extension_name(name),
                    ExtensionValue::String(Text::from(value)),
                ));
            }
        }
    }
    Ok(a)
}

impl RecordAttributes {
    /// Structured mode: the whole event is the JSON payload (`content-type:
    /// application/cloudevents+json`).
    pub fn is_structured(&self) -> bool {
        self.content_type.as_deref().is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(KAFKA_STRUCTURED_CONTENT_TYPE))
        })
    }

    /// Binary mode: the attributes from the headers, `data` = the payload.
    pub fn into_event(self, data: Bytes) -> Result<Event, DecodeError> {
        let specversion = self
            .specversion
            .ok_or(DecodeError::Missing("ce_specversion"))?;
        if specversion != "1.0" {
            return Err(DecodeError::SpecVersion(specversion.into_owned()));
        }
        let id = self
            .id
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::Missing("ce_id"))?;
        let source = self
            .source
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::Missing("ce_source"))?;
        let ty = self
            .ty
            .filter(|s| !s.is_empty())
            .ok_or(DecodeError::Missing("ce_type"))?;
        Ok(Event {
            id,
            source,
            ty,
            specversion: SpecVersion::V1_0,
            subject: self.subject,
            time: self.time,
            datacontenttype: self.content_type,
            dataschema: self.dataschema,
            extensions: self.extensions,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_headers_ignore_foreign_keys_and_borrow_the_specversion() {
        let headers: [(&[u8], Option<&[u8]>); 6] = [
            (b"\xff\xfe", Some(b"not a CloudEvents header")),
            (b"ce_specversion", Some(b"1.0")),
            (b"ce_id", Some(b"1")),
            (b"ce_source", Some(b"s")),
            (b"ce_type", Some(b"t")),
            (b"ce_device", Some(b"d1")),
        ];
        let a = read_raw_headers(headers).expect("valid");
        assert!(matches!(a.specversion, Some(Cow::Borrowed("1.0"))));
        let e = a.into_event(Bytes::from_static(b"x")).expect("event");
        assert_eq!(
            (e.id.as_str(), e.source.as_str(), e.ty.as_str()),
            ("1", "s", "t")
        );
        assert_eq!(e.device(), Some("d1"));
    }

    /// Kafka's encoding (record format v2) of `headers`, then `trailing`.
    fn wire(headers: &[(&[u8], Option<&[u8]>)], trailing: &[u8]) -> Vec<u8> {
        let mut out = crate::fuzzing::wire_headers(headers.iter().copied());
        out.extend_from_slice(trailing);
        out
    }

    #[test]
    fn wire_headers_read_what_kafka_wrote() {
        let long = vec![b'v'; 300]; // two-byte lengths
        let headers: [(&[u8], Option<&[u8]>); 4] = [
            (b"ce_specversion", Some(b"1.0")),
            (b"nothing", None),
            (b"", Some(b"")),
            (b"ce_id", Some(&long)),
        ];
        let bytes = wire(&headers, b"\x01\x02 after the headers");
        let mut parsed = WireHeaders::new(&bytes);
        assert_eq!(parsed.by_ref().collect::<Vec<_>>(), headers);
        assert_eq!(parsed.malformed(), None);
        assert_eq!(WireHeaders::new(&[]).count(), 0, "no headers");
        assert_eq!(WireHeaders::new(&wire(&[], b"")).count(), 0, "zero headers");
    }

    #[test]
    fn malformed_wire_headers_are_an_error_naming_the_header() {
        let two: [(&[u8], Option<&[u8]>); 2] = [(b"ce_id", Some(b"1")), (b"ce_type", Some(b"t"))];
        let whole = wire(&two, b"");
        for cut in 1..whole.len() {
            let r = read_wire_headers(&whole[..cut]);
            assert!(
                matches!(r, Err(DecodeError::MalformedHeaders(i)) if i <= 1),
                "cut at {cut}: {r:?}"
            );
        }
        // A negative length other than -1, a negative count, a varint that never ends.
        let mut bad_len = wire(&[], b"");
        bad_len[0] = 2; // one header
        bad_len.extend_from_slice(&[0x03]); // key length -2
        assert!(matches!(
            read_wire_headers(&bad_len),
            Err(DecodeError::MalformedHeaders(0))
        ));
        assert!(matches!(
            read_wire_headers(&[0x01]),
            Err(DecodeError::MalformedHeaders(0))
        ));
        assert!(matches!(
            read_wire_headers(&[0xff; 12]),
            Err(DecodeError::MalformedHeaders(0))
        ));
        assert!(read_wire_headers(&whole).is_ok());
    }

    #[test]
    fn raw_headers_reject_a_non_utf8_extension_name() {
        let headers: [(&[u8], Option<&[u8]>); 1] = [(b"ce_\xff", Some(b"v"))];
        assert!(matches!(
            read_raw_headers(headers),
            Err(DecodeError::NotUtf8(_))
        ));
    }
}

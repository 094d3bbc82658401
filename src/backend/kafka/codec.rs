//! CloudEvents Kafka protocol binding (spec 4): binary mode is written (`ce_` headers,
//! `content-type`); binary and structured mode (`content-type: application/cloudevents+json`)
//! are read.

use std::borrow::Cow;

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};

use super::payload::{detach_headers, payload_bytes, LiveMessages};
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
    // The headers librdkafka parsed are detached from the message and destroyed at the end of
    // this statement, on this thread (where librdkafka allocated them), not on the shard thread
    // that drops the message with the last reference to the data.
    let attributes = match detach_headers(&message) {
        Some(headers) => read_raw_headers(headers.iter())?,
        None => RecordAttributes::default(),
    };
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

    #[test]
    fn raw_headers_reject_a_non_utf8_extension_name() {
        let headers: [(&[u8], Option<&[u8]>); 1] = [(b"ce_\xff", Some(b"v"))];
        assert!(matches!(
            read_raw_headers(headers),
            Err(DecodeError::NotUtf8(_))
        ));
    }
}

//! CloudEvents Kafka protocol binding (spec 4): binary mode is written (`ce_` headers,
//! `content-type`); binary and structured mode (`content-type: application/cloudevents+json`)
//! are read.

use bytes::Bytes;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};

use super::payload::{payload_bytes, LiveMessages};
use crate::cloudevents::{Event, ExtensionValue, SpecVersion, KAFKA_STRUCTURED_CONTENT_TYPE};

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
    let attributes = match message.headers() {
        Some(headers) => read_headers(
            (0..headers.count()).filter_map(|i| headers.try_get(i).map(|h| (h.key, h.value))),
        )?,
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
    content_type: Option<String>,
    specversion: Option<String>,
    id: Option<String>,
    source: Option<String>,
    ty: Option<String>,
    subject: Option<String>,
    time: Option<String>,
    dataschema: Option<String>,
    extensions: Vec<(String, ExtensionValue)>,
}

/// Reads the `ce_*` and `content-type` headers (key, value) of a record. Separate from
/// librdkafka so that it can be fuzzed (`fuzz/`: `kafka_record`).
pub fn read_headers<'h>(
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> Result<RecordAttributes, DecodeError> {
    let mut a = RecordAttributes::default();
    for (key, value) in headers {
        let Some(value) = value else { continue };
        let value = std::str::from_utf8(value)
            .map_err(|_| DecodeError::NotUtf8(key.to_owned()))?
            .to_owned();
        if key.eq_ignore_ascii_case("content-type") {
            a.content_type = Some(value);
            continue;
        }
        let Some(name) = key.strip_prefix("ce_") else {
            continue;
        };
        match name {
            "specversion" => a.specversion = Some(value),
            "id" => a.id = Some(value),
            "source" => a.source = Some(value),
            "type" => a.ty = Some(value),
            "subject" => a.subject = Some(value),
            "time" => a.time = Some(value),
            "dataschema" => a.dataschema = Some(value),
            "datacontenttype" => a.content_type = Some(value),
            _ => a
                .extensions
                .push((name.to_owned(), ExtensionValue::String(value))),
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
            return Err(DecodeError::SpecVersion(specversion));
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

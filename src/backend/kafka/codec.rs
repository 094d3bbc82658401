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
    let mut content_type: Option<String> = None;
    let mut specversion: Option<String> = None;
    let mut id = None;
    let mut source = None;
    let mut ty = None;
    let mut subject = None;
    let mut time = None;
    let mut dataschema = None;
    let mut extensions = Vec::new();
    if let Some(headers) = message.headers() {
        for i in 0..headers.count() {
            let Some(h) = headers.try_get(i) else {
                continue;
            };
            let value = match h.value {
                Some(v) => std::str::from_utf8(v)
                    .map_err(|_| DecodeError::NotUtf8(h.key.to_owned()))?
                    .to_owned(),
                None => continue,
            };
            if h.key.eq_ignore_ascii_case("content-type") {
                content_type = Some(value);
                continue;
            }
            let Some(name) = h.key.strip_prefix("ce_") else {
                continue;
            };
            match name {
                "specversion" => specversion = Some(value),
                "id" => id = Some(value),
                "source" => source = Some(value),
                "type" => ty = Some(value),
                "subject" => subject = Some(value),
                "time" => time = Some(value),
                "dataschema" => dataschema = Some(value),
                "datacontenttype" => content_type = Some(value),
                _ => extensions.push((name.to_owned(), ExtensionValue::String(value))),
            }
        }
    }
    let structured = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(KAFKA_STRUCTURED_CONTENT_TYPE))
    });
    if structured {
        let mut json = message.payload().unwrap_or(&[]).to_vec();
        drop(message);
        let event = Event::from_structured_json(&mut json)?;
        return Ok(Decoded {
            event,
            zero_copy: false,
        });
    }
    let specversion = specversion.ok_or(DecodeError::Missing("ce_specversion"))?;
    if specversion != "1.0" {
        return Err(DecodeError::SpecVersion(specversion));
    }
    let id = id
        .filter(|s| !s.is_empty())
        .ok_or(DecodeError::Missing("ce_id"))?;
    let source = source
        .filter(|s| !s.is_empty())
        .ok_or(DecodeError::Missing("ce_source"))?;
    let ty = ty
        .filter(|s| !s.is_empty())
        .ok_or(DecodeError::Missing("ce_type"))?;
    let data: Bytes = payload_bytes(message, live);
    let zero_copy = !data.is_empty();
    Ok(Decoded {
        event: Event {
            id,
            source,
            ty,
            specversion: SpecVersion::V1_0,
            subject,
            time,
            datacontenttype: content_type,
            dataschema,
            extensions,
            data,
        },
        zero_copy,
    })
}

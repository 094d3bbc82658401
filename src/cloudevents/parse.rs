//! Reading one structured-mode event (the JSON event format) with simd-json.
//!
//! Used for Kafka structured records and, through [`super::batch`], HTTP batch ingest.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use simd_json::prelude::*;
use simd_json::{BorrowedValue, StaticNode};

use super::content_type::DataKind;
use super::event::{extension_name, new_id, Event, ExtensionValue, SpecVersion, Text};

/// Why a structured event was rejected. Each names the attribute at fault.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not valid JSON: {0}")]
    Json(#[from] simd_json::Error),
    #[error("a structured event must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("required attribute `{0}` is missing")]
    Missing(&'static str),
    #[error("attribute `{0}` must not be empty")]
    Empty(&'static str),
    #[error("attribute `{name}` must be {expected}, found {found}")]
    WrongType {
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("specversion `{0}` is not supported (only 1.0)")]
    UnsupportedSpecVersion(String),
    #[error("an event cannot have both `data` and `data_base64`")]
    BothData,
    #[error("`data_base64` is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
}

impl Event {
    /// Parses one structured-mode event. `json` is used as scratch space by simd-json (it is
    /// unescaped in place), so its contents are unspecified afterwards.
    ///
    /// `id`, `source`, `type` and `specversion` (`1.0`) are required non-empty strings; the
    /// optional attributes must be strings or null (null means absent). Every other member is an
    /// extension and must be a string, an integer or a boolean (or null: absent).
    /// `time` is kept as text, unchecked, so that it is passed on exactly as received.
    ///
    /// Data: a `data_base64` member is decoded; a `data` member is the string's text when
    /// `datacontenttype` is given and not JSON, and otherwise the JSON text of the value (so
    /// `"data": "x"` with `application/json` becomes the three bytes `"x"`, as the format says).
    pub fn from_structured_json(json: &mut [u8]) -> Result<Event, EventError> {
        let value = simd_json::to_borrowed_value(json)?;
        Draft::from_value(&value)?.into_event()
    }
}

/// An event as read, before deciding what to do about missing required attributes: a
/// standalone event rejects them, a batch-ingested one gets them filled in.
#[derive(Debug)]
pub(crate) struct Draft {
    /// The attributes read. A required one (`id`, `source`, `type`) that was not given is empty
    /// here; one given is never empty (that is refused as it is read).
    pub event: Event,
    /// `specversion`, if given.
    pub specversion: Option<SpecVersion>,
}

impl Draft {
    pub fn from_value(value: &BorrowedValue<'_>) -> Result<Draft, EventError> {
        let BorrowedValue::Object(members) = value else {
            return Err(EventError::NotAnObject(type_name(value)));
        };
        let mut draft = Draft {
            event: Event {
                id: Text::default(),
                source: Text::default(),
                ty: Text::default(),
                specversion: SpecVersion::V1_0,
                subject: None,
                time: None,
                datacontenttype: None,
                dataschema: None,
                extensions: Vec::new(),
                data: Bytes::new(),
            },
            specversion: None,
        };
        let e = &mut draft.event;
        let mut data = None;
        let mut data_base64 = None;
        for (name, value) in members.iter() {
            let name: &str = name;
            match name {
                "specversion" => {
                    draft.specversion = match optional_string(name, value)? {
                        Some("1.0") => Some(SpecVersion::V1_0),
                        Some(other) => {
                            return Err(EventError::UnsupportedSpecVersion(other.to_owned()))
                        }
                        None => None,
                    }
                }
                "id" => e.id = required_string("id", value)?,
                "source" => e.source = required_string("source", value)?,
                "type" => e.ty = required_string("type", value)?,
                "subject" => e.subject = optional_string(name, value)?.map(Text::from),
                "time" => e.time = optional_string(name, value)?.map(Text::from),
                "datacontenttype" => {
                    e.datacontenttype = optional_string(name, value)?.map(Text::from)
                }
                "dataschema" => e.dataschema = optional_string(name, value)?.map(Text::from),
                "data" => data = Some(value).filter(|v| !v.is_null()),
                "data_base64" => data_base64 = optional_string(name, value)?,
                _ => {
                    if let Some(ext) = extension_value(name, value)? {
                        e.extensions.push((extension_name(name), ext));
                    }
                }
            }
        }
        e.data = match (data, data_base64) {
            (Some(_), Some(_)) => return Err(EventError::BothData),
            (None, Some(encoded)) => Bytes::from(STANDARD.decode(encoded)?),
            (Some(value), None) => data_bytes(DataKind::of(e.datacontenttype.as_deref()), value),
            (None, None) => Bytes::new(),
        };
        Ok(draft)
    }

    /// Fills in what batch ingest may leave out (spec 5): a new UUID v4 as `id`, `time` (the
    /// request's), `specversion` 1.0 and `type` `io.drogue.event.v1`. `source` is left to the
    /// caller, which sets it from the path.
    pub fn fill_ingest_defaults(&mut self, time: &str) {
        let e = &mut self.event;
        if e.id.is_empty() {
            e.id = new_id();
        }
        e.time.get_or_insert_with(|| time.into());
        self.specversion.get_or_insert(SpecVersion::V1_0);
        if e.ty.is_empty() {
            e.ty = Text::const_new(super::DEVICE_EVENT_TYPE);
        }
    }

    /// The event, if every required attribute was there.
    pub fn into_event(self) -> Result<Event, EventError> {
        let mut event = self.event;
        event.specversion = self.specversion.ok_or(EventError::Missing("specversion"))?;
        for (name, value) in [
            ("id", &event.id),
            ("source", &event.source),
            ("type", &event.ty),
        ] {
            if value.is_empty() {
                return Err(EventError::Missing(name));
            }
        }
        // Retained with the event: pushing 5 extensions grew the vector to 8 slots.
        event.extensions.shrink_to_fit();
        Ok(event)
    }
}

/// The bytes `data` stands for: a string's text unless the content type is JSON (or absent,
/// which the format takes as JSON); otherwise the value's JSON text.
fn data_bytes(kind: DataKind, value: &BorrowedValue<'_>) -> Bytes {
    match (kind, value) {
        (DataKind::Text | DataKind::Binary, BorrowedValue::String(s)) => {
            Bytes::copy_from_slice(s.as_bytes())
        }
        _ => {
            // The generator starts at 1 KiB; the event keeps this buffer for as long as the
            // log retains it, so give back what the text does not use.
            let mut text = value.encode().into_bytes();
            text.shrink_to_fit();
            Bytes::from(text)
        }
    }
}

/// A required attribute: a non-empty string. Null counts as missing, as in the format: the
/// empty text.
fn required_string(name: &'static str, value: &BorrowedValue<'_>) -> Result<Text, EventError> {
    match optional_string(name, value)? {
        Some("") => Err(EventError::Empty(name)),
        other => Ok(other.map(Text::from).unwrap_or_default()),
    }
}

fn optional_string<'v>(
    name: &str,
    value: &'v BorrowedValue<'_>,
) -> Result<Option<&'v str>, EventError> {
    match value {
        BorrowedValue::String(s) => Ok(Some(s)),
        BorrowedValue::Static(StaticNode::Null) => Ok(None),
        other => Err(wrong_type(name, "a string", other)),
    }
}

fn extension_value(
    name: &str,
    value: &BorrowedValue<'_>,
) -> Result<Option<ExtensionValue>, EventError> {
    const EXPECTED: &str = "a string, an integer or a boolean";
    Ok(Some(match value {
        BorrowedValue::String(s) => ExtensionValue::String(Text::from(&**s)),
        BorrowedValue::Static(StaticNode::Bool(b)) => ExtensionValue::Boolean(*b),
        BorrowedValue::Static(StaticNode::I64(i)) => ExtensionValue::Integer(*i),
        BorrowedValue::Static(StaticNode::U64(u)) => match i64::try_from(*u) {
            Ok(i) => ExtensionValue::Integer(i),
            Err(_) => {
                return Err(EventError::WrongType {
                    name: name.to_owned(),
                    expected: EXPECTED,
                    found: "an integer beyond 64-bit signed range",
                })
            }
        },
        BorrowedValue::Static(StaticNode::Null) => return Ok(None),
        other => return Err(wrong_type(name, EXPECTED, other)),
    }))
}

fn wrong_type(name: &str, expected: &'static str, found: &BorrowedValue<'_>) -> EventError {
    EventError::WrongType {
        name: name.to_owned(),
        expected,
        found: type_name(found),
    }
}

pub(crate) fn type_name(value: &BorrowedValue<'_>) -> &'static str {
    match value {
        BorrowedValue::String(_) => "a string",
        BorrowedValue::Array(_) => "an array",
        BorrowedValue::Object(_) => "an object",
        BorrowedValue::Static(StaticNode::Null) => "null",
        BorrowedValue::Static(StaticNode::Bool(_)) => "a boolean",
        BorrowedValue::Static(StaticNode::F64(_)) => "a fractional number",
        BorrowedValue::Static(_) => "an integer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Event, EventError> {
        Event::from_structured_json(&mut json.as_bytes().to_vec())
    }

    const MINIMAL: &str = r#""specversion":"1.0","id":"1","source":"s","type":"t""#;

    #[test]
    fn parses_every_attribute() {
        let e = parse(
            r#"{"specversion":"1.0","id":"i","source":"drogue://a/d","type":"t","subject":"ch",
            "time":"2024-01-01T00:00:00.5Z","datacontenttype":"text/plain","dataschema":"urn:x",
            "application":"a","count":-5,"big":9223372036854775807,"flag":false,"gone":null,
            "data":"hello \"w\""}"#,
        )
        .unwrap();
        assert_eq!(e.id, "i");
        assert_eq!(e.source, "drogue://a/d");
        assert_eq!(e.ty, "t");
        assert_eq!(e.subject.as_deref(), Some("ch"));
        assert_eq!(e.time.as_deref(), Some("2024-01-01T00:00:00.5Z"));
        assert_eq!(e.datacontenttype.as_deref(), Some("text/plain"));
        assert_eq!(e.dataschema.as_deref(), Some("urn:x"));
        assert_eq!(e.application(), Some("a"));
        assert_eq!(e.extension("count"), Some(&ExtensionValue::Integer(-5)));
        assert_eq!(e.extension("big"), Some(&ExtensionValue::Integer(i64::MAX)));
        assert_eq!(e.extension("flag"), Some(&ExtensionValue::Boolean(false)));
        assert_eq!(e.extension("gone"), None);
        assert_eq!(&e.data[..], b"hello \"w\"");
    }

    #[test]
    fn json_data_becomes_its_json_text() {
        let e = parse(&format!(r#"{{{MINIMAL},"data":{{"a":[1,true]}}}}"#)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&e.data).unwrap(),
            serde_json::json!({"a": [1, true]})
        );
        let e = parse(&format!(
            r#"{{{MINIMAL},"datacontenttype":"application/json","data":"x"}}"#
        ))
        .unwrap();
        assert_eq!(&e.data[..], b"\"x\"");
    }

    #[test]
    fn base64_data_is_decoded() {
        let e = parse(&format!(r#"{{{MINIMAL},"data_base64":"AAEC/w=="}}"#)).unwrap();
        assert_eq!(&e.data[..], &[0, 1, 2, 255]);
        let err = parse(&format!(r#"{{{MINIMAL},"data_base64":"!!"}}"#)).unwrap_err();
        assert!(matches!(err, EventError::Base64(_)), "{err}");
    }

    #[test]
    fn no_data_is_empty() {
        assert!(parse(&format!("{{{MINIMAL}}}")).unwrap().data.is_empty());
        assert!(parse(&format!(r#"{{{MINIMAL},"data":null}}"#))
            .unwrap()
            .data
            .is_empty());
    }

    #[test]
    fn errors_name_the_attribute() {
        let err = parse(r#"{"specversion":"1.0","source":"s","type":"t"}"#).unwrap_err();
        assert!(matches!(err, EventError::Missing("id")), "{err}");
        assert_eq!(err.to_string(), "required attribute `id` is missing");

        let err = parse(r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#).unwrap_err();
        assert!(matches!(err, EventError::UnsupportedSpecVersion(ref v) if v == "0.3"));
        assert_eq!(
            err.to_string(),
            "specversion `0.3` is not supported (only 1.0)"
        );

        let err = parse(r#"{"id":"1","source":"s","type":"t"}"#).unwrap_err();
        assert!(matches!(err, EventError::Missing("specversion")));

        let err = parse("[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a structured event must be a JSON object, found an array"
        );

        let err = parse(r#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#).unwrap_err();
        assert!(matches!(err, EventError::Empty("id")));

        let err = parse(r#"{"specversion":"1.0","id":1,"source":"s","type":"t"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "attribute `id` must be a string, found an integer"
        );

        let err = parse(&format!(r#"{{{MINIMAL},"ext":{{}}}}"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "attribute `ext` must be a string, an integer or a boolean, found an object"
        );

        let err = parse(&format!(r#"{{{MINIMAL},"ext":1.5}}"#)).unwrap_err();
        assert!(matches!(err, EventError::WrongType { .. }));

        let err = parse(&format!(r#"{{{MINIMAL},"data":1,"data_base64":"AA=="}}"#)).unwrap_err();
        assert!(matches!(err, EventError::BothData));

        assert!(matches!(parse("{").unwrap_err(), EventError::Json(_)));
    }
}

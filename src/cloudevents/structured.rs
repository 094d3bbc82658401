//! Structured mode: the event in the JSON event format, written by hand.
//!
//! This is the hot path: an event is encoded once and the bytes are shared by every subscriber,
//! so the writer appends straight into one buffer, reserved once, with no intermediate values.

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::content_type::DataKind;
use super::event::{Event, ExtensionValue};
use super::json_check::is_json;
use super::json_escape::write_string;

impl Event {
    /// Appends the event in the JSON event format to `out`.
    ///
    /// Members: `specversion`, `id`, `source`, `type`, then the optional attributes, the
    /// extensions, and the data:
    /// - `data` as the JSON value itself when `datacontenttype` is JSON (`application/json`,
    ///   `text/json`, `*/*+json`) or absent (the format then implies JSON), and the data is
    ///   valid JSON;
    /// - `data` as a JSON string for `text/*` when the data is valid UTF-8;
    /// - `data_base64` otherwise, including data that claims to be JSON or text but is not,
    ///   so the output is always valid JSON and the data always survives byte for byte;
    /// - empty data stays present when the event has a `datacontenttype` (`"data_base64": ""`,
    ///   or `"data": ""` for text), as Drogue Cloud writes it (spec 2.3); an event with neither
    ///   content type nor data (a bare structured event, say) has no data member.
    ///
    /// An extension named like a core attribute (only possible if set by hand) is skipped, so no
    /// member appears twice.
    pub fn write_structured(&self, out: &mut Vec<u8>) {
        out.reserve(self.structured_size_hint());
        out.extend_from_slice(b"{\"specversion\":\"");
        out.extend_from_slice(self.specversion.as_str().as_bytes());
        out.extend_from_slice(b"\",\"id\":");
        write_string(out, &self.id);
        out.extend_from_slice(b",\"source\":");
        write_string(out, &self.source);
        out.extend_from_slice(b",\"type\":");
        write_string(out, &self.ty);
        optional(out, b",\"subject\":", self.subject.as_deref());
        optional(out, b",\"time\":", self.time.as_deref());
        optional(
            out,
            b",\"datacontenttype\":",
            self.datacontenttype.as_deref(),
        );
        optional(out, b",\"dataschema\":", self.dataschema.as_deref());
        for (name, value) in &self.extensions {
            if is_core_member(name) {
                continue;
            }
            out.push(b',');
            write_string(out, name);
            out.push(b':');
            match value {
                ExtensionValue::String(s) => write_string(out, s),
                ExtensionValue::Integer(i) => {
                    write!(out, "{i}").expect("writing to a Vec cannot fail")
                }
                ExtensionValue::Boolean(b) => {
                    out.extend_from_slice(if *b { b"true" } else { b"false" })
                }
            }
        }
        self.write_data(out);
        out.push(b'}');
    }

    /// The event in the JSON event format, in a new buffer.
    pub fn to_structured(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_structured(&mut out);
        out
    }

    fn write_data(&self, out: &mut Vec<u8>) {
        let data = &self.data[..];
        if data.is_empty() && self.datacontenttype.is_none() {
            return;
        }
        let kind = DataKind::of(self.datacontenttype.as_deref());
        if kind.wants_json() && is_json(data) {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(data);
            return;
        }
        if kind == DataKind::Text {
            if let Ok(text) = std::str::from_utf8(data) {
                out.extend_from_slice(b",\"data\":");
                write_string(out, text);
                return;
            }
        }
        out.extend_from_slice(b",\"data_base64\":\"");
        let start = out.len();
        out.resize(
            start + base64::encoded_len(data.len(), true).expect("length fits"),
            0,
        );
        let written = STANDARD
            .encode_slice(data, &mut out[start..])
            .expect("buffer sized by encoded_len");
        out.truncate(start + written);
        out.push(b'"');
    }

    /// Enough for the common case (nothing to escape) so the buffer grows once.
    fn structured_size_hint(&self) -> usize {
        let optional =
            |o: &Option<crate::cloudevents::Text>| o.as_ref().map_or(0, |s| s.len() + 20);
        let extensions: usize = self
            .extensions
            .iter()
            .map(|(n, v)| n.len() + 6 + v.as_str().map_or(20, str::len))
            .sum();
        80 + self.id.len()
            + self.source.len()
            + self.ty.len()
            + optional(&self.subject)
            + optional(&self.time)
            + optional(&self.datacontenttype)
            + optional(&self.dataschema)
            + extensions
            + 16
            + self.data.len().div_ceil(3) * 4
    }
}

fn optional(out: &mut Vec<u8>, member: &[u8], value: Option<&str>) {
    if let Some(value) = value {
        out.extend_from_slice(member);
        write_string(out, value);
    }
}

/// Member names the writer emits itself.
pub(crate) fn is_core_member(name: &str) -> bool {
    matches!(
        name,
        "specversion"
            | "id"
            | "source"
            | "type"
            | "subject"
            | "time"
            | "datacontenttype"
            | "dataschema"
            | "data"
            | "data_base64"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::{json, Value};

    fn event(content_type: Option<&str>, data: &'static [u8]) -> Event {
        Event {
            id: "1".into(),
            source: "s".into(),
            ty: "t".into(),
            specversion: Default::default(),
            subject: None,
            time: None,
            datacontenttype: content_type.map(Into::into),
            dataschema: None,
            extensions: vec![],
            data: Bytes::from_static(data),
        }
    }

    fn written(e: &Event) -> Value {
        serde_json::from_slice(&e.to_structured()).expect("valid JSON")
    }

    #[test]
    fn minimal_event() {
        let e = event(None, b"");
        assert_eq!(
            String::from_utf8(e.to_structured()).unwrap(),
            r#"{"specversion":"1.0","id":"1","source":"s","type":"t"}"#
        );
    }

    /// Which member carries the data, and its value, by content type: JSON embedded when it is
    /// JSON, UTF-8 text as a string, anything else (or JSON that is not) as base64; never both.
    #[test]
    fn data_member_by_content_type() {
        for (content_type, data, member, value) in [
            (
                Some("application/json"),
                &b" {\"a\": [1, \"x\"]}\n"[..],
                "data",
                json!({"a": [1, "x"]}),
            ),
            (
                Some("application/vnd.x+json; charset=utf-8"),
                b"42",
                "data",
                json!(42),
            ),
            (None, b"[true]", "data", json!([true])),
            (None, b"hello", "data_base64", json!("aGVsbG8=")),
            // Empty data stays present; empty is not JSON: base64, like any data that claims to
            // be JSON and is not.
            (
                Some("application/octet-stream"),
                b"",
                "data_base64",
                json!(""),
            ),
            (Some("application/json"), b"", "data_base64", json!("")),
            (Some("text/plain"), b"", "data", json!("")),
            (
                Some("application/json"),
                b"{\"a\":",
                "data_base64",
                json!("eyJhIjo="),
            ),
            (
                Some("text/plain; charset=utf-8"),
                b"line \"1\"\n",
                "data",
                json!("line \"1\"\n"),
            ),
            (
                Some("text/plain"),
                b"\xff\xfe",
                "data_base64",
                json!("//4="),
            ),
            (
                Some("application/octet-stream"),
                b"{}",
                "data_base64",
                json!("e30="),
            ),
        ] {
            let v = written(&event(content_type, data));
            assert_eq!(v[member], value, "{content_type:?} {data:?}");
            let other = if member == "data" {
                "data_base64"
            } else {
                "data"
            };
            assert!(v.get(other).is_none(), "{content_type:?} {data:?}: {v}");
            assert_eq!(
                v.get("datacontenttype"),
                content_type.map(|t| json!(t)).as_ref()
            );
        }
    }

    #[test]
    fn extensions_of_every_type_and_no_duplicate_members() {
        let mut e = event(None, b"");
        e.extensions = vec![
            ("s".into(), ExtensionValue::from("v\"")),
            ("i".into(), ExtensionValue::Integer(i64::MIN)),
            ("b".into(), ExtensionValue::Boolean(true)),
            ("id".into(), ExtensionValue::from("shadow")),
            ("data".into(), ExtensionValue::from("shadow")),
        ];
        let text = String::from_utf8(e.to_structured()).unwrap();
        assert_eq!(text.matches("\"id\"").count(), 1);
        assert!(!text.contains("shadow"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["s"], json!("v\""));
        assert_eq!(v["i"], json!(i64::MIN));
        assert_eq!(v["b"], json!(true));
    }

    #[test]
    fn appends_to_existing_buffer() {
        let mut out = b"prefix".to_vec();
        event(None, b"1").write_structured(&mut out);
        assert!(out.starts_with(b"prefix{"));
        assert!(out.ends_with(b",\"data\":1}"));
    }
}

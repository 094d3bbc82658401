//! Batch ingest's events (spec 5): a JSON array of structured CloudEvents, each naming its
//! device in the `device` extension; all or nothing.
//!
//! Per event, in order: JSON object, `device` extension present and naming an existing,
//! enabled device, missing `id` (UUID v4), `time` (now), `specversion` (1.0), `type`
//! (`io.drogue.event.v1`) and `source` filled in, then parsed by [`cloudevents::parse_batch`],
//! then `application`, `source` and `partitionkey` set from the path and the device.
//!
//! Why the filling happens here, on the JSON text: a CloudEvents parser rightly refuses an event
//! without `id`, `source`, `specversion` or `type`, so they must be present before the parser
//! sees the event. They are spliced in as text right after the object's `{` rather than by
//! re-serializing a parsed `serde_json::Value`, because that would reorder the keys of JSON
//! `data` and so change the data bytes subscribers receive. Each element is handed to the parser
//! on its own (as a one-element batch) so that every check runs in array order, and the index
//! reported is that of the first bad event, whichever check finds it.

use std::ops::Range;
use std::time::SystemTime;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

use crate::cloudevents::{self, BatchError, Event, ExtensionValue};

/// Content type of a batch request (CloudEvents HTTP batch mode).
pub(crate) const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// `type` of events without one, as Drogue Cloud endpoints write them (spec 2.3).
const DEVICE_EVENT_TYPE: &str = "io.drogue.event.v1";

/// Characters kept as they are in a `drogue://` source segment: RFC 3986 unreserved ones, so
/// that a `/` in a name cannot be mistaken for the separator.
const SOURCE_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What preparing a batch needs from the request.
pub(crate) struct Context<'a> {
    pub app: &'a str,
    /// The `instance` extension for events without one.
    pub instance: &'a str,
    /// The `time` of events without one.
    pub now: SystemTime,
    /// Whether the named device may send (exists, enabled); `Err` says why not.
    pub check_device: &'a dyn Fn(&str) -> Result<(), String>,
}

/// Prepares every event of the batch, or says which is the first bad one and why.
pub(crate) fn prepare(body: &[u8], ctx: &Context<'_>) -> Result<Vec<Event>, BatchError> {
    let spans = split_array(body).map_err(|reason| BatchError {
        index: None,
        reason,
    })?;
    let time = humantime::format_rfc3339_micros(ctx.now).to_string();
    spans
        .into_iter()
        .enumerate()
        .map(|(index, span)| {
            prepare_one(&body[span], ctx, &time).map_err(|reason| BatchError {
                index: Some(index),
                reason,
            })
        })
        .collect()
}

fn prepare_one(element: &[u8], ctx: &Context<'_>, time: &str) -> Result<Event, String> {
    // The common case in one pass that allocates nothing but an escaped device name; anything
    // unusual (not an object, no device, a duplicate key, …) takes the slow path, which parses
    // the element into a tree to say exactly what is wrong.
    let peek = match serde_json::from_slice::<Peek<'_>>(element) {
        Ok(peek) if peek.device.as_deref().is_some_and(|d| !d.is_empty()) => peek,
        _ => return Err(explain(element, ctx)),
    };
    let device = peek.device.as_deref().unwrap_or_default();
    (ctx.check_device)(device)?;
    let source = device_source(ctx.app, device);

    // Attributes the event lacks, spliced in (values made only when missing).
    let id;
    let mut missing: Vec<(&str, &str)> = Vec::new();
    if !peek.id {
        id = uuid::Uuid::new_v4().to_string();
        missing.push(("id", &id));
    }
    if !peek.time {
        missing.push(("time", time));
    }
    if !peek.specversion {
        missing.push(("specversion", "1.0"));
    }
    if !peek.ty {
        missing.push(("type", DEVICE_EVENT_TYPE));
    }
    if !peek.source {
        missing.push(("source", &source));
    }
    // A device name means the object has at least one member.
    let mut single = one_element_batch(element, false, &missing)?;

    let mut events = cloudevents::parse_batch(&mut single).map_err(|e| e.reason)?;
    let (Some(mut event), None) = (events.pop(), events.pop()) else {
        return Err("internal error: the event did not parse as exactly one event".to_owned());
    };
    event.source = source;
    let string = |s: &str| ExtensionValue::String(s.to_owned());
    set_extension(&mut event, "application", string(ctx.app), true);
    set_extension(
        &mut event,
        "partitionkey",
        string(&format!("{}/{device}", ctx.app)),
        true,
    );
    set_extension(&mut event, "sender", string(device), false);
    set_extension(&mut event, "instance", string(ctx.instance), false);
    Ok(event)
}

/// What [`prepare_one`] needs to know of an event before the CloudEvents parser sees it: its
/// device, and which attributes it has (present, whatever the value: the parser judges those).
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    device: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    id: bool,
    #[serde(default, deserialize_with = "present")]
    time: bool,
    #[serde(default, deserialize_with = "present")]
    specversion: bool,
    #[serde(rename = "type", default, deserialize_with = "present")]
    ty: bool,
    #[serde(default, deserialize_with = "present")]
    source: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// Why an element that [`Peek`] did not take is refused.
fn explain(element: &[u8], ctx: &Context<'_>) -> String {
    let value: Value = match serde_json::from_slice(element) {
        Ok(v) => v,
        Err(e) => return format!("not valid JSON: {e}"),
    };
    let Value::Object(fields) = &value else {
        return format!(
            "an event must be a JSON object (a structured CloudEvent), found {}",
            kind(&value)
        );
    };
    match fields.get("device") {
        Some(Value::String(device)) if !device.is_empty() => {
            // Valid as a tree but not as a struct: a key given twice.
            "an attribute or extension is given more than once".to_owned()
        }
        _ => format!(
            "extension `device` (a non-empty string naming a device of application `{}`) is missing",
            ctx.app
        ),
    }
}

/// `[<element with the missing attributes spliced in after its "{">]`, the rest untouched.
fn one_element_batch(
    element: &[u8],
    empty: bool,
    missing: &[(&str, &str)],
) -> Result<Vec<u8>, String> {
    let mut single = Vec::with_capacity(element.len() + 200);
    single.push(b'[');
    if missing.is_empty() {
        single.extend_from_slice(element);
    } else {
        // The element parsed as an object and spans start at a value, so it starts with `{`.
        let rest = element
            .strip_prefix(b"{")
            .ok_or_else(|| "internal error: the event does not start with `{`".to_owned())?;
        single.push(b'{');
        for (i, (name, value)) in missing.iter().enumerate() {
            if i > 0 {
                single.push(b',');
            }
            single.extend_from_slice(json_string(name).as_bytes());
            single.push(b':');
            single.extend_from_slice(json_string(value).as_bytes());
        }
        if !empty {
            single.push(b',');
        }
        single.extend_from_slice(rest);
    }
    single.push(b']');
    Ok(single)
}

/// `drogue://<app>/<device>`, both percent-encoded (spec 2.3).
pub(crate) fn device_source(app: &str, device: &str) -> String {
    format!(
        "drogue://{}/{}",
        utf8_percent_encode(app, SOURCE_SEGMENT),
        utf8_percent_encode(device, SOURCE_SEGMENT)
    )
}

/// Sets extension `name`; an existing one is replaced in place if `replace`, else kept.
fn set_extension(event: &mut Event, name: &str, value: ExtensionValue, replace: bool) {
    match event.extensions.iter_mut().find(|(n, _)| n == name) {
        Some((_, existing)) if replace => *existing = value,
        Some(_) => {}
        None => event.extensions.push((name.to_owned(), value)),
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The byte ranges of the elements of a top-level JSON array, without surrounding whitespace.
///
/// Only the structure is followed here (strings, nesting, commas); whether each element is valid
/// JSON is for the element's own parse to say, with its index.
fn split_array(body: &[u8]) -> Result<Vec<Range<usize>>, String> {
    const NOT_AN_ARRAY: &str = "the body must be a JSON array of structured CloudEvents";
    let mut at = skip_ws(body, 0);
    if body.get(at) != Some(&b'[') {
        return Err(NOT_AN_ARRAY.to_owned());
    }
    at = skip_ws(body, at + 1);
    let mut spans = Vec::new();
    if body.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            let start = at;
            let end = value_end(body, start)?;
            let mut trimmed = end;
            while trimmed > start && body[trimmed - 1].is_ascii_whitespace() {
                trimmed -= 1;
            }
            spans.push(start..trimmed);
            if body[end] == b']' {
                at = end + 1;
                break;
            }
            at = skip_ws(body, end + 1);
        }
    }
    if skip_ws(body, at) != body.len() {
        return Err(format!("{NOT_AN_ARRAY}: unexpected data after the array"));
    }
    Ok(spans)
}

/// The position of the `,` or `]` that ends the array element starting at `start`.
fn value_end(body: &[u8], start: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in body.iter().enumerate().skip(start) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b']' | b',' if depth == 0 => return Ok(i),
            _ => {}
        }
    }
    Err("the body is not a complete JSON array: it ends too early".to_owned())
}

fn skip_ws(body: &[u8], mut at: usize) -> usize {
    while body.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn spans(body: &str) -> Result<Vec<&str>, String> {
        Ok(split_array(body.as_bytes())?
            .into_iter()
            .map(|r| &body[r])
            .collect())
    }

    #[test]
    fn splits_top_level_elements_only() {
        assert_eq!(spans(" [ ] ").unwrap(), Vec::<&str>::new());
        assert_eq!(
            spans(r#"[ {"a":[1,2],"b":"x,]\"}"} , 7,{"c":{}}]"#).unwrap(),
            vec![r#"{"a":[1,2],"b":"x,]\"}"}"#, "7", r#"{"c":{}}"#]
        );
        // Empty elements are left for the element's parse to refuse, with their index.
        assert_eq!(spans("[1,]").unwrap(), vec!["1", ""]);
    }

    #[test]
    fn refuses_what_is_not_an_array() {
        assert!(spans(r#"{"id":"x"}"#).is_err());
        assert!(spans("[1, 2").is_err());
        assert!(spans("[1] x").is_err());
        assert!(spans("").is_err());
    }

    fn ctx<'a>(check: &'a dyn Fn(&str) -> Result<(), String>) -> Context<'a> {
        Context {
            app: "my app",
            instance: "i1",
            now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            check_device: check,
        }
    }

    #[test]
    fn fills_in_and_binds_without_touching_data() {
        let ok = |_: &str| Ok(());
        // Keys in sorted order: a parser may re-serialize JSON data (the stand-in does).
        let body = br#"[{"device":"d/1","data":{"a":1,"z":2}},
                        {"device":"d2","id":"given","source":"elsewhere","application":"other",
                         "sender":"gw","specversion":"1.0","type":"t","time":"2020-01-01T00:00:00Z"}]"#;
        let events = prepare(body, &ctx(&ok)).unwrap();
        let first = &events[0];
        assert!(uuid::Uuid::parse_str(&first.id).is_ok());
        assert_eq!(first.ty, DEVICE_EVENT_TYPE);
        assert_eq!(first.time.as_deref(), Some("2023-11-14T22:13:20.000000Z"));
        assert_eq!(first.source, "drogue://my%20app/d%2F1");
        assert_eq!(&first.data[..], br#"{"a":1,"z":2}"#);
        let ext = |e: &Event, n: &str| {
            e.extension(n).and_then(|v| match v {
                ExtensionValue::String(s) => Some(s.clone()),
                _ => None,
            })
        };
        assert_eq!(ext(first, "partitionkey").as_deref(), Some("my app/d/1"));
        assert_eq!(ext(first, "sender").as_deref(), Some("d/1"));
        assert_eq!(ext(first, "instance").as_deref(), Some("i1"));
        let second = &events[1];
        assert_eq!((second.id.as_str(), second.ty.as_str()), ("given", "t"));
        assert_eq!(second.source, "drogue://my%20app/d2");
        assert_eq!(ext(second, "application").as_deref(), Some("my app"));
        assert_eq!(ext(second, "sender").as_deref(), Some("gw"));
    }

    #[test]
    fn splices_missing_attributes_in_and_leaves_the_rest_as_it_was() {
        let element = br#"{"device":"d","data":{"z":1, "a":"\u00e9"}}"#;
        let out = one_element_batch(element, false, &[("id", "x\"y"), ("type", "t")]).unwrap();
        let expected = r#"[{"id":"x\"y","type":"t","device":"d","data":{"z":1, "a":"\u00e9"}}]"#;
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let out = one_element_batch(b"{ }", true, &[("id", "x")]).unwrap();
        assert_eq!(out, br#"[{"id":"x" }]"#);
        let out = one_element_batch(element, false, &[]).unwrap();
        assert_eq!(&out[1..out.len() - 1], element);
    }

    #[test]
    fn first_bad_index_wins_whichever_check_finds_it() {
        let check = |d: &str| {
            if d == "gone" {
                Err(format!("device `{d}` is gone"))
            } else {
                Ok(())
            }
        };
        let body = br#"[{"device":"d"},{"device":"gone"},{"device":"d","specversion":"0.3"}]"#;
        let err = prepare(body, &ctx(&check)).unwrap_err();
        assert_eq!(err.index, Some(1));
        assert!(err.reason.contains("gone"), "{err:?}");

        let body = br#"[{"device":"d"},{"device":"d","specversion":"0.3"},{"device":"gone"}]"#;
        assert_eq!(prepare(body, &ctx(&check)).unwrap_err().index, Some(1));

        for (body, index, needle) in [
            (&br#"[{"device":"d"}, 7]"#[..], Some(1), "JSON object"),
            (br#"[{"data":1}]"#, Some(0), "`device`"),
            (br#"[{"device":""}]"#, Some(0), "`device`"),
            (
                br#"[{"device":"d"}, {"device":}]"#,
                Some(1),
                "not valid JSON",
            ),
            (br#"{"device":"d"}"#, None, "JSON array"),
        ] {
            let err = prepare(body, &ctx(&check)).unwrap_err();
            assert_eq!(err.index, index, "{err:?}");
            assert!(err.reason.contains(needle), "{err:?}");
        }
    }
}

//! CloudEvents HTTP batch mode for batch ingest (spec 5): a JSON array of structured CloudEvents,
//! each naming its device in the `device` extension; all or nothing. The one batch parser of the
//! service: HTTP ingest calls [`parse_batch`] with what the request says ([`BatchContext`]).
//!
//! Per event, in order: JSON object, `device` extension present and naming a device the caller
//! accepts ([`BatchContext::check_device`]), missing `id` (UUID v4), `time` (now), `specversion`
//! (1.0), `type` (`io.drogue.event.v1`) and `source` filled in, then parsed as a structured event,
//! then `application`, `source` and `partitionkey` set from the application and the device.
//!
//! The attributes are filled in on the parsed draft ([`Draft::fill_ingest_defaults`]), before it
//! becomes an event, never by re-serializing JSON: that would reorder the keys of JSON `data` and
//! so change the data bytes subscribers receive. When a batch needs explaining, each element is
//! parsed on its own so that every check runs in array order, and the index reported is that of
//! the first bad event, whichever check finds it.

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use serde_json::Value;

use simd_json::BorrowedValue;

use super::event::{device_source, extension_name, rfc3339, Event, ExtensionValue, Text};
use super::parse::Draft;

/// Why a batch was rejected: the index of the first bad event (none when the body itself is
/// wrong) and why, ready for the `400` response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub index: Option<usize>,
    pub reason: String,
}

/// What parsing a batch needs from the request.
pub struct BatchContext<'a> {
    pub app: &'a str,
    /// The `instance` extension for events without one.
    pub instance: &'a str,
    /// The `time` of events without one.
    pub now: SystemTime,
    /// Whether the named device may send (exists, enabled); `Err` says why not.
    pub check_device: &'a dyn Fn(&str) -> Result<(), String>,
}

/// The batch's events, filled in and bound to the application, or the first problem by index.
///
/// Most batches are fine, so they take one parse of the whole body ([`prepare_fast`]); anything
/// that path is unsure about (a syntax error, a duplicated or null attribute, a refused device)
/// is handed to [`prepare_carefully`], which looks at one element at a time and says exactly what
/// is wrong with which one. Both paths agree on every batch the fast one accepts.
pub fn parse_batch(body: &[u8], ctx: &BatchContext<'_>) -> Result<Vec<Event>, BatchError> {
    let time = rfc3339(ctx.now);
    // simd-json unescapes strings in place: parse a copy, so that the careful path can still read
    // the body as received (a memcpy is ~0.1 % of the parse).
    let mut scratch = body.to_vec();
    match prepare_fast(&mut scratch, ctx, &time) {
        Some(events) => Ok(events),
        None => prepare_carefully(body, ctx, &time),
    }
}

/// One simd-json parse of the whole batch, each element turned into an event directly. `None`
/// when anything needs explaining.
fn prepare_fast(body: &mut [u8], ctx: &BatchContext<'_>, time: &str) -> Option<Vec<Event>> {
    let value = simd_json::to_borrowed_value(body).ok()?;
    let BorrowedValue::Array(items) = value else {
        return None;
    };
    let mut events = Vec::with_capacity(items.len());
    // Batches usually come from one device (or a few): check and format per device run, not
    // per event.
    let mut last: Option<(String, Text, String)> = None; // device, source, partition key
    for item in items.iter() {
        let present = Present::of(item)?;
        let device = present.device?;
        let bound = match &last {
            Some((d, _, _)) if d == device => last.as_ref()?,
            _ => {
                (ctx.check_device)(device).ok()?;
                last.insert((
                    device.to_owned(),
                    device_source(ctx.app, device),
                    format!("{}/{device}", ctx.app),
                ))
            }
        };
        let mut draft = Draft::from_value(item).ok()?;
        // An attribute given as null is not "missing": the careful path refuses it by name.
        let e = &draft.event;
        if present.id == e.id.is_empty()
            || present.time != e.time.is_some()
            || present.specversion != draft.specversion.is_some()
            || present.ty == e.ty.is_empty()
            || present.source == e.source.is_empty()
        {
            return None;
        }
        draft.fill_ingest_defaults(time);
        draft.event.source = bound.1.clone();
        let mut event = draft.into_event().ok()?;
        bind(&mut event, ctx, device, &bound.2);
        events.push(event);
    }
    Some(events)
}

/// Which members an element has, found in one pass; `None` if a member name repeats or
/// `device` is not a non-empty string.
struct Present<'v> {
    device: Option<&'v str>,
    id: bool,
    time: bool,
    specversion: bool,
    ty: bool,
    source: bool,
}

impl<'v> Present<'v> {
    fn of(item: &'v BorrowedValue<'_>) -> Option<Present<'v>> {
        let BorrowedValue::Object(members) = item else {
            return None;
        };
        let mut present = Present {
            device: None,
            id: false,
            time: false,
            specversion: false,
            ty: false,
            source: false,
        };
        let mut names: smallvec::SmallVec<[&str; 16]> = smallvec::SmallVec::new();
        for (name, value) in members.iter() {
            let name: &str = name;
            if names.contains(&name) {
                return None;
            }
            names.push(name);
            match name {
                "device" => match value {
                    BorrowedValue::String(d) if !d.is_empty() => present.device = Some(d),
                    _ => return None,
                },
                "id" => present.id = true,
                "time" => present.time = true,
                "specversion" => present.specversion = true,
                "type" => present.ty = true,
                "source" => present.source = true,
                _ => {}
            }
        }
        Some(present)
    }
}

/// The careful path: each element on its own, so that the first bad one is named with its index
/// and a reason.
fn prepare_carefully(
    body: &[u8],
    ctx: &BatchContext<'_>,
    time: &str,
) -> Result<Vec<Event>, BatchError> {
    let spans = split_array(body).map_err(|reason| BatchError {
        index: None,
        reason,
    })?;
    spans
        .into_iter()
        .enumerate()
        .map(|(index, span)| {
            prepare_one(&body[span], ctx, time).map_err(|reason| BatchError {
                index: Some(index),
                reason,
            })
        })
        .collect()
}

fn prepare_one(element: &[u8], ctx: &BatchContext<'_>, time: &str) -> Result<Event, String> {
    if let Some(name) = repeated_member(element) {
        return Err(format!(
            "attribute or extension `{name}` is given more than once; give each once"
        ));
    }
    // The common case in one pass that allocates nothing but an escaped device name; anything
    // unusual (not an object, no device, a duplicate key, …) takes the slow path, which parses
    // the element into a tree to say exactly what is wrong.
    let peek = match serde_json::from_slice::<Peek<'_>>(element) {
        Ok(peek) if peek.device.as_deref().is_some_and(|d| !d.is_empty()) => peek,
        _ => return Err(explain(element, ctx)),
    };
    let device = peek.device.as_deref().unwrap_or_default();
    (ctx.check_device)(device)?;

    // simd-json unescapes in place: parse a copy. The parser judges the attributes given (an
    // `id` given as null is refused by name); those missing are filled in as the fast path does.
    let mut copy = element.to_vec();
    let value =
        simd_json::to_borrowed_value(&mut copy).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut draft = Draft::from_value(&value).map_err(|e| e.to_string())?;
    draft.fill_ingest_defaults(time);
    draft.event.source = device_source(ctx.app, device);
    let mut event = draft.into_event().map_err(|e| e.to_string())?;
    bind(&mut event, ctx, device, &format!("{}/{device}", ctx.app));
    Ok(event)
}

/// The extensions ingest sets (spec 5): the application and partition key always, the sender
/// and instance unless the event names them.
fn bind(event: &mut Event, ctx: &BatchContext<'_>, device: &str, partition_key: &str) {
    // Retained with the event: room for the four below at once (the parser left the vector
    // exact), rather than growing it to 8 slots and shrinking it back; what an event already
    // named is given back at the end (a no-op otherwise).
    event.extensions.reserve_exact(4);
    let string = |s: &str| ExtensionValue::String(s.into());
    set_extension(event, "application", string(ctx.app), true);
    set_extension(event, "partitionkey", string(partition_key), true);
    set_extension(event, "sender", string(device), false);
    set_extension(event, "instance", string(ctx.instance), false);
    event.extensions.shrink_to_fit();
}

/// The first member name that an element (if it is a JSON object) repeats. JSON leaves the
/// meaning of a repeated name open, so an event with one is refused rather than guessed at.
fn repeated_member(element: &[u8]) -> Option<String> {
    let mut copy = element.to_vec();
    let value = simd_json::to_borrowed_value(&mut copy).ok()?;
    let BorrowedValue::Object(members) = value else {
        return None;
    };
    let mut names: Vec<&str> = Vec::with_capacity(members.len());
    for (name, _) in members.iter() {
        if names.contains(&&**name) {
            return Some(name.to_string());
        }
        names.push(name);
    }
    None
}

/// What [`prepare_one`] needs to know of an event before the CloudEvents parser sees it: its
/// device.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    device: Option<std::borrow::Cow<'a, str>>,
}

/// Why an element that [`Peek`] did not take is refused.
fn explain(element: &[u8], ctx: &BatchContext<'_>) -> String {
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

/// Sets extension `name`; an existing one is replaced in place if `replace`, else kept.
fn set_extension(event: &mut Event, name: &str, value: ExtensionValue, replace: bool) {
    match event.extensions.iter_mut().find(|(n, _)| n == name) {
        Some((_, existing)) if replace => *existing = value,
        Some(_) => {}
        None => event.extensions.push((extension_name(name), value)),
    }
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

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "event {index}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for BatchError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::DEVICE_EVENT_TYPE;
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

    fn ctx<'a>(check: &'a dyn Fn(&str) -> Result<(), String>) -> BatchContext<'a> {
        BatchContext {
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
        let events = parse_batch(body, &ctx(&ok)).unwrap();
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
    fn keeps_what_an_event_gives() {
        let ok = |_: &str| Ok(());
        let body = br#"[{"device":"d2","id":"x","type":"custom","specversion":"1.0",
                         "time":"2020-01-01T00:00:00Z","source":"ignored","datacontenttype":"text/plain","data":"hi"}]"#;
        let events = parse_batch(body, &ctx(&ok)).unwrap();
        let event = &events[0];
        assert_eq!((event.id.as_str(), event.ty.as_str()), ("x", "custom"));
        assert_eq!(event.time.as_deref(), Some("2020-01-01T00:00:00Z"));
        assert_eq!(event.source, "drogue://my%20app/d2");
        assert_eq!(&event.data[..], b"hi");
        assert_eq!(parse_batch(b"[]", &ctx(&ok)).unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_index() {
        let ok = |_: &str| Ok(());
        let parse = |body: &str| parse_batch(body.as_bytes(), &ctx(&ok));
        let err = parse(r#"[{"device":"d"},{"device":"d","specversion":"0.3"}]"#).unwrap_err();
        assert_eq!(err.index, Some(1));
        assert_eq!(
            err.to_string(),
            "event 1: specversion `0.3` is not supported (only 1.0)"
        );
        let err = parse(r#"[{"device":"d"},{"device":"d"},{"id":"x"}]"#).unwrap_err();
        assert_eq!(err.index, Some(2));
        assert!(err.reason.contains("`device`"), "{err}");
        let err = parse("[{").unwrap_err();
        assert_eq!(err.index, None);
        assert!(err.reason.contains("not a complete JSON array"), "{err}");
    }

    /// A device check that refuses device `gone` only.
    fn all_but_gone(device: &str) -> Result<(), String> {
        if device == "gone" {
            Err(format!("device `{device}` is gone"))
        } else {
            Ok(())
        }
    }

    /// Both paths on one body: the fast one may only decline, never disagree.
    fn both(body: &[u8]) -> (Option<Vec<Event>>, Result<Vec<Event>, BatchError>) {
        let ctx = ctx(&all_but_gone);
        let time = rfc3339(ctx.now);
        let fast = prepare_fast(&mut body.to_vec(), &ctx, &time);
        (fast, prepare_carefully(body, &ctx, &time))
    }

    /// Made-up ids differ between the paths; everything else must not.
    fn without_made_up_ids(mut events: Vec<Event>) -> Vec<Event> {
        for e in &mut events {
            if uuid::Uuid::parse_str(&e.id).is_ok() {
                e.id.clear();
            }
        }
        events
    }

    #[test]
    fn the_fast_path_takes_good_batches_and_agrees_with_the_careful_one() {
        let good: &[&[u8]] = &[
            br#"[]"#,
            br#"[{"device":"d","data":"x"}]"#,
            br#"[{"device":"d/1","data":{"a":1}},{"device":"d2","id":"given","source":"s","application":"other","sender":"gw","specversion":"1.0","type":"t","time":"2020-01-01T00:00:00Z","subject":"c","n":7,"b":true}]"#,
            br#"[{"device":"d","datacontenttype":"text/plain","data":"caf\u00e9 \"q\""},{"device":"d","data_base64":"AAEC"},{"device":"e","data":null,"subject":null}]"#,
        ];
        for body in good {
            let (fast, careful) = both(body);
            let fast = fast
                .unwrap_or_else(|| panic!("fast path declined {}", String::from_utf8_lossy(body)));
            assert_eq!(
                without_made_up_ids(fast),
                without_made_up_ids(careful.unwrap()),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_fast_path_declines_what_needs_explaining() {
        let doubtful: &[&[u8]] = &[
            br#"{"device":"d"}"#,
            br#"[{"device":"d"}, 7]"#,
            br#"[{"device":"d"},{"device":}]"#,
            br#"[{"data":1}]"#,
            br#"[{"device":""}]"#,
            br#"[{"device":3}]"#,
            br#"[{"device":"d","device":"e"}]"#,
            br#"[{"device":"d","subject":"a","subject":"b"}]"#,
            br#"[{"device":"d","id":null}]"#,
            br#"[{"device":"d","source":null}]"#,
            br#"[{"device":"d","type":null}]"#,
            br#"[{"device":"d","specversion":"0.3"}]"#,
            br#"[{"device":"d"},{"device":"gone"}]"#,
            br#"[{"device":"d","data":1,"data_base64":"AA=="}]"#,
        ];
        for body in doubtful {
            let (fast, careful) = both(body);
            assert!(
                fast.is_none(),
                "fast path took {}",
                String::from_utf8_lossy(body)
            );
            // Whatever the careful path answers stands (most of these are refused).
            if body.starts_with(br#"[{"device":"d","subject""#) {
                assert!(careful.unwrap_err().reason.contains("more than once"));
            }
        }
    }

    #[test]
    fn first_bad_index_wins_whichever_check_finds_it() {
        let check = all_but_gone;
        let body = br#"[{"device":"d"},{"device":"gone"},{"device":"d","specversion":"0.3"}]"#;
        let err = parse_batch(body, &ctx(&check)).unwrap_err();
        assert_eq!(err.index, Some(1));
        assert!(err.reason.contains("gone"), "{err:?}");

        let body = br#"[{"device":"d"},{"device":"d","specversion":"0.3"},{"device":"gone"}]"#;
        assert_eq!(parse_batch(body, &ctx(&check)).unwrap_err().index, Some(1));

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
            let err = parse_batch(body, &ctx(&check)).unwrap_err();
            assert_eq!(err.index, index, "{err:?}");
            assert!(err.reason.contains(needle), "{err:?}");
        }
    }
}

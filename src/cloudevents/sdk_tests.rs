//! Proves structured mode against the well-kept reader: everything [`Event::write_structured`]
//! writes is parsed with cloudevents-sdk and compared attribute by attribute, extension by
//! extension and byte by byte of data; and it reads back through our own parser.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cloudevents::event::ExtensionValue as SdkExtension;
use cloudevents::{AttributesReader, Data};
use proptest::prelude::*;

use super::structured::is_core_member;
use super::{DataKind, Event, ExtensionValue};

/// Asserts that cloudevents-sdk reads `event` back from our structured bytes unchanged.
fn assert_sdk_reads_back(event: &Event) {
    let json = event.to_structured();
    let text = std::str::from_utf8(&json).expect("structured mode is UTF-8");
    let sdk: cloudevents::Event =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("sdk rejects {text}: {e}"));

    assert_eq!(sdk.specversion().to_string(), "1.0");
    assert_eq!(sdk.id(), event.id);
    assert_eq!(sdk.source(), &event.source);
    assert_eq!(sdk.ty(), event.ty);
    assert_eq!(sdk.subject(), event.subject.as_deref());
    assert_eq!(sdk.datacontenttype(), event.datacontenttype.as_deref());
    assert_eq!(
        sdk.dataschema().map(|u| u.as_str()),
        event.dataschema.as_deref()
    );
    let sdk_time = sdk
        .time()
        .map(|t| UNIX_EPOCH + Duration::new(t.timestamp() as u64, t.timestamp_subsec_nanos()));
    let our_time = event
        .time
        .as_deref()
        .map(|t| humantime::parse_rfc3339(t).expect("test times are RFC 3339 UTC"));
    assert_eq!(sdk_time, our_time);

    let sdk_extensions: HashMap<&str, ExtensionValue> = sdk
        .iter_extensions()
        .map(|(name, value)| {
            let value = match value {
                SdkExtension::String(s) => ExtensionValue::from(s.as_str()),
                SdkExtension::Integer(i) => ExtensionValue::Integer(*i),
                SdkExtension::Boolean(b) => ExtensionValue::Boolean(*b),
            };
            (name, value)
        })
        .collect();
    let our_extensions: HashMap<&str, ExtensionValue> = event
        .extensions
        .iter()
        .filter(|(name, _)| !is_core_member(name))
        .map(|(name, value)| (&**name, value.clone()))
        .collect();
    assert_eq!(sdk_extensions, our_extensions, "{text}");

    assert_data_equal(event, sdk.data(), text);
}

/// The data must come back as the same bytes, or as the same JSON value when it went as JSON.
fn assert_data_equal(event: &Event, sdk_data: Option<&Data>, text: &str) {
    let data = &event.data[..];
    match sdk_data {
        None => assert!(data.is_empty(), "data lost: {text}"),
        Some(Data::Json(value)) => {
            assert!(DataKind::of(event.datacontenttype.as_deref()).wants_json());
            let ours: serde_json::Value = serde_json::from_slice(data).expect("data was JSON");
            assert_eq!(&ours, value, "{text}");
        }
        Some(Data::String(s)) => {
            assert_eq!(
                DataKind::of(event.datacontenttype.as_deref()),
                DataKind::Text
            );
            assert_eq!(s.as_bytes(), data, "{text}");
        }
        Some(Data::Binary(b)) => assert_eq!(&b[..], data, "{text}"),
    }
}

/// Asserts that our parser reads back what our writer wrote.
fn assert_we_read_back(event: &Event) {
    let mut json = event.to_structured();
    let back = Event::from_structured_json(&mut json).expect("our own output parses");
    let strip = |e: &Event| Event {
        data: Bytes::new(),
        extensions: e
            .extensions
            .iter()
            .filter(|(n, _)| !is_core_member(n))
            .cloned()
            .collect(),
        ..e.clone()
    };
    assert_eq!(strip(&back), strip(event));
    let went_as_json =
        DataKind::of(event.datacontenttype.as_deref()).wants_json() && super::is_json(&event.data);
    if went_as_json {
        // Re-encoded by simd-json, so compare values, not bytes.
        let ours: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&back.data).unwrap();
        assert_eq!(ours, back);
    } else {
        assert_eq!(back.data, event.data);
    }
}

fn device_event(content_type: Option<&str>, data: &[u8]) -> Event {
    let mut e = Event::new_device_event(
        "a b/c",
        "device-1",
        "sensors/temp",
        "gateway",
        "instance-0",
        content_type,
        Bytes::copy_from_slice(data),
        SystemTime::now(),
    );
    e.dataschema = Some("https://example.com/schema.json".into());
    e.extensions
        .push(("count".into(), ExtensionValue::Integer(-42)));
    e.extensions
        .push(("retained".into(), ExtensionValue::Boolean(false)));
    e
}

#[test]
fn json_data_round_trips() {
    for content_type in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("application/vnd.drogue.temp+json"),
        Some("text/json"),
        None,
    ] {
        let e = device_event(
            content_type,
            br#"{"temp": 21.5, "tags": ["a", "\u00fc"], "ok": true}"#,
        );
        assert!(e.to_structured().windows(7).any(|w| w == b"\"data\":"));
        assert_sdk_reads_back(&e);
        assert_we_read_back(&e);
    }
}

#[test]
fn text_data_round_trips() {
    for data in [
        &b"plain"[..],
        "quotes \" and \\ and \n \u{1} ü 😀".as_bytes(),
        b"{\"looks\":\"like json\"}",
    ] {
        let e = device_event(Some("text/plain; charset=utf-8"), data);
        assert_sdk_reads_back(&e);
        assert_we_read_back(&e);
    }
}

#[test]
fn binary_data_round_trips() {
    let all_bytes: Vec<u8> = (0..=255).collect();
    for (content_type, data) in [
        (Some("application/octet-stream"), &all_bytes[..]),
        (Some("application/json"), b"{not json"),
        (Some("text/plain"), b"\xc3\x28 not utf-8"),
        (None, b"\x00\x01 raw"),
        (Some("image/png"), b"\x89PNG"),
    ] {
        let e = device_event(content_type, data);
        assert!(e
            .to_structured()
            .windows(14)
            .any(|w| w == b"\"data_base64\":"));
        assert_sdk_reads_back(&e);
        assert_we_read_back(&e);
    }
}

#[test]
fn no_data_round_trips() {
    let e = device_event(Some("application/json"), b"");
    assert_sdk_reads_back(&e);
    assert_we_read_back(&e);
}

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/cbor+json"),
    Some("text/plain"),
    Some("text/csv; charset=utf-8"),
    Some("application/octet-stream"),
];

/// Data that is sometimes JSON, sometimes UTF-8 text, sometimes arbitrary bytes.
fn any_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        any::<String>().prop_map(String::into_bytes),
        any::<String>().prop_map(|s| serde_json::to_vec(&s).unwrap()),
        prop::collection::hash_map(any::<String>(), any::<i64>(), 0..4)
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
    ]
}

fn any_extensions() -> impl Strategy<Value = Vec<(String, ExtensionValue)>> {
    let value = prop_oneof![
        any::<String>().prop_map(ExtensionValue::from),
        any::<i64>().prop_map(ExtensionValue::Integer),
        any::<bool>().prop_map(ExtensionValue::Boolean),
    ];
    // Names as the spec allows them; distinct, as in a real event.
    prop::collection::btree_map("[a-z][a-z0-9]{0,19}", value, 0..6)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn arbitrary_events_round_trip(
        id in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        source in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        ty in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        subject in any::<Option<String>>(),
        seconds in 0u64..4_000_000_000,
        micros in 0u32..1_000_000,
        content_type in prop::sample::select(CONTENT_TYPES),
        extensions in any_extensions(),
        data in any_data(),
    ) {
        let e = Event {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            specversion: Default::default(),
            subject: subject.map(Into::into),
            time: Some(super::event::rfc3339(
                UNIX_EPOCH + Duration::new(seconds, micros * 1000),
            )),
            datacontenttype: content_type.map(Into::into),
            dataschema: None,
            extensions: extensions
                .into_iter()
                .map(|(name, value)| (name.into(), value))
                .collect(),
            data: Bytes::from(data),
        };
        assert_sdk_reads_back(&e);
        assert_we_read_back(&e);
    }
}

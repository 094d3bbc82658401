//! The index against the plain scan: the same routes, for the filters the parser makes and for
//! any valid filter.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use proptest::prelude::*;

use super::index::{FilterIndex, Matches};
use super::*;
use crate::cloudevents::Event;

const APP_TOPIC: &str = "app/demo";

fn record(device: &str, channel: &str) -> Record {
    let event = Event::new_device_event(
        "demo",
        device,
        channel,
        device,
        "test",
        None,
        Bytes::from_static(b"x"),
        SystemTime::UNIX_EPOCH,
    );
    Record::new(event, 0, 0)
}

fn topic_filter(filter: &str, qos: QoS, id: u32, mode: Mode) -> MemberFilter {
    MemberFilter {
        filter: filter.into(),
        selector: Selector::Topic(filter.into()),
        qos,
        subscription_id: Some(id),
        mode,
    }
}

fn whole(qos: QoS, id: Option<u32>) -> MemberFilter {
    MemberFilter {
        filter: APP_TOPIC.into(),
        selector: Selector::WholeApp(AppAlias::App),
        qos,
        subscription_id: id,
        mode: Mode::Structured,
    }
}

/// The positions the index finds for `topic`, sorted.
fn indexed(filters: &[MemberFilter], topic: &str) -> Vec<u32> {
    let index = FilterIndex::new(filters);
    let mut out = Matches::new();
    index.topic_matches(filters, topic, &mut out);
    out.sort_unstable();
    out.to_vec()
}

/// The positions of the topic filters matching `topic`, by `topic::matches` on each.
fn scanned(filters: &[MemberFilter], topic: &str) -> Vec<u32> {
    (0..filters.len() as u32)
        .filter(|&i| match &filters[i as usize].selector {
            Selector::Topic(f) => topic::matches(f, topic),
            Selector::WholeApp(_) => false,
        })
        .collect()
}

#[test]
fn each_shape_is_found_by_its_bucket() {
    let filters: Vec<MemberFilter> = [
        "app/demo/#",        // 0 any
        "app/demo/+/#",      // 1 any
        "app/demo/d1/#",     // 2 device
        "app/demo/d1/+",     // 3 device, one level
        "app/demo/+/temp",   // 4 channel
        "app/demo/+/+",      // 5 any, one level
        "app/demo/d1/temp",  // 6 exact
        "app/demo/d1/a/b",   // 7 exact, two-level channel
        "app/demo/+/a/b",    // 8 channel of two levels
        "app/other/d1/temp", // 9 another application
        "app/demo/d1/a/+",   // 10 scanned
        "app/demo/d2/#",     // 11 another device
    ]
    .iter()
    .enumerate()
    .map(|(i, f)| topic_filter(f, QoS::AtMostOnce, i as u32, Mode::Binary))
    .collect();
    for (topic, want) in [
        ("app/demo/d1/temp", vec![0, 1, 2, 3, 4, 5, 6]),
        ("app/demo/d1/a/b", vec![0, 1, 2, 7, 8, 10]),
        ("app/demo/d2/temp", vec![0, 1, 4, 5, 11]),
        ("app/demo/d3/a/b", vec![0, 1, 8]),
        ("app/other/d1/temp", vec![9]),
        ("app/third/d1/temp", vec![]),
        ("app/demo", vec![0]),
        ("app", vec![]),
    ] {
        assert_eq!(indexed(&filters, topic), want, "{topic}");
        assert_eq!(scanned(&filters, topic), want, "{topic}");
    }
}

#[test]
fn route_and_scan_agree_on_qos_ids_mode_and_topic() {
    let filters = vec![
        topic_filter("app/demo/+/temp", QoS::AtMostOnce, 1, Mode::Binary),
        topic_filter("app/demo/d1/#", QoS::AtLeastOnce, 2, Mode::Structured),
        topic_filter("app/demo/d1/temp", QoS::AtMostOnce, 1, Mode::Structured),
        topic_filter("app/demo/d9/#", QoS::AtLeastOnce, 9, Mode::Structured),
    ];
    let app_topic: Arc<str> = APP_TOPIC.into();
    let indexed = MemberFilters::new(filters.clone());
    let r = record("d1", "temp");
    let want = Route {
        whole_app: None,
        qos: QoS::AtLeastOnce,
        mode: Mode::Binary,
        subscription_ids: [1, 2].into_iter().collect(),
    };
    assert_eq!(route(&indexed, &r, &app_topic), Some(want));
    assert_eq!(
        route_scan(&filters, &r, &app_topic),
        route(&indexed, &r, &app_topic)
    );
    let r = record("d2", "hum");
    assert_eq!(route(&indexed, &r, &app_topic), None);

    // A whole-application filter anywhere makes the topic `app/<a>`, and matches records with
    // no concrete topic (no subject) too.
    let mut with_whole = filters.clone();
    with_whole.push(whole(QoS::AtMostOnce, Some(7)));
    let indexed = MemberFilters::new(with_whole.clone());
    let r = record("d1", "temp");
    let got = route(&indexed, &r, &app_topic).unwrap();
    assert_eq!(got.whole_app, Some(AppAlias::App));
    assert_eq!(got.subscription_ids.as_slice(), &[1, 2, 7]);
    let mut no_subject = record("d1", "temp");
    no_subject.event.subject = None;
    let got = route(&indexed, &no_subject, &app_topic).unwrap();
    assert_eq!(
        (got.whole_app, got.qos),
        (Some(AppAlias::App), QoS::AtMostOnce)
    );
    assert_eq!(
        route(&MemberFilters::new(filters), &no_subject, &app_topic),
        None
    );
}

/// Levels the generated filters and topics are made of: few, so that they often match.
fn level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["app", "demo", "other", "d1", "d2", "t", "a", "", "$s"])
}

fn filter_level() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => level(), 1 => Just("+"), 1 => Just("#")]
}

/// Any valid filter, and more often one shaped like the parser's (`app/demo/…`).
fn any_filter() -> impl Strategy<Value = String> {
    let free = prop::collection::vec(filter_level(), 1..6).prop_map(|l| l.join("/"));
    let shaped = prop::collection::vec(filter_level(), 1..4)
        .prop_map(|l| format!("{APP_TOPIC}/{}", l.join("/")));
    prop_oneof![free, shaped].prop_filter("valid filter", |f| topic::valid_filter(f))
}

fn any_topic() -> impl Strategy<Value = String> {
    let free = prop::collection::vec(level(), 1..6).prop_map(|l| l.join("/"));
    let shaped =
        prop::collection::vec(level(), 1..4).prop_map(|l| format!("{APP_TOPIC}/{}", l.join("/")));
    prop_oneof![free, shaped].prop_filter("valid topic", |t| topic::valid_topic_name(t))
}

fn device_or_channel() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["d1", "d2", "t", "a"]), 1..3)
        .prop_map(|l| l.join("/"))
}

proptest! {
    #[test]
    fn index_finds_what_the_scan_finds(
        filters in prop::collection::vec(any_filter(), 0..24),
        topic in any_topic(),
    ) {
        let filters: Vec<MemberFilter> = filters
            .iter()
            .enumerate()
            .map(|(i, f)| topic_filter(f, QoS::AtMostOnce, i as u32, Mode::Binary))
            .collect();
        prop_assert_eq!(indexed(&filters, &topic), scanned(&filters, &topic));
    }

    #[test]
    fn route_is_the_plain_scan(
        filters in prop::collection::vec(
            (any_filter(), any::<bool>(), any::<bool>(), 0u32..4, any::<bool>()),
            0..24,
        ),
        device in device_or_channel(),
        channel in device_or_channel(),
    ) {
        let filters: Vec<MemberFilter> = filters
            .into_iter()
            .map(|(f, whole_app, qos1, id, binary)| MemberFilter {
                selector: if whole_app { Selector::WholeApp(AppAlias::App) } else { Selector::Topic(f.as_str().into()) },
                filter: f.into(),
                qos: if qos1 { QoS::AtLeastOnce } else { QoS::AtMostOnce },
                subscription_id: (id > 0).then_some(id),
                mode: if binary { Mode::Binary } else { Mode::Structured },
            })
            .collect();
        let app_topic: Arc<str> = APP_TOPIC.into();
        let r = record(&device, &channel);
        prop_assert_eq!(
            route(&MemberFilters::new(filters.clone()), &r, &app_topic),
            route_scan(&filters, &r, &app_topic)
        );
    }
}

#[test]
fn a_record_that_cannot_form_a_topic_reaches_whole_application_filters_only() {
    let app_topic: Arc<str> = APP_TOPIC.into();
    let filters = vec![
        topic_filter("app/demo/+/#", QoS::AtLeastOnce, 1, Mode::Binary),
        topic_filter("app/demo/#", QoS::AtLeastOnce, 2, Mode::Binary),
    ];
    let mut with_whole = filters.clone();
    with_whole.push(whole(QoS::AtLeastOnce, Some(3)));
    let (filters, with_whole) = (MemberFilters::new(filters), MemberFilters::new(with_whole));
    for (device, channel) in [
        ("d1", "a\0b"),
        ("d\0", "temp"),
        ("d1", "+"),
        ("d1", "#"),
        ("#", "temp"),
        ("d1", "a//b"),
        ("d1", "bell\u{7}"),
        ("d1", "\u{fffe}"),
    ] {
        let before = crate::seam::unroutable_records();
        let r = record(device, channel);
        assert_eq!(route(&filters, &r, &app_topic), None, "{channel:?}");
        assert!(crate::seam::unroutable_records() > before, "counted");
        let got = route(&with_whole, &r, &app_topic).expect("whole application");
        assert!(got.whole_app.is_some());
        assert_eq!(got.subscription_ids.as_slice(), &[3]);
    }
    // Each part valid, but together longer than a topic may be ([MQTT-4.7.3-3]).
    let (long_device, long_channel) = ("d".repeat(40_000), "c".repeat(40_000));
    let r = record(&long_device, &long_channel);
    assert_eq!(route(&filters, &r, &app_topic), None);
    assert!(route(&with_whole, &r, &app_topic).is_some_and(|r| r.whole_app.is_some()));
}

#[test]
fn attributes_a_client_may_refuse_are_left_out_of_binary_mode() {
    let mut r = record("d1", "temp\0");
    r.event.subject = Some("temp\0".into());
    let props = r.binary_properties().clone();
    assert!(
        !props.windows(5).any(|w| w == b"temp\0"),
        "no U+0000 in the user properties"
    );
    let r = record("d1", "temp");
    let props = r.binary_properties();
    assert!(props.windows(4).any(|w| w == b"temp"), "valid subject kept");
}

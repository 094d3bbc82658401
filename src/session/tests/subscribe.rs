//! SUBSCRIBE and UNSUBSCRIBE: reason codes, content mode, start, groups and the quota.

use super::*;

#[test]
fn suback_waits_for_the_join_and_grants_qos_1_for_2() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(9, &[("app/demo", QoS::ExactlyOnce)], vec![], Some(5));
    let join = c.the_join();
    assert_eq!(join.start, crate::seam::StartAt::Latest, "the default");
    assert_eq!(&*join.app, "demo");
    assert_eq!(join.group, GroupKey::client("demo", "c1"));
    let filters = &join.filters;
    assert_eq!(filters.len(), 1);
    assert_eq!(
        (filters[0].qos, filters[0].subscription_id, filters[0].mode),
        (QoS::AtLeastOnce, Some(5), Mode::Structured)
    );
    assert!(
        c.received().is_empty(),
        "no SUBACK before the start position is fixed"
    );
    c.s.joined(join.member, join.request, Ok(()));
    assert_eq!(c.received(), suback(9, &[1]));
}

#[test]
fn refused_filters_get_their_reason_codes_without_breaking_the_others() {
    let mut c = Client::connected(Version::V5, "c1", None);
    // (filter, QoS, the code it gets)
    let (filters, codes) = split(&[
        ("#", QoS::AtMostOnce, 0xA2),
        ("foo/bar", QoS::AtMostOnce, 0x8F),
        ("app/demo", QoS::AtMostOnce, 0x00),
        ("app/private", QoS::AtMostOnce, 0x87),
        ("app/+", QoS::AtLeastOnce, 0xA2),
        ("app/nope", QoS::AtMostOnce, 0x87),
    ]);
    c.subscribe(2, &filters, vec![], None);
    c.accept_join();
    assert_eq!(c.received(), suback(2, &codes));

    let mut c = Client::connected(Version::V311, "c3", None);
    c.subscribe(
        3,
        &[
            ("#", QoS::AtMostOnce),
            ("foo/bar", QoS::AtMostOnce),
            ("app/private", QoS::AtMostOnce),
        ],
        vec![],
        None,
    );
    assert!(c.events().is_empty());
    assert_eq!(c.received(), suback(3, &[0x80, 0x80, 0x80]));
}

/// The `content-mode` user property and spec 2.1 `start` reach the Join, for each filter and for
/// the group.
#[test]
fn content_mode_and_start_properties_reach_the_join() {
    use crate::seam::StartAt;
    let mut c = Client::connected(Version::V5, "c1", None);
    let properties = vec![("content-mode", "binary"), ("start", "-15m")];
    c.subscribe(4, &[("app/demo", QoS::AtLeastOnce)], properties, None);
    let join = c.accept_join();
    assert_eq!(join.filters[0].mode, Mode::Binary);
    assert_eq!(
        join.start,
        StartAt::Ago(std::time::Duration::from_secs(900))
    );
    assert_eq!(c.received(), suback(4, &[1]));
}

/// Any other value of `content-mode` or `start` refuses every filter of that SUBSCRIBE with
/// 0x83 and asks nothing of the backend.
#[test]
fn unknown_content_mode_or_start_refuses_the_subscribe() {
    let demo = ("app/demo", QoS::AtMostOnce);
    let readonly = ("app/readonly", QoS::AtMostOnce);
    for (filters, property, codes) in [
        (&[readonly][..], ("content-mode", "fancy"), &[0x83][..]),
        (&[demo, readonly], ("start", "tomorrow"), &[0x83, 0x83]),
    ] {
        let mut c = Client::connected(Version::V5, "c1", None);
        c.subscribe(5, filters, vec![property], None);
        assert!(c.events().is_empty());
        assert_eq!(c.received(), suback(5, codes));
    }
}

#[test]
fn resubscribing_replaces_and_shares_one_group_per_application() {
    let (mut c, member) = joined_demo(None, QoS::AtMostOnce);
    c.subscribe(
        2,
        &[
            ("app/demo", QoS::AtLeastOnce),
            ("app/demo/device1/#", QoS::AtMostOnce),
        ],
        vec![],
        Some(3),
    );
    let JoinRequest {
        member: m2,
        filters,
        ..
    } = c.the_join();
    assert_eq!(m2, member, "same group, same member");
    assert_eq!(
        filters.len(),
        2,
        "the first app/demo was replaced, not duplicated"
    );
    assert!(filters
        .iter()
        .any(|f| f.selector == Selector::Topic(Arc::from("app/demo/device1/#"))));
}

#[test]
fn shared_and_ephemeral_groups() {
    let mut c = Client::connected(Version::V5, "c1", None);
    c.subscribe(1, &[("$share/g/app/demo", QoS::AtMostOnce)], vec![], None);
    let JoinRequest { group, .. } = c.the_join();
    assert_eq!(group.name(), Some("demo.g"));

    let mut c = Client::new(Version::V311);
    c.send(&connect(Version::V311, "", true, 0, Properties::default()));
    c.events();
    c.s.accept_connect(c.now, Identity::Anonymous);
    c.subscribe(1, &[("app/demo", QoS::AtMostOnce)], vec![], None);
    let JoinRequest { group, .. } = c.the_join();
    assert_eq!(group.name(), None, "empty client id: ephemeral reader");
}

#[test]
fn filters_beyond_the_quota_are_refused_alone_and_held_ones_do_not_count_twice() {
    // The test config allows 4 filters per connection.
    for (version, quota_code) in [(Version::V5, 0x97), (Version::V311, 0x80)] {
        let mut c = Client::connected(version, "q1", None);
        let filters: Vec<String> = (0..3).map(|i| format!("app/demo/d{i}/#")).collect();
        let held: Vec<(&str, QoS)> = filters.iter().map(|f| (&**f, QoS::AtLeastOnce)).collect();
        c.subscribe(1, &held, vec![], None);
        for e in c.events() {
            if let SessionEvent::Join(join) = e {
                c.s.joined(join.member, join.request, Ok(()));
            }
        }
        assert_eq!(c.received(), suback(1, &[1, 1, 1]));
        // One held filter again (replaced, not counted), one new (the 4th), two beyond, one
        // invalid (its own code), and a held one last: only the two beyond get Quota exceeded.
        let invalid = if version == Version::V5 { 0x8F } else { 0x80 };
        let (filters, codes) = split(&[
            ("app/demo/d0/#", QoS::AtMostOnce, 0),
            ("app/demo/d3/#", QoS::AtLeastOnce, 1),
            ("app/demo/d4/#", QoS::AtLeastOnce, quota_code),
            ("foo/bar", QoS::AtLeastOnce, invalid),
            ("app/demo/d5/#", QoS::AtLeastOnce, quota_code),
            ("app/demo/d1/#", QoS::AtLeastOnce, 1),
        ]);
        c.subscribe(2, &filters, vec![], None);
        let JoinRequest {
            member,
            request,
            filters,
            ..
        } = c.the_join();
        assert_eq!(filters.len(), 4, "{filters:?}");
        c.s.joined(member, request, Ok(()));
        assert_eq!(c.received(), suback(2, &codes));
        assert_eq!(c.s.subscription_count(), 4);
    }
}

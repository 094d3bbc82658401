//! Topic names, filters and matching (4.7), with the specification's examples.

use super::super::topic::*;

#[test]
fn topic_names() {
    assert!(valid_topic_name("a/b"));
    assert!(valid_topic_name("/"));
    assert!(valid_topic_name("$SYS/x"));
    assert!(!valid_topic_name(""));
    assert!(!valid_topic_name("a/+"));
    assert!(!valid_topic_name("a/#"));
    assert!(!valid_topic_name("a\0b"));
}

#[test]
fn filters() {
    // 4.7.1.2 / 4.7.1.3 examples.
    for ok in [
        "#",
        "sport/#",
        "sport/tennis/#",
        "+",
        "+/tennis/#",
        "sport/+/player1",
        "/+",
        "+/+",
        "a//b",
        "$share/g/a/#",
    ] {
        assert!(valid_filter(ok), "{ok}");
    }
    for bad in [
        "",
        "sport/tennis#",
        "sport/tennis/#/ranking",
        "sport+",
        "a/#/b",
        "##",
        "a\0",
    ] {
        assert!(!valid_filter(bad), "{bad}");
    }
    assert!(has_wildcard("a/+"));
    assert!(has_wildcard("#"));
    assert!(!has_wildcard("a/b"));
}

#[test]
fn shared_subscriptions() {
    // 4.8.2.
    assert_eq!(
        shared_subscription("$share/g/a/#"),
        Some(SharedFilter {
            share_name: "g",
            filter: "a/#"
        })
    );
    assert_eq!(shared_subscription("$share/g"), None);
    assert_eq!(shared_subscription("$share//a"), None);
    assert_eq!(shared_subscription("$share/+/a"), None);
    assert_eq!(shared_subscription("$share/g/"), None);
    assert_eq!(shared_subscription("a/b"), None);
}

#[test]
fn matching() {
    // 4.7.1.2 multi-level wildcard examples.
    assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
    assert!(matches(
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking"
    ));
    assert!(matches(
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon"
    ));
    assert!(matches("sport/#", "sport"));
    assert!(matches("#", "a/b/c"));
    // 4.7.1.3 single-level wildcard examples.
    assert!(matches("sport/tennis/+", "sport/tennis/player1"));
    assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
    assert!(!matches("sport/+", "sport"));
    assert!(matches("sport/+", "sport/"));
    assert!(matches("+/+", "/finance"));
    assert!(matches("/+", "/finance"));
    assert!(!matches("+", "/finance"));
    assert!(matches("+/tennis/#", "sport/tennis/x"));
    // Exact and non-matching.
    assert!(matches("a/b", "a/b"));
    assert!(!matches("a/b", "a/b/c"));
    assert!(!matches("a/b/c", "a/b"));
    assert!(!matches("a/B", "a/b"));
    // [MQTT-4.7.2-1] 4.7.2: $-topics are not matched by leading wildcards.
    assert!(!matches("#", "$SYS/monitor/Clients"));
    assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
}

#[test]
fn topic_parts_that_a_client_may_refuse_are_invalid() {
    use crate::protocol::topic::valid_topic_part;
    for ok in [
        "device1",
        "temperature",
        "a/b",
        "über",
        "ünïcödé/λ",
        "x y",
        "-_.~",
    ] {
        assert!(valid_topic_part(ok), "{ok:?}");
    }
    for bad in [
        "",
        "+",
        "#",
        "a+b",
        "a#",
        "a\0b",
        "a\u{1}",
        "a\u{1f}",
        "\u{7f}",
        "a\u{85}b",
        "a\u{9f}",
        "a\u{fdd0}",
        "\u{fffe}",
        "\u{1ffff}",
        "a//b",
        "/a",
        "a/",
        "/",
    ] {
        assert!(!valid_topic_part(bad), "{bad:?}");
    }
}

#[test]
fn text_a_client_may_refuse_is_invalid() {
    use crate::protocol::topic::valid_text;
    for ok in ["", "application/json", "a+b#c/d", "über λ", "x y"] {
        assert!(valid_text(ok), "{ok:?}");
    }
    for bad in [
        "a\0b",
        "\u{1}",
        "a\u{1f}",
        "\u{7f}",
        "\u{85}",
        "\u{fdd0}",
        "\u{10ffff}",
    ] {
        assert!(!valid_text(bad), "{bad:?}");
    }
}

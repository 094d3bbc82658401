//! Which device names and channels ingest accepts: those that form a topic no conforming MQTT
//! client refuses (issue #17, item 3).
//!
//! An event of device `d` on channel `c` of application `a` is delivered on `app/a/d/c`. A name
//! that cannot stand in that topic (a wildcard, U+0000, a control character, a non-character,
//! an empty level) would be accepted here and then either refused by the subscriber's client —
//! which drops the connection, gets the event again on reconnect, and loops — or silently not
//! delivered. So such names are refused at the door with a `400` that says which part is wrong
//! and why, and nothing is stored. The rule itself is
//! [`crate::protocol::topic::valid_topic_part`]; this module only explains its refusals.

use crate::protocol::topic::{valid_topic_name, valid_topic_part};

/// Checks a device name: one topic level ([`valid_topic_part`] without `/`).
pub(crate) fn check_device(device: &str) -> Result<(), String> {
    if device.contains('/') {
        return Err(format!(
            "device name {} contains `/`: a device is one MQTT topic level",
            quoted(device)
        ));
    }
    check_part("device name", device)
}

/// Checks a channel (the event's `subject`): one or more topic levels.
pub(crate) fn check_channel(channel: &str) -> Result<(), String> {
    check_part("channel", channel)
}

/// Checks that `app/<app>/<device>/<channel>` is a topic name every client takes: each part
/// valid, and the whole within the 65,535 bytes of an MQTT string ([MQTT-4.7.3-3]).
pub(crate) fn check_topic(app: &str, device: &str, channel: &str) -> Result<(), String> {
    check_device(device)?;
    check_channel(channel)?;
    let len = "app/".len() + app.len() + 1 + device.len() + 1 + channel.len();
    if len > 65_535 {
        return Err(format!(
            "the topic `app/{app}/<device>/<channel>` would be {len} bytes long, more than the 65,535 an MQTT topic may have; use a shorter channel"
        ));
    }
    debug_assert!(valid_topic_name(&format!("app/{app}/{device}/{channel}")));
    Ok(())
}

fn check_part(what: &str, name: &str) -> Result<(), String> {
    if valid_topic_part(name) {
        return Ok(());
    }
    let why = if name.is_empty() {
        "is empty".to_owned()
    } else if name.split('/').any(str::is_empty) {
        "has an empty topic level (a leading, trailing or doubled `/`)".to_owned()
    } else if let Some(c) = name.chars().find(|c| matches!(c, '+' | '#')) {
        format!("contains the MQTT wildcard `{c}`, which a topic name may not have [MQTT-3.3.2-2]")
    } else if name.contains('\0') {
        "contains U+0000, which a topic name may not have [MQTT-4.7.3-2]".to_owned()
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        format!(
            "contains the control character U+{:04X}, which MQTT clients may refuse (MQTT 5 section 1.5.4)",
            c as u32
        )
    } else if let Some(c) = name.chars().find(|&c| !valid_topic_part(&c.to_string())) {
        format!(
            "contains the Unicode non-character U+{:04X}, which MQTT clients may refuse (MQTT 5 section 1.5.4)",
            c as u32
        )
    } else {
        "is longer than the 65,535 bytes of an MQTT topic".to_owned()
    };
    Err(format!(
        "{what} {} {why}; it must form a valid MQTT topic level",
        quoted(name)
    ))
}

/// A name for an error text, with its odd characters escaped so that the text stays readable.
fn quoted(name: &str) -> String {
    const SHOWN: usize = 64;
    let escaped: String = name
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().count() > SHOWN {
        format!("`{escaped}…`")
    } else {
        format!("`{escaped}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refusals_name_the_part_and_the_reason() {
        for (device, channel, part, why) in [
            ("d", "a\0b", "channel `a\\0b`", "U+0000"),
            ("d", "+", "channel `+`", "wildcard `+`"),
            ("d", "a/#", "channel `a/#`", "wildcard `#`"),
            ("d", "a\u{1}", "channel `a\\u{1}`", "U+0001"),
            ("d", "a\u{85}", "channel", "U+0085"),
            ("d", "a\u{fffe}", "channel", "non-character U+FFFE"),
            ("d", "a//b", "channel `a//b`", "empty topic level"),
            ("d", "/a", "channel", "empty topic level"),
            ("d/1", "c", "device name `d/1`", "one MQTT topic level"),
            ("d\u{7f}", "c", "device name", "U+007F"),
        ] {
            let e = check_topic("demo", device, channel).unwrap_err();
            assert!(
                e.contains(part) && e.contains(why),
                "{device:?} {channel:?}: {e}"
            );
        }
        check_topic("demo", "device1", "temp/inside").unwrap();
        check_topic("demo", "dévice", "café/☃").unwrap();
        let long = "c".repeat(65_535);
        assert!(check_topic("demo", "d", &long)
            .unwrap_err()
            .contains("65,535"));
    }

    proptest! {
        /// Whatever ingest accepts forms a valid topic name, of valid parts (issue #17).
        #[test]
        fn accepted_names_form_valid_topics(
            device in "\\PC{0,8}|[\\x00-\\x7f\\u{80}-\\u{a0}\\u{fdd0}-\\u{fdef}\\u{fffe}\\u{ffff}/+#]{0,6}",
            channel in "\\PC{0,8}|[\\x00-\\x7f\\u{80}-\\u{a0}\\u{fdd0}-\\u{fdef}\\u{fffe}\\u{ffff}/+#]{0,12}",
        ) {
            if check_topic("demo", &device, &channel).is_ok() {
                let topic = format!("app/demo/{device}/{channel}");
                prop_assert!(valid_topic_name(&topic), "{:?}", topic);
                prop_assert!(valid_topic_part(&device) && !device.contains('/'));
                prop_assert!(valid_topic_part(&channel));
                prop_assert!(!topic.chars().any(|c| c.is_control() || matches!(c, '+' | '#')));
                prop_assert!(!topic.split('/').any(str::is_empty));
            } else {
                prop_assert!(!valid_topic_part(&device) || device.contains('/') || !valid_topic_part(&channel));
            }
        }

    }
}

//! Topic names and topic filters (MQTT 5 section 4.7, 3.1.1 section 4.7).

/// True when `s` may be used as a PUBLISH topic name: at least one character
/// ([MQTT-4.7.3-1]), no wildcard characters ([MQTT-3.3.2-2]), no U+0000 ([MQTT-4.7.3-2]), and
/// at most 65,535 bytes ([MQTT-4.7.3-3]).
pub fn valid_topic_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 65_535 && !s.bytes().any(|b| matches!(b, b'+' | b'#' | 0))
}

/// True when `s` may stand as one or more levels inside a topic name that this service sends
/// (a device name, or a channel, which may span levels with `/`): non-empty, no wildcard
/// characters ([MQTT-3.3.2-2]), no U+0000 ([MQTT-4.7.3-2]), and none of the characters a
/// receiver may refuse: control characters U+0001..U+001F and U+007F..U+009F, and Unicode
/// non-characters (MQTT 5 section 1.5.4: "the receiver MAY close the Network Connection").
/// Every part of a topic this service forms must pass, so that nothing it sends can be refused
/// by a conforming client. Empty levels (`a//b`) are valid MQTT but refused here: no device or
/// channel of Drogue Cloud has one, and filters such as `app/a/+/c` would treat them oddly.
pub fn valid_topic_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 65_535
        && s.split('/').all(|level| !level.is_empty())
        && !s.chars().any(|c| matches!(c, '+' | '#') || refusable(c))
}

/// True when every character of `s` may stand in a UTF-8 string this service sends (a user
/// property, a content type) without a conforming receiver refusing it: no U+0000
/// ([MQTT-1.5.4-2]), no control characters and no non-characters (MQTT 5 section 1.5.4, "the
/// receiver MAY close the Network Connection").
pub fn valid_text(s: &str) -> bool {
    !s.chars().any(refusable)
}

/// U+0000, the control characters U+0001..U+001F and U+007F..U+009F, and non-characters.
fn refusable(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}') || is_noncharacter(c)
}

/// Unicode non-characters: U+FDD0..U+FDEF and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || (c & 0xFFFE) == 0xFFFE
}

/// True when `s` is a valid topic filter: at least one character ([MQTT-4.7.3-1]), no U+0000
/// ([MQTT-4.7.3-2]), `#` only as a whole level and the last one ([MQTT-4.7.1-1]), `+` only as a
/// whole level ([MQTT-4.7.1-2]).
///
/// Shared subscriptions (`$share/{ShareName}/{filter}`, 4.8.2) are valid filters under these
/// rules too; see [`shared_subscription`] for their extra constraints.
pub fn valid_filter(s: &str) -> bool {
    if s.is_empty() || s.len() > 65_535 || s.as_bytes().contains(&0) {
        return false;
    }
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "#" if is_last => {}
            "+" => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// True when `s` contains a wildcard character (`+` or `#`, 4.7.1).
pub fn has_wildcard(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'+' | b'#'))
}

/// A shared subscription filter split into its parts (4.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    pub share_name: &'a str,
    pub filter: &'a str,
}

/// Splits `$share/{ShareName}/{filter}` (4.8.2). Returns `None` when `s` is not a shared
/// subscription or is an invalid one: the ShareName must be at least one character without `/`,
/// `+` or `#` ([MQTT-4.8.2-1], [MQTT-4.8.2-2]) and the filter must be valid.
pub fn shared_subscription(s: &str) -> Option<SharedFilter<'_>> {
    let rest = s.strip_prefix("$share/")?;
    let (share_name, filter) = rest.split_once('/')?;
    if share_name.is_empty() || has_wildcard(share_name) || !valid_filter(filter) {
        return None;
    }
    Some(SharedFilter { share_name, filter })
}

/// True when the topic name `topic` matches the topic filter `filter` (4.7): `+` matches exactly
/// one level, `#` the parent level and any number of child levels, and topics starting with `$`
/// are not matched by filters starting with a wildcard ([MQTT-4.7.2-1]). Both arguments are
/// assumed valid (see [`valid_topic_name`], [`valid_filter`]); a shared subscription filter must
/// be matched with its `$share/{ShareName}/` prefix removed.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

//! An index of a member's filters by topic level, so that routing a record costs what the
//! filters it matches cost, not what all the member's filters cost (#17: one connection with
//! 300k filters, each event matched against every one, took most of a core at 10 events/s).
//!
//! A topic `app/<a>/<device>/<channel…>` is cut after its second level (the application prefix)
//! and after its third (the device); the channel is the rest, which may span levels. The extension
//! filters of spec 2.1 have few shapes below the prefix, and each shape is one lookup:
//!
//! | filter below `app/<a>/` | bucket                       | matches when                        |
//! |-------------------------|------------------------------|-------------------------------------|
//! | `#`, `+/#`              | `any`                        | always                              |
//! | `<d>/#`                 | `device[d]`                  | the device level is `d`             |
//! | `<d>/+`                 | `device_one_level[d]`        | device `d`, channel of one level    |
//! | `+/<c>`                 | `channel[c]`                 | the channel is `c`                  |
//! | `+/+`                   | `any_one_level`              | a channel of one level              |
//! | no wildcard (`<d>/<c>`) | `exact[d/c]`                 | the whole rest is `d/c`             |
//!
//! Any other filter (one the parser of spec 2.1 does not make, kept so that the index answers
//! exactly what [`topic::matches`] answers for every filter) is matched by a scan, as are all
//! filters against a topic of fewer than three levels (the concrete topic of a record always has
//! four or more). Whole-application filters are one bucket: they match every record.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::protocol::topic;
use crate::seam::filter::{MemberFilter, Selector};

/// Positions (in the member's filter list) of the filters that matched.
pub type Matches = SmallVec<[u32; 8]>;

#[derive(Debug, Default)]
pub struct FilterIndex {
    whole_app: Vec<u32>,
    /// By application prefix (`app/<a>`): a member's filters name one application, but nothing
    /// here depends on it.
    apps: HashMap<Box<str>, Buckets>,
    /// Topic filters of no indexed shape.
    scanned: Vec<u32>,
    /// How many topic filters there are (indexed or scanned).
    topic_filters: usize,
}

#[derive(Debug, Default)]
struct Buckets {
    any: Vec<u32>,
    any_one_level: Vec<u32>,
    device: HashMap<Box<str>, Vec<u32>>,
    device_one_level: HashMap<Box<str>, Vec<u32>>,
    channel: HashMap<Box<str>, Vec<u32>>,
    exact: HashMap<Box<str>, Vec<u32>>,
}

/// `topic` cut into its application prefix (first two levels) and the rest; None when it has
/// fewer than three levels.
fn split_prefix(topic: &str) -> Option<(&str, &str)> {
    let first = topic.find('/')?;
    let second = first + 1 + topic[first + 1..].find('/')?;
    Some((&topic[..second], &topic[second + 1..]))
}

impl FilterIndex {
    pub fn new(filters: &[MemberFilter]) -> FilterIndex {
        let mut index = FilterIndex::default();
        for (i, f) in filters.iter().enumerate() {
            let i = i as u32;
            match &f.selector {
                Selector::WholeApp(_) => index.whole_app.push(i),
                Selector::Topic(filter) => {
                    index.topic_filters += 1;
                    if !index.insert(filter, i) {
                        index.scanned.push(i);
                    }
                }
            }
        }
        index
    }

    /// Files topic filter `filter` (position `i`) under its bucket; false when it has no
    /// indexed shape.
    fn insert(&mut self, filter: &str, i: u32) -> bool {
        let Some((prefix, rest)) = split_prefix(filter) else {
            return false;
        };
        if topic::has_wildcard(prefix) {
            return false;
        }
        let (device, channel) = match rest.split_once('/') {
            Some((d, c)) => (d, Some(c)),
            None => (rest, None),
        };
        let b = self.apps.entry(prefix.into()).or_default();
        let list = match (device, channel) {
            ("#", None) | ("+", Some("#")) => &mut b.any,
            ("+", Some("+")) => &mut b.any_one_level,
            ("+", Some(c)) if !topic::has_wildcard(c) => b.channel.entry(c.into()).or_default(),
            (d, Some("#")) if !topic::has_wildcard(d) => b.device.entry(d.into()).or_default(),
            (d, Some("+")) if !topic::has_wildcard(d) => {
                b.device_one_level.entry(d.into()).or_default()
            }
            _ if !topic::has_wildcard(rest) => b.exact.entry(rest.into()).or_default(),
            _ => return false,
        };
        list.push(i);
        true
    }

    /// True when some filter is not a whole-application one (routing then needs the record's
    /// concrete topic).
    pub fn has_topic_filters(&self) -> bool {
        self.topic_filters > 0
    }

    /// The whole-application filters: they match every record.
    pub fn whole_app(&self) -> &[u32] {
        &self.whole_app
    }

    /// Appends the positions of the topic filters matching `topic` (in no particular order).
    pub fn topic_matches(&self, filters: &[MemberFilter], topic: &str, out: &mut Matches) {
        let scan = |positions: &mut dyn Iterator<Item = u32>, out: &mut Matches| {
            for i in positions {
                if let Some(MemberFilter {
                    selector: Selector::Topic(f),
                    ..
                }) = filters.get(i as usize)
                {
                    if topic::matches(f, topic) {
                        out.push(i);
                    }
                }
            }
        };
        let Some((prefix, rest)) = split_prefix(topic) else {
            // Not a topic any record has; answered the plain way, exactly.
            let all = filters.iter().enumerate();
            let mut topics = all
                .filter(|(_, f)| matches!(f.selector, Selector::Topic(_)))
                .map(|(i, _)| i as u32);
            return scan(&mut topics, out);
        };
        scan(&mut self.scanned.iter().copied(), out);
        let Some(b) = self.apps.get(prefix) else {
            return;
        };
        let (device, channel) = match rest.split_once('/') {
            Some((d, c)) => (d, Some(c)),
            None => (rest, None),
        };
        let one_level = channel.is_some_and(|c| !c.contains('/'));
        out.extend_from_slice(&b.any);
        if one_level {
            out.extend_from_slice(&b.any_one_level);
        }
        let mut add = |map: &HashMap<Box<str>, Vec<u32>>, key: &str| {
            if let Some(list) = map.get(key) {
                out.extend_from_slice(list);
            }
        };
        add(&b.device, device);
        if one_level {
            add(&b.device_one_level, device);
        }
        if let Some(c) = channel {
            add(&b.channel, c);
        }
        add(&b.exact, rest);
    }
}

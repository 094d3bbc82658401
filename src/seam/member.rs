//! What a member of a consumer group wants: its filters, and routing one record through them.
//!
//! Filtering happens in the backend worker, before anything reaches a shard (spec 2.1): a record
//! no filter of a member matches costs that member nothing.

use std::sync::Arc;

use smallvec::SmallVec;

mod index;

use super::filter::{AppAlias, MemberFilter, Mode, Selector};
use super::Record;
use crate::protocol::{topic, QoS};
use index::{FilterIndex, Matches};

/// A member's filters with their index ([`FilterIndex`]), built once per join on the backend
/// worker. Derefs to the filters in the order the session sent them.
#[derive(Debug)]
pub struct MemberFilters {
    list: Vec<MemberFilter>,
    index: FilterIndex,
}

impl MemberFilters {
    pub fn new(list: Vec<MemberFilter>) -> MemberFilters {
        let index = FilterIndex::new(&list);
        MemberFilters { list, index }
    }
}

impl From<Vec<MemberFilter>> for MemberFilters {
    fn from(list: Vec<MemberFilter>) -> MemberFilters {
        MemberFilters::new(list)
    }
}

impl std::ops::Deref for MemberFilters {
    type Target = [MemberFilter];
    fn deref(&self) -> &[MemberFilter] {
        &self.list
    }
}

/// How one record goes to one member: decided once per (record, member).
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    /// A whole-application filter matched: the topic is that filter's (when several do, the
    /// first in [`AppAlias`]'s order: `app/<a>` before its aliases); else the record's concrete
    /// topic.
    pub whole_app: Option<AppAlias>,
    pub qos: QoS,
    pub mode: Mode,
    pub subscription_ids: SmallVec<[u32; 2]>,
}

/// Routes `record` through a member's filters. An event matching several filters is delivered
/// once, with the highest QoS and every matching subscription identifier (spec 2.1). When a
/// whole-application filter matches, the topic is that filter's own (`app/<a>`, `a/<a>` or
/// `application/<a>`, as Drogue Cloud sends it; `app/<a>` first when several match, as the
/// member's filters come in no particular order);
/// otherwise the concrete topic; the mode is that of the first matching filter.
///
/// The filters matching are found through the index, so the cost is that of the filters that
/// match (and a few hash lookups), not of all the member holds; the answer is the one
/// [`route_scan`] gives.
pub fn route(filters: &MemberFilters, record: &Record, app_topic: &Arc<str>) -> Option<Route> {
    let index = &filters.index;
    let mut matched = Matches::new();
    matched.extend_from_slice(index.whole_app());
    // The concrete topic only when a topic filter needs it: a record whose device or subject
    // cannot form a topic is then counted as skipped only where it is skipped.
    if index.has_topic_filters() {
        if let Some(t) = record.concrete_topic(app_topic) {
            index.topic_matches(&filters.list, t, &mut matched);
        }
    }
    // The filters' order decides the mode and the order of the subscription identifiers.
    matched.sort_unstable();
    fold(
        matched.iter().filter_map(|&i| filters.list.get(i as usize)),
        record,
        app_topic,
    )
}

/// The plain scan: every filter of the member tested against the record. The reference the
/// index is tested and benchmarked against.
pub fn route_scan(
    filters: &[MemberFilter],
    record: &Record,
    app_topic: &Arc<str>,
) -> Option<Route> {
    fold(filters.iter(), record, app_topic)
}

/// Folds the filters that may match, in the member's order, into one route; a topic filter
/// that does not match the record's concrete topic is passed over.
fn fold<'a>(
    filters: impl Iterator<Item = &'a MemberFilter>,
    record: &Record,
    app_topic: &Arc<str>,
) -> Option<Route> {
    let mut out: Option<Route> = None;
    for f in filters {
        // No topic is cloned here: a shared `Arc<str>` cloned per delivery and dropped on the
        // shard threads had every delivery of an application touch one cache line from every
        // core. The session has the application topic, the record its concrete topic.
        let whole_app = match &f.selector {
            Selector::WholeApp(alias) => Some(*alias),
            Selector::Topic(filter) => match record.concrete_topic(app_topic) {
                Some(t) if topic::matches(filter, t) => None,
                _ => continue,
            },
        };
        match &mut out {
            None => {
                let mut ids = SmallVec::new();
                ids.extend(f.subscription_id);
                out = Some(Route {
                    whole_app,
                    qos: f.qos,
                    mode: f.mode,
                    subscription_ids: ids,
                });
            }
            Some(r) => {
                if f.qos as u8 > r.qos as u8 {
                    r.qos = f.qos;
                }
                r.whole_app = match (r.whole_app, whole_app) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if let Some(id) = f.subscription_id {
                    if !r.subscription_ids.contains(&id) {
                        r.subscription_ids.push(id);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

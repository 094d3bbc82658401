//! What a member of a consumer group wants: its filters, and routing one record through them.
//!
//! Filtering happens in the backend worker, before anything reaches a shard (spec 2.1): a record
//! no filter of a member matches costs that member nothing.

use std::sync::Arc;

use smallvec::SmallVec;

use super::Record;
use crate::protocol::{topic, QoS};

/// CloudEvents content mode of a subscription (spec 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Structured,
    Binary,
}

/// Which events of the application a filter selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `app/<application>` and its aliases: everything, published on `app/<application>`.
    WholeApp,
    /// An extension filter `app/<application>/<device>/<channel>` (with `+`/`#`), matched against
    /// the event's concrete topic by the usual MQTT rules.
    Topic(Arc<str>),
}

/// One subscription of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFilter {
    /// The filter as the client wrote it (its identity within the session).
    pub filter: Arc<str>,
    pub selector: Selector,
    pub qos: QoS,
    pub subscription_id: Option<u32>,
    pub mode: Mode,
}

/// How one record goes to one member: decided once per (record, member).
#[derive(Debug)]
pub struct Route {
    /// The topic is `app/<application>` (else the record's concrete topic).
    pub whole_app: bool,
    pub qos: QoS,
    pub mode: Mode,
    pub subscription_ids: SmallVec<[u32; 2]>,
}

/// Routes `record` through a member's filters. An event matching several filters is delivered
/// once, with the highest QoS and every matching subscription identifier (spec 2.1). When a
/// whole-application filter matches, the topic is `app/<application>` (as Drogue Cloud sends
/// it); otherwise the concrete topic; the mode is that of the first matching filter.
pub fn route(filters: &[MemberFilter], record: &Record, app_topic: &Arc<str>) -> Option<Route> {
    let mut out: Option<Route> = None;
    for f in filters {
        // No topic is cloned here: a shared `Arc<str>` cloned per delivery and dropped on the
        // shard threads had every delivery of an application touch one cache line from every
        // core. The session has the application topic, the record its concrete topic.
        let whole_app = match &f.selector {
            Selector::WholeApp => true,
            Selector::Topic(filter) => match record.concrete_topic(app_topic) {
                Some(t) if topic::matches(filter, t) => false,
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
                r.whole_app |= whole_app;
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

//! SUBSCRIBE and UNSUBSCRIBE: each filter checked and authorised, grouped into consumer groups
//! that the shell joins or leaves, and SUBACKs sent in SUBSCRIBE order once the backend has
//! answered every join they wait for.

use std::sync::Arc;

use super::deliver::take_unsent;
use super::subscribed::{PendingSubAck, Subscribed, Subscription};
use super::{
    encode_into, parse_filter, reason_string, FilterError, Flags, JoinRequest, Session,
    SessionEvent,
};
use crate::protocol::{
    Packet, Properties, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe, Version,
};
use crate::registry::Access;
use crate::seam::{AppTopics, BackendError, GroupKey, MemberFilter, Mode, StartAt, START_FORMS};

impl Session {
    /// The backend answered a [`SessionEvent::Join`].
    pub fn joined(&mut self, member: u32, request: u64, result: Result<(), BackendError>) {
        let Some((subs, pos)) = self.subscribed.as_deref_mut().and_then(|subs| {
            let pos = subs
                .subacks
                .iter()
                .position(|s| s.waiting.iter().any(|w| w.0 == request))?;
            Some((subs, pos))
        }) else {
            if let Err(e) = result {
                tracing::warn!(conn = ?self.conn, member, "updating a subscription failed: {e}");
            }
            return;
        };
        let suback = &mut subs.subacks[pos];
        let w = suback
            .waiting
            .iter()
            .position(|w| w.0 == request)
            .unwrap_or(0);
        let (_, group, indices) = suback.waiting.swap_remove(w);
        if let Err(e) = result {
            tracing::warn!(conn = ?self.conn, ?group, "subscription refused by the backend: {e}");
            suback.reason.get_or_insert_with(|| e.to_string());
            let code = match (&e, self.version) {
                // Issue #17: another identity's group (or one of another kind).
                (BackendError::NotOwner(_), Version::V5) => ReasonCode::NOT_AUTHORIZED,
                (BackendError::NotOwner(_), _) => ReasonCode::V3_SUBACK_FAILURE,
                _ => ReasonCode::UNSPECIFIED_ERROR,
            };
            for i in indices {
                if let Some(c) = suback.codes.get_mut(i) {
                    *c = code;
                }
            }
            // The group never started: forget its filters.
            subs.subscriptions.retain(|_, s| s.group != group);
            if let Some(m) = subs.groups.remove(&group) {
                subs.members.remove(&m);
            }
        }
        self.flush_subacks();
    }

    pub(super) fn handle_subscribe(&mut self, s: Subscribe<'_>) {
        let v5 = self.version == Version::V5;
        // Spec 2.1: MQTT 5 user property `content-mode` picks the encoding for this SUBSCRIBE.
        // The last occurrence of a user property wins.
        let property = |name: &str| {
            let properties = &s.properties.user_properties;
            properties
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|p| p.1)
        };
        let mode = match property("content-mode") {
            None | Some("structured") => Ok(Mode::Structured),
            Some("binary") => Ok(Mode::Binary),
            Some(other) => Err(other),
        };
        // Spec 2.1: user property `start` (replay) sets where a new group begins.
        let start = match property("start") {
            None => Ok(StartAt::Latest),
            Some(value) => StartAt::parse(value).ok_or(value),
        };
        let subscription_id = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.filters.len());
        // The first refusal's explanation, for the SUBACK's Reason String.
        let mut reason: Option<String> = None;
        let mut touched: Vec<(GroupKey, Arc<str>, Vec<usize>)> = Vec::new();
        for (i, f) in s.filters.iter().enumerate() {
            let mut refuse = |v5_code: ReasonCode, why: &dyn Fn() -> String| {
                reason.get_or_insert_with(|| format!("{}: {}", f.filter, why()));
                codes.push(if v5 {
                    v5_code
                } else {
                    ReasonCode::V3_SUBACK_FAILURE
                });
            };
            let target = match parse_filter(f.filter) {
                Ok(t) => t,
                Err(FilterError::WildcardNotSupported) => {
                    refuse(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, &|| {
                        "wildcards are supported only as app/<application>/+|#/…".into()
                    });
                    continue;
                }
                Err(FilterError::Invalid) => {
                    refuse(ReasonCode::TOPIC_FILTER_INVALID, &|| {
                        "not an event filter: app/<application>[/<device>/<channel>]".into()
                    });
                    continue;
                }
            };
            let mode = match mode {
                Ok(m) => m,
                Err(other) => {
                    tracing::info!(client = %self.client_id, "unknown content-mode `{other}`");
                    // Spec 2.1: 0x83 on v5; v3.1.1 cannot send user properties at all.
                    refuse(ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR, &|| {
                        format!("unknown content-mode `{other}` (structured or binary)")
                    });
                    continue;
                }
            };
            if let Err(other) = start {
                tracing::info!(client = %self.client_id, "invalid start `{other}`");
                // Spec 2.1: 0x83, like an unknown content-mode.
                refuse(ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR, &|| {
                    format!("invalid start `{other}` ({START_FORMS})")
                });
                continue;
            }
            if let Err(e) =
                self.config
                    .registry
                    .load()
                    .authorize(&self.identity, target.app, Access::Read)
            {
                tracing::info!(client = %self.client_id, filter = f.filter, "subscription refused: {e}");
                // One text for an unknown application and a missing right: names cannot be
                // probed.
                refuse(ReasonCode::NOT_AUTHORIZED, &|| {
                    format!(
                        "not authorized: no read permission on application {}",
                        target.app
                    )
                });
                continue;
            }
            let group = match target.share {
                Some(share) => GroupKey::shared(target.app, share),
                None if !self.flags.has(Flags::CLIENT_ID_ASSIGNED) => {
                    GroupKey::client(target.app, &self.client_id)
                }
                None => GroupKey::Ephemeral {
                    app: Arc::from(target.app),
                    conn: self.conn,
                },
            };
            // Spec 2.1: QoS 2 is granted as QoS 1.
            let qos = if f.options.qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            let held = self.subscribed().subscriptions.len();
            if held >= self.config.max_subscriptions
                && !self.subscribed().subscriptions.contains_key(f.filter)
            {
                // A filter already held is replaced below and does not count twice; a new one
                // beyond the quota is refused alone, the others of this SUBSCRIBE still granted.
                tracing::debug!(client = %self.client_id, filter = f.filter, held, "subscription quota exceeded");
                let max = self.config.max_subscriptions;
                refuse(ReasonCode::QUOTA_EXCEEDED, &|| {
                    format!("quota exceeded: at most {max} subscriptions per connection")
                });
                continue;
            }
            let filter: Arc<str> = Arc::from(f.filter);
            // [MQTT-3.8.4-3] a filter the client already holds is replaced.
            self.subscribed().subscriptions.insert(
                filter.clone(),
                Subscription {
                    group: group.clone(),
                    filter: MemberFilter {
                        filter,
                        selector: target.selector,
                        qos,
                        subscription_id,
                        mode,
                    },
                },
            );
            codes.push(match qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                _ => ReasonCode::GRANTED_QOS_1,
            });
            match touched.iter_mut().find(|t| t.0 == group) {
                Some(t) => t.2.push(i),
                None => touched.push((group, Arc::from(target.app), vec![i])),
            }
        }
        let mut waiting = Vec::with_capacity(touched.len());
        for (group, app, indices) in touched {
            let request = self.join(app, group.clone(), start.unwrap_or_default());
            waiting.push((request, group, indices));
        }
        self.subscribed().subacks.push_back(PendingSubAck {
            packet_id: s.packet_id,
            codes,
            reason,
            waiting,
        });
        self.flush_subacks();
    }

    /// Sends a Join carrying every filter the session holds for `group`; returns its request id.
    fn join(&mut self, app: Arc<str>, group: GroupKey, start: StartAt) -> u64 {
        let subs = self.subscribed();
        let member = match subs.groups.get(&group) {
            Some(m) => *m,
            None => {
                subs.next_member = subs.next_member.wrapping_add(1);
                subs.groups.insert(group.clone(), subs.next_member);
                subs.members.insert(subs.next_member, AppTopics::new(&app));
                subs.next_member
            }
        };
        subs.next_request += 1;
        let request = subs.next_request;
        let filters = subs
            .subscriptions
            .values()
            .filter(|s| s.group == group)
            .map(|s| s.filter.clone())
            .collect();
        self.events.push_back(SessionEvent::Join(JoinRequest {
            member,
            request,
            app,
            group,
            filters,
            start,
        }));
        request
    }

    /// SUBACKs go out in SUBSCRIBE order, each once its groups are joined.
    fn flush_subacks(&mut self) {
        let Some(subs) = self.subscribed.as_deref_mut() else {
            return;
        };
        while subs.subacks.front().is_some_and(|s| s.waiting.is_empty()) {
            let Some(s) = subs.subacks.pop_front() else {
                break;
            };
            let suback = Packet::SubAck(SubAck {
                packet_id: s.packet_id,
                properties: Properties {
                    reason_string: reason_string(
                        self.version,
                        !self.flags.has(Flags::NO_PROBLEM_INFO),
                        self.client_max_packet.saturating_sub(s.codes.len() as u32),
                        s.reason.as_deref(),
                    ),
                    ..Properties::default()
                },
                codes: s.codes,
            });
            encode_into(&mut self.out, self.version, &suback);
        }
    }

    pub(super) fn handle_unsubscribe(&mut self, u: Unsubscribe<'_>) {
        let mut codes = Vec::with_capacity(u.filters.len());
        let mut touched: Vec<(GroupKey, Arc<str>)> = Vec::new();
        for f in &u.filters {
            let removed = self
                .subscribed
                .as_deref_mut()
                .and_then(|subs| subs.subscriptions.remove(*f));
            match removed {
                Some(s) => {
                    codes.push(ReasonCode::SUCCESS);
                    if !touched.iter().any(|t| t.0 == s.group) {
                        let app = match &s.group {
                            GroupKey::Ephemeral { app, .. } => app.clone(),
                            GroupKey::Durable(_) => Arc::from(app_of(&s.filter)),
                        };
                        touched.push((s.group, app));
                    }
                }
                None => codes.push(ReasonCode::NO_SUBSCRIPTION_EXISTED),
            }
        }
        for (group, app) in touched {
            // Only filters the session held were touched: it is subscribed.
            let Some(subs) = self.subscribed.as_deref_mut() else {
                break;
            };
            if subs.subscriptions.values().any(|s| s.group == group) {
                // The group exists already: `start` would be ignored.
                self.join(app, group, StartAt::Latest);
            } else if let Some(member) = subs.groups.remove(&group) {
                subs.members.remove(&member);
                let unsent = take_unsent(&mut subs.pending, member, &mut self.released);
                self.events.push_back(SessionEvent::Leave { group, unsent });
            }
        }
        let unsuback = Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Properties::default(),
            codes,
        });
        encode_into(&mut self.out, self.version, &unsuback);
    }

    pub(super) fn subscribed(&mut self) -> &mut Subscribed {
        self.subscribed.get_or_insert_with(Box::default)
    }
}

/// The application a durable member filter belongs to, from its normalised selector or filter.
fn app_of(filter: &MemberFilter) -> &str {
    parse_filter(&filter.filter)
        .map(|t| t.app)
        .unwrap_or_default()
}

//! What only a session with subscriptions needs: its filters, consumer-group memberships,
//! SUBACKs waiting for joins, and the QoS 1 window of deliveries.
//!
//! Kept out of line ([`super::Session`] holds it as `Option<Box<Subscribed>>`, allocated by the
//! first SUBSCRIBE) so that a connected client that never subscribes, the common idle case,
//! pays a pointer for all of it instead of some 400 bytes.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use super::inflight::{IdHasher, Inflight};
use super::stats::Stats;
use crate::protocol::ReasonCode;
use crate::seam::{AppTopics, Delivery, GroupKey, MemberFilter};

#[derive(Default)]
pub(super) struct Subscribed {
    pub subscriptions: HashMap<Arc<str>, Subscription>,
    pub groups: HashMap<GroupKey, u32>,
    /// Member id → its application's topics (`app/<app>` and the aliases), the topics of
    /// whole-application deliveries (made once per member on this thread: deliveries carry no
    /// topic).
    pub members: HashMap<u32, AppTopics, BuildHasherDefault<IdHasher>>,
    pub next_member: u32,
    pub next_request: u64,
    pub subacks: VecDeque<PendingSubAck>,
    pub inflight: Inflight,
    /// QoS 1 deliveries held back behind the client's window.
    pub pending: VecDeque<Delivery>,
    pub stats: Stats,
}

pub(super) struct Subscription {
    pub group: GroupKey,
    pub filter: MemberFilter,
}

pub(super) struct PendingSubAck {
    pub packet_id: u16,
    pub codes: Vec<ReasonCode>,
    /// Why the first refused filter was refused, for a v5 Reason String (one per SUBACK).
    pub reason: Option<String>,
    /// Join requests not answered yet, with the filter indices each covers.
    pub waiting: Vec<(u64, GroupKey, Vec<usize>)>,
}

impl Subscribed {
    /// Frees the queues' spare capacity once they are empty (a burst's leftovers).
    pub fn trim(&mut self) {
        trim_deque(&mut self.pending);
        trim_deque(&mut self.subacks);
    }
}

/// Frees an empty queue's capacity (the session's event queue uses it too).
pub(super) fn trim_deque<T>(q: &mut VecDeque<T>) {
    if q.is_empty() && q.capacity() > 0 {
        *q = VecDeque::new();
    }
}

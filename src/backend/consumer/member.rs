//! A group's member (one connection's subscriptions that read through the group) and how a
//! record reaches it.

use std::sync::Arc;

use super::outbox::Outbox;
use crate::protocol::QoS;
use crate::seam::member::route;
use crate::seam::{
    AckToken, BackendError, ConnFlow, ConnId, Delivery, Join, MemberFilters, Record, ShardLink,
    ToShard,
};

pub(crate) struct Member {
    pub conn: ConnId,
    /// The session's id for this membership, echoed on deliveries.
    pub id: u32,
    pub filters: MemberFilters,
    pub flow: Arc<ConnFlow>,
    pub link: ShardLink,
    /// Bytes (delivery cost) of the records held back for this member (see
    /// [`Cursor::pending`]).
    pub pending: usize,
}

impl From<Join> for Member {
    fn from(join: Join) -> Member {
        Member {
            conn: join.conn,
            id: join.member,
            filters: join.filters.into(),
            flow: join.flow,
            link: join.link,
            pending: 0,
        }
    }
}

/// The answer to `join`. Sent on the same channel as the deliveries, so it reaches the shard
/// before any of them.
pub(crate) fn joined(join: &Join, result: Result<(), BackendError>) -> ToShard {
    ToShard::Joined {
        conn: join.conn,
        member: join.member,
        request: join.request,
        result,
    }
}

/// What a dispatch needs besides the group: who dispatches (for the ack tokens) and where the
/// deliveries go.
pub(crate) struct Pass<'a> {
    pub worker: u16,
    pub slot: u32,
    pub outbox: &'a mut Outbox,
}

/// What offering a record to a member did.
pub(crate) enum Offer {
    /// None of its filters matches the record: consumed, it counts as acknowledged.
    NotForIt,
    /// Its connection is full (spec 2.4: never buffer without bound): the record comes back.
    Full(Arc<Record>),
    /// Queued for its shard, with this QoS.
    Sent(QoS),
}

impl Member {
    /// Queues `record` for the member's shard if one of its filters matches and its connection
    /// has room.
    pub(crate) fn offer(
        &self,
        record: Arc<Record>,
        app_topic: &Arc<str>,
        dup: bool,
        ack: AckToken,
        outbox: &mut Outbox,
    ) -> Offer {
        let Some(route) = route(&self.filters, &record, app_topic) else {
            return Offer::NotForIt;
        };
        if !self.flow.has_room() {
            return Offer::Full(record);
        }
        let cost = record.cost();
        self.flow.charge(cost as usize);
        let qos = route.qos;
        outbox.push(
            &self.link,
            Delivery {
                conn: self.conn,
                member: self.id,
                record,
                whole_app: route.whole_app,
                qos,
                mode: route.mode,
                subscription_ids: route.subscription_ids,
                dup,
                cost,
                ack,
            },
        );
        Offer::Sent(qos)
    }
}

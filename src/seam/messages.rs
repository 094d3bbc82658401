//! The messages between shards and backend workers, each way.

use std::sync::Arc;

use crossbeam_channel::Sender;

use super::{
    AppAlias, BackendError, Claim, ConnFlow, ConnId, GroupKey, MemberFilter, Mode, Record,
    ShardLink, StartAt,
};
use crate::protocol::QoS;

/// What a backend tells a shard.
pub enum ToShard {
    /// Answer to [`ToBackend::Join`]: the group's start position is fixed (or joining failed).
    Joined {
        conn: ConnId,
        member: u32,
        request: u64,
        result: Result<(), BackendError>,
    },
    /// Events for connections of this shard, in order per (connection, partition).
    Deliveries(Vec<Delivery>),
    /// A command or ingested event was durably accepted (or not).
    Produced {
        conn: ConnId,
        packet_id: u16,
        result: Result<(), BackendError>,
    },
}

/// What a shard tells a backend worker.
pub enum ToBackend {
    /// Add the member, or replace its filters if `(conn, group)` is already a member.
    /// Answered with [`ToShard::Joined`] once the start position is fixed.
    Join(Join),
    /// The member leaves the group (unsubscribe or disconnect). Unacknowledged events of its
    /// partitions will be delivered again to the next owner. `unsent` names the deliveries the
    /// session still held back (behind its QoS 1 window): they were never sent, so they must not
    /// count as redeliveries (DUP) next time.
    Leave {
        conn: ConnId,
        group: GroupKey,
        unsent: Vec<AckToken>,
    },
    /// Acknowledgements (QoS 1 PUBACKs) in the order they arrived.
    Acks(Vec<AckToken>),
    /// Some connection drained below its byte limit: paused groups may read again.
    Resume,
    /// New events were appended somewhere (embedded backend) or a timer is due.
    Wake,
    /// Commit what is acknowledged, answer on the channel, and stop.
    Shutdown(Sender<()>),
}

/// One membership request.
pub struct Join {
    pub conn: ConnId,
    /// Chosen by the session, echoed on every delivery so it can drop events of groups it left.
    pub member: u32,
    pub request: u64,
    pub app: Arc<str>,
    pub group: GroupKey,
    pub filters: Vec<MemberFilter>,
    pub flow: Arc<ConnFlow>,
    pub link: ShardLink,
    /// Who joins, checked against a durable group's [`Owner`] (ignored by ephemeral readers).
    pub claim: Claim,
    /// Where the group begins if it does not exist yet (spec 2.1 `start`); an existing group
    /// resumes at its committed offsets and ignores it.
    pub start: StartAt,
}

/// One event for one connection.
pub struct Delivery {
    pub conn: ConnId,
    pub member: u32,
    pub record: Arc<Record>,
    /// A whole-application filter matched: the PUBLISH topic is that filter's own (`app/<a>`,
    /// `a/<a>`, `application/<a>`; the session has them for the member). Otherwise it is the
    /// record's concrete `app/<app>/<device>/<channel>` ([`Record::concrete_topic`], set by the
    /// routing).
    pub whole_app: Option<AppAlias>,
    pub qos: QoS,
    pub mode: Mode,
    pub subscription_ids: smallvec::SmallVec<[u32; 2]>,
    /// Set when this offset was handed out before (redelivery after reconnect or rebalance).
    pub dup: bool,
    /// Bytes charged to the connection's [`ConnFlow`]; released once written to the socket.
    pub cost: u32,
    /// Returned to the worker on PUBACK (QoS 1). QoS 0 deliveries are committed on dispatch.
    pub ack: AckToken,
}

impl Delivery {
    /// The PUBLISH topic, given `base` = [`AppTopics::base`] of this delivery's `whole_app`.
    pub fn topic<'a>(&'a self, base: &'a Arc<str>) -> &'a str {
        if self.whole_app.is_some() {
            // Not formatted (nor cached on the record) when nobody needs it.
            return base;
        }
        self.record.concrete_topic(base).map_or(&**base, |t| &**t)
    }
}

/// Names one dispatched offset for acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckToken {
    pub worker: u16,
    pub group: u32,
    pub partition: u32,
    pub epoch: u32,
    pub offset: u64,
}

//! QoS 1 and 2 commands from the client that are not fully acknowledged yet.
//!
//! Out of line like [`super::subscribed`]: [`super::Session`] holds it as
//! `Option<Box<Inbound>>`, allocated by the first QoS 1/2 PUBLISH and freed again once empty, so
//! a device that sends a command now and then does not keep the space between commands.

use std::collections::{HashSet, VecDeque};

use crate::protocol::{QoS, ReasonCode};

#[derive(Default)]
pub(super) struct Inbound {
    /// PUBACKs/PUBRECs to send, in the order the PUBLISHes came.
    pub acks: VecDeque<InboundAck>,
    /// QoS 2 packet ids PUBREC'd and not yet released by PUBREL.
    pub awaiting_rel: HashSet<u16>,
}

pub(super) struct InboundAck {
    pub packet_id: u16,
    pub qos: QoS,
    pub result: Option<ReasonCode>,
    /// Why it was refused, for a v5 Reason String.
    pub reason: Option<Box<str>>,
}

impl Inbound {
    /// Unacknowledged QoS 1/2 PUBLISHes, counted against our Receive Maximum.
    pub fn outstanding(&self) -> usize {
        self.acks.len() + self.awaiting_rel.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.awaiting_rel.is_empty()
    }
}

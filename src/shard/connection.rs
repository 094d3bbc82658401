//! One accepted socket and the session it carries.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;

use super::transport::Transport;
use crate::backend::{ConnFlow, ConnId};
use crate::metrics::Protocol;
use crate::session::Session;

pub struct Connection {
    pub id: ConnId,
    pub transport: Transport,
    pub protocol: Protocol,
    pub peer: SocketAddr,
    pub session: Session,
    /// Bytes of an incomplete packet. Empty (and unallocated) between packets: reads go to the
    /// shard's scratch buffer and only a partial packet is kept here, so idle connections cost
    /// no buffer.
    pub inbuf: BytesMut,
    pub flow: Arc<ConnFlow>,
    /// Whether the client id is registered in [`super::clients::ClientIds`].
    pub claimed: bool,
    /// Subscriptions counted in the process gauge.
    pub counted_subscriptions: usize,
    /// Unwritten bytes counted in the process gauge.
    pub counted_queued: usize,
    /// A refused CONNECT waiting out `auth.failure_delay`: when to answer, and how.
    pub reject_at: Option<(std::time::Instant, crate::session::ConnectRefusal)>,
    /// Reading stopped because the client does not read what we send (see `event_loop`).
    pub read_paused: bool,
    /// Queued for a flush at the end of this loop turn.
    pub dirty: bool,
}

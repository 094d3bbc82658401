//! One accepted socket and the session it carries.
//!
//! Laid out for the idle connection (issue #5: 19,000 of them in one process, each costing its
//! box and little else): no copy of the id the session already holds, the peer address without
//! the IPv6 flow and scope fields, and what only some connections need (the byte credit of a
//! subscriber, a delayed refusal) behind pointers that stay null until then.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::transport::Transport;
use crate::metrics::Protocol;
use crate::seam::{ConnFlow, ConnId};
use crate::session::{ConnectRefusal, Session};

pub struct Connection {
    pub transport: Transport,
    pub session: Session,
    /// Bytes of an incomplete packet. Empty (and unallocated) between packets: reads go to the
    /// shard's scratch buffer and only a partial packet is kept here, so idle connections cost
    /// no buffer.
    pub inbuf: Vec<u8>,
    /// The byte credit shared with the backend workers; created by the first Join, since only
    /// a member of a group receives deliveries.
    pub flow: Option<Arc<ConnFlow>>,
    /// Unwritten bytes counted in the process gauge.
    pub counted_queued: usize,
    /// A refused CONNECT waiting out `auth.failure_delay`: when to answer, and how.
    pub reject_at: Option<Box<(Instant, ConnectRefusal)>>,
    /// Subscriptions counted in the process gauge.
    pub counted_subscriptions: u32,
    peer_ip: IpAddr,
    peer_port: u16,
    pub protocol: Protocol,
    /// Whether the client id is registered in [`super::clients::ClientIds`].
    pub claimed: bool,
    /// Reading stopped because the client does not read what we send (see `event_loop`).
    pub read_paused: bool,
    /// Queued for a flush at the end of this loop turn.
    pub dirty: bool,
}

impl Connection {
    pub fn new(
        transport: Transport,
        protocol: Protocol,
        peer: SocketAddr,
        session: Session,
    ) -> Connection {
        Connection {
            transport,
            session,
            inbuf: Vec::new(),
            flow: None,
            counted_queued: 0,
            reject_at: None,
            counted_subscriptions: 0,
            peer_ip: peer.ip(),
            peer_port: peer.port(),
            protocol,
            claimed: false,
            read_paused: false,
            dirty: false,
        }
    }

    pub fn id(&self) -> ConnId {
        self.session.conn_id()
    }

    /// The peer's address (for logs; IPv6 flow info and scope id are not kept).
    pub fn peer(&self) -> SocketAddr {
        SocketAddr::new(self.peer_ip, self.peer_port)
    }

    pub fn peer_ip(&self) -> IpAddr {
        self.peer_ip
    }

    /// The byte credit to hand the backend with a Join, created on first use.
    pub fn flow(&mut self, limit: usize) -> Arc<ConnFlow> {
        self.flow
            .get_or_insert_with(|| Arc::new(ConnFlow::new(limit)))
            .clone()
    }

    /// Gives `cost` bytes of credit back; true when a worker should be told to resume.
    pub fn release(&self, cost: u64) -> bool {
        // Without a flow nothing was ever charged.
        self.flow.as_ref().is_some_and(|f| f.release(cost as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #5: an idle connection costs its box (plus the allocator's 8-byte header, rounded
    /// to 16) and almost nothing else, so this size is most of the per-connection RSS. It was
    /// 880 bytes with everything inline; this bound catches a field that creeps back in.
    #[test]
    fn idle_connection_stays_small() {
        let size = std::mem::size_of::<Connection>();
        eprintln!(
            "Connection {size} B, Session {} B",
            std::mem::size_of::<Session>()
        );
        assert!(size <= 320, "Connection is {size} bytes");
    }
}

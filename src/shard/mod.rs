//! The shards: event-loop threads that own MQTT connections.
//!
//! Each shard has its own `mio::Poll`, its own listening socket on every MQTT address
//! (SO_REUSEPORT: the kernel spreads new connections), its own connections in a slab, and two
//! channels in: backend messages ([`crate::seam::ToShard`]) and control messages
//! ([`Control`]), both announced through one waker. A shard never blocks on anything but its
//! poll, and nothing on the per-event path takes a lock.
//!
//! Owns: sockets, the transports (TLS, WebSocket), the poll, the connection slab, timers, and
//! acting on what sessions ask for (`effects.rs`: authentication, joins, commands, metrics).
//! Must not touch: MQTT rules (they are the session's) or a backend's internals (it reaches
//! backends only through the seam's messages and [`crate::backend::BackendHandle`]).

mod clients;
mod connection;
mod effects;
mod event_loop;
mod listener;
mod notify;
pub mod transport;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use mio::{Poll, Token, Waker};

pub use clients::{ClientIds, PerIp};
pub use listener::bind_shared;
pub use transport::ListenerSpec;

use crate::auth::Authenticator;
use crate::backend::BackendHandle;
use crate::metrics::Metrics;
use crate::seam::{ConnId, Producer, ShardLink};
use crate::session::SessionConfig;

/// Everything the shards share, read-only.
pub struct ShardContext {
    pub session: Arc<SessionConfig>,
    pub backend: BackendHandle,
    pub producer: Arc<dyn Producer>,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
    pub clients: ClientIds,
    pub max_queued_bytes: usize,
    pub max_connections: usize,
    /// Connections open across all shards (for `server.max_connections`).
    pub connections: AtomicUsize,
    /// Written into the `instance` attribute of commands.
    pub instance: String,
    /// Connections per source address (`server.max_connections_per_ip`, 0 = no limit).
    pub per_ip: PerIp,
    /// Wait before answering a refused CONNECT (`auth.failure_delay`).
    pub auth_failure_delay: std::time::Duration,
    /// Each loop's heartbeat, for the systemd watchdog.
    pub liveness: Arc<crate::ops::Liveness>,
}

/// Messages between shards and from the server.
pub enum Control {
    /// Close this connection: its client id was taken over (spec 2.6).
    Kick(ConnId),
    /// The registry was replaced (a reload): end the connections whose subscriptions it no
    /// longer allows.
    RecheckRights,
    /// Stop accepting, tell clients, close everything, exit.
    Shutdown,
}

/// How other threads reach one shard.
#[derive(Clone)]
pub struct ShardPeer {
    pub control: Sender<Control>,
    pub waker: Arc<Waker>,
}

impl ShardPeer {
    pub fn send(&self, msg: Control) {
        if self.control.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

const WAKER: Token = Token(usize::MAX);
const LISTENER_BASE: usize = 1 << 40;

/// Starts `listeners.len()` shards; `listeners[i]` are shard i's sockets (one per MQTT address),
/// each with what its connections speak.
pub fn spawn(
    ctx: Arc<ShardContext>,
    listeners: Vec<Vec<(std::net::TcpListener, Arc<ListenerSpec>)>>,
) -> std::io::Result<Vec<(ShardPeer, JoinHandle<()>)>> {
    let mut prepared = Vec::with_capacity(listeners.len());
    for (i, socks) in listeners.into_iter().enumerate() {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let (inbox_tx, inbox_rx) = crossbeam_channel::unbounded();
        let notify = Arc::new(notify::ShardNotify::new(waker.clone()));
        let link = ShardLink {
            sender: inbox_tx,
            notify: notify.clone(),
        };
        let peer = ShardPeer {
            control: control_tx,
            waker,
        };
        prepared.push((i, poll, socks, control_rx, inbox_rx, notify, link, peer));
    }
    let peers: Arc<[ShardPeer]> = prepared
        .iter()
        .map(|p| p.7.clone())
        .collect::<Vec<_>>()
        .into();
    let mut out = Vec::with_capacity(prepared.len());
    for (i, poll, socks, control_rx, inbox_rx, notify, link, peer) in prepared {
        let wiring = event_loop::Wiring {
            link,
            notify,
            inbox: inbox_rx,
            control: control_rx,
            peers: peers.clone(),
        };
        let shard = event_loop::Shard::new(i as u16, poll, socks, ctx.clone(), wiring)?;
        let handle = std::thread::Builder::new()
            .name(format!("shard-{i}"))
            .spawn(move || shard.run())?;
        out.push((peer, handle));
    }
    Ok(out)
}

/// The addresses a set of listeners is bound to.
pub fn local_addrs(listeners: &[std::net::TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

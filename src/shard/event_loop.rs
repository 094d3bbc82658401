//! One shard's event loop: a thin I/O shell around [`Session`]s.
//!
//! Each turn: poll; accept and read what is ready (draining until `WouldBlock`, with a budget
//! per connection so one busy client cannot starve the others); drain the backend and control
//! channels; check timers; then flush every connection that got output, with one vectored
//! write each, and hand acknowledgements to the backend workers in one batch per worker.
//!
//! The mio loop and nothing else: what a session's requests do (authentication, joins and
//! leaves, commands, metrics) is in `effects.rs`.

use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::connection::Connection;
use super::effects::{self, send_acks, Effects};
use super::notify::ShardNotify;
use super::transport::{ListenerSpec, Transport};
use super::{Control, ShardContext, ShardPeer, LISTENER_BASE, WAKER};
use crate::seam::{AckToken, ConnId, ShardLink, ToBackend, ToShard};
use crate::session::{CloseReason, Session};

/// How often timers (keep-alive, connect timeout) are checked.
const TICK: Duration = Duration::from_millis(250);
/// Reads of one connection per readiness event before it waits for the next turn.
const READ_BUDGET: usize = 8;
const SCRATCH: usize = 64 * 1024;
/// Pause before retrying `accept` after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Output beyond `mqtt.max_queued_bytes` a connection may have before we stop reading from it.
const OUTPUT_SLACK: usize = 64 * 1024;

pub struct Shard {
    id: u16,
    poll: Poll,
    listeners: Vec<(TcpListener, Arc<ListenerSpec>)>,
    /// Boxed: the slab grows by doubling, and an idle connection should cost its own size, not
    /// up to twice that in spare slots.
    conns: Slab<Box<Connection>>,
    generation: u32,
    ctx: Arc<ShardContext>,
    wiring: Wiring,
    scratch: Vec<u8>,
    acks: Vec<Vec<AckToken>>,
    dirty: Vec<usize>,
    read_again: Vec<usize>,
    resume: bool,
    accept_retry: Option<Instant>,
    stopping: bool,
}

/// What connects a shard to the rest of the process: its inbox from the backends and its control
/// channel, the waker behind both, and the other shards.
pub struct Wiring {
    /// Handed to the backends (with each Join, with each command) so that what they answer
    /// reaches `inbox`.
    pub link: ShardLink,
    pub notify: Arc<ShardNotify>,
    pub inbox: Receiver<ToShard>,
    pub control: Receiver<Control>,
    pub peers: Arc<[ShardPeer]>,
}

impl Shard {
    pub fn new(
        id: u16,
        poll: Poll,
        sockets: Vec<(std::net::TcpListener, Arc<ListenerSpec>)>,
        ctx: Arc<ShardContext>,
        wiring: Wiring,
    ) -> io::Result<Shard> {
        let mut listeners = Vec::with_capacity(sockets.len());
        for (i, (s, spec)) in sockets.into_iter().enumerate() {
            let mut l = TcpListener::from_std(s);
            poll.registry()
                .register(&mut l, Token(LISTENER_BASE + i), Interest::READABLE)?;
            listeners.push((l, spec));
        }
        let workers = ctx.backend.workers();
        Ok(Shard {
            id,
            poll,
            listeners,
            conns: Slab::new(),
            generation: 0,
            ctx,
            wiring,
            scratch: vec![0; SCRATCH],
            acks: vec![Vec::new(); workers],
            dirty: Vec::new(),
            read_again: Vec::new(),
            resume: false,
            accept_retry: None,
            stopping: false,
        })
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        loop {
            self.ctx.liveness.beat(usize::from(self.id));
            let now = Instant::now();
            let timeout = if self.read_again.is_empty() {
                next_tick.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(shard = self.id, "poll failed, shard stops: {e}");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE),
                    Token(slot) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(slot);
                        }
                        self.mark_dirty(slot);
                    }
                }
            }
            for slot in std::mem::take(&mut self.read_again) {
                self.read(slot);
                self.mark_dirty(slot);
            }
            self.drain_channels();
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now);
                next_tick = now + TICK;
            }
            self.flush_dirty();
            self.flush_acks();
            if self.stopping && self.conns.is_empty() {
                break;
            }
        }
        tracing::debug!(shard = self.id, "shard stopped");
    }

    // ----- accepting ----------------------------------------------------------------------

    fn accept(&mut self, index: usize) {
        if self.stopping {
            return;
        }
        loop {
            let Some((listener, spec)) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    let spec = spec.clone();
                    self.admit(stream, peer, &spec)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(23) | Some(24)) => {
                    // EMFILE/ENFILE: out of file descriptors. Back off rather than spin or exit;
                    // the pending connections stay in the kernel's queue meanwhile.
                    tracing::warn!(shard = self.id, "cannot accept: {e}; raise the open-files limit (ulimit -n) or lower server.max_connections");
                    self.accept_retry = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => {
                    tracing::warn!(shard = self.id, "accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: std::net::SocketAddr, spec: &ListenerSpec) {
        if !self.ctx.per_ip.admit(peer.ip()) {
            tracing::warn!(%peer, "connection refused: server.max_connections_per_ip reached for this address");
            return;
        }
        let open = self.ctx.connections.fetch_add(1, Ordering::AcqRel);
        if open >= self.ctx.max_connections {
            self.ctx.connections.fetch_sub(1, Ordering::AcqRel);
            self.ctx.per_ip.release(peer.ip());
            tracing::warn!(%peer, limit = self.ctx.max_connections, "connection refused: server.max_connections reached");
            return;
        }
        // Events are small and latency matters more than packet count (spec targets p99 ≤ 2 ms).
        let _ = stream.set_nodelay(true);
        let mut transport = match Transport::new(spec, stream) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%peer, "cannot set up the connection: {e}");
                self.ctx.connections.fetch_sub(1, Ordering::AcqRel);
                self.ctx.per_ip.release(peer.ip());
                return;
            }
        };
        let Some(socket) = transport.socket() else {
            self.ctx.connections.fetch_sub(1, Ordering::AcqRel);
            self.ctx.per_ip.release(peer.ip());
            return;
        };
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        self.generation = self.generation.wrapping_add(1);
        let id = ConnId {
            shard: self.id,
            slot: slot as u32,
            generation: self.generation,
        };
        if let Err(e) = self.poll.registry().register(
            socket,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(%peer, "cannot register connection: {e}");
            self.ctx.connections.fetch_sub(1, Ordering::AcqRel);
            self.ctx.per_ip.release(peer.ip());
            return;
        }
        let protocol = spec.protocol();
        let session = Session::new(id, self.ctx.session.clone(), Instant::now());
        entry.insert(Box::new(Connection::new(
            transport, protocol, peer, session,
        )));
        self.ctx.metrics.connection_opened(protocol);
    }

    // ----- reading ------------------------------------------------------------------------

    fn read(&mut self, slot: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        // Stays true only if every read of the budget returned data: more may be waiting, and
        // with edge-triggered readiness nobody will say so again, so read again next turn.
        let mut budget_spent = true;
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.conns.get_mut(slot) else {
                budget_spent = false;
                break;
            };
            if conn.session.is_closed() || conn.reject_at.is_some() {
                budget_spent = false;
                break;
            }
            if conn.session.out().len() > self.ctx.max_queued_bytes + OUTPUT_SLACK {
                // The client sends but does not read (PINGREQ floods, say): stop reading until
                // it takes what we have, so its answers cannot pile up without bound.
                conn.read_paused = true;
                budget_spent = false;
                break;
            }
            match conn.transport.read(&mut scratch) {
                Ok(0) => {
                    self.close(slot, "connection closed by peer");
                    budget_spent = false;
                    break;
                }
                Ok(n) => {
                    self.ctx.metrics.bytes_received(n);
                    self.feed(slot, &scratch[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    budget_spent = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() == io::ErrorKind::InvalidData {
                        // A failed TLS handshake or WebSocket upgrade: operators want to see these.
                        tracing::info!(peer = %conn.peer(), protocol = ?conn.protocol, "connection refused: {e}");
                    }
                    self.close(slot, &format!("read failed: {e}"));
                    budget_spent = false;
                    break;
                }
            }
        }
        if budget_spent && self.conns.contains(slot) {
            self.read_again.push(slot);
        }
        self.scratch = scratch;
    }

    fn feed(&mut self, slot: usize, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let mut buf = std::mem::take(&mut conn.inbuf);
        let use_buf = !buf.is_empty();
        if use_buf {
            buf.extend_from_slice(data);
        }
        let mut consumed = 0;
        loop {
            let input: &[u8] = if use_buf {
                &buf[consumed..]
            } else {
                &data[consumed..]
            };
            let Some(conn) = self.conns.get_mut(slot) else {
                return;
            };
            let n = conn.session.handle_input(Instant::now(), input);
            consumed += n;
            let progressed = self.process_events(slot);
            let Some(conn) = self.conns.get(slot) else {
                return;
            };
            if conn.session.is_closed() || (n == 0 && !progressed) {
                break;
            }
        }
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        conn.inbuf = if use_buf {
            // Copies what remains: at most one partial packet.
            buf.drain(..consumed);
            buf
        } else {
            data[consumed..].to_vec()
        };
    }

    // ----- session events -----------------------------------------------------------------

    /// Acts on what the session asked for (see [`Effects`]). Returns whether there was anything.
    fn process_events(&mut self, slot: usize) -> bool {
        let mut any = false;
        loop {
            let Some(conn) = self.conns.get_mut(slot) else {
                return any;
            };
            let Some(event) = conn.session.poll_event() else {
                return any;
            };
            any = true;
            let mut act = Effects {
                ctx: &self.ctx,
                link: &self.wiring.link,
                acks: &mut self.acks,
            };
            if let Some(previous) = act.apply(conn, event) {
                self.kick(previous);
            }
        }
    }

    fn kick(&mut self, previous: ConnId) {
        if previous.shard == self.id {
            self.kick_local(previous);
        } else if let Some(peer) = self.wiring.peers.get(usize::from(previous.shard)) {
            peer.send(Control::Kick(previous));
        }
    }

    fn kick_local(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id) {
            tracing::info!(
                client = conn.session.client_id(),
                "client id taken over by a new connection"
            );
            conn.session.taken_over();
            self.mark_dirty(id.slot as usize);
        }
    }

    fn recheck_rights(&mut self) {
        let registry = self.ctx.session.registry.load();
        let revoked: Vec<usize> = self
            .conns
            .iter_mut()
            .filter_map(|(slot, conn)| conn.session.recheck_rights(&registry).then_some(slot))
            .collect();
        for slot in revoked {
            self.mark_dirty(slot);
        }
    }

    // ----- channels -----------------------------------------------------------------------

    fn drain_channels(&mut self) {
        self.wiring.notify.clear();
        while let Ok(msg) = self.wiring.control.try_recv() {
            match msg {
                Control::Kick(id) => self.kick_local(id),
                Control::RecheckRights => self.recheck_rights(),
                Control::Shutdown => self.begin_shutdown(),
            }
        }
        while let Ok(msg) = self.wiring.inbox.try_recv() {
            match msg {
                ToShard::Joined {
                    conn,
                    member,
                    request,
                    result,
                } => {
                    if let Some(c) = self.conn_mut(conn) {
                        c.session.joined(member, request, result);
                        self.mark_dirty(conn.slot as usize);
                    }
                }
                ToShard::Deliveries(batch) => {
                    for d in batch {
                        let id = d.conn;
                        if let Some(c) = self.conn_mut(id) {
                            c.session.deliver(d);
                            self.mark_dirty(id.slot as usize);
                        }
                        // A connection that is gone has nothing to release: its credit went with it.
                    }
                }
                ToShard::Produced {
                    conn,
                    packet_id,
                    result,
                } => {
                    effects::command_produced(&self.ctx.metrics, conn, packet_id, &result);
                    if packet_id != 0 {
                        if let Some(c) = self.conn_mut(conn) {
                            c.session.command_done(packet_id, result);
                            self.mark_dirty(conn.slot as usize);
                        }
                    }
                }
            }
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.conns
            .get_mut(id.slot as usize)
            .map(|c| &mut **c)
            .filter(|c| c.id().generation == id.generation)
    }

    // ----- timers -------------------------------------------------------------------------

    fn tick(&mut self, now: Instant) {
        if self.accept_retry.is_some_and(|t| now >= t) {
            self.accept_retry = None;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
        let mut expired = Vec::new();
        for (slot, conn) in self.conns.iter_mut() {
            if let Some(&(at, refusal)) = conn.reject_at.as_deref() {
                if now >= at {
                    conn.reject_at = None;
                    conn.session.reject_connect(refusal);
                    expired.push(slot);
                }
                continue;
            }
            if conn.session.poll_timeout().is_some_and(|t| now >= t) {
                conn.session.handle_timeout(now);
                expired.push(slot);
            }
            // Buffers a burst left behind go back: thousands of idle connections should
            // cost their structs only.
            conn.session.trim();
            if conn.inbuf.is_empty() && conn.inbuf.capacity() > 0 {
                conn.inbuf = Vec::new();
            }
        }
        for slot in expired {
            self.mark_dirty(slot);
        }
    }

    // ----- writing ------------------------------------------------------------------------

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    fn flush_dirty(&mut self) {
        // Flushing may close connections, which queues nothing new; iterate a snapshot.
        let dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            self.flush(slot);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    fn flush(&mut self, slot: usize) {
        self.process_events(slot);
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        conn.dirty = false;
        effects::count_session(&self.ctx.metrics, conn);
        let mut released = 0u64;
        let mut failed = None;
        // TLS records or WebSocket frames (and handshake answers) the transport still holds.
        match conn.transport.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                failed = Some(format!("write failed: {e}"))
            }
            _ => {}
        }
        while failed.is_none() {
            let out = conn.session.out();
            let mut slices = [IoSlice::new(&[]); 64];
            let n = out.io_slices(&mut slices);
            if n == 0 {
                break;
            }
            match conn.transport.write_vectored(&slices[..n]) {
                Ok(0) => {
                    failed = Some("connection closed while writing".to_owned());
                    break;
                }
                Ok(written) => {
                    released += u64::from(conn.session.out().consume(written));
                    self.ctx.metrics.bytes_sent(written);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(format!("write failed: {e}"));
                    break;
                }
            }
        }
        let queued = conn.session.out().len();
        if conn.read_paused && queued <= self.ctx.max_queued_bytes {
            conn.read_paused = false;
            self.read_again.push(slot);
        }
        if queued != conn.counted_queued {
            self.ctx
                .metrics
                .add_queued_bytes(queued as i64 - conn.counted_queued as i64);
            conn.counted_queued = queued;
        }
        released += conn.session.take_released();
        if conn.release(released) {
            self.resume = true;
        }
        if let Some(why) = failed {
            self.close(slot, &why);
        } else if conn.session.is_closed() {
            let reason = conn.session.close_reason();
            // What an operator should hear about: the client broke the rules or lost its right
            // to stay. Ordinary goodbyes and timeouts stay at debug (they are many under load).
            if matches!(
                reason,
                Some(
                    CloseReason::ProtocolViolation { .. }
                        | CloseReason::TokenExpired
                        | CloseReason::ReauthenticationFailed
                        | CloseReason::RightsRevoked { .. }
                        | CloseReason::CommandFailed(_)
                )
            ) {
                tracing::info!(peer = %conn.peer(), client = conn.session.client_id(), "closing the connection: {reason:?}");
            }
            let why = reason.map(|r| format!("{r:?}")).unwrap_or_default();
            self.close(slot, &why);
        }
    }

    fn flush_acks(&mut self) {
        for worker in 0..self.acks.len() {
            send_acks(&self.ctx.backend, &mut self.acks, worker as u16);
        }
        if std::mem::take(&mut self.resume) {
            self.ctx.backend.broadcast(|| ToBackend::Resume);
        }
    }

    // ----- closing ------------------------------------------------------------------------

    fn close(&mut self, slot: usize, why: &str) {
        if !self.conns.contains(slot) {
            return;
        }
        // Acks the session produced before closing still count.
        self.process_events(slot);
        let mut conn = self.conns.remove(slot);
        conn.transport.close();
        if let Some(socket) = conn.transport.socket() {
            let _ = self.poll.registry().deregister(socket);
        }
        tracing::debug!(peer = %conn.peer(), client = conn.session.client_id(), "connection closed: {why}");
        let mut act = Effects {
            ctx: &self.ctx,
            link: &self.wiring.link,
            acks: &mut self.acks,
        };
        for (group, unsent) in conn.session.teardown() {
            act.leave(conn.id(), group, unsent);
        }
        let released = conn.session.take_released();
        conn.release(released);
        effects::forget(&self.ctx, &conn);
        self.ctx.connections.fetch_sub(1, Ordering::AcqRel);
        self.ctx.per_ip.release(conn.peer_ip());
        self.ctx.metrics.connection_closed(conn.protocol);
    }

    fn begin_shutdown(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for (mut l, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        let slots: Vec<usize> = self.conns.iter().map(|(s, _)| s).collect();
        for slot in slots {
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.session.shutdown();
            }
            self.flush(slot);
        }
    }
}

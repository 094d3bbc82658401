//! One HTTP event loop: a mio poll over its share of the connections, the listening socket
//! (every loop accepts from it; whichever is free first takes the connection), its inbox of
//! deferred replies, and the deadlines of its connections.
//!
//! Deadlines sit in a heap with at most a couple of entries per connection: an entry is pushed
//! only when a connection's deadline moves earlier than the one it already has there; when an
//! entry comes due the connection's actual deadline is worked out again, and pushed back if it
//! moved later (a keep-alive connection that keeps sending pushes nothing per request).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::connection::{Conn, Ctx};
use super::handler::Handler;
use super::pool::Full;
use super::responder::{Delivery, Inbox};
use super::response::{Connection, Reply};
use super::{Shared, STOP_WAIT};

const LISTENER: Token = Token(usize::MAX - 1);
pub(super) const WAKER: Token = Token(usize::MAX);

/// Bytes read from a socket at once (shared by the loop's connections).
const SCRATCH: usize = 64 * 1024;

pub(super) struct EventLoop<H> {
    pub poll: Poll,
    pub listener: TcpListener,
    pub inbox: Arc<Inbox>,
    pub replies: Receiver<Delivery>,
    pub shared: Arc<Shared<H>>,
}

struct State {
    conns: Slab<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Connections that stopped for their budget with more to do.
    again: Vec<usize>,
    scratch: Box<[u8]>,
    next_seq: u64,
}

impl<H: Handler> EventLoop<H> {
    pub fn run(mut self) {
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut self.listener, LISTENER, Interest::READABLE)
        {
            tracing::error!(error = %e, "HTTP event loop cannot watch its listener");
            return;
        }
        let mut state = State {
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            again: Vec::new(),
            scratch: vec![0; SCRATCH].into_boxed_slice(),
            next_seq: 0,
        };
        let mut events = Events::with_capacity(1024);
        let mut stop_by: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if stop_by.is_none() && self.shared.stopping.load(Ordering::Acquire) {
                let _ = self.poll.registry().deregister(&mut self.listener);
                stop_by = Some(now + STOP_WAIT);
                let idle: Vec<usize> = state
                    .conns
                    .iter()
                    .filter(|(_, c)| c.idle())
                    .map(|(k, _)| k)
                    .collect();
                for key in idle {
                    state.conns[key].close();
                    self.settle(&mut state, key);
                }
            }
            if let Some(stop_by) = stop_by {
                if state.conns.is_empty() {
                    return;
                }
                if now >= stop_by {
                    tracing::warn!(
                        connections = state.conns.len(),
                        "HTTP requests still in progress at shutdown"
                    );
                    return;
                }
            }
            let timeout = if !state.again.is_empty() {
                Some(Duration::ZERO)
            } else {
                let next = state.timers.peek().map(|Reverse((at, _))| *at);
                let mut timeout = next.map(|at| at.saturating_duration_since(now));
                if stop_by.is_some() {
                    // Looks up now and then for the last requests to finish.
                    timeout = Some(timeout.map_or(Duration::from_millis(50), |t| {
                        t.min(Duration::from_millis(50))
                    }));
                }
                timeout
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "HTTP event loop cannot poll; it stops");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(&mut state),
                    WAKER => {}
                    Token(key) => {
                        let Some(conn) = state.conns.get_mut(key) else {
                            continue;
                        };
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            conn.readable = true;
                        }
                        if event.is_writable() || event.is_write_closed() || event.is_error() {
                            conn.writable = true;
                        }
                        self.step(&mut state, key);
                    }
                }
            }
            for key in std::mem::take(&mut state.again) {
                if state.conns.contains(key) {
                    self.step(&mut state, key);
                }
            }
            self.replies(&mut state);
            self.deadlines(&mut state);
        }
    }

    fn ctx<'a>(&'a self, scratch: &'a mut [u8], next_seq: &'a mut u64) -> Ctx<'a, H> {
        Ctx {
            handler: &self.shared.handler,
            limits: &self.shared.limits,
            stopping: self.shared.stopping.load(Ordering::Acquire),
            inbox: &self.inbox,
            scratch,
            next_seq,
            now: Instant::now(),
        }
    }

    /// Lets connection `key` do what it can, then closes it or schedules its deadline.
    fn step(&self, state: &mut State, key: usize) {
        let State {
            conns,
            scratch,
            next_seq,
            again,
            ..
        } = state;
        let mut ctx = self.ctx(scratch, next_seq);
        if conns[key].drive(&mut ctx) {
            again.push(key);
        }
        self.settle(state, key);
    }

    /// Closes connection `key` if it is done, else makes sure its deadline is in the heap.
    fn settle(&self, state: &mut State, key: usize) {
        let conn = &mut state.conns[key];
        if conn.done() {
            let mut conn = state.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            // Before the socket closes: see `pool::Slot::fd`.
            self.shared.pool.release(&conn.slot);
            drop(conn);
            return;
        }
        if let Some(at) = conn.deadline(&self.shared.limits) {
            if conn.scheduled.map_or(true, |s| at < s) {
                conn.scheduled = Some(at);
                state.timers.push(Reverse((at, key)));
            }
        }
    }

    fn replies(&self, state: &mut State) {
        self.inbox.woken.store(false, Ordering::Release);
        while let Ok(delivery) = self.replies.try_recv() {
            let State {
                conns,
                scratch,
                next_seq,
                ..
            } = state;
            match delivery {
                Delivery::Reply { key, seq, reply } => {
                    let Some(conn) = conns.get_mut(key) else {
                        continue;
                    };
                    let mut ctx = self.ctx(scratch, next_seq);
                    conn.deliver(&mut ctx, seq, reply);
                    self.step(state, key);
                }
                Delivery::Evict { key, slot } => {
                    let Some(conn) = conns.get_mut(key) else {
                        continue;
                    };
                    if conn.slot.id() == slot {
                        conn.close();
                        self.settle(state, key);
                    }
                }
            }
        }
    }

    fn deadlines(&self, state: &mut State) {
        let now = Instant::now();
        while let Some(&Reverse((at, key))) = state.timers.peek() {
            if at > now {
                break;
            }
            state.timers.pop();
            let State {
                conns,
                scratch,
                next_seq,
                ..
            } = state;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if conn.scheduled != Some(at) {
                // Superseded by an earlier entry, which already came due.
                continue;
            }
            conn.scheduled = None;
            let mut ctx = self.ctx(scratch, next_seq);
            conn.expire(&mut ctx);
            self.step(state, key);
        }
    }

    fn accept(&self, state: &mut State) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, mostly: the listener stays ready, so the loop
                    // comes back to it; no point spinning on it now.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    return;
                }
            };
            let key = state.conns.vacant_key();
            let owner = Some((self.inbox.clone(), key));
            let slot = match self.shared.pool.admit(peer.ip(), owner) {
                Ok(slot) => slot,
                Err(full) => {
                    self.turn_away(&stream, full, peer.ip());
                    continue;
                }
            };
            // Answers are written whole; no reason to hold their last segment back.
            let _ = stream.set_nodelay(true);
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!(error = %e, "cannot watch an HTTP connection");
                self.shared.pool.release(&slot);
                continue;
            }
            let inserted = state
                .conns
                .insert(Conn::new(stream, slot, key, Instant::now()));
            debug_assert_eq!(inserted, key);
            self.step(state, key);
        }
    }

    fn turn_away(&self, stream: &TcpStream, full: Full, ip: std::net::IpAddr) {
        let limits = &self.shared.limits;
        let message = match full {
            Full::Everywhere => format!(
                "the server holds its maximum of {} HTTP connections, all in the middle of a request; retry later or reuse a connection",
                limits.max_connections
            ),
            Full::FromAddress => format!(
                "the server holds its maximum of {} HTTP connections from {ip} (http.max_connections_per_ip); reuse a connection or retry later",
                limits.max_connections_per_ip
            ),
        };
        tracing::warn!(%ip, "HTTP connection refused: {message}");
        let mut wire = Vec::new();
        Reply::error(503, message).encode(&mut wire, false, Connection::Close);
        // A fresh socket's send buffer takes this whole; if not, the client hears nothing more.
        let _ = io::Write::write(&mut &*stream, &wire);
        let _ = stream.shutdown(Shutdown::Write);
    }
}

//! One HTTP connection on an event loop: a state machine that reads requests from what arrived,
//! asks the handler about each, and queues the replies in order, as far as the bytes received
//! and the room in its output allow. It never waits: it stops where it would have to and
//! carries on when the loop tells it that something changed (bytes in, room out, a deferred
//! reply, a deadline).
//!
//! Backpressure is the natural one: while a request is handled (a deferred reply pending) or
//! the output holds [`OUT_LIMIT`] bytes the client has not read, nothing more is read, so a
//! pipelining client that never reads its answers fills its own socket buffers, not the
//! server's memory.

use std::io::{self, Write};

use std::net::Shutdown;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::body::BodyState;
use super::handler::{Answer, Handler};
use super::head::{self, Framing, Head, HeadError, Method};
use super::inbound::Inbound;
use super::pool::{Place, Slot};
use super::request::Request;
use super::responder::{Inbox, Responder};
use super::response::{Connection, Reply};
use super::HttpLimits;

mod body_phase;

/// Most reply bytes held for a client that does not read them; past it, no further request is
/// read from that client.
pub(crate) const OUT_LIMIT: usize = 64 * 1024;

/// How long a connection closed with a request's body unread goes on reading (and dropping) what
/// the client still sends, so that the kernel does not answer it with a reset that could destroy
/// the response before the client read it (RFC 9112 section 9.6).
const LINGER: Duration = Duration::from_secs(1);

/// Most of a body that no handler read is read and dropped, so that the connection can carry
/// the next request and a client that sends its whole body before reading sees the answer
/// rather than a reset. Past this, the connection is closed after the answer.
pub(crate) const DRAIN_AT_MOST: u64 = 64 * 1024 * 1024;

/// Steps one connection may take in one go before the loop turns to the others.
const BUDGET: usize = 64;

/// What the connection's loop lends it for one step.
pub(super) struct Ctx<'a, H> {
    pub handler: &'a H,
    pub limits: &'a HttpLimits,
    pub stopping: bool,
    pub inbox: &'a Arc<Inbox>,
    pub scratch: &'a mut [u8],
    /// The loop's request counter, so that a late reply for a connection whose slot was reused
    /// is told apart.
    pub next_seq: &'a mut u64,
    pub now: Instant,
}

/// The request being answered, as much as its reply needs.
struct Pending {
    method: Method,
    target: String,
    head_only: bool,
    http10: bool,
    keep_alive: bool,
}

enum Phase {
    /// Between requests, or a head arriving.
    Head,
    /// Reading a body the handler asked for.
    Body {
        request: Pending,
        state: BodyState,
        limit: usize,
        data: Vec<u8>,
        then: Box<dyn FnOnce(Vec<u8>) -> Answer + Send>,
    },
    /// Reading and dropping a body no handler reads, then sending `reply`.
    Skip {
        request: Pending,
        state: BodyState,
        skipped: u64,
        reply: Reply,
    },
    /// The handler answers later: request `seq`, `on_timeout` at `deadline`.
    Waiting {
        request: Pending,
        seq: u64,
        deadline: Instant,
        on_timeout: Box<dyn FnOnce() -> Reply + Send>,
    },
    /// The last reply goes out, then the connection closes (lingering if `linger`).
    Closing { linger: bool },
    /// Write side shut: what still arrives is dropped until the client closes or `until`.
    Lingering { until: Instant },
    /// Finished: the loop closes the socket.
    Done,
}

pub(super) struct Conn {
    pub stream: TcpStream,
    pub slot: Arc<Slot>,
    pub key: usize,
    inbound: Inbound,
    out: Vec<u8>,
    out_sent: usize,
    phase: Phase,
    /// The socket may have bytes to read / room to write (edge-triggered readiness, cleared by
    /// a `WouldBlock`).
    pub readable: bool,
    pub writable: bool,
    /// When bytes last arrived, or the connection last became ready for the next request.
    last_in: Instant,
    /// When the client last took bytes of the output (or the output became non-empty).
    last_out: Instant,
    /// When the head being read started arriving.
    head_since: Option<Instant>,
    /// The earliest deadline the loop's timer holds for this connection.
    pub scheduled: Option<Instant>,
}

impl Conn {
    pub fn new(stream: TcpStream, slot: Arc<Slot>, key: usize, now: Instant) -> Conn {
        Conn {
            stream,
            slot,
            key,
            inbound: Inbound::default(),
            out: Vec::new(),
            out_sent: 0,
            phase: Phase::Head,
            readable: true,
            writable: true,
            last_in: now,
            last_out: now,
            head_since: None,
            scheduled: None,
        }
    }

    pub fn done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Whether the connection waits for a request and holds nothing (closed when the server
    /// stops).
    pub fn idle(&self) -> bool {
        matches!(self.phase, Phase::Head)
            && self.inbound.buffered().is_empty()
            && self.out_sent == self.out.len()
    }

    /// Closes an idle connection at once (the server stops).
    pub fn close(&mut self) {
        self.phase = Phase::Done;
    }

    /// Does what can be done now: write, read, parse, handle, as far as each allows.
    /// Returns `true` if it stopped for its budget with more to do.
    pub fn drive<H: Handler>(&mut self, ctx: &mut Ctx<'_, H>) -> bool {
        for _ in 0..BUDGET {
            self.flush(ctx.now);
            if self.done() {
                return false;
            }
            let advanced = self.advance(ctx);
            if self.done() {
                return false;
            }
            if advanced {
                continue;
            }
            if self.wants_input() && self.readable {
                match self.inbound.receive(&mut self.stream, ctx.scratch) {
                    Ok(_) if self.inbound.eof => {}
                    Ok(full) => {
                        self.last_in = ctx.now;
                        // A short read emptied the socket: bytes arriving later raise a new
                        // readiness event, so asking again now would only hear `WouldBlock`
                        // (one system call per request saved).
                        self.readable = full;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "HTTP connection failed");
                        self.phase = Phase::Done;
                        return false;
                    }
                }
                continue;
            }
            return false;
        }
        true
    }

    /// Whether reading more would serve a purpose now.
    fn wants_input(&self) -> bool {
        if self.inbound.eof || !self.inbound.has_room() {
            return false;
        }
        match self.phase {
            Phase::Head => self.out.len() - self.out_sent < OUT_LIMIT,
            Phase::Body { .. } | Phase::Skip { .. } | Phase::Lingering { .. } => true,
            Phase::Waiting { .. } | Phase::Closing { .. } | Phase::Done => false,
        }
    }

    /// Writes what the output holds, as far as the socket takes it.
    fn flush(&mut self, now: Instant) {
        while self.writable && self.out_sent < self.out.len() {
            match self.stream.write(&self.out[self.out_sent..]) {
                Ok(0) => {
                    self.phase = Phase::Done;
                    return;
                }
                Ok(n) => {
                    self.out_sent += n;
                    self.last_out = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "could not send the HTTP response; the client went away");
                    self.phase = Phase::Done;
                    return;
                }
            }
        }
        if self.out_sent == self.out.len() && !self.out.is_empty() {
            self.out.clear();
            self.out_sent = 0;
            if self.out.capacity() > OUT_LIMIT {
                self.out = Vec::new();
            }
        }
    }

    /// One step of the state machine on what is buffered; whether anything changed.
    fn advance<H: Handler>(&mut self, ctx: &mut Ctx<'_, H>) -> bool {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Head => self.next_head(ctx),
            Phase::Body {
                request,
                state,
                limit,
                data,
                then,
            } => self.read_body(ctx, request, state, limit, data, then),
            Phase::Skip {
                request,
                state,
                skipped,
                reply,
            } => self.skip_body(ctx, request, state, skipped, reply),
            waiting @ Phase::Waiting { .. } => {
                self.phase = waiting;
                false
            }
            Phase::Closing { linger } => {
                if self.out_sent < self.out.len() {
                    self.phase = Phase::Closing { linger };
                    return false;
                }
                let _ = self.stream.shutdown(Shutdown::Write);
                self.phase = if linger {
                    Phase::Lingering {
                        until: ctx.now + LINGER,
                    }
                } else {
                    Phase::Done
                };
                true
            }
            Phase::Lingering { until } => {
                self.inbound.discard();
                self.phase = if self.inbound.eof {
                    Phase::Done
                } else {
                    Phase::Lingering { until }
                };
                false
            }
            Phase::Done => false,
        }
    }

    fn next_head<H: Handler>(&mut self, ctx: &mut Ctx<'_, H>) -> bool {
        self.phase = Phase::Head;
        if self.out.len() - self.out_sent >= OUT_LIMIT {
            return false;
        }
        let buffered = self.inbound.buffered();
        if buffered.is_empty() {
            if self.inbound.eof {
                self.phase = Phase::Done;
            }
            return false;
        }
        if self.head_since.is_none() {
            // The clock runs from the first byte (or from now, for a head that came along with
            // the previous request).
            self.head_since = Some(ctx.now);
            if !self.slot.head_started() {
                // Closed to make room for a newer connection just as a request arrived.
                self.phase = Phase::Done;
                return false;
            }
        }
        let (head, len) = match head::parse(buffered) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                if self.inbound.eof {
                    tracing::debug!(
                        "the client closed the connection in the middle of a request head"
                    );
                    self.phase = Phase::Done;
                }
                return false;
            }
            Err(e) => {
                self.refuse(e);
                return true;
            }
        };
        io::BufRead::consume(&mut self.inbound, len);
        self.head_since = None;
        if !self.slot.handling() {
            self.phase = Phase::Done;
            return false;
        }
        if self.slot.place == Place::Reserve && !ctx.handler.answers_on_reserve(&head.target) {
            self.refuse(HeadError {
                status: 503,
                message: "the server holds as many HTTP connections as it may, all busy; \
                          only /healthz, /readyz and /metrics are answered now; retry later"
                    .to_owned(),
            });
            // Its body (an ingest's, say) is not read: let the answer arrive before the close.
            self.phase = Phase::Closing { linger: true };
            return true;
        }
        let framing = match head.framing() {
            Ok(framing) => framing,
            Err(e) => {
                self.refuse(e);
                return true;
            }
        };
        let answer = guarded(&head, || ctx.handler.handle(&Request::new(&head, framing)));
        let request = Pending {
            method: head.method.clone(),
            target: head.target.clone(),
            head_only: head.method == Method::Head,
            http10: head.http10,
            keep_alive: head.keep_alive(),
        };
        let state = BodyState::new(framing);
        match answer {
            Answer::Now(reply) if state.finished() => self.answer(ctx, request, reply, false),
            Answer::Now(reply) => {
                if head.expects_continue() {
                    // The client still waits to be asked for its body: nothing of it to skip,
                    // and nothing tells where the next request would start.
                    self.answer(ctx, request, reply, true);
                } else if reply.status == 413 {
                    // Refused for its size: the `413` goes out at once, and the connection
                    // closes (a client that sent only the head would otherwise wait for the
                    // stall timeout before hearing it).
                    self.answer(ctx, request, reply, true);
                    self.phase = Phase::Closing { linger: true };
                } else {
                    self.phase = Phase::Skip {
                        request,
                        state,
                        skipped: 0,
                        reply,
                    };
                }
            }
            Answer::Body { limit, then } => {
                if matches!(framing, Framing::Length(n) if n > limit as u64) {
                    self.answer(ctx, request, too_large(limit), true);
                    self.phase = Phase::Closing { linger: true };
                } else {
                    if head.expects_continue() && !state.finished() {
                        self.queue_raw(b"HTTP/1.1 100 Continue\r\n\r\n", ctx.now);
                    }
                    self.phase = Phase::Body {
                        request,
                        state,
                        limit,
                        data: Vec::new(),
                        then,
                    };
                }
            }
            Answer::Later(deferred) if state.finished() => {
                self.defer(ctx, request, deferred);
            }
            Answer::Later(_) => {
                tracing::error!(
                    url = head.target,
                    "HTTP handler deferred a request whose body it did not read"
                );
                let reply = internal_error();
                self.answer(ctx, request, reply, true);
            }
        }
        true
    }

    fn defer<H: Handler>(
        &mut self,
        ctx: &mut Ctx<'_, H>,
        request: Pending,
        deferred: super::handler::Deferred,
    ) {
        *ctx.next_seq += 1;
        let seq = *ctx.next_seq;
        self.phase = Phase::Waiting {
            request,
            seq,
            deadline: ctx.now + deferred.timeout,
            on_timeout: deferred.on_timeout,
        };
        let responder = Responder::new(ctx.inbox.clone(), self.key, seq);
        if catch_unwind(AssertUnwindSafe(|| (deferred.start)(responder))).is_err() {
            tracing::error!("HTTP handler panicked starting a deferred reply");
            if let Phase::Waiting { request, .. } = std::mem::replace(&mut self.phase, Phase::Done)
            {
                self.answer(ctx, request, internal_error(), true);
            }
        }
    }

    /// A deferred reply arrived for request `seq`.
    pub fn deliver<H: Handler>(&mut self, ctx: &mut Ctx<'_, H>, seq: u64, reply: Reply) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Waiting {
                request, seq: s, ..
            } if s == seq => self.answer(ctx, request, reply, false),
            // Too late: the request timed out (or this is another connection now).
            other => self.phase = other,
        }
    }

    /// The earliest moment something must happen to this connection if nothing else does.
    pub fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        let stall = self.last_in + limits.stall;
        let phase = match &self.phase {
            Phase::Head if self.head_since.is_some() || !self.inbound.buffered().is_empty() => {
                let since = self.head_since.unwrap_or(self.last_in);
                Some((since + limits.head_timeout).min(stall))
            }
            Phase::Head => Some(self.last_in + self.idle_patience(limits)),
            Phase::Body { .. } | Phase::Skip { .. } => Some(stall),
            Phase::Waiting { deadline, .. } => Some(*deadline),
            Phase::Closing { .. } => None,
            Phase::Lingering { until } => Some(*until),
            Phase::Done => None,
        };
        let writing = (self.out_sent < self.out.len()).then_some(self.last_out + limits.stall);
        match (phase, writing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn idle_patience(&self, limits: &HttpLimits) -> Duration {
        match self.slot.place {
            Place::General => limits.idle,
            // A reserve connection is for one probe, which sends its head at once.
            Place::Reserve => limits.idle.min(limits.head_timeout),
        }
    }

    /// A deadline passed: does what it calls for, if it is still due.
    pub fn expire<H: Handler>(&mut self, ctx: &mut Ctx<'_, H>) {
        if self.out_sent < self.out.len() && ctx.now >= self.last_out + ctx.limits.stall {
            tracing::debug!("HTTP client read nothing of its answers for too long; closing");
            self.phase = Phase::Done;
            return;
        }
        let limits = ctx.limits;
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Head if self.head_since.is_some() || !self.inbound.buffered().is_empty() => {
                let since = self.head_since.unwrap_or(self.last_in);
                let message = if ctx.now >= since + limits.head_timeout {
                    format!(
                        "the request head was not complete within {:.1} s of its first byte",
                        limits.head_timeout.as_secs_f64()
                    )
                } else if ctx.now >= self.last_in + limits.stall {
                    silent(limits.stall)
                } else {
                    self.phase = Phase::Head;
                    return;
                };
                tracing::debug!(error = message, "HTTP connection failed");
                self.refuse(HeadError {
                    status: 408,
                    message: format!("{message}; the request was not complete"),
                });
            }
            Phase::Head => {
                if ctx.now < self.last_in + self.idle_patience(limits) {
                    self.phase = Phase::Head;
                }
            }
            Phase::Body { request, .. } if ctx.now >= self.last_in + limits.stall => {
                let e = io::Error::new(io::ErrorKind::TimedOut, silent(limits.stall));
                self.answer(ctx, request, unreadable(&e), true);
            }
            Phase::Skip { request, reply, .. } if ctx.now >= self.last_in + limits.stall => {
                self.answer(ctx, request, reply, true);
            }
            Phase::Waiting {
                request,
                deadline,
                on_timeout,
                ..
            } if ctx.now >= deadline => {
                let reply = on_timeout();
                self.answer(ctx, request, reply, false);
            }
            Phase::Lingering { until } if ctx.now < until => {
                self.phase = Phase::Lingering { until };
            }
            Phase::Lingering { .. } => {}
            other => self.phase = other,
        }
    }

    /// Queues the reply to `request`, keeping the connection open if it may be.
    fn answer<H: Handler>(
        &mut self,
        ctx: &mut Ctx<'_, H>,
        request: Pending,
        reply: Reply,
        close: bool,
    ) {
        reply.log(&request.method, &request.target);
        ctx.handler
            .answered(&request.method, &request.target, &reply);
        let reusable =
            !close && request.keep_alive && self.slot.place == Place::General && !ctx.stopping;
        let connection = match (reusable, request.http10) {
            (false, _) => Connection::Close,
            // An HTTP/1.0 client that asked to keep the connection open needs to hear yes.
            (true, true) => Connection::KeepAlive,
            (true, false) => Connection::Default,
        };
        if self.out_sent == self.out.len() {
            self.last_out = ctx.now;
        }
        reply.encode(&mut self.out, request.head_only, connection);
        if !reusable {
            self.phase = Phase::Closing { linger: false };
            return;
        }
        self.phase = Phase::Head;
        // The next request's idle time runs from now.
        self.last_in = ctx.now;
        if !self.slot.idle() {
            self.phase = Phase::Done;
        }
    }

    /// Answers a request that cannot be read, and closes: where its body ends is unknown.
    fn refuse(&mut self, e: HeadError) {
        tracing::debug!(status = e.status, error = e.message, "HTTP request refused");
        Reply::error(e.status, e.message).encode(&mut self.out, false, Connection::Close);
        self.phase = Phase::Closing { linger: false };
    }

    fn queue_raw(&mut self, bytes: &[u8], now: Instant) {
        if self.out_sent == self.out.len() {
            self.last_out = now;
        }
        self.out.extend_from_slice(bytes);
    }
}

fn silent(patience: Duration) -> String {
    format!("the client sent nothing for {} s", patience.as_secs())
}

fn too_large(limit: usize) -> Reply {
    Reply::error(
        413,
        format!("the request body is larger than {limit} bytes (the configured maximum); send less data per request"),
    )
}

fn unreadable(e: &io::Error) -> Reply {
    Reply::error(400, format!("could not read the request body: {e}"))
}

fn internal_error() -> Reply {
    Reply::error(
        500,
        "internal error while handling the request; see the service log",
    )
}

fn guarded(head: &Head, f: impl FnOnce() -> Answer) -> Answer {
    guarded_for(&head.method, &head.target, f)
}

/// A bug in a handler must not take the loop, and every connection on it, down.
fn guarded_for(method: &Method, url: &str, f: impl FnOnce() -> Answer) -> Answer {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!(%method, url, "HTTP handler panicked");
        Answer::Now(internal_error())
    })
}

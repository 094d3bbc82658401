//! One HTTP connection, served on its own thread: requests are read, handled and answered in
//! turn for as long as the client keeps the connection open.
//!
//! A thread per connection keeps a handler's wait for the backend simple (it blocks), and the
//! request is handled on the thread that read it: no hand-off between threads per request.
//! Ingest clients are few and keep their connections, so the threads are few too; the server
//! bounds their number.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::body::Body;
use super::handler::Handler;
use super::head::{self, Head, HeadError, Method};
use super::inbound::{Gone, Inbound};
use super::pool::{Place, Slot};
use super::request::Request;
use super::response::{Connection, Reply};

/// How often a waiting connection thread looks up (to notice that the server stops).
const POLL: Duration = Duration::from_millis(250);

/// How long a client may be silent (see [`super::HttpLimits`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Patience {
    pub idle: Duration,
    pub stall: Duration,
    pub head: Duration,
}

/// How long a connection closed with a request's body unread goes on reading (and dropping) what
/// the client still sends, so that the kernel does not answer it with a reset that could destroy
/// the response before the client read it (RFC 9112 section 9.6).
const LINGER: Duration = Duration::from_secs(1);

/// Most of a body that no handler read is read and dropped, so that the connection can carry
/// the next request and a client that sends its whole body before reading sees the answer
/// rather than a reset. Past this, the connection is closed after the answer.
pub(crate) const DRAIN_AT_MOST: u64 = 64 * 1024 * 1024;

pub(crate) fn serve<H: Handler>(
    stream: &TcpStream,
    handler: &H,
    stopping: &AtomicBool,
    patience: Patience,
    slot: &Slot,
) {
    // Answers are written whole; no reason to hold their last segment back.
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_read_timeout(Some(POLL)) {
        tracing::debug!(error = %e, "HTTP connection: cannot set a read timeout, closing");
        return;
    }
    let mut inbound = Inbound::new(
        stream,
        patience.idle,
        patience.stall,
        patience.head,
        stopping,
    );
    loop {
        let head = match next_head(&mut inbound, slot) {
            Ok(head) => head,
            Err(Refused::Gone(Gone::Quietly)) => return,
            Err(Refused::Gone(Gone::Broken(e))) => {
                tracing::debug!(error = %e, "HTTP connection failed");
                if e.kind() == io::ErrorKind::TimedOut {
                    let reply = Reply::error(408, format!("{e}; the request was not complete"));
                    let _ = reply.send(&mut &*stream, false, true);
                }
                return;
            }
            Err(Refused::Bad(e)) => return refuse(stream, e),
        };
        if slot.place == Place::Reserve && !handler.answers_on_reserve(&head.target) {
            refuse(
                stream,
                HeadError {
                    status: 503,
                    message: "the server holds as many HTTP connections as it may, all busy; \
                              only /healthz, /readyz and /metrics are answered now; retry later"
                        .to_owned(),
                },
            );
            // Its body (an ingest's, say) is not read: let the answer arrive before the close.
            return linger(stream);
        }
        let framing = match head.framing() {
            Ok(framing) => framing,
            Err(e) => return refuse(stream, e),
        };
        let mut body = Body::new(&mut inbound, framing);
        let mut out = stream;
        let continue_to: Option<&mut dyn Write> = head
            .expects_continue()
            .then_some(&mut out as &mut dyn Write);
        let mut request = Request::new(&head, framing, &mut body, continue_to);
        let reply = handle(handler, &mut request, &head);
        let continue_owed = request.continue_owed();
        // The next request starts after this one's body: read what the handler left of it,
        // unless the client still waits to be asked for it, or the body was refused for its
        // size: its `413` goes out at once, and the connection closes (a client that sent only
        // the head would otherwise wait for the stall timeout before hearing it).
        let too_large = reply.status == 413 && !body.finished();
        let drained = !continue_owed && !too_large && drain(&mut body);
        let reusable = drained
            && head.keep_alive()
            && slot.place == Place::General
            && !stopping.load(Ordering::Acquire);
        let connection = match (reusable, head.http10) {
            (false, _) => Connection::Close,
            // An HTTP/1.0 client that asked to keep the connection open needs to hear yes.
            (true, true) => Connection::KeepAlive,
            (true, false) => Connection::Default,
        };
        if let Err(e) = reply.send_as(&mut &*stream, head.method == Method::Head, connection) {
            tracing::debug!(error = %e, "could not send the HTTP response; the client went away");
            return;
        }
        if !reusable {
            let _ = stream.shutdown(Shutdown::Write);
            if too_large {
                linger(stream);
            }
            return;
        }
        inbound.request_done();
        if !slot.idle() {
            return;
        }
    }
}

/// Reads and drops what the client still sends, for at most [`LINGER`], after the write side
/// was shut down.
fn linger(stream: &TcpStream) {
    let deadline = std::time::Instant::now() + LINGER;
    let mut sink = [0u8; 8192];
    let mut read = stream;
    while std::time::Instant::now() < deadline {
        match io::Read::read(&mut read, &mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

enum Refused {
    Gone(Gone),
    Bad(HeadError),
}

/// Reads the next request head, telling `slot` when it starts (from then on the connection may
/// no longer be closed to make room, except in the reserve) and when it is complete.
fn next_head<S: io::Read>(inbound: &mut Inbound<'_, S>, slot: &Slot) -> Result<Head, Refused> {
    loop {
        if !inbound.buffered().is_empty() && !slot.head_started() {
            // Closed to make room for a newer connection just as a request arrived.
            return Err(Refused::Gone(Gone::Quietly));
        }
        match head::parse(inbound.buffered()) {
            Ok(Some((head, len))) => {
                io::BufRead::consume(inbound, len);
                inbound.head_done();
                if !slot.handling() {
                    return Err(Refused::Gone(Gone::Quietly));
                }
                return Ok(head);
            }
            Ok(None) => inbound.receive_more().map_err(Refused::Gone)?,
            Err(e) => return Err(Refused::Bad(e)),
        }
    }
}

fn handle<H: Handler>(handler: &H, request: &mut Request<'_>, head: &Head) -> Reply {
    // A bug in a handler must not take the connection's thread down unanswered.
    let reply = catch_unwind(AssertUnwindSafe(|| handler.handle(request))).unwrap_or_else(|_| {
        tracing::error!(method = %head.method, url = head.target, "HTTP handler panicked");
        Reply::error(
            500,
            "internal error while handling the request; see the service log",
        )
    });
    reply.log(request);
    reply
}

/// Reads what is left of the body, at most [`DRAIN_AT_MOST`] bytes; whether all of it was read.
fn drain<R: io::BufRead>(body: &mut Body<R>) -> bool {
    if body.finished() {
        return true;
    }
    if body.broken() {
        return false;
    }
    let copied = io::copy(
        &mut io::Read::take(&mut *body, DRAIN_AT_MOST),
        &mut io::sink(),
    );
    copied.is_ok() && body.finished()
}

/// Answers a request that cannot be read, and closes: where its body ends is unknown.
fn refuse(stream: &TcpStream, e: HeadError) {
    tracing::debug!(status = e.status, error = e.message, "HTTP request refused");
    let _ = Reply::error(e.status, e.message).send(&mut &*stream, false, true);
    let _ = stream.shutdown(Shutdown::Write);
}

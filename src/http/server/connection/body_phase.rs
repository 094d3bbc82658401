//! The body phases of a connection: reading a body the handler asked for (up to its limit),
//! and reading and dropping one it did not want (up to [`DRAIN_AT_MOST`]), so that the
//! connection can carry the next request. Both stop where the socket has nothing more for now
//! and carry on when the loop says bytes came.

use std::cell::Cell;
use std::io::{self, BufRead, Read};

use super::super::body::{Body, BodyState};
use super::super::handler::{Answer, Handler};
use super::super::response::Reply;
use super::{
    guarded_for, internal_error, too_large, unreadable, Conn, Ctx, Pending, Phase, DRAIN_AT_MOST,
};

/// Why [`pump`] stopped.
enum Pumped {
    /// The body is complete.
    Finished,
    /// Nothing more for now (the socket would block).
    Waiting,
    /// The client closed the connection before the end of the body.
    Ended,
    /// `take` refused more (too large, or too much to drop).
    Refused,
    Failed(io::Error),
}

/// Reads `body` in pieces of at most `room()` bytes into `take`, which says whether to go on.
fn pump<R: BufRead>(
    body: &mut Body<R>,
    scratch: &mut [u8],
    room: impl Fn() -> usize,
    mut take: impl FnMut(&[u8]) -> bool,
) -> Pumped {
    loop {
        let room = room().min(scratch.len());
        match body.read(&mut scratch[..room]) {
            Ok(0) if body.finished() => return Pumped::Finished,
            Ok(0) => return Pumped::Ended,
            Ok(n) if take(&scratch[..n]) => {}
            Ok(_) => return Pumped::Refused,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Pumped::Waiting,
            Err(e) => return Pumped::Failed(e),
        }
    }
}

impl Conn {
    pub(super) fn read_body<H: Handler>(
        &mut self,
        ctx: &mut Ctx<'_, H>,
        request: Pending,
        state: BodyState,
        limit: usize,
        mut data: Vec<u8>,
        then: Box<dyn FnOnce(Vec<u8>) -> Answer + Send>,
    ) -> bool {
        let mut body = Body::resume(&mut self.inbound, state);
        // One byte more than allowed tells an oversized chunked body from one of `limit`.
        let held = Cell::new(data.len());
        let pumped = pump(
            &mut body,
            ctx.scratch,
            || (limit + 1).saturating_sub(held.get()),
            |bytes| {
                data.extend_from_slice(bytes);
                held.set(data.len());
                data.len() <= limit
            },
        );
        let state = body.state();
        match pumped {
            Pumped::Finished => {
                let target = request.target.clone();
                let method = request.method.clone();
                match guarded_for(&method, &target, || then(data)) {
                    Answer::Now(reply) => self.answer(ctx, request, reply, false),
                    Answer::Later(deferred) => self.defer(ctx, request, deferred),
                    Answer::Body { .. } => {
                        tracing::error!(url = target, "HTTP handler asked twice for a body");
                        self.answer(ctx, request, internal_error(), false);
                    }
                }
            }
            Pumped::Waiting if !self.inbound.eof => {
                self.phase = Phase::Body {
                    request,
                    state,
                    limit,
                    data,
                    then,
                };
                return false;
            }
            Pumped::Waiting | Pumped::Ended => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before the end of the body",
                );
                self.answer(ctx, request, unreadable(&e), true);
            }
            Pumped::Refused => {
                self.answer(ctx, request, too_large(limit), true);
                self.phase = Phase::Closing { linger: true };
            }
            Pumped::Failed(e) => self.answer(ctx, request, unreadable(&e), true),
        }
        true
    }

    pub(super) fn skip_body<H: Handler>(
        &mut self,
        ctx: &mut Ctx<'_, H>,
        request: Pending,
        state: BodyState,
        mut skipped: u64,
        reply: Reply,
    ) -> bool {
        let eof = self.inbound.eof;
        let mut body = Body::resume(&mut self.inbound, state);
        let pumped = pump(
            &mut body,
            ctx.scratch,
            || usize::MAX,
            |bytes| {
                skipped += bytes.len() as u64;
                skipped <= DRAIN_AT_MOST
            },
        );
        let state = body.state();
        match pumped {
            // The whole body was read: the connection carries the next request.
            Pumped::Finished => self.answer(ctx, request, reply, false),
            Pumped::Waiting if !eof => {
                self.phase = Phase::Skip {
                    request,
                    state,
                    skipped,
                    reply,
                };
                return false;
            }
            _ => self.answer(ctx, request, reply, true),
        }
        true
    }
}

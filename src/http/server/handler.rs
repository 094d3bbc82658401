//! [`Handler`]: the seam between the server, an I/O shell, and the application that answers
//! requests (routing, ingest, operations). The server knows nothing of routes; it asks its
//! handler, and the handler tells it what to do next with an [`Answer`].

use std::time::Duration;

use super::head::Method;
use super::request::Request;
use super::responder::Responder;
use super::response::Reply;

/// What the server needs from the application it serves. Every call runs on an event loop that
/// serves many connections: none may block (a wait for the backend is an [`Answer::Later`]).
pub(crate) trait Handler: Send + Sync + 'static {
    /// Looks at a request whose head arrived (its body, if any, not read yet).
    fn handle(&self, request: &Request<'_>) -> Answer;

    /// Whether a request for `target` is answered on a reserve connection: the few cheap ones
    /// (`/healthz`, `/readyz`, `/metrics`) that must be answered whatever the other clients do.
    fn answers_on_reserve(&self, target: &str) -> bool;

    /// `reply` is being sent for a request the handler saw (for logs and metrics).
    fn answered(&self, method: &Method, target: &str, reply: &Reply);
}

/// What the server does next with a request.
pub(crate) enum Answer {
    /// Sends this reply. A body the request has is read and dropped first (within a bound).
    Now(Reply),
    /// Reads the body, at most `limit` bytes (`413` beyond, `400` if it cannot be read; a client
    /// waiting for `100 Continue` gets it now), then asks `then` with the body what to do.
    Body {
        limit: usize,
        then: Box<dyn FnOnce(Vec<u8>) -> Answer + Send>,
    },
    /// The reply comes later, from another thread: see [`Deferred`].
    Later(Deferred),
}

/// A reply that comes later: `start` is called at once with the [`Responder`] that delivers it;
/// if none came within `timeout`, the reply is `on_timeout()`'s (and the responder's, if it
/// still comes, is dropped). The connection reads nothing more meanwhile, so a client that
/// pipelines requests behind a slow one waits with them (they are answered in order).
pub(crate) struct Deferred {
    pub timeout: Duration,
    pub start: Box<dyn FnOnce(Responder) + Send>,
    pub on_timeout: Box<dyn FnOnce() -> Reply + Send>,
}

impl Answer {
    pub fn body(limit: usize, then: impl FnOnce(Vec<u8>) -> Answer + Send + 'static) -> Answer {
        Answer::Body {
            limit,
            then: Box::new(then),
        }
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Now(reply)
    }
}

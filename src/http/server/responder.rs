//! [`Responder`]: how a reply that comes later (an ingest confirmed by the backend on its own
//! thread) reaches the event loop that owns the connection.
//!
//! Replies go into the loop's channel; the loop is woken only when no wake-up is pending
//! already, so a burst of confirmations costs one wake-up, not one each.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::response::Reply;

/// What other threads tell a loop about one of its connections.
pub(super) enum Delivery {
    /// The reply for the request `seq` of the connection `key`.
    Reply { key: usize, seq: u64, reply: Reply },
    /// Close connection `key`, if it still holds the pool's slot `slot` (it was closed to make
    /// room for a newer one).
    Evict { key: usize, slot: u64 },
}

/// The loop's side of its inbox: the channel, the waker, and whether a wake-up is pending.
pub(super) struct Inbox {
    pub tx: Sender<Delivery>,
    pub waker: mio::Waker,
    /// Set by the first delivery after the loop last looked; cleared by the loop before it
    /// drains the channel (so a delivery after the drain wakes it again).
    pub woken: AtomicBool,
}

impl Inbox {
    pub fn deliver(&self, delivery: Delivery) {
        // The loop is gone only when the server stopped: nobody to answer.
        if self.tx.send(delivery).is_ok() && !self.woken.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                tracing::warn!(error = %e, "cannot wake an HTTP event loop");
            }
        }
    }
}

/// Delivers the reply to one request, once, from any thread.
pub(crate) struct Responder {
    inbox: Arc<Inbox>,
    key: usize,
    seq: u64,
}

impl Responder {
    pub(super) fn new(inbox: Arc<Inbox>, key: usize, seq: u64) -> Responder {
        Responder { inbox, key, seq }
    }

    /// Sends `reply` for the request (dropped if the request timed out or the client left).
    pub fn send(self, reply: Reply) {
        self.inbox.deliver(Delivery::Reply {
            key: self.key,
            seq: self.seq,
            reply,
        });
    }
}

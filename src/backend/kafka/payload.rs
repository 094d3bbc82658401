//! Zero-copy payloads: a [`Bytes`] over the payload of a librdkafka message, so that binary-mode
//! data reaches the socket without a copy (spec 2.2: "byte for byte as it came from the backend").
//!
//! Also the record's header bytes as the broker sent them, borrowed from the message
//! ([`raw_headers`], through `raw_headers.c`), so that they are parsed without librdkafka's
//! per-header allocations.
//!
//! The only `unsafe` of the crate lives here (the crate root says `#![deny(unsafe_code)]`).
//!
//! Why it is sound: rdkafka's [`BorrowedMessage`] wraps a `rd_kafka_message_t` owned by a
//! librdkafka event; its payload pointer is valid and immutable until that event is destroyed,
//! which happens when the `BorrowedMessage` is dropped — wherever that is. The lifetime `'a` only
//! expresses librdkafka's rule that every message must be destroyed *before* the client handle
//! it came from (`rd_kafka_destroy`). We erase `'a` and enforce that rule at run time instead:
//! every erased message holds a [`LiveGuard`] on its consumer's [`LiveMessages`] counter, and the
//! owner of a consumer drops it only when that counter is zero (see [`LiveMessages::wait_zero`]);
//! when messages are still out after the grace period, the consumer is leaked rather than
//! destroyed. `BorrowedMessage` is `Send + Sync` (rdkafka says so), so the owner may travel to
//! the shard threads inside the `Bytes`.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::bindings as rd;
use rdkafka::message::{BorrowedMessage, Message};

/// How many erased messages of one consumer are alive.
#[derive(Clone, Default)]
pub(crate) struct LiveMessages(Arc<AtomicUsize>);

impl LiveMessages {
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Waits until no message of the consumer is alive; false when `grace` ran out first.
    pub(crate) fn wait_zero(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while self.count() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Owns a message with its lifetime erased. Field order matters: the message is destroyed
/// before the guard says so.
struct Owned {
    message: BorrowedMessage<'static>,
    _live: LiveGuard,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        self.message.payload().unwrap_or(&[])
    }
}

/// The payload of `message` as [`Bytes`], without copying it. The message stays alive (and
/// counted in `live`) until the last clone of the returned `Bytes` is dropped.
pub(crate) fn payload_bytes(message: BorrowedMessage<'_>, live: &LiveMessages) -> Bytes {
    if message.payload_len() == 0 {
        return Bytes::new();
    }
    live.0.fetch_add(1, Ordering::AcqRel);
    let guard = LiveGuard(live.0.clone());
    // SAFETY: only the lifetime changes (same type, same layout). The message is not tied to
    // the consumer's borrow any more; `LiveMessages` makes its owner keep the consumer alive
    // until this message is dropped (see the module documentation).
    let message: BorrowedMessage<'static> = unsafe { std::mem::transmute(message) };
    Bytes::from_owner(Owned {
        message,
        _live: guard,
    })
}

extern "C" {
    /// `raw_headers.c`: the unparsed header bytes of a consumed message.
    fn mqtt_integration_raw_headers(
        message: *const rd::rd_kafka_message_t,
        len: *mut usize,
    ) -> *const u8;
}

/// The header bytes of `message` as the broker sent them (record format v2, parsed by
/// [`super::codec::WireHeaders`]); empty when it has none. Borrowed from the message: they live
/// in the fetch buffer it holds.
pub(crate) fn raw_headers<'m>(message: &'m BorrowedMessage<'_>) -> &'m [u8] {
    let mut len = 0;
    // SAFETY: a valid consumed message; the shim only reads it.
    let data = unsafe { mqtt_integration_raw_headers(message.ptr(), &mut len) };
    if data.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: `len` bytes at `data` are in the fetch buffer the message holds a reference to,
    // immutable and alive until the message is destroyed, which the borrow of `message` outlives.
    unsafe { std::slice::from_raw_parts(data, len) }
}

//! Zero-copy payloads: a [`Bytes`] over the payload of a librdkafka message, so that binary-mode
//! data reaches the socket without a copy (spec 2.2: "byte for byte as it came from the backend").
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

use std::ffi::CStr;
use std::ptr::NonNull;
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

/// A message's headers, detached from it (librdkafka parses them on first access): owned here
/// and destroyed on drop, by the thread that read them. rdkafka's own accessors cannot detach
/// (the headers would be freed with the message, on whichever thread drops the data last) and
/// insist on UTF-8 keys (they panic on others).
pub(crate) struct DetachedHeaders(NonNull<rd::rd_kafka_headers_t>);

impl Drop for DetachedHeaders {
    fn drop(&mut self) {
        // SAFETY: detached from the message, so owned by us alone, and destroyed once.
        unsafe { rd::rd_kafka_headers_destroy(self.0.as_ptr()) }
    }
}

/// The headers of `message`, detached from it; None when it has none.
pub(crate) fn detach_headers(message: &BorrowedMessage<'_>) -> Option<DetachedHeaders> {
    let mut headers = std::ptr::null_mut();
    // SAFETY: a valid message; librdkafka hands the parsed headers over to the caller (the
    // message forgets them, and would parse them again if asked: nobody asks).
    let err = unsafe { rd::rd_kafka_message_detach_headers(message.ptr(), &mut headers) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return None;
    }
    NonNull::new(headers).map(DetachedHeaders)
}

impl DetachedHeaders {
    /// (key, value) in order; a null value is None.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        (0..).map_while(move |i| {
            let mut name = std::ptr::null();
            let mut value = std::ptr::null();
            let mut size = 0;
            // SAFETY: our headers; out of range answers an error and writes nothing.
            let err = unsafe {
                rd::rd_kafka_header_get_all(self.0.as_ptr(), i, &mut name, &mut value, &mut size)
            };
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return None;
            }
            // SAFETY: librdkafka keeps a NUL-terminated name and `size` bytes of value in the
            // header, alive until the headers are destroyed (they are borrowed from `self`).
            let key = unsafe { CStr::from_ptr(name) }.to_bytes();
            let value = (!value.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
            Some((key, value))
        })
    }
}

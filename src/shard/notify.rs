//! Waking a shard from other threads, at most once per loop turn.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::Waker;

use crate::seam::Notify;

pub struct ShardNotify {
    waker: Arc<Waker>,
    /// Set by the first notifier after the shard last drained its channels: later notifiers
    /// skip the wake-up syscall, since the shard will see their messages anyway.
    pending: AtomicBool,
}

impl ShardNotify {
    pub fn new(waker: Arc<Waker>) -> ShardNotify {
        ShardNotify {
            waker,
            pending: AtomicBool::new(false),
        }
    }

    /// Called by the shard before it drains its channels.
    pub fn clear(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }
}

impl Notify for ShardNotify {
    fn notify(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                tracing::error!("cannot wake shard: {e}");
            }
        }
    }
}

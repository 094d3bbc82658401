//! How librdkafka wakes a worker: a consumer queue that became non-empty rings the bell.

use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;

use crate::seam::ToBackend;

/// Rings a worker once until it clears the bell (librdkafka may call it for every message).
pub(crate) struct Bell {
    rung: AtomicBool,
    pub(crate) tx: Sender<ToBackend>,
}

impl Bell {
    pub(crate) fn new(tx: Sender<ToBackend>) -> Bell {
        Bell {
            rung: AtomicBool::new(false),
            tx,
        }
    }

    pub(crate) fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(ToBackend::Wake);
        }
    }

    pub(crate) fn clear(&self) {
        self.rung.store(false, Ordering::Release);
    }
}

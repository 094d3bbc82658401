//! What appenders hand the syncer (`syncer.rs`): a completion to run once their partitions are
//! durable, or the last word. On its own so that the log, which sends these, does not import the
//! syncer, which reads the log.

use std::sync::Arc;

use crossbeam_channel::Sender;

use super::app_log::AppLog;
use crate::seam::BackendError;

pub(crate) type Done = Box<dyn FnOnce(Result<(), BackendError>) + Send>;

pub(crate) enum Msg {
    /// Run `done` once these partitions of `app` are durable up to (excluding) these offsets.
    Wait {
        app: Arc<AppLog>,
        ends: Vec<(u32, u64)>,
        done: Done,
    },
    /// Sync, write the offsets, answer, and end the thread.
    Stop(Sender<()>),
}

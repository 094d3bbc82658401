//! The seam's [`Producer`] over the embedded log. In memory an append completes at once
//! ("durably accepted" means appended and visible to readers). On disk it completes once the
//! log says the batch is durable: with `fsync = "always"` after the syncer's fdatasync, on the
//! syncer's thread, so that the caller (an HTTP thread, or a shard for commands) never waits
//! for the disk; otherwise at once.

use std::sync::Arc;

use super::EmbeddedLog;
use crate::cloudevents::Event;
use crate::seam::{BatchCompletion, Completion, Producer};

pub struct EmbeddedProducer {
    log: Arc<EmbeddedLog>,
}

impl EmbeddedProducer {
    pub(crate) fn new(log: Arc<EmbeddedLog>) -> EmbeddedProducer {
        EmbeddedProducer { log }
    }
}

impl Producer for EmbeddedProducer {
    fn publish_event(&self, app: &str, event: Event, done: Completion) {
        let done: BatchCompletion = {
            let done = parking_lot::Mutex::new(Some(done));
            Arc::new(move |_, result| {
                if let Some(done) = done.lock().take() {
                    done(result);
                }
            })
        };
        self.publish_events(app, vec![event], done);
    }

    fn publish_events(&self, app: &str, events: Vec<Event>, done: BatchCompletion) -> usize {
        let count = events.len();
        if count == 0 {
            return 0;
        }
        let (log, appended) = match self.log.append_batch(app, events) {
            Ok(appended) => appended,
            // The application does not exist: every event would fail alike.
            Err(e) => {
                done(0, Err(e));
                return 1;
            }
        };
        let mut ends = Vec::with_capacity(appended.len());
        let mut durable = Vec::new();
        for a in appended {
            match a.result {
                Ok(end) => {
                    ends.push((a.partition, end));
                    durable.extend(a.indexes);
                }
                // A failed partition keeps nothing: its events fail now, the others go on.
                Err(e) => a
                    .indexes
                    .into_iter()
                    .for_each(|index| done(index, Err(e.clone()))),
            }
        }
        if !durable.is_empty() {
            self.log.complete(
                &log,
                ends,
                Box::new(move |result| {
                    for index in durable {
                        done(index, result.clone());
                    }
                }),
            );
        }
        count
    }

    fn send_command(&self, app: &str, device: &str, event: Event, done: Completion) {
        done(self.log.append_command(app, device, event).map(drop));
    }

    fn ready(&self) -> bool {
        true
    }
}

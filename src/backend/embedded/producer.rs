//! The seam's [`Producer`] over the embedded log: appends complete at once (the log is in
//! memory, so "durably accepted" means appended and visible to readers).

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
        done(self.log.append_event(app, event).map(drop));
    }

    fn publish_events(&self, app: &str, events: Vec<Event>, done: BatchCompletion) -> usize {
        let count = events.len();
        match self.log.append_events(app, events) {
            Ok(()) => {
                (0..count).for_each(|index| done(index, Ok(())));
                count
            }
            // Only a stream that does not exist fails an append, and it fails every one.
            Err(e) if count > 0 => {
                done(0, Err(e));
                1
            }
            Err(_) => 0,
        }
    }

    fn send_command(&self, app: &str, device: &str, event: Event, done: Completion) {
        done(self.log.append_command(app, device, event).map(drop));
    }

    fn ready(&self) -> bool {
        true
    }
}

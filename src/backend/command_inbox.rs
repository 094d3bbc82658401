//! How commands reach the [`Inbox`] devices wait at (issue #15): the embedded backend offers
//! every command it stored ([`OfferingProducer`]); the Kafka backend reads them back from the
//! command topic (`kafka::command_reader`), so that instances share them.

use std::sync::Arc;
use std::time::Instant;

use crate::cloudevents::Event;
use crate::inbox::Inbox;
use crate::seam::{BatchCompletion, Completion, Producer};

/// A producer that, once a command is stored, offers it to the inbox.
pub(crate) struct OfferingProducer {
    pub inner: Arc<dyn Producer>,
    pub inbox: Arc<Inbox>,
}

impl Producer for OfferingProducer {
    fn publish_event(&self, app: &str, event: Event, done: Completion) {
        self.inner.publish_event(app, event, done)
    }

    fn publish_events(&self, app: &str, events: Vec<Event>, done: BatchCompletion) -> usize {
        self.inner.publish_events(app, events, done)
    }

    fn send_command(&self, app: &str, device: &str, event: Event, done: Completion) {
        let inbox = self.inbox.clone();
        let (for_inbox, app_name, device_name) = (event.clone(), app.to_owned(), device.to_owned());
        self.inner.send_command(
            app,
            device,
            event,
            Box::new(move |result| {
                // Stored first, offered after: a device never gets a command the sender was
                // told failed.
                if result.is_ok() {
                    inbox.offer(&app_name, &device_name, for_inbox, Instant::now());
                }
                done(result)
            }),
        )
    }

    fn ready(&self) -> bool {
        self.inner.ready()
    }
}

//! The writing side of a backend (HTTP ingest, MQTT commands) and how it fails.

use std::sync::Arc;

use crate::cloudevents::Event;

/// Why the backend could not do what was asked.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The backend cannot be reached or refused the request; retrying later may work.
    #[error("event backend unavailable: {0}")]
    Unavailable(String),
    /// The application has no event stream (e.g. its Kafka topic does not exist).
    #[error("no event stream for application `{0}`")]
    UnknownStream(String),
    /// A retention or size quota stops the write.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The durable group belongs to another identity or is of another kind (issue #17).
    #[error("not the group's owner: {0}")]
    NotOwner(String),
}

/// Called once when a produced event was durably accepted (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), BackendError>) + Send>;

/// Called once per event of a batch, with the event's position in the batch.
pub type BatchCompletion = Arc<dyn Fn(usize, Result<(), BackendError>) + Send + Sync>;

/// Writing side of a backend: ingest and commands.
pub trait Producer: Send + Sync {
    /// Appends a device event to the application's event stream.
    fn publish_event(&self, app: &str, event: Event, done: Completion);
    /// Appends `events` to the application's event stream in order; `done` is called once for
    /// each event handed over. Returns how many were handed over: when one fails at once, the
    /// rest would too, so the batch stops there.
    ///
    /// The default hands them over one by one. The embedded log overrides it to append the whole
    /// batch and then wake its readers once: waking them per event cost two thread wake-ups per
    /// event at low rates (~80 µs of CPU per event at 10,000 events/s in 10-event requests).
    fn publish_events(&self, app: &str, events: Vec<Event>, done: BatchCompletion) -> usize {
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handed = 0;
        for (index, event) in events.into_iter().enumerate() {
            let (done, failed_too) = (done.clone(), failed.clone());
            self.publish_event(
                app,
                event,
                Box::new(move |result| {
                    if result.is_err() {
                        failed_too.store(true, std::sync::atomic::Ordering::Release);
                    }
                    done(index, result);
                }),
            );
            handed += 1;
            if failed.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
        }
        handed
    }
    /// Appends a command for a device to the command stream.
    fn send_command(&self, app: &str, device: &str, event: Event, done: Completion);
    /// Whether the backend is reachable (for `/readyz`).
    fn ready(&self) -> bool;
}

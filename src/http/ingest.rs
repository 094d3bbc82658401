//! Ingest: device events over HTTP into the application's event stream (spec 5).
//!
//! The order of checks is fixed so that nothing is learned or read before it should be:
//! authentication (`401`), device and channel names that cannot form a topic (`400`: syntax
//! only, it tells nothing of the application), authorization (`404`/`403`), content type (`415`), size (`413`, from
//! `Content-Length` before reading anything, else while reading), content (`400`), and only then
//! the backend, whose confirmation is awaited before answering `202`.
//!
//! Nothing here blocks the event loop that calls it: the checks before the body run on the head,
//! the body is asked for with [`Answer::Body`], and the wait for the backend is an
//! [`Answer::Later`] that the backend's completion callback answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::json;

use super::access::{app_refusal, authenticate, device_problem, device_refusal};
use super::device_commands::{requested_wait, CommandWait};
use super::names;
use super::server::{Answer, Deferred, Reply, Request, Responder};
use super::HttpState;
use crate::cloudevents::{parse_batch, BatchContext, BatchError, Event, BATCH_CONTENT_TYPE};
use crate::metrics::Metrics;
use crate::registry::Access;
use crate::seam::{BackendError, Producer};

/// How long to wait for the backend to confirm an event before answering `503`.
pub(crate) const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// `datacontenttype` of an event sent without a `Content-Type` header.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// `POST /api/v1/apps/<app>/devices/<device>/events/<channel>`
pub(crate) fn one(
    state: &HttpState,
    request: &Request<'_>,
    app: &str,
    device: &str,
    channel: &str,
) -> Result<Answer, Reply> {
    let identity = authenticate(state, request)?;
    // Before the registry: a name that cannot form a topic is a `400` whatever the registry
    // holds (spec 5; issue #17).
    names::check_topic(app, device, channel).map_err(|e| {
        Reply::error(
            400,
            format!("{e}; nothing was stored (the event would go out on `app/{app}/<device>/<channel>`)"),
        )
    })?;
    state
        .registry
        .load()
        .authorize_device_write(&identity, app, device)
        .map_err(|e| device_refusal(&e, &identity, app, device))?;
    let content_type = request
        .header("Content-Type")
        .unwrap_or(DEFAULT_CONTENT_TYPE)
        .to_owned();
    check_length(request, state.max_body_size)?;
    // `?ct=<seconds>`: once stored, wait that long for a command for the device.
    let command_wait = requested_wait(request, "ct", state.max_command_wait)?
        .map(|wait| CommandWait::new(state, app, device, wait));
    let backend = Backend::of(state);
    let (app, device, channel) = (app.to_owned(), device.to_owned(), channel.to_owned());
    let instance = state.instance.clone();
    Ok(Answer::body(state.max_body_size, move |data| {
        let event = Event::new_device_event(
            &app,
            &device,
            &channel,
            &device, // the device sends for itself; gateways are not modelled here
            &instance,
            Some(&content_type),
            Bytes::from(data),
            SystemTime::now(),
        );
        backend.publish(app, vec![event], command_wait)
    }))
}

/// `POST /api/v1/apps/<app>/events`
pub(crate) fn batch(state: &HttpState, request: &Request<'_>, app: &str) -> Result<Answer, Reply> {
    let identity = authenticate(state, request)?;
    state
        .registry
        .load()
        .authorize(&identity, app, Access::Write)
        .map_err(|e| app_refusal(&e, &identity, app))?;
    let content_type = request.header("Content-Type").unwrap_or("");
    if !is_media_type(content_type, BATCH_CONTENT_TYPE) {
        let found = if content_type.is_empty() {
            "none".to_owned()
        } else {
            format!("`{content_type}`")
        };
        return Err(Reply::error(
            415,
            format!("batch ingest needs Content-Type: {BATCH_CONTENT_TYPE} (found {found}); a single event goes to /api/v1/apps/<app>/devices/<device>/events/<channel>"),
        ));
    }
    check_length(request, state.max_body_size)?;
    let backend = Backend::of(state);
    let (registry, app, instance) = (
        state.registry.clone(),
        app.to_owned(),
        state.instance.clone(),
    );
    Ok(Answer::body(state.max_body_size, move |body| {
        let ctx = BatchContext {
            app: &app,
            instance: &instance,
            now: SystemTime::now(),
            check_device: &|device: &str| {
                names::check_device(device)?;
                registry
                    .load()
                    .authorize_device_write(&identity, &app, device)
                    .map(|_| ())
                    .map_err(|e| device_problem(&e, &app, device))
            },
        };
        match parse_batch(&body, &ctx).and_then(|events| check_subjects(&app, events)) {
            Ok(events) => backend.publish(app, events, None),
            Err(e) => Answer::Now(batch_refusal(&e)),
        }
    }))
}

/// A batch refused for one of its events, or as a whole.
fn batch_refusal(e: &BatchError) -> Reply {
    // All or nothing: say so, so that the client resends the whole batch once fixed.
    let body = match e.index {
        Some(index) => json!({
            "error": format!("event {index}: {}; nothing of the batch was stored", e.reason),
            "index": index,
        }),
        None => json!({ "error": format!("{}; nothing of the batch was stored", e.reason) }),
    };
    Reply::json(400, &body)
}

/// Refuses a batch whose event has a `subject` (its channel) that cannot form a topic; the device
/// was checked with the registry's answer.
fn check_subjects(app: &str, events: Vec<Event>) -> Result<Vec<Event>, BatchError> {
    for (index, event) in events.iter().enumerate() {
        let (Some(subject), Some(device)) = (event.subject.as_deref(), event.device()) else {
            continue;
        };
        names::check_topic(app, device, subject).map_err(|reason| BatchError {
            index: Some(index),
            reason: format!("`subject` is the event's channel: {reason}"),
        })?;
    }
    Ok(events)
}

/// Whether a `Content-Type` value has the media type `expected` (parameters ignored).
fn is_media_type(content_type: &str, expected: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case(expected)
}

/// `413` for a body announced larger than `limit` bytes, before anything of it is read (a body
/// without a length is measured while the server reads it, and refused as soon as it is too
/// large, so an oversized body is never held in memory).
fn check_length(request: &Request<'_>, limit: usize) -> Result<(), Reply> {
    if request.body_length().is_some_and(|len| len > limit as u64) {
        return Err(Reply::error(
            413,
            format!("the request body is larger than {limit} bytes (the configured maximum); send less data per request"),
        ));
    }
    Ok(())
}

/// What an ingest needs of the state once the request's head was checked.
struct Backend {
    producer: Arc<dyn Producer>,
    metrics: Arc<Metrics>,
}

impl Backend {
    fn of(state: &HttpState) -> Backend {
        Backend {
            producer: state.producer.clone(),
            metrics: state.metrics.clone(),
        }
    }

    /// Hands `events` to the backend in order; the reply comes once it confirmed every one
    /// (`202` with how many), failed one, dropped them, or did not answer within
    /// [`PUBLISH_TIMEOUT`] (`503`). Accepted events are counted in the metrics. With
    /// `command_wait`, a `202` waits for a command first (which replaces it).
    fn publish(self, app: String, events: Vec<Event>, command_wait: Option<CommandWait>) -> Answer {
        let timeout = PUBLISH_TIMEOUT
            + command_wait
                .as_ref()
                .map_or(Duration::ZERO, CommandWait::request_timeout);
        let progress = Arc::new(Mutex::new(Progress {
            command_wait,
            total: events.len(),
            published: None,
            tally: Tally::default(),
            dropped: false,
            responder: None,
            metrics: self.metrics,
            counted: false,
        }));
        let on_timeout = progress.clone();
        Answer::Later(Deferred {
            timeout,
            start: Box::new(move |responder| {
                lock(&progress).responder = Some(responder);
                let completion = Completion(progress.clone());
                let published = self.producer.publish_events(
                    &app,
                    events,
                    Arc::new(move |index, result| completion.record(index, result)),
                );
                let mut progress = lock(&progress);
                progress.published = Some(published);
                progress.answer_if_complete();
            }),
            on_timeout: Box::new(move || {
                let mut progress = lock(&on_timeout);
                progress.responder = None;
                if let Some((wait, accepted)) = progress.waiting_for_command() {
                    return wait.at_request_timeout(|| accepted_reply(accepted));
                }
                progress.tally.stuck = Some(format!(
                    "the event backend did not confirm within {} s",
                    PUBLISH_TIMEOUT.as_secs()
                ));
                progress.reply()
            }),
        })
    }
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(|e| e.into_inner())
}

/// An ingest between handing its events to the backend and its reply.
struct Progress {
    /// `?ct=`: after the `202`, wait for a command (started once every event is confirmed).
    command_wait: Option<CommandWait>,
    total: usize,
    /// How many events the backend took (known once `publish_events` returned).
    published: Option<usize>,
    tally: Tally,
    /// The backend let go of the completion callback.
    dropped: bool,
    /// Taken by the reply (or cleared by the timeout): answers go out once.
    responder: Option<Responder>,
    metrics: Arc<Metrics>,
    /// The accepted events were counted (a timeout racing the last answer counts them once).
    counted: bool,
}

impl Progress {
    /// Replies if every answer is in, or none will come.
    fn answer_if_complete(&mut self) {
        let Some(published) = self.published else {
            return;
        };
        if self.tally.answered < published {
            if !self.dropped {
                return;
            }
            self.tally.stuck = Some(
                "the event backend dropped the event without an answer (shutting down?)".to_owned(),
            );
        }
        if let Some(responder) = self.responder.take() {
            let reply = self.reply();
            match self.command_wait.as_mut() {
                // Stored: now the device waits for a command; the `202` if none comes.
                Some(wait) if reply.status == 202 => {
                    let accepted = self.tally.accepted;
                    wait.start(responder, move || accepted_reply(accepted));
                }
                _ => responder.send(reply),
            }
        }
    }

    /// The command wait started after the `202`, with how many events were accepted.
    fn waiting_for_command(&self) -> Option<(&CommandWait, usize)> {
        let wait = self.command_wait.as_ref()?;
        let started = self.counted && self.tally.failed.is_none() && self.tally.stuck.is_none();
        started.then_some((wait, self.tally.accepted))
    }

    /// The reply for the answers so far (counting the accepted events, once).
    fn reply(&mut self) -> Reply {
        let outcome = &self.tally;
        if outcome.accepted > 0 && !self.counted {
            self.metrics.ingested(outcome.accepted as u64);
        }
        self.counted = true;
        let total = self.total;
        let published = self.published.unwrap_or(total);
        let problem = match (&outcome.failed, &outcome.stuck) {
            (None, None) => return accepted_reply(outcome.accepted),
            (Some((index, error)), _) => backend_problem(total, *index, error),
            (None, Some(why)) => why.clone(),
        };
        let unsure = outcome.answered < published;
        let mut message = problem;
        if total > 1 {
            message.push_str(&format!(
                "; {} of {total} events were accepted",
                outcome.accepted
            ));
            if unsure {
                message.push_str(" so far, more may follow");
            }
            message.push_str("; retrying the whole batch may store those again");
        } else if unsure {
            message.push_str("; the event may still be stored, retrying may store it twice");
        }
        Reply::error(503, format!("{message}; retry later"))
    }
}

/// The backend's completion callback's hold on an ingest's progress: when the backend drops the
/// callback without answering every event, the ingest hears it (rather than waiting for the
/// timeout).
struct Completion(Arc<Mutex<Progress>>);

impl Completion {
    fn record(&self, index: usize, result: Result<(), BackendError>) {
        let mut progress = lock(&self.0);
        progress.tally.record(index, result);
        progress.answer_if_complete();
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let mut progress = lock(&self.0);
        progress.dropped = true;
        progress.answer_if_complete();
    }
}

/// `202`: every event is stored.
fn accepted_reply(accepted: usize) -> Reply {
    Reply::json(202, &json!({ "accepted": accepted }))
}

fn backend_problem(total: usize, index: usize, error: &BackendError) -> String {
    if total > 1 {
        format!("event {index}: {error}")
    } else {
        error.to_string()
    }
}

/// The backend's answers so far.
#[derive(Default)]
struct Tally {
    answered: usize,
    accepted: usize,
    /// The first failure by position in the batch.
    failed: Option<(usize, BackendError)>,
    /// Why waiting stopped before every answer arrived.
    stuck: Option<String>,
}

impl Tally {
    fn record(&mut self, index: usize, result: Result<(), BackendError>) {
        self.answered += 1;
        match result {
            Ok(()) => self.accepted += 1,
            Err(e) => {
                if self
                    .failed
                    .as_ref()
                    .map_or(true, |(first, _)| index < *first)
                {
                    self.failed = Some((index, e));
                }
            }
        }
    }
}

//! Ingest: device events over HTTP into the application's event stream (spec 5).
//!
//! The order of checks is fixed so that nothing is learned or read before it should be:
//! authentication (`401`), device and channel names that cannot form a topic (`400`: syntax
//! only, it tells nothing of the application), authorization (`404`/`403`), content type (`415`), size (`413`, from
//! `Content-Length` before reading anything, else while reading), content (`400`), and only then
//! the backend, whose confirmation is awaited before answering `202`.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use crossbeam_channel::RecvTimeoutError;
use serde_json::json;

use super::auth::AuthFailure;
use super::names;
use super::server::{Outcome, Reply, Request};
use super::HttpState;
use crate::cloudevents::{parse_batch, BatchContext, BatchError, Event, BATCH_CONTENT_TYPE};
use crate::registry::{Access, AccessError, DeviceAccessError, Identity};
use crate::seam::BackendError;

/// How long to wait for the backend to confirm an event before answering `503`.
pub(crate) const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// `datacontenttype` of an event sent without a `Content-Type` header.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

const WWW_AUTHENTICATE: &str = "Basic realm=\"mqtt-integration\", Bearer";

/// `POST /api/v1/apps/<app>/devices/<device>/events/<channel>`
pub(crate) fn one(
    state: &HttpState,
    request: &mut Request<'_>,
    app: &str,
    device: &str,
    channel: &str,
) -> Outcome {
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
    let data = read_body(request, state.max_body_size)?;
    let event = Event::new_device_event(
        app,
        device,
        channel,
        device, // the device sends for itself; gateways are not modelled here
        &state.instance,
        Some(&content_type),
        Bytes::from(data),
        SystemTime::now(),
    );
    let accepted = publish(state, app, vec![event])?;
    Ok(Reply::json(202, &json!({ "accepted": accepted })))
}

/// `POST /api/v1/apps/<app>/events`
pub(crate) fn batch(state: &HttpState, request: &mut Request<'_>, app: &str) -> Outcome {
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
    let body = read_body(request, state.max_body_size)?;
    let ctx = BatchContext {
        app,
        instance: &state.instance,
        now: SystemTime::now(),
        check_device: &|device: &str| {
            names::check_device(device)?;
            state
                .registry
                .load()
                .authorize_device_write(&identity, app, device)
                .map(|_| ())
                .map_err(|e| device_problem(&e, app, device))
        },
    };
    let events = parse_batch(&body, &ctx)
        .and_then(|events| check_subjects(app, events))
        .map_err(|e| {
        // All or nothing: say so, so that the client resends the whole batch once fixed.
        let body = match e.index {
            Some(index) => json!({
                "error": format!("event {index}: {}; nothing of the batch was stored", e.reason),
                "index": index,
            }),
            None => json!({ "error": format!("{}; nothing of the batch was stored", e.reason) }),
        };
        Reply::json(400, &body)
    })?;
    let accepted = publish(state, app, events)?;
    Ok(Reply::json(202, &json!({ "accepted": accepted })))
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

fn authenticate(state: &HttpState, request: &Request<'_>) -> Result<Identity, Reply> {
    state
        .auth
        .authenticate(request.header("Authorization"))
        .map_err(|failure| {
            let message = match failure {
                AuthFailure::Missing => {
                    "credentials are required: send `Authorization: Bearer <token>` or \
                                         `Authorization: Basic <user:api-key>`"
                        .to_owned()
                }
                AuthFailure::Invalid(why) => format!("the credentials were refused: {why}"),
            };
            Reply::error(401, message).with_header("WWW-Authenticate", WWW_AUTHENTICATE)
        })
}

fn who(identity: &Identity) -> String {
    match identity {
        Identity::Anonymous => "an anonymous caller".to_owned(),
        Identity::User { name, .. } => format!("user `{name}`"),
    }
}

/// What to tell an anonymous caller who lacks a permission.
fn credentials_hint(identity: &Identity) -> &'static str {
    match identity {
        Identity::Anonymous => {
            "; send credentials (`Authorization: Bearer` or `Basic`) of a user who may"
        }
        Identity::User { .. } => "; ask the owner for the role `manager` or `admin`",
    }
}

fn app_refusal(error: &AccessError, identity: &Identity, app: &str) -> Reply {
    match error {
        AccessError::UnknownApplication { .. } => {
            Reply::error(404, format!("application `{app}` does not exist; check the name"))
        }
        AccessError::NotAuthorized { .. } => Reply::error(
            403,
            format!(
                "{} may not write to application `{app}` (ingest needs the owner or the role `manager` or `admin`){}",
                who(identity),
                credentials_hint(identity)
            ),
        ),
    }
}

fn device_refusal(
    error: &DeviceAccessError,
    identity: &Identity,
    app: &str,
    device: &str,
) -> Reply {
    match error {
        DeviceAccessError::UnknownApplication { .. } => app_refusal(
            &AccessError::UnknownApplication {
                app: app.to_owned(),
            },
            identity,
            app,
        ),
        DeviceAccessError::NotAuthorized { .. } => app_refusal(
            &AccessError::NotAuthorized {
                app: app.to_owned(),
            },
            identity,
            app,
        ),
        DeviceAccessError::UnknownDevice { .. } | DeviceAccessError::DisabledDevice { .. } => {
            Reply::error(403, device_problem(error, app, device))
        }
    }
}

/// Why a device may not send, as the text of an error.
fn device_problem(error: &DeviceAccessError, app: &str, device: &str) -> String {
    match error {
        DeviceAccessError::UnknownApplication { .. } => {
            format!("application `{app}` does not exist")
        }
        DeviceAccessError::NotAuthorized { .. } => {
            format!("not authorized to write to application `{app}`")
        }
        DeviceAccessError::UnknownDevice { .. } => {
            format!("device `{device}` does not exist in application `{app}`; add it to the application's devices")
        }
        DeviceAccessError::DisabledDevice { .. } => {
            format!("device `{device}` of application `{app}` is disabled; enable it to ingest its events")
        }
    }
}

/// Whether a `Content-Type` value has the media type `expected` (parameters ignored).
fn is_media_type(content_type: &str, expected: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case(expected)
}

/// Reads the whole body, at most `limit` bytes: `413` as soon as it is known to be larger, so an
/// oversized body is never held in memory. (The connection reads and drops the rest of a refused
/// body, within a bound, before it answers: see `server::connection`.)
fn read_body(request: &mut Request<'_>, limit: usize) -> Result<Vec<u8>, Reply> {
    let too_large = || {
        Reply::error(
            413,
            format!("the request body is larger than {limit} bytes (the configured maximum); send less data per request"),
        )
    };
    let announced = request.body_length();
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    // One byte more than allowed tells an oversized chunked body from one of exactly `limit`.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let unreadable =
        |e: std::io::Error| Reply::error(400, format!("could not read the request body: {e}"));
    request
        .body()
        .map_err(unreadable)?
        .take(cap)
        .read_to_end(&mut body)
        .map_err(unreadable)?;
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

/// Hands `events` to the backend in order and waits until it confirmed every one (or failed one,
/// or the timeout passed). Returns how many were accepted; counts them in the metrics.
fn publish(state: &HttpState, app: &str, events: Vec<Event>) -> Result<usize, Reply> {
    let total = events.len();
    // Room for every completion, so that a completion never blocks the backend's thread.
    let (tx, rx) = crossbeam_channel::bounded(total.max(1));
    let mut outcome = Tally::default();
    let published = state.producer.publish_events(
        app,
        events,
        Arc::new(move |index, result| {
            // The receiver is gone only when the request gave up waiting.
            let _ = tx.send((index, result));
        }),
    );
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    while outcome.answered < published {
        match rx.recv_deadline(deadline) {
            Ok((index, result)) => outcome.record(index, result),
            Err(RecvTimeoutError::Timeout) => {
                outcome.stuck = Some(format!(
                    "the event backend did not confirm within {} s",
                    PUBLISH_TIMEOUT.as_secs()
                ));
                break;
            }
            Err(RecvTimeoutError::Disconnected) => {
                outcome.stuck = Some(
                    "the event backend dropped the event without an answer (shutting down?)"
                        .to_owned(),
                );
                break;
            }
        }
    }
    if outcome.accepted > 0 {
        state.metrics.ingested(outcome.accepted as u64);
    }
    let problem = match (outcome.failed, outcome.stuck) {
        (None, None) => return Ok(outcome.accepted),
        (Some((index, error)), _) => backend_problem(total, index, &error),
        (None, Some(why)) => why,
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
    Err(Reply::error(503, format!("{message}; retry later")))
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

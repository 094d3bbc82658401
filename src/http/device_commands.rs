//! Commands to devices over HTTP, as Drogue Cloud's HTTP endpoint gives them (issue #15):
//!
//! - `POST /api/v1/apps/<app>/devices/<device>/events/<channel>?ct=<seconds>`: the event is
//!   ingested as without `ct`; once the backend has it, the device waits up to `ct` seconds for
//!   a command: `200` with the command, or the ingest's own `202` when none came;
//! - `GET /api/v1/apps/<app>/devices/<device>/commands?wait=<seconds>`: a long poll, `200` with
//!   the next command or `204` when none came.
//!
//! A command answer is the command's data as the body, its `Content-Type`, the header
//! `command: <name>`, and its CloudEvent attributes as `ce-` headers (the HTTP binding's binary
//! mode). Waits are capped at `http.max_command_wait`; the device needs write permission on the
//! application, as for ingest. The waiting itself is the [`Inbox`]'s: this module turns its
//! answers into replies and ties a wait to the request's [`Deferred`] reply.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::server::{Answer, Deferred, Reply, Request, Responder};
use super::HttpState;
use crate::cloudevents::{Event, ExtensionValue};
use crate::inbox::{Inbox, WaitId, Waiting};

/// Added to a wait's own deadline for the request's: the inbox ends the wait first, always.
const MARGIN: Duration = Duration::from_secs(2);

/// The wait a request asks for with the query parameter `name` (`ct`, `wait`): `None` without
/// it (or with `0`), capped at `max`; `400` for anything but whole seconds.
pub(crate) fn requested_wait(
    request: &Request<'_>,
    name: &str,
    max: Duration,
) -> Result<Option<Duration>, Reply> {
    let Some(query) = request.url().split_once('?').map(|(_, q)| q) else {
        return Ok(None);
    };
    let Some(value) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    else {
        return Ok(None);
    };
    let seconds: u64 = value.parse().map_err(|_| {
        Reply::error(
            400,
            format!("`{name}` must be a whole number of seconds to wait for a command (found `{value}`)"),
        )
    })?;
    Ok((seconds > 0).then(|| Duration::from_secs(seconds).min(max)))
}

/// `200` with the command: its data, its content type, `command: <name>` and its attributes as
/// `ce-` headers.
pub(crate) fn command_reply(command: Event) -> Reply {
    let content_type = command
        .datacontenttype
        .as_deref()
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut reply = Reply::text(200, content_type, command.data.to_vec())
        .with_header("ce-specversion", "1.0")
        .with_header("ce-id", command.id.as_str())
        .with_header("ce-source", command.source.as_str())
        .with_header("ce-type", command.ty.as_str());
    if let Some(name) = command.subject.as_deref() {
        reply = reply
            .with_header("command", name)
            .with_header("ce-subject", name);
    }
    if let Some(time) = command.time.as_deref() {
        reply = reply.with_header("ce-time", time);
    }
    if let Some(schema) = command.dataschema.as_deref() {
        reply = reply.with_header("ce-dataschema", schema);
    }
    for (name, value) in &command.extensions {
        let value = match value {
            ExtensionValue::String(s) => s.to_string(),
            ExtensionValue::Integer(i) => i.to_string(),
            ExtensionValue::Boolean(b) => b.to_string(),
        };
        reply = reply.with_header(format!("ce-{name}"), value);
    }
    reply
}

/// One device's wait for a command, tied to a request's deferred reply.
pub(crate) struct CommandWait {
    inbox: Arc<Inbox>,
    app: String,
    device: String,
    wait: Duration,
    id: Option<WaitId>,
    /// The command handed to the wait, kept until the reply is out: should the request's own
    /// deadline pass between the hand-over and the reply reaching the event loop, the timeout's
    /// reply is the command (the other copy is dropped), so the command is not lost.
    claimed: Arc<Mutex<Option<Event>>>,
}

impl CommandWait {
    pub fn new(state: &HttpState, app: &str, device: &str, wait: Duration) -> CommandWait {
        CommandWait {
            inbox: state.inbox.clone(),
            app: app.to_owned(),
            device: device.to_owned(),
            wait,
            id: None,
            claimed: Arc::new(Mutex::new(None)),
        }
    }

    /// How long the request may take in all: the wait, and a margin.
    pub fn request_timeout(&self) -> Duration {
        self.wait + MARGIN
    }

    /// Waits now: `responder` gets the command, or `otherwise()` when none came in time.
    pub fn start(
        &mut self,
        responder: Responder,
        otherwise: impl FnOnce() -> Reply + Send + 'static,
    ) {
        let claimed = self.claimed.clone();
        let now = Instant::now();
        let waiting = self.inbox.wait(
            &self.app,
            &self.device,
            now,
            now + self.wait,
            Box::new(move |command| match command {
                Some(command) => {
                    *lock(&claimed) = Some(command.clone());
                    responder.send(command_reply(command));
                }
                None => responder.send(otherwise()),
            }),
        );
        if let Waiting::Queued(id) = waiting {
            self.id = Some(id);
        }
    }

    /// The request's own deadline passed first (the event loop gives up on the responder):
    /// the command, if one was handed over, else `otherwise()`.
    pub fn at_request_timeout(&self, otherwise: impl FnOnce() -> Reply) -> Reply {
        if let Some(id) = self.id {
            self.inbox.cancel(id);
        }
        match lock(&self.claimed).take() {
            Some(command) => command_reply(command),
            None => otherwise(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `GET /api/v1/apps/<app>/devices/<device>/commands?wait=<seconds>`.
pub(crate) fn poll(
    state: &HttpState,
    request: &Request<'_>,
    app: &str,
    device: &str,
) -> Result<Answer, Reply> {
    let identity = super::access::authenticate(state, request)?;
    state
        .registry
        .load()
        .authorize_device_write(&identity, app, device)
        .map_err(|e| super::access::device_refusal(&e, &identity, app, device))?;
    let wait = requested_wait(request, "wait", state.max_command_wait)?.unwrap_or_default();
    let wait = Arc::new(Mutex::new(CommandWait::new(state, app, device, wait)));
    let timeout = lock(&wait).request_timeout();
    let on_timeout = wait.clone();
    Ok(Answer::Later(Deferred {
        timeout,
        start: Box::new(move |responder| {
            lock(&wait).start(responder, no_command);
        }),
        on_timeout: Box::new(move || lock(&on_timeout).at_request_timeout(no_command)),
    }))
}

/// `204`: no command came while the device waited.
fn no_command() -> Reply {
    Reply {
        status: 204,
        content_type: "application/json".into(),
        body: Vec::new(),
        headers: Vec::new(),
    }
}

//! Replies, built by handlers and sent by the worker loop.
//!
//! Every error body is JSON `{"error": "…"}` (spec 5), so that clients can show the reason; the
//! text says what to do about it where there is something to do.

use serde_json::json;
use tiny_http::{Header, Request, Response};

/// What a handler answers: status, body and any extra headers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Handlers return `Err` to stop early with an error reply, so `?` works throughout.
pub(crate) type Outcome = Result<Reply, Reply>;

const JSON: &str = "application/json";

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: JSON,
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    /// An error reply: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &json!({ "error": message.into() }))
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The `{"error": …}` text of an error reply (for logs).
    fn error_text(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        value.get("error")?.as_str().map(str::to_owned)
    }

    pub fn log(&self, request: &Request) {
        let (method, url) = (request.method(), request.url());
        match self.status {
            500.. => {
                let error = self.error_text().unwrap_or_default();
                tracing::warn!(%method, url, status = self.status, error, "HTTP request failed");
            }
            400.. => {
                let error = self.error_text().unwrap_or_default();
                tracing::debug!(%method, url, status = self.status, error, "HTTP request refused");
            }
            _ => tracing::trace!(%method, url, status = self.status, "HTTP request"),
        }
    }

    pub fn send(self, request: Request) {
        let mut response = Response::from_data(self.body).with_status_code(self.status);
        let headers =
            std::iter::once(("Content-Type", self.content_type.to_owned())).chain(self.headers);
        for (name, value) in headers {
            // Names are constants and values come from our own text; a value tiny_http refuses
            // (non-ASCII) is left out rather than failing the whole reply.
            match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                Ok(header) => response.add_header(header),
                Err(()) => tracing::warn!(name, value, "HTTP response header left out: not valid"),
            }
        }
        if let Err(e) = request.respond(response) {
            // The client went away; there is nobody left to tell.
            tracing::debug!(error = %e, "could not send the HTTP response");
        }
    }
}

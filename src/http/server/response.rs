//! Replies, built by handlers and written by the event loop.
//!
//! Every error body is JSON `{"error": "…"}` (spec 5), so that clients can show the reason; the
//! text says what to do about it where there is something to do.

use std::borrow::Cow;
use std::io::Write;

use serde_json::json;

use super::head::Method;

/// What a handler answers: status, body and any extra headers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    /// Ours (`application/json`, …) or, for a command handed to a device, the command's own.
    pub content_type: Cow<'static, str>,
    pub body: Vec<u8>,
    pub headers: Vec<(Cow<'static, str>, String)>,
}

/// Handlers return `Err` to stop early with an error reply, so `?` works throughout.
pub(crate) type Outcome = Result<Reply, Reply>;

const JSON: &str = "application/json";

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: Cow::Borrowed(JSON),
            body: body.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    /// An error reply: `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &json!({ "error": message.into() }))
    }

    pub fn text(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        Reply {
            status,
            content_type: content_type.into(),
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `{"error": …}` text of an error reply (for logs).
    fn error_text(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        value.get("error")?.as_str().map(str::to_owned)
    }

    pub fn log(&self, method: &Method, url: &str) {
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

    /// Appends the reply to `wire` in one piece: status line, headers (`Connection` as
    /// `connection` says), and the body unless the request was `HEAD`.
    pub fn encode(&self, wire: &mut Vec<u8>, head_only: bool, connection: Connection) {
        wire.reserve(160 + self.body.len());
        let _ = write!(wire, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        // RFC 9110 8.6: no Content-Length (nor a body) in a 204.
        if self.status != 204 {
            let _ = write!(
                wire,
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body.len()
            );
        }
        for (name, value) in &self.headers {
            // Values are our own text; a line break in one would end the head early.
            if value.contains(['\r', '\n']) {
                tracing::warn!(%name, value, "HTTP response header left out: not one line");
                continue;
            }
            let _ = write!(wire, "{name}: {value}\r\n");
        }
        match connection {
            Connection::Default => {}
            Connection::Close => wire.extend_from_slice(b"Connection: close\r\n"),
            Connection::KeepAlive => wire.extend_from_slice(b"Connection: keep-alive\r\n"),
        }
        wire.extend_from_slice(b"\r\n");
        if !head_only {
            wire.extend_from_slice(&self.body);
        }
    }
}

/// What the `Connection` header of a reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connection {
    /// Nothing: HTTP/1.1's default, the connection stays open.
    Default,
    /// The connection ends after this reply.
    Close,
    /// Stays open although the request was HTTP/1.0 (whose default is to close).
    KeepAlive,
}

/// The reason phrase of the statuses the server sends.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

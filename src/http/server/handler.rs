//! [`Handler`]: the seam between the server, an I/O shell, and the application that answers
//! requests (routing, ingest, operations). The server knows nothing of routes; it asks its
//! handler.

use super::request::Request;
use super::response::Reply;

/// What the server needs from the application it serves.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles one request to the end, except for sending the reply, which the server does.
    /// Runs on the connection's thread, and may block (an ingest waits for the backend).
    fn handle(&self, request: &mut Request<'_>) -> Reply;

    /// Whether a request for `target` is answered on a reserve connection: the few cheap ones
    /// (`/healthz`, `/readyz`, `/metrics`) that must be answered whatever the other clients do.
    fn answers_on_reserve(&self, target: &str) -> bool;
}

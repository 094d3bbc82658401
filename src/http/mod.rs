//! HTTP ingest and operations routes (spec 5).
//!
//! Connections are served by a few event loops ([`server`]); a device fleet holds thousands of
//! keep-alive connections at once (issue #15). A handler never blocks its loop: ingest checks
//! the head, asks for the body, hands the events to the backend and answers `202` later, when
//! the backend's completion callback confirmed them (a deferred reply).
//!
//! - [`server`]: HTTP/1.1 over TCP (heads, bodies, keep-alive, pipelining, timeouts), replies
//!   and JSON error bodies; an I/O shell that asks its [`server::Handler`] (here [`HttpState`],
//!   through [`routes`]) for each answer.
//! - [`routes`]: which route a request is for, `404`/`405`.
//! - [`ingest`]: single-event and batch ingest (a batch's events are parsed by
//!   [`crate::cloudevents::parse_batch`]);
//!   [`names`] refuses device names and channels that cannot form a valid MQTT topic.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`status`]: the status page `/` and its JSON `/api/v1/status`.
//! - [`auth`]: the authentication seam ([`HttpAuthenticator`]).
//!
//! Owns: the HTTP listener, its routes, ingest and the operations endpoints. Must not touch: MQTT
//! sessions, shards or a backend's internals: ingest writes through the seam's
//! [`crate::seam::Producer`], and credentials are checked by [`crate::auth`].

mod access;
mod auth;
mod device_commands;
mod ingest;
mod names;
mod ops;
mod routes;
mod server;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{AnonymousOnly, AuthFailure, HttpAuthenticator};
pub use server::{HttpLimits, HttpServer};
pub use status::StatusSettings;

use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::registry::Current;
use crate::seam::Producer;

/// Default for [`HttpState::max_body_size`]: 1 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024;

/// What every request handler shares.
pub struct HttpState {
    pub registry: Arc<Current>,
    pub producer: Arc<dyn Producer>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<dyn HttpAuthenticator>,
    /// Set by whoever binds the MQTT listeners, once they all are bound (for `/readyz`).
    pub listeners_ready: Arc<AtomicBool>,
    /// The `instance` extension of ingested events (spec 2.3).
    pub instance: String,
    /// Largest request body accepted, in bytes; larger ones get `413`.
    pub max_body_size: usize,
    /// Who may see the status page, and what it says about the backend.
    pub status: StatusSettings,
    /// Where devices wait for commands (`?ct=`, the commands long poll).
    pub inbox: Arc<Inbox>,
    /// `http.max_command_wait`.
    pub max_command_wait: Duration,
}

//! Operations routes: liveness, readiness and metrics (spec 5). No authentication: these are
//! for orchestrators and scrapers, and tell nothing about applications or devices.

use std::sync::atomic::Ordering;

use super::server::{Outcome, Reply};
use super::HttpState;

/// Prometheus text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// `GET /healthz`: the process runs and answers.
pub(crate) fn healthz() -> Reply {
    Reply::text(200, "text/plain", "ok")
}

/// `GET /readyz`: the MQTT listeners are bound and the backend is reachable.
pub(crate) fn readyz(state: &HttpState) -> Outcome {
    let missing = not_ready(state);
    if missing.is_empty() {
        Ok(Reply::text(200, "text/plain", "ok"))
    } else {
        Err(Reply::error(
            503,
            format!("not ready: {}", missing.join("; ")),
        ))
    }
}

/// What keeps the service from being ready; empty when it is.
fn not_ready(state: &HttpState) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !state.listeners_ready.load(Ordering::Acquire) {
        missing.push("the MQTT listeners are not bound yet");
    }
    if !state.producer.ready() {
        missing.push("the event backend is not reachable");
    }
    missing
}

/// `GET /metrics`.
pub(crate) fn metrics(state: &HttpState) -> Reply {
    // Readiness is asked of the listeners and the backend, not counted: read it for this scrape.
    state.metrics.set_ready(not_ready(state).is_empty());
    Reply::text(200, PROMETHEUS_TEXT, state.metrics.render())
}

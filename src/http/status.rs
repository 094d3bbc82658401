//! The status page (`GET /`) and the JSON behind it (`GET /api/v1/status`), issue #16.
//!
//! The figures are the ones `/metrics` renders, read through [`Metrics::snapshot`]: nothing is
//! counted twice. The page is one static file compiled into the binary (no build step, no
//! CDN); its script polls the JSON route and draws the rates itself.
//!
//! Both routes need the admin role (a token carrying `auth.oauth.admin_role`) unless
//! `http.status_page = "public"`: group names name clients, which is not for everyone.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::auth::AuthFailure;
use super::server::{Outcome, Reply, Request};
use super::HttpState;
use crate::config::StatusPage;
use crate::registry::Identity;

const PAGE: &str = include_str!("status.html");

/// Only a token can carry the admin role (API-key users are plain users).
const WWW_AUTHENTICATE: &str = "Bearer realm=\"mqtt-integration status\"";

/// What the status routes need beyond the shared [`HttpState`].
#[derive(Debug, Clone, Copy)]
pub struct StatusSettings {
    /// `http.status_page`.
    pub access: StatusPage,
    /// `backend.kind`, as the configuration names it.
    pub backend: &'static str,
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings {
            access: StatusPage::Admin,
            backend: "embedded",
        }
    }
}

/// `GET /`.
pub(crate) fn page(state: &HttpState, request: &Request<'_>) -> Outcome {
    authorize(state, request)?;
    Ok(Reply::text(200, "text/html; charset=utf-8", PAGE)
        .with_header("Cache-Control", "no-store")
        // The page loads nothing from elsewhere; say so, so that an injected script could not.
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:",
        ))
}

/// `GET /api/v1/status`.
pub(crate) fn json(state: &HttpState, request: &Request<'_>) -> Outcome {
    authorize(state, request)?;
    Ok(Reply::json(200, &status(state)).with_header("Cache-Control", "no-store"))
}

fn status(state: &HttpState) -> serde_json::Value {
    let s = state.metrics.snapshot();
    let connections: serde_json::Map<_, _> = s
        .connections
        .iter()
        .map(|(protocol, n)| (protocol.label().to_owned(), json!(n)))
        .collect();
    let groups: Vec<_> = s
        .group_lag
        .iter()
        .map(|(group, lag)| json!({ "group": group, "lag": lag }))
        .collect();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "time_ms": now_ms,
        "version": env!("CARGO_PKG_VERSION"),
        "connections": connections,
        "connections_total": s.connections.iter().map(|(_, n)| n).sum::<i64>(),
        "max_connections": s.max_connections,
        "subscriptions": s.subscriptions,
        "events": {
            "in": s.events_in,
            "out": s.events_out,
            "acked": s.events_acked,
            "skipped": s.records_skipped,
        },
        "groups": groups,
        "groups_known": s.groups,
        "backend": {
            "kind": state.status.backend,
            "ready": state.producer.ready(),
            "consumers": s.backend_consumers,
        },
        "listeners_ready": state.listeners_ready.load(Ordering::Acquire),
    })
}

fn authorize(state: &HttpState, request: &Request<'_>) -> Result<(), Reply> {
    if state.status.access == StatusPage::Public {
        return Ok(());
    }
    let refused = |message: String| {
        Reply::error(401, message).with_header("WWW-Authenticate", WWW_AUTHENTICATE)
    };
    match state.auth.authenticate(request.header("Authorization")) {
        Ok(Identity::User { admin: true, .. }) => Ok(()),
        Ok(who) => Err(refused(format!(
            "the status page needs the admin role (a token with `auth.oauth.admin_role`); \
             {who} does not have it; or set `http.status_page = \"public\"`"
        ))),
        Err(AuthFailure::Missing) => Err(refused(
            "the status page needs the admin role: send `Authorization: Bearer <token>` with \
             `auth.oauth.admin_role`, or set `http.status_page = \"public\"`"
                .to_owned(),
        )),
        Err(AuthFailure::Invalid(why)) => {
            Err(refused(format!("the credentials were refused: {why}")))
        }
    }
}

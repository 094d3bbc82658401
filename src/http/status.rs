//! The status page (`GET /`) and the JSON behind it (`GET /api/v1/status`), issue #16.
//!
//! The figures are the ones `/metrics` renders, read through [`Metrics::snapshot`]: nothing is
//! counted twice. The page is one static file compiled into the binary (no build step, no
//! CDN); its script polls the JSON route and draws the rates itself.
//!
//! Both routes need the admin role (a token carrying `auth.oauth.admin_role`, or the API key of
//! a `[[user]]` with `admin = true`) unless `http.status_page = "public"`: group names name
//! clients, which is not for everyone. The `401` offers Basic as well as Bearer, so that a plain
//! browser asks for the admin user's name and API key.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use serde_json::json;

use super::auth::AuthFailure;
use super::server::{Outcome, Reply, Request};
use super::HttpState;
use crate::config::StatusPage;
use crate::registry::Identity;

const PAGE: &str = include_str!("status.html");

/// The challenges of a `401`: Basic first, the one browsers answer with a login prompt.
const CHALLENGES: [&str; 2] = [
    "Basic realm=\"mqtt-integration status\", charset=\"UTF-8\"",
    "Bearer realm=\"mqtt-integration status\"",
];

/// What the status routes need beyond the shared [`HttpState`].
#[derive(Debug, Clone)]
pub struct StatusSettings {
    /// `http.status_page`.
    pub access: StatusPage,
    /// `backend.kind`, as the configuration names it.
    pub backend: &'static str,
    /// Counter readings taken by earlier status requests, for the rates.
    pub rates: Arc<Mutex<Rates>>,
}

impl StatusSettings {
    pub fn new(access: StatusPage, backend: &'static str) -> StatusSettings {
        StatusSettings {
            access,
            backend,
            rates: Arc::default(),
        }
    }
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings::new(StatusPage::Admin, "embedded")
    }
}

/// Events in and out per second, from readings of the counters that the status requests
/// themselves take (at most one a second, kept for `RATE_WINDOW_MS`): no thread samples while
/// nobody looks, and every viewer sees the same rate.
#[derive(Debug, Default)]
pub struct Rates {
    /// `(time_ms, events in, events out)`, oldest first.
    readings: VecDeque<(u64, u64, u64)>,
}

/// The rates are over (up to) the last 10 seconds of readings.
const RATE_WINDOW_MS: u64 = 10_000;

impl Rates {
    /// Records a reading at `now_ms` (monotonic; unless the last is under a second old) and returns the rates in and
    /// out per second and the span they cover, in seconds (0 before there are two readings).
    pub fn update(&mut self, now_ms: u64, events_in: u64, events_out: u64) -> (f64, f64, f64) {
        if self
            .readings
            .back()
            .map_or(true, |(at, _, _)| now_ms >= at + 1000)
        {
            self.readings.push_back((now_ms, events_in, events_out));
        }
        // Readings older than the window go (the one just taken always stays).
        while self.readings.len() > 1 && self.readings[0].0 + RATE_WINDOW_MS < now_ms {
            self.readings.pop_front();
        }
        match self.readings.front() {
            Some(&(at, first_in, first_out)) if now_ms > at => {
                let seconds = (now_ms - at) as f64 / 1000.0;
                (
                    events_in.saturating_sub(first_in) as f64 / seconds,
                    events_out.saturating_sub(first_out) as f64 / seconds,
                    seconds,
                )
            }
            _ => (0.0, 0.0, 0.0),
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
    // Rates on a monotonic clock: a wall clock set back would stall them.
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let mono_ms = ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64;
    let (rate_in, rate_out, span) =
        state
            .status
            .rates
            .lock()
            .update(mono_ms, s.events_in, s.events_out);
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
            "in_per_second": rate_in,
            "out_per_second": rate_out,
            "rate_seconds": span,
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
        CHALLENGES
            .iter()
            .fold(Reply::error(401, message), |reply, challenge| {
                reply.with_header("WWW-Authenticate", *challenge)
            })
    };
    match state.auth.authenticate(request.header("Authorization")) {
        Ok(Identity::User { admin: true, .. }) => Ok(()),
        Ok(who) => Err(refused(format!(
            "the status page needs the admin role (a token with `auth.oauth.admin_role`, or the \
             API key of a [[user]] with `admin = true`); {who} does not have it; or set \
             `http.status_page = \"public\"`"
        ))),
        Err(AuthFailure::Missing) => Err(refused(
            "the status page needs the admin role: log in as a [[user]] with `admin = true` \
             (Basic: user name and API key), send `Authorization: Bearer <token>` with \
             `auth.oauth.admin_role`, or set `http.status_page = \"public\"`"
                .to_owned(),
        )),
        Err(AuthFailure::Invalid(why)) => {
            Err(refused(format!("the credentials were refused: {why}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rates;

    #[test]
    fn rates_over_the_last_readings() {
        let mut r = Rates::default();
        assert_eq!(r.update(1_000, 0, 0), (0.0, 0.0, 0.0));
        // Under a second later: no new reading, the rate is against the first.
        assert_eq!(r.update(1_500, 5, 10), (10.0, 20.0, 0.5));
        assert_eq!(r.update(3_000, 20, 40), (10.0, 20.0, 2.0));
        // Long after nobody looked: no rate until a second reading.
        assert_eq!(r.update(30_000, 20, 40), (0.0, 0.0, 0.0));
        let (rin, _, span) = r.update(31_000, 30, 40);
        assert_eq!((rin, span), (10.0, 1.0));
    }
}

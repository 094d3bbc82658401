//! Routing: which handler a request goes to, or `404`/`405`.
//!
//! Paths are split on `/` and each segment is percent-decoded on its own, so an encoded `%2F`
//! stays inside its segment while the channel of single-event ingest may span several
//! segments (everything after `/events/`).

use percent_encoding::percent_decode_str;

use super::server::{Answer, Handler, Method, Reply, Request};
use super::{device_commands, ingest, ops, status, HttpState};

/// The routes of spec 5.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Healthz,
    Readyz,
    Metrics,
    /// `GET /`: the status page.
    StatusPage,
    /// `GET /api/v1/status`: the status page's figures.
    Status,
    /// `POST /api/v1/apps/<app>/devices/<device>/events/<channel>`
    IngestOne {
        app: String,
        device: String,
        channel: String,
    },
    /// `POST /api/v1/apps/<app>/events`
    IngestBatch {
        app: String,
    },
    /// `GET /api/v1/apps/<app>/devices/<device>/commands`: a device's long poll for a command.
    Commands {
        app: String,
        device: String,
    },
}

const ROUTES_HINT: &str = "the routes are POST /api/v1/apps/<app>/devices/<device>/events/<channel>, \
                           POST /api/v1/apps/<app>/events, GET /api/v1/apps/<app>/devices/<device>/commands, GET /healthz, GET /readyz, GET /metrics, GET / and GET /api/v1/status";

impl Route {
    /// The route for a request target (path and optional query), `Ok(None)` if there is none.
    pub fn parse(target: &str) -> Result<Option<Route>, Reply> {
        // The query string means nothing to any route.
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let Some(path) = path.strip_prefix('/') else {
            return Ok(None);
        };
        let segments = path.split('/').map(decode).collect::<Result<Vec<_>, _>>()?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        Ok(match segments.as_slice() {
            ["healthz"] => Some(Route::Healthz),
            ["readyz"] => Some(Route::Readyz),
            ["metrics"] => Some(Route::Metrics),
            [""] => Some(Route::StatusPage),
            ["api", "v1", "status"] => Some(Route::Status),
            ["api", "v1", "apps", app, "events"] if !app.is_empty() => Some(Route::IngestBatch {
                app: app.to_string(),
            }),
            ["api", "v1", "apps", app, "devices", device, "commands"]
                if !app.is_empty() && !device.is_empty() =>
            {
                Some(Route::Commands {
                    app: app.to_string(),
                    device: device.to_string(),
                })
            }
            ["api", "v1", "apps", app, "devices", device, "events", channel @ ..]
                if !app.is_empty() && !device.is_empty() && !channel.is_empty() =>
            {
                let channel = channel.join("/");
                (!channel.is_empty()).then(|| Route::IngestOne {
                    app: app.to_string(),
                    device: device.to_string(),
                    channel,
                })
            }
            _ => None,
        })
    }

    /// Whether `target` names an operations route (`/healthz`, `/readyz`, `/metrics`): the
    /// requests the server answers even when its connections are all busy.
    pub fn is_operations(target: &str) -> bool {
        matches!(
            Route::parse(target),
            Ok(Some(Route::Healthz | Route::Readyz | Route::Metrics))
        )
    }

    /// The methods the route answers, as the `Allow` header lists them.
    fn allow(&self) -> &'static str {
        match self {
            Route::Healthz | Route::Readyz | Route::Metrics | Route::StatusPage | Route::Status => {
                "GET, HEAD"
            }
            Route::Commands { .. } => "GET",
            Route::IngestOne { .. } | Route::IngestBatch { .. } => "POST",
        }
    }

    fn allows(&self, method: &Method) -> bool {
        match self {
            Route::Healthz | Route::Readyz | Route::Metrics | Route::StatusPage | Route::Status => {
                matches!(method, Method::Get | Method::Head)
            }
            Route::Commands { .. } => *method == Method::Get,
            Route::IngestOne { .. } | Route::IngestBatch { .. } => *method == Method::Post,
        }
    }
}

fn decode(segment: &str) -> Result<String, Reply> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            Reply::error(
                400,
                format!("path segment `{segment}` is not UTF-8 once percent-decoded; percent-encode names as UTF-8"),
            )
        })
}

/// The application the HTTP server serves: each request routed to its handler.
impl Handler for HttpState {
    fn handle(&self, request: &Request<'_>) -> Answer {
        dispatch(self, request).unwrap_or_else(Answer::Now)
    }

    fn answers_on_reserve(&self, target: &str) -> bool {
        Route::is_operations(target)
    }

    fn answered(&self, _method: &Method, _target: &str, reply: &Reply) {
        self.metrics.http_response(reply.status);
    }
}

fn dispatch(state: &HttpState, request: &Request<'_>) -> Result<Answer, Reply> {
    let Some(route) = Route::parse(request.url())? else {
        return Err(Reply::error(
            404,
            format!("no route for `{}`; {ROUTES_HINT}", request.url()),
        ));
    };
    if !route.allows(request.method()) {
        let allow = route.allow();
        return Err(Reply::error(
            405,
            format!(
                "method {} is not allowed here; use {allow}",
                request.method()
            ),
        )
        .with_header("Allow", allow));
    }
    let now = |reply: Result<Reply, Reply>| reply.map(Answer::Now);
    match route {
        Route::Healthz => Ok(ops::healthz().into()),
        Route::Readyz => now(ops::readyz(state)),
        Route::Metrics => Ok(ops::metrics(state).into()),
        Route::StatusPage => now(status::page(state, request)),
        Route::Status => now(status::json(state, request)),
        Route::IngestOne {
            app,
            device,
            channel,
        } => ingest::one(state, request, &app, &device, &channel),
        Route::IngestBatch { app } => ingest::batch(state, request, &app),
        Route::Commands { app, device } => device_commands::poll(state, request, &app, &device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::names::check_topic;
    use crate::protocol::topic::{valid_topic_name, valid_topic_part};
    use proptest::prelude::*;

    fn parse(target: &str) -> Option<Route> {
        Route::parse(target).unwrap()
    }

    #[test]
    fn channel_spans_segments_and_segments_are_decoded() {
        assert_eq!(
            parse("/api/v1/apps/my%20app/devices/d%2F1/events/a/b%3F?x=1"),
            Some(Route::IngestOne {
                app: "my app".into(),
                device: "d/1".into(),
                channel: "a/b?".into(),
            })
        );
        assert_eq!(
            parse("/api/v1/apps/a/events"),
            Some(Route::IngestBatch { app: "a".into() })
        );
    }

    #[test]
    fn incomplete_paths_have_no_route() {
        for target in [
            "/api/v1/apps/a/devices/d/events",
            "/api/v1/apps/a/devices/d/events/",
            "/api/v1/apps//events",
            "/api/v1/apps/a/devices//events/c",
            "/healthz/",
            "healthz",
            "/api/v1/status/",
        ] {
            assert_eq!(parse(target), None, "{target}");
        }
        // `/` is the status page (issue #16), `//` is nothing.
        assert_eq!(parse("/"), Some(Route::StatusPage));
        assert_eq!(parse("//"), None);
    }

    #[test]
    fn bad_utf8_is_a_400() {
        let err = Route::parse("/api/v1/apps/%FF/events").unwrap_err();
        assert_eq!(err.status, 400);
    }

    // Here rather than in `names`, which routes use: names' tests do not reach back into routes.
    proptest! {
        /// The route's percent-decoding cannot smuggle anything past the check: any bytes,
        /// percent-encoded in the path, come out as a channel that is either refused or valid.
        #[test]
        fn percent_encoded_paths_are_checked_after_decoding(bytes in proptest::collection::vec(any::<u8>(), 1..12)) {
            let encoded: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
            let target = format!("/api/v1/apps/demo/devices/d/events/{encoded}");
            if let Ok(Some(Route::IngestOne { device, channel, .. })) = Route::parse(&target) {
                if check_topic("demo", &device, &channel).is_ok() {
                    let topic = format!("app/demo/{device}/{channel}");
                    prop_assert!(valid_topic_name(&topic), "{:?}", topic);
                    prop_assert!(valid_topic_part(&channel));
                }
            }
        }
    }
}

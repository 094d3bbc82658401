//! `[http]`: the operations and ingest HTTP server.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

/// `[http]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the health, readiness, metrics and ingest routes. Bind a public address (or
    /// `0.0.0.0`) to let probes and devices outside the machine reach it.
    pub bind: SocketAddr,
    /// Largest request body accepted by ingest, in bytes; larger requests get `413`. Raise it for
    /// large batches or payloads.
    pub max_body_size: usize,
    /// Time a client has to send a whole request head (request line and headers), from its
    /// first byte: past it the request gets `408` and the connection closes. It bounds how long
    /// a client trickling its head a byte at a time holds a connection; raise it only for very
    /// slow links.
    #[serde(with = "humantime_serde")]
    pub head_timeout: Duration,
    /// Event-loop threads serving the HTTP port; 0 = one per core.
    pub threads: usize,
    /// HTTP connections held at once. When all are taken an idle one is closed to make room;
    /// when none is idle, new ones get `503` (a small reserve still answers `/healthz`,
    /// `/readyz` and `/metrics`). Each takes a file descriptor: the process raises its open
    /// files limit to the hard limit at start.
    pub max_connections: usize,
    /// HTTP connections from one IP address at once; 0 = no limit. Beyond it, `503`.
    pub max_connections_per_ip: usize,
    /// Who may see the status page (`GET /`) and its JSON (`GET /api/v1/status`): `"admin"`
    /// (a token with `auth.oauth.admin_role`) or `"public"` (anyone who reaches the port). The
    /// page shows group names, which name clients, so it is not public by default.
    pub status_page: StatusPage,
    /// Longest a device may wait for a command over HTTP (`?ct=<seconds>` on an ingest,
    /// `?wait=<seconds>` on the commands long poll); longer asks are cut to it. Each waiting
    /// device holds a connection and a little memory.
    #[serde(with = "humantime_serde")]
    pub max_command_wait: Duration,
}

/// `http.status_page`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusPage {
    #[default]
    Admin,
    Public,
}

impl HttpConfig {
    /// The number of HTTP event loops to start: `threads`, or one per core when it is 0.
    pub fn loop_threads(&self) -> usize {
        super::server::resolve_threads(self.threads)
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            max_body_size: 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            threads: 0,
            max_connections: 100_000,
            max_connections_per_ip: 0,
            status_page: StatusPage::Admin,
            max_command_wait: Duration::from_secs(60),
        }
    }
}

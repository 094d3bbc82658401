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
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            max_body_size: 1024 * 1024,
            head_timeout: Duration::from_secs(10),
        }
    }
}

//! HTTP ingest and operations routes (spec 5).
//!
//! A small fixed pool of worker threads shares one [`tiny_http::Server`]; each thread takes
//! the next request with `recv()` and handles it to the end, including the wait for the backend
//! to confirm an ingested event. Ingest is comparatively rare next to MQTT traffic, so blocking
//! workers are the simple, predictable choice: the pool size bounds the concurrent ingest
//! requests, and everything beyond waits in tiny_http's queue.
//!
//! - [`routes`]: which route a request is for, `404`/`405`.
//! - [`ingest`]: single-event and batch ingest; [`batch`] prepares the batch's events.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`auth`]: the authentication seam ([`HttpAuthenticator`]).
//! - [`response`]: replies, and JSON error bodies.

mod auth;
mod batch;
mod ingest;
mod ops;
mod response;
mod routes;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use auth::{AnonymousOnly, AuthFailure, HttpAuthenticator};

use crate::backend::Producer;
use crate::metrics::Metrics;
use crate::registry::Registry;
use response::Reply;

/// Default for [`HttpState::max_body_size`]: 1 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024;

/// What every request handler shares.
pub struct HttpState {
    pub registry: Arc<Registry>,
    pub producer: Arc<dyn Producer>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<dyn HttpAuthenticator>,
    /// Set by whoever binds the MQTT listeners, once they all are bound (for `/readyz`).
    pub listeners_ready: Arc<AtomicBool>,
    /// The `instance` extension of ingested events (spec 2.3).
    pub instance: String,
    /// Largest request body accepted, in bytes; larger ones get `413`.
    pub max_body_size: usize,
}

/// The running HTTP server: its bound address and worker threads.
///
/// Dropping it stops it as [`HttpServer::shutdown`] does.
pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `bind` (port 0 picks a free port, see [`HttpServer::local_addr`]) and starts
    /// `threads` workers (at least one).
    pub fn start(bind: SocketAddr, state: HttpState, threads: usize) -> io::Result<HttpServer> {
        let server = tiny_http::Server::http(bind).map_err(|e| {
            // Keep the kind (e.g. AddrInUse) when tiny_http passes an io::Error through.
            let kind = e
                .downcast_ref::<io::Error>()
                .map_or(io::ErrorKind::Other, io::Error::kind);
            io::Error::new(kind, format!("cannot bind the HTTP server to {bind}: {e}"))
        })?;
        let addr = server.server_addr().to_ip().ok_or_else(|| {
            io::Error::other(format!(
                "the HTTP server bound to {bind} reports no IP address"
            ))
        })?;
        let mut running = HttpServer {
            server: Arc::new(server),
            addr,
            stopping: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        let state = Arc::new(state);
        for i in 0..threads.max(1) {
            let server = running.server.clone();
            let stopping = running.stopping.clone();
            let state = state.clone();
            let thread = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || serve(&server, &state, &stopping))
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot start HTTP worker thread: {e}"))
                })?;
            // On an early return above, `running` is dropped and stops the threads started so far.
            running.threads.push(thread);
        }
        tracing::info!(%addr, threads = running.threads.len(), "HTTP server listening");
        Ok(running)
    }

    /// The address actually bound (with the port chosen when `bind` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests, lets every worker finish the request it is handling, and joins
    /// them. The listening socket closes moments later, when tiny_http's accept thread notices
    /// that the server was dropped.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stopping.store(true, Ordering::SeqCst);
        // Each unblock() releases exactly one recv(), so one per worker.
        for _ in &self.threads {
            self.server.unblock();
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::warn!("an HTTP worker thread panicked");
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One worker: handle requests until the server is stopped.
fn serve(server: &tiny_http::Server, state: &HttpState, stopping: &AtomicBool) {
    loop {
        let mut request = match server.recv() {
            Ok(request) => request,
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                // A failed accept or a malformed request line; tiny_http already answered what
                // it could. Nothing to do but take the next one.
                tracing::debug!(error = %e, "HTTP receive failed");
                continue;
            }
        };
        // A bug in a handler must not shrink the fixed pool: answer 500 and carry on.
        let reply = catch_unwind(AssertUnwindSafe(|| routes::handle(state, &mut request)))
            .unwrap_or_else(|_| {
                tracing::error!(method = %request.method(), url = request.url(), "HTTP handler panicked");
                Reply::error(500, "internal error while handling the request; see the service log")
            });
        reply.log(&request);
        reply.send(request);
    }
}

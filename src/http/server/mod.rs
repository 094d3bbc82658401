//! The HTTP/1.1 server: a few mio event loops of its own (`http.threads`), each accepting
//! from the shared listening socket and serving its connections without blocking: keep-alive,
//! pipelining (answers in order), `Content-Length` and chunked bodies, `Expect: 100-continue`,
//! bounded buffers, idle, stall and head deadlines, and replies that come later (an ingest
//! answered once the backend confirmed it) without holding a thread.
//!
//! - [`event_loop`]: one loop: accepting, readiness, deadlines, deferred replies.
//! - [`connection`]: one connection's state machine (read, parse, handle, answer).
//! - [`head`]: the request head (httparse) and what it says of framing and keep-alive.
//! - [`body`]: the body as `Content-Length` or chunked coding delimit it (resumable).
//! - [`inbound`]: the connection's bounded read buffer.
//! - [`pool`]: the places connections hold (`http.max_connections`, per address
//!   `http.max_connections_per_ip`); which one gives way, and the reserve that keeps
//!   `/healthz`, `/readyz` and `/metrics` answered whatever ingest clients do.
//! - [`handler`]: the [`Handler`] the server is given, which answers each request with an
//!   [`Answer`]: a reply now, after the body, or later through a [`Responder`]. The server
//!   imports nothing of the application (routes, ingest) it serves.
//! - [`request`]: what a handler sees of a request; [`response`]: the [`Reply`] it returns, and
//!   how it is written; [`responder`]: how a later reply reaches the loop (one wake-up for a
//!   burst of them).
//!
//! Owns: the HTTP listening socket, its connections and their timeouts. Must not touch: what a
//! request means (the handler's business); no TLS here (the HTTP port has never had it).
//!
//! Own loops rather than the MQTT shards': the shards' loops stay free of HTTP's deadlines and
//! handler calls (an ingest's registry and auth checks), and the two kinds of clients cannot
//! delay one another; the loops are few, so the cost is a thread or two.
//!
//! It replaced a thread per connection (256 at most, issue #15: a fleet of 1,000 keep-alive
//! devices got 744 `503`s), which had replaced tiny_http.

mod body;
mod connection;
mod event_loop;
mod handler;
mod head;
mod inbound;
mod pool;
mod request;
mod responder;
mod response;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};

pub(crate) use handler::{Answer, Deferred, Handler};
pub(crate) use head::Method;
pub(crate) use request::Request;
pub(crate) use responder::Responder;
pub(crate) use response::{Outcome, Reply};

/// How long [`HttpServer::shutdown`] waits for requests in progress (an ingest waits for the
/// backend up to 10 s).
const STOP_WAIT: Duration = Duration::from_secs(15);

/// What the server allows its clients.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Event loops serving the port (at least 1).
    pub threads: usize,
    /// Connections served at once. When all are taken, the one idle longest is closed to make
    /// room; when none is idle, the newcomer goes to the reserve.
    pub max_connections: usize,
    /// Connections from one address at once (0: no limit); beyond it, `503`.
    pub max_connections_per_ip: usize,
    /// Connections beyond `max_connections` that answer only `/healthz`, `/readyz` and
    /// `/metrics` (one request each), so that probes are answered whatever ingest clients do.
    pub ops_reserve: usize,
    /// A keep-alive connection without a request for this long is closed.
    pub idle: Duration,
    /// A client silent this long in the middle of a request gets `408` and is disconnected.
    pub stall: Duration,
    /// A request head not complete this long after its first byte gets `408` and the connection
    /// is closed, however steadily its bytes trickle in.
    pub head_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_connections: 100_000,
            max_connections_per_ip: 0,
            ops_reserve: 16,
            idle: Duration::from_secs(120),
            stall: Duration::from_secs(30),
            head_timeout: Duration::from_secs(10),
        }
    }
}

/// What the event loops share.
struct Shared<H> {
    handler: H,
    limits: HttpLimits,
    pool: pool::Pool,
    stopping: AtomicBool,
}

/// The running HTTP server: its bound address and event loops.
///
/// Dropping it stops it as [`HttpServer::shutdown`] does.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl HttpServer {
    /// Binds `bind` (port 0 picks a free port, see [`HttpServer::local_addr`]) and serves
    /// within `limits`, each request answered by `handler`.
    pub(crate) fn start<H: Handler>(
        bind: SocketAddr,
        handler: H,
        limits: HttpLimits,
    ) -> io::Result<HttpServer> {
        let listener = std::net::TcpListener::bind(bind).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind the HTTP server to {bind}: {e}"),
            )
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (max_connections, threads) = (limits.max_connections, limits.threads.max(1));
        let shared = Arc::new(Shared {
            handler,
            pool: pool::Pool::new(
                limits.max_connections,
                limits.ops_reserve,
                limits.max_connections_per_ip,
            ),
            limits,
            stopping: AtomicBool::new(false),
        });
        let mut loops: Vec<(JoinHandle<()>, Arc<responder::Inbox>)> = Vec::new();
        let stop_all = |shared: &Shared<H>, loops: Vec<(JoinHandle<()>, Arc<responder::Inbox>)>| {
            shared.stopping.store(true, Ordering::Release);
            for (_, inbox) in &loops {
                let _ = inbox.waker.wake();
            }
            for (thread, _) in loops {
                if thread.join().is_err() {
                    tracing::warn!("an HTTP event loop panicked");
                }
            }
        };
        for i in 0..threads {
            let started = (|| {
                let poll = Poll::new()?;
                let waker = Waker::new(poll.registry(), event_loop::WAKER)?;
                let (tx, replies) = crossbeam_channel::unbounded();
                let inbox = Arc::new(responder::Inbox {
                    tx,
                    waker,
                    woken: AtomicBool::new(false),
                });
                let event_loop = event_loop::EventLoop {
                    poll,
                    listener: mio::net::TcpListener::from_std(listener.try_clone()?),
                    inbox: inbox.clone(),
                    replies,
                    shared: shared.clone(),
                };
                let thread = std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || event_loop.run())?;
                io::Result::Ok((thread, inbox))
            })();
            match started {
                Ok(started) => loops.push(started),
                Err(e) => {
                    stop_all(&shared, loops);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot start the HTTP event loops: {e}"),
                    ));
                }
            }
        }
        tracing::info!(%addr, max_connections, threads, "HTTP server listening");
        Ok(HttpServer {
            addr,
            stop: Some(Box::new(move || stop_all(&shared, loops))),
        })
    }

    /// The address actually bound (with the port chosen when `bind` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections and requests, and waits (up to 15 s) for the requests in
    /// progress to be answered.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

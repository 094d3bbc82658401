//! The HTTP/1.1 server: an accepting thread, and a thread per connection that reads, handles
//! and answers its requests ([`connection`]).
//!
//! - [`head`]: the request head (httparse) and what it says of framing and keep-alive.
//! - [`body`]: the body as `Content-Length` or chunked coding delimit it.
//! - [`inbound`]: the connection's read buffer and its timeouts (idle, stall, head deadline).
//! - [`pool`]: the places connections hold; which one gives way, and the reserve that keeps
//!   `/healthz`, `/readyz` and `/metrics` answered whatever ingest clients do.
//! - [`handler`]: the [`Handler`] the server is given, which answers each request; the server
//!   imports nothing of the application (routes, ingest) it serves.
//! - [`request`]: what a handler sees of a request; [`response`]: the [`Reply`] it returns, and
//!   how it is written.
//!
//! It replaced tiny_http, which handed every request from the connection's thread to a worker
//! thread and back (~20 % of the service's CPU at 1,000 requests/s went to those hand-offs),
//! and whose fixed pool left keep-alive clients beyond the fourth waiting for the whole run.

mod body;
mod connection;
mod handler;
mod head;
mod inbound;
mod pool;
mod request;
mod response;

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) use handler::Handler;
pub(crate) use head::Method;
pub(crate) use request::Request;
pub(crate) use response::{Outcome, Reply};

/// How long [`HttpServer::shutdown`] waits for requests in progress (an ingest waits for the
/// backend up to 10 s).
const STOP_WAIT: Duration = Duration::from_secs(15);

/// What the server allows its clients.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections served at once (a thread each). When all are taken, the one idle longest
    /// is closed to make room; when none is idle, the newcomer goes to the reserve.
    pub max_connections: usize,
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
            max_connections: 256,
            ops_reserve: 16,
            idle: Duration::from_secs(120),
            stall: Duration::from_secs(30),
            head_timeout: Duration::from_secs(10),
        }
    }
}

/// The running HTTP server: its bound address and accepting thread.
///
/// Dropping it stops it as [`HttpServer::shutdown`] does.
pub struct HttpServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `bind` (port 0 picks a free port, see [`HttpServer::local_addr`]) and serves
    /// within `limits`, each request answered by `handler`.
    pub(crate) fn start<H: Handler>(
        bind: SocketAddr,
        handler: H,
        limits: HttpLimits,
    ) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(bind).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind the HTTP server to {bind}: {e}"),
            )
        })?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let max_connections = limits.max_connections;
        let acceptor = {
            let (stopping, live) = (stopping.clone(), live.clone());
            let handler = Arc::new(handler);
            std::thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || accept(&listener, &handler, &stopping, &live, &limits))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot start the HTTP accept thread: {e}"),
                    )
                })?
        };
        tracing::info!(%addr, max_connections, "HTTP server listening");
        Ok(HttpServer {
            addr,
            stopping,
            live,
            acceptor: Some(acceptor),
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
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stopping.store(true, Ordering::Release);
        // The accepting thread blocks in accept(): a connection of our own wakes it.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if acceptor.join().is_err() {
            tracing::warn!("the HTTP accept thread panicked");
        }
        let deadline = Instant::now() + STOP_WAIT;
        while self.live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.live.load(Ordering::Acquire);
        if left > 0 {
            tracing::warn!(
                connections = left,
                "HTTP requests still in progress at shutdown"
            );
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept<H: Handler>(
    listener: &TcpListener,
    handler: &Arc<H>,
    stopping: &Arc<AtomicBool>,
    live: &Arc<AtomicUsize>,
    limits: &HttpLimits,
) {
    let max_connections = limits.max_connections.max(1);
    let pool = Arc::new(pool::Pool::new(max_connections, limits.ops_reserve));
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of file descriptors, mostly: wait a little rather than spin.
                tracing::warn!(error = %e, "HTTP accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Ok(slot) = pool.admit(&stream) else {
            turn_away(&stream, max_connections);
            continue;
        };
        live.fetch_add(1, Ordering::AcqRel);
        let (handler, stopping, live_too) = (handler.clone(), stopping.clone(), live.clone());
        let (pool_too, held) = (pool.clone(), slot.clone());
        let patience = connection::Patience {
            // A reserve connection is for one probe, which sends its head at once.
            idle: match slot.place {
                pool::Place::General => limits.idle,
                pool::Place::Reserve => limits.idle.min(limits.head_timeout),
            },
            stall: limits.stall,
            head: limits.head_timeout,
        };
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                connection::serve(&stream, &*handler, &stopping, patience, &slot);
                pool_too.release(&slot);
                live_too.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            pool.release(&held);
            live.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(error = %e, "cannot start a thread for an HTTP connection");
        }
    }
}

fn turn_away(stream: &TcpStream, max_connections: usize) {
    tracing::warn!(
        max_connections,
        "HTTP connection refused: the server holds as many as it may"
    );
    let reply = Reply::error(
        503,
        format!("the server holds its maximum of {max_connections} HTTP connections, all in the middle of a request; retry later or reuse a connection"),
    );
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = reply.send(&mut &*stream, false, true);
    let _ = stream.shutdown(Shutdown::Write);
}

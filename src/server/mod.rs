//! Wiring: configuration in, a running service out.
//!
//! [`Server::start`] builds the registry, starts the backend, binds every listener (so a bind
//! error is reported before anything runs), spawns the shards and the HTTP server; the binary
//! and the integration tests both start the service this way. [`reload`]: a new configuration
//! put in force in the running service (SIGHUP).
//!
//! Owns: the order of start-up and shutdown, and which parts a reload replaces. Must not touch:
//! what any part does (MQTT rules, backends' reading, HTTP routes); it only connects them.

pub mod reload;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::auth::{AuthSetupError, Authenticator};
use crate::backend::{self, Backend, EmbeddedLog};
use crate::config::{BackendKind, Config};
use crate::http::{HttpLimits, HttpServer, HttpState, StatusSettings};
use crate::inbox::{Inbox, Keep};
use crate::metrics::Metrics;
use crate::ops::Liveness;
use crate::registry::{Current, Registry};
use crate::session::SessionConfig;
use crate::shard::{self, ClientIds, Control, ListenerSpec, PerIp, ShardContext, ShardPeer};
use crate::tls::{TlsAcceptor, TlsFiles};

/// Our Receive Maximum: unacknowledged QoS 1/2 commands per client.
const SERVER_RECEIVE_MAXIMUM: u16 = 64;
/// Cap on any client's QoS 1 window, whatever it announces (v5 default is 65,535).
const MAX_INFLIGHT: u16 = 1024;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({kind}): {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        kind: &'static str,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("TLS listener {addr}: {source}")]
    Tls {
        addr: SocketAddr,
        source: crate::tls::TlsError,
    },
    #[error("cannot start the event backend: {0}")]
    Backend(String),
    #[error("cannot set up authentication: {0}")]
    Auth(#[from] AuthSetupError),
    #[error("cannot start {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

pub struct Server {
    shards: Vec<(ShardPeer, JoinHandle<()>)>,
    backend: Option<Backend>,
    http: Option<HttpServer>,
    mqtt_addrs: Vec<SocketAddr>,
    http_addr: SocketAddr,
    embedded: Option<Arc<EmbeddedLog>>,
    metrics: Arc<Metrics>,
    acceptors: Vec<Arc<TlsAcceptor>>,
    shutdown_timeout: Duration,
    liveness: Arc<Liveness>,
    /// What a reload replaces: the registry and the credentials in force.
    registry: Arc<Current>,
    auth: Authenticator,
}

impl Server {
    pub fn start(config: &Config) -> Result<Server, StartError> {
        let metrics = Arc::new(Metrics::default());
        metrics.set_max_connections(config.server.max_connections as u64);
        let registry = Arc::new(Current::new(Registry::from_config(config)));
        metrics.set_config_loaded(std::time::SystemTime::now());
        let auth = Authenticator::new(&config.auth, &config.users)?;
        let threads = config.server.shard_threads();

        // Bind first: a port in use is the most common start-up failure, report it before
        // anything else runs.
        let mut per_shard: Vec<Vec<(std::net::TcpListener, Arc<ListenerSpec>)>> =
            (0..threads).map(|_| Vec::new()).collect();
        let mut mqtt_addrs = Vec::new();
        let mut acceptors = Vec::new();
        for l in &config.listeners {
            let tls = match (&l.cert, &l.key) {
                (Some(cert), Some(key)) if l.kind.is_tls() => {
                    let files = TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: l.client_ca.clone(),
                    };
                    let acceptor = TlsAcceptor::new(files).map_err(|source| StartError::Tls {
                        addr: l.bind,
                        source,
                    })?;
                    let acceptor = Arc::new(acceptor);
                    acceptors.push(acceptor.clone());
                    Some(acceptor)
                }
                _ => None,
            };
            let spec = Arc::new(ListenerSpec {
                kind: l.kind,
                tls,
                path: l.path.clone(),
                // A WebSocket message carries MQTT bytes: room for one whole packet and framing.
                max_message: config.server.max_packet_size as usize + 1024,
            });
            let socks = shard::bind_shared(l.bind, threads).map_err(|source| StartError::Bind {
                addr: l.bind,
                kind: l.kind.as_str(),
                source,
            })?;
            mqtt_addrs.extend(shard::local_addrs(&socks[..1]));
            for (i, s) in socks.into_iter().enumerate() {
                per_shard[i].push((s, spec.clone()));
            }
        }

        // Commands for devices that fetch them over HTTP: kept for a while with the embedded
        // backend; with Kafka, every instance reads them and hands out those its devices wait for.
        let keep = match config.backend.kind {
            BackendKind::Embedded => Keep::For(config.backend.embedded.command_ttl),
            BackendKind::Kafka => Keep::OnlyWaiting,
        };
        let inbox = Arc::new(Inbox::new(keep));
        inbox.start_timer().map_err(|source| StartError::Io {
            what: "the device inbox's timer",
            source,
        })?;
        let (backend, embedded) =
            backend::start(config, &metrics, &inbox).map_err(StartError::Backend)?;

        let session = Arc::new(SessionConfig {
            max_packet_size: config.server.max_packet_size,
            default_receive_maximum: config.mqtt.default_receive_maximum,
            server_receive_maximum: SERVER_RECEIVE_MAXIMUM,
            max_inflight: MAX_INFLIGHT,
            connect_timeout: config.server.connect_timeout,
            server_keep_alive: config.mqtt.server_keep_alive,
            max_subscriptions: config.mqtt.max_subscriptions_per_connection,
            registry: registry.clone(),
        });
        let liveness = Arc::new(Liveness::new(threads));
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "mqtt-integration".into());
        let ctx = Arc::new(ShardContext {
            session,
            backend: backend.handle(),
            producer: backend.producer.clone(),
            auth: auth.clone(),
            metrics: metrics.clone(),
            clients: ClientIds::default(),
            max_queued_bytes: config.mqtt.max_queued_bytes,
            max_connections: config.server.max_connections,
            connections: AtomicUsize::new(0),
            instance: instance.clone(),
            per_ip: PerIp::new(config.server.max_connections_per_ip),
            auth_failure_delay: config.auth.failure_delay,
            liveness: liveness.clone(),
        });
        let shards = shard::spawn(ctx, per_shard).map_err(|source| StartError::Io {
            what: "the shards",
            source,
        })?;

        let listeners_ready = Arc::new(AtomicBool::new(false));
        let state = HttpState {
            registry: registry.clone(),
            producer: backend.producer.clone(),
            metrics: metrics.clone(),
            auth: Arc::new(auth.clone()),
            listeners_ready: listeners_ready.clone(),
            instance,
            max_body_size: config.http.max_body_size,
            status: StatusSettings::new(config.http.status_page, config.backend.kind.as_str()),
            inbox,
            max_command_wait: config.http.max_command_wait,
        };
        let limits = HttpLimits {
            head_timeout: config.http.head_timeout,
            threads: config.http.loop_threads(),
            max_connections: config.http.max_connections,
            max_connections_per_ip: config.http.max_connections_per_ip,
            ..HttpLimits::default()
        };
        let http = HttpServer::start(config.http.bind, state, limits).map_err(|source| {
            StartError::Bind {
                addr: config.http.bind,
                kind: "http",
                source,
            }
        })?;
        let http_addr = http.local_addr();
        listeners_ready.store(true, Ordering::Release);
        Ok(Server {
            shards,
            backend: Some(backend),
            http: Some(http),
            mqtt_addrs,
            http_addr,
            embedded,
            metrics,
            acceptors,
            shutdown_timeout: config.server.shutdown_timeout,
            liveness,
            registry,
            auth,
        })
    }

    /// The bound MQTT addresses, in listener order (port 0 resolved).
    pub fn mqtt_addrs(&self) -> &[SocketAddr] {
        &self.mqtt_addrs
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The embedded backend's log (to read commands back in tests), if that is the backend.
    pub fn embedded_log(&self) -> Option<&Arc<EmbeddedLog>> {
        self.embedded.as_ref()
    }

    /// The shards' event-loop heartbeats (the systemd watchdog's input).
    pub fn liveness(&self) -> &Arc<Liveness> {
        &self.liveness
    }

    /// Whether the backend is ready to take events (listeners are bound once `start` returns):
    /// what `/readyz` and systemd's `READY=1` wait for.
    pub fn backend_ready(&self) -> bool {
        self.backend.as_ref().is_some_and(|b| b.producer.ready())
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Re-reads every TLS listener's certificate, key and client CA (SIGHUP). New connections
    /// use the new files; established connections are not touched. A listener whose files fail
    /// to load keeps its current configuration.
    pub fn reload_tls(&self) -> Vec<Result<(), crate::tls::TlsError>> {
        self.acceptors.iter().map(|a| a.reload()).collect()
    }

    /// Spec 6: stop accepting, tell v5 clients (DISCONNECT 0x8B), commit acknowledged offsets,
    /// all within `server.shutdown_timeout`.
    pub fn shutdown(mut self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        for (peer, _) in &self.shards {
            peer.send(Control::Shutdown);
        }
        for (_, handle) in std::mem::take(&mut self.shards) {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                tracing::warn!("a shard did not stop within the shutdown timeout");
            }
        }
        if let Some(backend) = self.backend.take() {
            backend.shutdown(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
    }
}

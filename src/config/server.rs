//! `[server]`: process-wide limits and timeouts.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Smallest accepted `server.max_packet_size`: below this even a CONNACK with properties or a
/// short CloudEvent would not fit.
pub const MIN_PACKET_SIZE: u32 = 64;
/// Largest packet MQTT can describe: the Remaining Length is a Variable Byte Integer of at most
/// four bytes, 268,435,455 (MQTT 3.1.1 §2.2.3, MQTT 5 §1.5.5).
pub const MAX_PACKET_SIZE: u32 = 268_435_455;

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Event-loop (shard) threads that own the client connections; 0 = one per core.
    /// Lower it to leave cores to the embedded backend or to other processes on the machine.
    pub threads: usize,
    /// Connections accepted at once; further ones are refused. Raise it for large fleets of
    /// subscribers (mind the process's file descriptor limit), lower it to bound memory.
    pub max_connections: usize,
    /// Connections accepted at once from one source IP address; 0 = no per-address limit.
    /// Set it on public listeners so one host cannot take every connection slot.
    pub max_connections_per_ip: usize,
    /// Largest MQTT packet accepted from or sent to a client, in bytes (advertised as Maximum
    /// Packet Size to MQTT 5 clients). Raise it when events or commands are larger than 1 MiB.
    pub max_packet_size: u32,
    /// Time a new connection has to send CONNECT before it is closed. Raise it for slow links
    /// (TLS handshakes over satellite, say); lower it to shed idle sockets sooner.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time given on SIGTERM/SIGINT to tell clients and commit acknowledged offsets before the
    /// process exits. Match it to your orchestrator's termination grace period.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Where the running process writes its pid (removed at exit), so that
    /// `mqtt-integration reload` can find it and send SIGHUP. Unset or "": no pid file (read it
    /// through [`ServerConfig::pid_file`]).
    pub pid_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            max_connections: 100_000,
            max_connections_per_ip: 0,
            max_packet_size: 1024 * 1024,
            connect_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            pid_file: None,
        }
    }
}

impl ServerConfig {
    /// `pid_file`, unless unset or empty.
    pub fn pid_file(&self) -> Option<&std::path::Path> {
        self.pid_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// The number of event-loop threads to start: `threads`, or one per core when it is 0.
    pub fn shard_threads(&self) -> usize {
        resolve_threads(self.threads)
    }
}

/// Resolves a thread count where 0 means one per available core (at least one).
pub(crate) fn resolve_threads(configured: usize) -> usize {
    if configured != 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

//! Running under a service manager on bare metal: the log format, systemd's notify protocol
//! (readiness, reloading, stopping, the watchdog), the event loops' liveness the watchdog is fed
//! from, the pid file `mqtt-integration reload` finds the process by, and the open files limit.
//!
//! Owns: process-level plumbing that only the binary's `main` and the shards' heartbeat call.
//! Must not touch: MQTT, backends or HTTP (it only reads heartbeats the shards write).

pub mod liveness;
pub mod logging;
pub mod open_files;
pub mod pid_file;
pub mod systemd;

pub use liveness::Liveness;
pub use pid_file::PidFile;

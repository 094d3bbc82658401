//! mqtt-integration: device events from an event log to MQTT subscribers as CloudEvents,
//! and commands back.
//!
//! The layout is the architecture:
//! - [`protocol`]: the MQTT 3.1.1 / 5 codec, sans-IO.
//! - [`session`]: one connection's MQTT state machine, sans-IO.
//! - [`shard`]: the mio event loops that own sockets and drive sessions.
//! - [`seam`]: the contract between shards and backends (messages, connection ids, records).
//! - [`backend`]: the event backends, the embedded log and Apache Kafka, behind the seam.
//! - [`cloudevents`]: the event model and its MQTT encodings.
//! - [`registry`]: applications, devices, users and who may do what.
//! - [`config`]: the typed configuration file.
//! - [`http`]: ingest and operations routes.
//! - [`inbox`]: commands waiting for devices that fetch them over HTTP.
//! - [`ops`]: running under a service manager: log format, systemd notify, loop liveness.
// `deny`, not `forbid`: one module may opt out (backend::kafka::payload, zero-copy Kafka
// payloads; its documentation argues why that is sound).
#![deny(unsafe_code)]

pub mod auth;
pub mod backend;
pub mod cli;
pub mod cloudevents;
pub mod config;
pub mod fuzzing;
pub mod http;
pub mod inbox;
pub mod metrics;
pub mod ops;
pub mod protocol;
pub mod registry;
pub mod seam;
pub mod server;
pub mod session;
pub mod shard;
pub mod tls;

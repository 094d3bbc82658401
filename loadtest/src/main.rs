//! `loadtest`: drives a running mqtt-integration with real MQTT subscribers and reports delivered
//! events per second and end-to-end latency.
//!
//! Scenarios (subcommands):
//! - `fanout`: HTTP batch ingest → one application → S subscribers (any backend).
//! - `kafka`: records produced straight to the application's Kafka topic; a bare rdkafka consumer
//!   reads them as the baseline, then S subscribers read the same kind of records through the
//!   service (`backend.kind = "kafka"`).
//!
//! Subscribers are plain TCP clients that use the service's own codec to frame packets, so the
//! client side costs little next to the server.

mod fanout;
mod kafka;
mod subscriber;

use clap::{Parser, Subcommand};

/// Load-test rig for mqtt-integration.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Fan-out: one producer (HTTP batch ingest) → one application → S subscribers, each its own
    /// consumer group. Works with either backend.
    Fanout(fanout::Args),
    /// Kafka: events/s through the service vs a bare rdkafka consumer on the same topic, and
    /// produce-to-MQTT latency. Needs the service running with `backend.kind = "kafka"` on the
    /// same broker.
    Kafka(kafka::Args),
}

fn main() {
    match Cli::parse().scenario {
        Scenario::Fanout(args) => fanout::run(args),
        Scenario::Kafka(args) => kafka::run(args),
    }
}

/// `--mqtt-version` and `--mode`, shared by the scenarios: (MQTT 5?, binary mode?).
fn mqtt_choice(version: &str, mode: &str) -> (bool, bool) {
    let v5 = match version {
        "5" => true,
        "311" | "3.1.1" => false,
        other => exit_with(&format!("--mqtt-version must be 5 or 311, not `{other}`")),
    };
    let binary = match mode {
        "structured" => false,
        "binary" if v5 => true,
        "binary" => exit_with("--mode binary needs --mqtt-version 5"),
        other => exit_with(&format!(
            "--mode must be structured or binary, not `{other}`"
        )),
    };
    (v5, binary)
}

fn exit_with(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}

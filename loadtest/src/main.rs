//! `loadtest`: drives mqtt-integration — or any MQTT broker, for comparison — with real MQTT
//! clients and reports delivered events/s, end-to-end latency (HdrHistogram), gaps and
//! duplicates, connect rate and the server's RSS and CPU.
//!
//! Scenarios (subcommands):
//! - `fanout`: P producers → one application → S subscribers, each its own consumer group.
//! - `shared`: S subscribers in G `$share` groups; each event must reach each group once.
//! - `apps`: A applications, each with its producer and subscribers.
//! - `idle`: N connections held open with keep-alive; RSS per connection, connect rate.
//! - `soak`: a steady rate for a long time; RSS and lag over time.
//! - `kafka`: the service's Kafka path against a bare rdkafka consumer (its own knobs).
//! - `http`: single-event POSTs from many keep-alive connections (the device side), against the
//!   service or `loadtest/http-reference`.
//!
//! Event sources: the service's HTTP batch ingest (default), Kafka (`--source kafka`), or, with
//! `--target-broker HOST:PORT`, MQTT publishers to a plain broker (Mosquitto, rumqttd), so the
//! same measurements run against it. The client side is one mio event loop per `--threads`
//! thread with many connections each, parses PUBLISHes in place and allocates nothing per
//! message. See `loadtest/compare` for the side-by-side run.

mod driver;
mod http_load;
mod kafka;
mod net;
mod payload;
mod plot;
mod producer;
mod report;
mod scenario;
mod stats;
mod subscriber;
mod wire;

use clap::{Parser, Subcommand};

/// Load-test rig for mqtt-integration (and, for comparison, any MQTT broker).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Fan-out: P producers → one application → S subscribers (default 1 → 10), each its own
    /// consumer group (its own client id).
    Fanout(scenario::Common),
    /// Shared groups: S subscribers (default 10) in G `$share/<g>/app/<app>` groups (default 2);
    /// checks every event reaches every group exactly once.
    Shared {
        #[command(flatten)]
        common: scenario::Common,
        /// Number of shared groups the subscribers are spread over.
        #[arg(long, default_value_t = 2)]
        groups: usize,
    },
    /// Many applications: A applications `<app>-1` … `<app>-A`, each with one producer and
    /// S/A subscribers (default S = A). The service's config must list them (`loadtest/compare`
    /// writes one).
    Apps {
        #[command(flatten)]
        common: scenario::Common,
        /// Number of applications.
        #[arg(long, default_value_t = 10)]
        apps: usize,
    },
    /// Idle-connection scale: N connections (default 19,000) held with keep-alive, each
    /// answering PINGREQ; reports connect rate and the server's RSS per connection.
    Idle {
        #[command(flatten)]
        common: scenario::Common,
        /// Connections to hold (capped by the open-files limit, with a message).
        #[arg(long, default_value_t = 19_000)]
        connections: usize,
        /// Seconds between PINGREQ rounds (every connection pings once per round).
        #[arg(long, default_value_t = 5.0)]
        ping_interval: f64,
    },
    /// Soak: a steady rate (default 10,000 events/s) for a long time (default 300 s), RSS, CPU,
    /// lag and latency sampled every second into the report (and the plot).
    Soak(scenario::Common),
    /// Kafka: events/s through the service vs a bare rdkafka consumer on the same topic, and
    /// produce-to-MQTT latency. Needs the service running with `backend.kind = "kafka"` on the
    /// same broker.
    Kafka(kafka::Args),
    /// HTTP: single-event POSTs from N keep-alive connections (default 1,000), closed loop or at
    /// --rate; requests/s, latency, the server's CPU and RSS per connection.
    Http(http_load::Args),
}

fn main() {
    let code = match Cli::parse().scenario {
        Scenario::Fanout(c) => scenario::run(scenario::Kind::Fanout, c),
        Scenario::Shared { common, groups } => {
            scenario::run(scenario::Kind::Shared { groups }, common)
        }
        Scenario::Apps { common, apps } => scenario::run(scenario::Kind::Apps { apps }, common),
        Scenario::Idle {
            common,
            connections,
            ping_interval,
        } => scenario::run(
            scenario::Kind::Idle {
                connections,
                ping_interval,
            },
            common,
        ),
        Scenario::Soak(c) => scenario::run(scenario::Kind::Soak, c),
        Scenario::Kafka(args) => {
            kafka::run(args);
            0
        }
        Scenario::Http(args) => http_load::run(args),
    };
    std::process::exit(code);
}

/// `--mqtt-version` and `--mode`, shared by the scenarios: (MQTT 5?, binary mode?).
fn mqtt_choice(version: &str, mode: &str) -> (bool, bool) {
    let v5 = match version {
        "5" => true,
        "311" | "3.1.1" | "4" => false,
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

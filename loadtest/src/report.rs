//! The end of a run: a human table on stdout and the same figures as JSON (`--json FILE`).

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::Common;

#[derive(Serialize, Default)]
pub struct Summary {
    pub scenario: String,
    pub label: String,
    /// UTC, RFC 3339.
    pub date: String,
    pub target: String,
    /// `service` or `broker`.
    pub target_kind: String,
    /// `http`, `kafka` or `mqtt`.
    pub source: String,
    pub transport: String,
    pub mqtt_version: String,
    pub qos: u8,
    pub mode: String,
    pub payload_bytes: usize,
    pub apps: usize,
    pub producers: usize,
    pub subscribers: usize,
    /// Target events/s over all producers; `null` = as fast as possible.
    pub rate: Option<u64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Length of the measurement window the rates are over.
    pub window_s: f64,
    pub produced: u64,
    pub produced_per_s: f64,
    /// Events each producer sent, whole run.
    pub produced_by_producer: Vec<u64>,
    /// Deliveries received inside the window, all subscribers.
    pub delivered: u64,
    pub delivered_per_s: f64,
    /// Event data bytes (--payload per delivery), whatever the encoding on the wire.
    pub delivered_bytes_per_s: f64,
    /// PUBLISH payload bytes as received (structured JSON, base64, …).
    pub delivered_wire_bytes_per_s: f64,
    /// Deliveries over the whole run (warm-up and drain included).
    pub delivered_all: u64,
    pub per_subscriber_per_s: Spread,
    pub per_subscriber: Vec<f64>,
    /// Send (time in the payload) → receive, events sent after the warm-up.
    pub latency_us: Option<Latency>,
    /// Events × receiving groups.
    pub expected: u64,
    /// Expected deliveries that never came (per group: produced − distinct received).
    pub missing: u64,
    /// Deliveries beyond the first of an event within a group.
    pub duplicates: u64,
    /// Deliveries without the rig's marker or from another application's producer.
    pub foreign: u64,
    pub server: Option<ServerStats>,
    pub connect: ConnectStats,
    pub idle: Option<IdleStats>,
    pub errors: Vec<String>,
    pub timeline: Vec<Row>,
}

#[derive(Serialize, Default, Clone, Copy)]
pub struct Spread {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(v: &[f64]) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        Spread {
            min: v.iter().copied().fold(f64::MAX, f64::min),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            max: v.iter().copied().fold(0.0, f64::max),
        }
    }
}

#[derive(Serialize, Clone, Copy)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        })
    }
}

#[derive(Serialize, Clone, Copy)]
pub struct ServerStats {
    pub pid: u32,
    pub rss_start_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    /// Mean over the measurement window, % of one core.
    pub cpu_percent_mean: f64,
}

#[derive(Serialize, Default, Clone, Copy)]
pub struct ConnectStats {
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    /// Connections closed by the server after they were up.
    pub closed_early: u64,
    /// Connections (CONNACK received) per second, first connect → last CONNACK.
    pub per_s: f64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
}

#[derive(Serialize, Clone, Copy)]
pub struct IdleStats {
    pub connections: u64,
    pub still_open: u64,
    pub rss_before_kib: Option<u64>,
    pub rss_connected_kib: Option<u64>,
    pub rss_after_ping_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    /// (RSS after connecting and the first PINGREQ round − RSS before) / connections.
    pub bytes_per_connection: Option<f64>,
    /// The same at the end of the hold.
    pub bytes_per_connection_end: Option<f64>,
    pub pings_sent: u64,
    pub pings_answered: u64,
    pub ping_round_ms_max: f64,
}

/// One second of the run.
#[derive(Serialize, Default, Clone, Copy)]
pub struct Row {
    pub t_s: f64,
    pub delivered_per_s: f64,
    pub produced_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub rss_kib: u64,
    pub cpu_percent: f64,
    /// Expected deliveries not yet received (events × groups).
    pub lag: u64,
    /// Inside the measurement window.
    pub measuring: bool,
}

impl Summary {
    pub fn new(scenario: &str, label: &str, c: &Common, apps: &[String], broker: bool) -> Summary {
        let transport = match (c_tls(c), c_ws(c)) {
            (false, false) => "tcp",
            (true, false) => "tls",
            (false, true) => "ws",
            (true, true) => "wss",
        };
        Summary {
            scenario: scenario.into(),
            label: label.into(),
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            target: c.target_addr().into(),
            target_kind: if broker { "broker" } else { "service" }.into(),
            source: if broker {
                "mqtt".into()
            } else {
                c.source_name().into()
            },
            transport: transport.into(),
            mqtt_version: c.version_name().into(),
            qos: c.qos_value(),
            mode: c.mode_name().into(),
            payload_bytes: c.payload_size(),
            apps: apps.len(),
            warmup_s: c.warmup_secs(),
            ..Summary::default()
        }
    }
}

fn c_tls(c: &Common) -> bool {
    c.tls_enabled()
}

fn c_ws(c: &Common) -> bool {
    c.ws_path().is_some()
}

fn num(v: f64) -> String {
    let v = v.round() as i64;
    let s = v.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The human table.
pub fn print(s: &Summary) {
    println!();
    if s.idle.is_some() {
        println!(
            "{} against {} ({}, {}) — {} | MQTT {} | held {:.0} s | {}",
            s.scenario,
            s.label,
            s.target_kind,
            s.target,
            s.transport,
            s.mqtt_version,
            s.duration_s,
            s.date
        );
    } else {
        println!(
        "{} against {} ({}, {}) — {} → {} | MQTT {} QoS {} {} {} B | {} | rate {} | {:.0} s + {:.0} s warm-up | {}",
        s.scenario,
        s.label,
        s.target_kind,
        s.target,
        s.source,
        s.transport,
        s.mqtt_version,
        s.qos,
        s.mode,
        s.payload_bytes,
        if s.apps > 1 { format!("{} apps, {} producers, {} subscribers", s.apps, s.producers, s.subscribers) } else { format!("{} producers, {} subscribers", s.producers, s.subscribers) },
        s.rate.map_or("max".into(), |r| format!("{}/s", num(r as f64))),
        s.duration_s,
        s.warmup_s,
        s.date,
    );
    }
    let row = |k: &str, v: String| println!("  {k:<34} {v}");
    if let Some(i) = &s.idle {
        row(
            "connections held",
            format!(
                "{} of {} ({} still open at the end)",
                num(i.connections as f64),
                num(s.connect.attempted as f64),
                num(i.still_open as f64)
            ),
        );
        row(
            "connect rate",
            format!(
                "{} conn/s (CONNACK p50 {} ms, p99 {} ms, max {} ms)",
                num(s.connect.per_s),
                ms(s.connect.latency_p50_us),
                ms(s.connect.latency_p99_us),
                ms(s.connect.latency_max_us)
            ),
        );
        row("connect failures", num(s.connect.failed as f64));
        row(
            "PINGREQ sent / answered",
            format!(
                "{} / {} (slowest round {:.0} ms)",
                num(i.pings_sent as f64),
                num(i.pings_answered as f64),
                i.ping_round_ms_max
            ),
        );
        let kib = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{} KiB", num(v as f64)));
        row(
            "server RSS before / connected",
            format!("{} / {}", kib(i.rss_before_kib), kib(i.rss_connected_kib)),
        );
        row(
            "server RSS after 1st ping / end",
            format!("{} / {}", kib(i.rss_after_ping_kib), kib(i.rss_end_kib)),
        );
        row(
            "server RSS per connection",
            i.bytes_per_connection
                .map_or("n/a (no --server-pid)".into(), |b| {
                    format!(
                        "{:.0} B = {:.2} KiB (end of hold: {})",
                        b,
                        b / 1024.0,
                        i.bytes_per_connection_end
                            .map_or("n/a".into(), |b| format!("{:.2} KiB", b / 1024.0))
                    )
                }),
        );
    } else {
        row("measurement window", format!("{:.1} s", s.window_s));
        row(
            "produced",
            format!(
                "{} ({}/s in the window)",
                num(s.produced as f64),
                num(s.produced_per_s)
            ),
        );
        row("delivered events/s (total)", num(s.delivered_per_s));
        row(
            "data MB/s (payloads on the wire)",
            format!(
                "{:.1} ({:.1})",
                s.delivered_bytes_per_s / 1e6,
                s.delivered_wire_bytes_per_s / 1e6
            ),
        );
        let p = s.per_subscriber_per_s;
        row(
            "per subscriber events/s min/mean/max",
            format!("{} / {} / {}", num(p.min), num(p.mean), num(p.max)),
        );
        match &s.latency_us {
            Some(l) => row(
                "latency ms p50/p90/p99/p99.9/max",
                format!(
                    "{} / {} / {} / {} / {}  ({} samples)",
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p99),
                    ms(l.p999),
                    ms(l.max),
                    num(l.count as f64)
                ),
            ),
            None => row("latency", "no deliveries after the warm-up".into()),
        }
        row(
            "missing / duplicates / foreign",
            format!(
                "{} / {} / {} (of {} expected)",
                num(s.missing as f64),
                num(s.duplicates as f64),
                num(s.foreign as f64),
                num(s.expected as f64)
            ),
        );
        row(
            "connect",
            format!(
                "{} of {} in {} conn/s, {} failed",
                num(s.connect.connected as f64),
                num(s.connect.attempted as f64),
                num(s.connect.per_s),
                num(s.connect.failed as f64)
            ),
        );
    }
    if let Some(srv) = &s.server {
        row(
            "server RSS start/peak/end",
            format!(
                "{} / {} / {} MiB (pid {})",
                srv.rss_start_kib / 1024,
                srv.rss_peak_kib / 1024,
                srv.rss_end_kib / 1024,
                srv.pid
            ),
        );
        row(
            "server CPU (mean in window)",
            format!("{:.0} % of one core", srv.cpu_percent_mean),
        );
    }
    for e in &s.errors {
        row("error", e.clone());
    }
}

pub fn write_json(s: &Summary, file: &str) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(s).map_err(std::io::Error::other)?;
    std::fs::write(file, text)
}

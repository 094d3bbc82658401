//! Rendering the figures in the Prometheus text exposition format (version 0.0.4), with the
//! process's CPU time and memory read from `/proc/self`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::atomics::LOG_FSYNC;
use super::{CommandOutcome, Metrics, Mode, Protocol};

impl Metrics {
    /// Every family in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        if let Some(collect) = self.collector.0.get() {
            collect(self);
        }
        let mut out = String::with_capacity(4096);
        let connections = labelled(
            "protocol",
            Protocol::ALL.map(|p| (p.label(), self.connections[p as usize].value())),
        );
        let mut delivered = Vec::new();
        let mut delivered_bytes = Vec::new();
        for mode in Mode::ALL {
            for qos in 0..2 {
                delivered.push((
                    format!("{{mode=\"{}\",qos=\"{qos}\"}}", mode.label()),
                    self.delivered[mode as usize][qos].value(),
                ));
            }
            delivered_bytes.push((
                format!("{{mode=\"{}\"}}", mode.label()),
                self.delivered_bytes[mode as usize].value(),
            ));
        }
        let commands = labelled(
            "outcome",
            CommandOutcome::ALL.map(|o| (o.label(), self.commands[o as usize].value())),
        );
        let lags = by_name("group", &self.group_lag.lock());
        let reloads = labelled(
            "outcome",
            [
                ("ok", self.config_reloads[0].value()),
                ("failed", self.config_reloads[1].value()),
            ],
        );
        let responses: Vec<_> = self
            .http_responses()
            .map(|(code, n)| (format!("{{code=\"{code}\"}}"), i128::from(n)))
            .collect();
        let log_bytes = by_name("app", &self.log_bytes.lock());
        // In the order they are rendered.
        let families = [
            (CONNECTIONS, connections),
            (SUBSCRIPTIONS, unlabelled(self.subscriptions.value())),
            (EVENTS_DELIVERED_TOTAL, delivered),
            (EVENTS_DELIVERED_BYTES_TOTAL, delivered_bytes),
            (EVENTS_ACKED_TOTAL, unlabelled(self.acked.value())),
            (COMMANDS_TOTAL, commands),
            (INGESTED_EVENTS_TOTAL, unlabelled(self.ingested.value())),
            (GROUPS, unlabelled(self.groups.value())),
            (GROUP_LAG, lags),
            (BYTES_SENT_TOTAL, unlabelled(self.bytes_sent.value())),
            (
                BYTES_RECEIVED_TOTAL,
                unlabelled(self.bytes_received.value()),
            ),
            (
                RECORDS_SKIPPED_TOTAL,
                unlabelled(self.records_skipped.value()),
            ),
            (QUEUED_BYTES, unlabelled(self.queued_bytes.value())),
            (
                BACKEND_CONSUMERS,
                unlabelled(self.backend_consumers.value()),
            ),
            (READY, unlabelled(self.ready.value())),
            (MAX_CONNECTIONS, unlabelled(self.max_connections.value())),
            (
                COMMANDS_EXPIRED_TOTAL,
                unlabelled(self.commands_expired.value()),
            ),
            (CONFIG_RELOADS_TOTAL, reloads),
            (
                CONFIG_LOADED_TIMESTAMP_SECONDS,
                unlabelled(self.config_loaded.value()),
            ),
            (HTTP_RESPONSES_TOTAL, responses),
            (LOG_BYTES, log_bytes),
            (LOG_SEGMENTS, unlabelled(self.log_segments.value())),
            (
                LOG_RECOVERY_TRUNCATIONS_TOTAL,
                unlabelled(self.log_recovery_truncations.value()),
            ),
        ];
        for (family, samples) in families {
            write_family(&mut out, &family, &samples);
        }
        render_process(&mut out);
        LOG_FSYNC.render(
            &mut out,
            "mqtt_integration_log_fsync_seconds",
            "Time of one fdatasync of the embedded log on disk.",
        );
        out
    }
}

/// The process's CPU time and resident memory under the usual client-library names, read from
/// `/proc/self` (Linux; elsewhere the two families are left out).
fn render_process(out: &mut String) {
    // utime and stime (fields 14 and 15) count USER_HZ ticks, which Linux fixes at 100 for
    // `/proc` whatever the kernel's own tick rate. The command name (field 2) may hold spaces:
    // count fields after its closing parenthesis.
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace().skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some((utime + stime) as f64 / 100.0)
        });
    let rss_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
            kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
        .map(|kb| kb * 1024);
    if let Some(seconds) = cpu_seconds {
        write_family(out, &PROCESS_CPU_SECONDS_TOTAL, &[(String::new(), seconds)]);
    }
    if let Some(bytes) = rss_bytes {
        write_family(
            out,
            &PROCESS_RESIDENT_MEMORY_BYTES,
            &[(String::new(), bytes)],
        );
    }
}

const PROCESS_CPU_SECONDS_TOTAL: Family = counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
);
const PROCESS_RESIDENT_MEMORY_BYTES: Family = gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
);

/// A family's HELP and TYPE lines, then its samples, as (labels, value).
fn write_family<V: std::fmt::Display>(out: &mut String, family: &Family, samples: &[(String, V)]) {
    let Family { name, kind, help } = family;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// One sample per value of `label`.
fn labelled<'a>(
    label: &str,
    values: impl IntoIterator<Item = (&'a str, i128)>,
) -> Vec<(String, i128)> {
    values
        .into_iter()
        .map(|(value, n)| (format!("{{{label}=\"{}\"}}", escape_label(value)), n))
        .collect()
}

/// One sample per entry of a map kept by name (group, application), the name as `label`.
fn by_name(label: &str, map: &BTreeMap<String, i64>) -> Vec<(String, i128)> {
    labelled(
        label,
        map.iter().map(|(name, n)| (name.as_str(), i128::from(*n))),
    )
}

/// The one sample of a family without labels.
fn unlabelled(value: i128) -> Vec<(String, i128)> {
    vec![(String::new(), value)]
}

/// A family's name, type and help text.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: "gauge",
        help,
    }
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: "counter",
        help,
    }
}

const CONNECTIONS: Family = gauge("mqtt_integration_connections", "Open client connections.");
const SUBSCRIPTIONS: Family = gauge(
    "mqtt_integration_subscriptions",
    "Active event subscriptions.",
);
const EVENTS_DELIVERED_TOTAL: Family = counter(
    "mqtt_integration_events_delivered_total",
    "Events sent to subscribers.",
);
const EVENTS_DELIVERED_BYTES_TOTAL: Family = counter(
    "mqtt_integration_events_delivered_bytes_total",
    "Payload bytes of the events sent to subscribers.",
);
const EVENTS_ACKED_TOTAL: Family = counter(
    "mqtt_integration_events_acked_total",
    "QoS 1 events acknowledged by subscribers.",
);
const COMMANDS_TOTAL: Family = counter(
    "mqtt_integration_commands_total",
    "Commands published by clients, by outcome.",
);
const INGESTED_EVENTS_TOTAL: Family = counter(
    "mqtt_integration_ingested_events_total",
    "Events accepted through HTTP ingest.",
);
const GROUPS: Family = gauge(
    "mqtt_integration_groups",
    "Durable consumer groups known to this process (embedded: with members or idle within backend.group_retention; Kafka: open in this process).",
);
const GROUP_LAG: Family = gauge(
    "mqtt_integration_group_lag",
    "Events in the backend not yet committed by the consumer group.",
);
const BYTES_SENT_TOTAL: Family = counter(
    "mqtt_integration_bytes_sent_total",
    "Bytes written to client connections.",
);
const BYTES_RECEIVED_TOTAL: Family = counter(
    "mqtt_integration_bytes_received_total",
    "Bytes read from client connections.",
);
const RECORDS_SKIPPED_TOTAL: Family = counter(
    "mqtt_integration_records_skipped_total",
    "Backend records that were not valid events, or whose device or subject cannot form a topic (skipped for filter subscribers).",
);
const QUEUED_BYTES: Family = gauge(
    "mqtt_integration_queued_bytes",
    "Bytes queued for sending to clients.",
);
const BACKEND_CONSUMERS: Family = gauge(
    "mqtt_integration_backend_consumers",
    "Backend consumer clients open (Kafka: one per durable group, one per application for its ephemeral readers, one per ephemeral reader that could not keep up).",
);
const READY: Family = gauge(
    "mqtt_integration_ready",
    "1 while the service is ready (/readyz answers 200: listeners bound, backend reachable), else 0.",
);
const MAX_CONNECTIONS: Family = gauge(
    "mqtt_integration_max_connections",
    "The configured limit of open client connections (server.max_connections).",
);
const COMMANDS_EXPIRED_TOTAL: Family = counter(
    "mqtt_integration_commands_expired_total",
    "Commands dropped because no device asked for them over HTTP within backend.embedded.command_ttl.",
);
const CONFIG_RELOADS_TOTAL: Family = counter(
    "mqtt_integration_config_reloads_total",
    "Reloads of the configuration file (SIGHUP, `mqtt-integration reload`): applied (ok) or refused, the old configuration staying in force (failed).",
);
const CONFIG_LOADED_TIMESTAMP_SECONDS: Family = gauge(
    "mqtt_integration_config_loaded_timestamp_seconds",
    "When the configuration in force was loaded (start or last applied reload), Unix time.",
);
const HTTP_RESPONSES_TOTAL: Family = counter(
    "mqtt_integration_http_responses_total",
    "HTTP requests answered by the routes, by status code (only codes answered so far).",
);
const LOG_BYTES: Family = gauge(
    "mqtt_integration_log_bytes",
    "Bytes of the embedded log's segment files on disk, by application (storage = \"disk\").",
);
const LOG_SEGMENTS: Family = gauge(
    "mqtt_integration_log_segments",
    "Segment files of the embedded log on disk.",
);
const LOG_RECOVERY_TRUNCATIONS_TOTAL: Family = counter(
    "mqtt_integration_log_recovery_truncations_total",
    "Segment files whose torn or damaged tail was cut off when the embedded log was opened.",
);

/// Label value escaping of the text format: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

//! Rendering the figures in the Prometheus text exposition format (version 0.0.4), with the
//! process's CPU time and memory read from `/proc/self`.

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
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, i128)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };

        let connections: Vec<_> = Protocol::ALL
            .iter()
            .map(|p| {
                (
                    format!("{{protocol=\"{}\"}}", p.label()),
                    self.connections[*p as usize].value(),
                )
            })
            .collect();
        family(
            "mqtt_integration_connections",
            "gauge",
            "Open client connections.",
            &connections,
        );
        family(
            "mqtt_integration_subscriptions",
            "gauge",
            "Active event subscriptions.",
            &[unlabelled(self.subscriptions.value())],
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
        family(
            "mqtt_integration_events_delivered_total",
            "counter",
            "Events sent to subscribers.",
            &delivered,
        );
        family(
            "mqtt_integration_events_delivered_bytes_total",
            "counter",
            "Payload bytes of the events sent to subscribers.",
            &delivered_bytes,
        );
        family(
            "mqtt_integration_events_acked_total",
            "counter",
            "QoS 1 events acknowledged by subscribers.",
            &[unlabelled(self.acked.value())],
        );
        let commands: Vec<_> = CommandOutcome::ALL
            .iter()
            .map(|o| {
                (
                    format!("{{outcome=\"{}\"}}", o.label()),
                    self.commands[*o as usize].value(),
                )
            })
            .collect();
        family(
            "mqtt_integration_commands_total",
            "counter",
            "Commands published by clients, by outcome.",
            &commands,
        );
        family(
            "mqtt_integration_ingested_events_total",
            "counter",
            "Events accepted through HTTP ingest.",
            &[unlabelled(self.ingested.value())],
        );
        let lags: Vec<_> = self
            .group_lag
            .lock()
            .iter()
            .map(|(group, lag)| {
                (
                    format!("{{group=\"{}\"}}", escape_label(group)),
                    i128::from(*lag),
                )
            })
            .collect();
        family(
            "mqtt_integration_groups",
            "gauge",
            "Durable consumer groups known to this process (embedded: with members or idle within backend.group_retention; Kafka: open in this process).",
            &[unlabelled(self.groups.value())],
        );
        family(
            "mqtt_integration_group_lag",
            "gauge",
            "Events in the backend not yet committed by the consumer group.",
            &lags,
        );
        family(
            "mqtt_integration_bytes_sent_total",
            "counter",
            "Bytes written to client connections.",
            &[unlabelled(self.bytes_sent.value())],
        );
        family(
            "mqtt_integration_bytes_received_total",
            "counter",
            "Bytes read from client connections.",
            &[unlabelled(self.bytes_received.value())],
        );
        family(
            "mqtt_integration_records_skipped_total",
            "counter",
            "Backend records that were not valid events, or whose device or subject cannot form a topic (skipped for filter subscribers).",
            &[unlabelled(self.records_skipped.value())],
        );
        family(
            "mqtt_integration_queued_bytes",
            "gauge",
            "Bytes queued for sending to clients.",
            &[unlabelled(self.queued_bytes.value())],
        );
        family(
            "mqtt_integration_backend_consumers",
            "gauge",
            "Backend consumer clients open (Kafka: one per durable group, one per application for its ephemeral readers, one per ephemeral reader that could not keep up).",
            &[unlabelled(self.backend_consumers.value())],
        );
        family(
            "mqtt_integration_ready",
            "gauge",
            "1 while the service is ready (/readyz answers 200: listeners bound, backend reachable), else 0.",
            &[unlabelled(self.ready.value())],
        );
        family(
            "mqtt_integration_max_connections",
            "gauge",
            "The configured limit of open client connections (server.max_connections).",
            &[unlabelled(self.max_connections.value())],
        );
        family(
            "mqtt_integration_commands_expired_total",
            "counter",
            "Commands dropped because no device asked for them over HTTP within backend.embedded.command_ttl.",
            &[unlabelled(self.commands_expired.value())],
        );
        family(
            "mqtt_integration_config_reloads_total",
            "counter",
            "Reloads of the configuration file (SIGHUP, `mqtt-integration reload`): applied (ok) or refused, the old configuration staying in force (failed).",
            &[
                ("{outcome=\"ok\"}".to_owned(), self.config_reloads[0].value()),
                ("{outcome=\"failed\"}".to_owned(), self.config_reloads[1].value()),
            ],
        );
        family(
            "mqtt_integration_config_loaded_timestamp_seconds",
            "gauge",
            "When the configuration in force was loaded (start or last applied reload), Unix time.",
            &[unlabelled(self.config_loaded.value())],
        );
        let responses: Vec<_> = self
            .http_responses()
            .map(|(code, n)| (format!("{{code=\"{code}\"}}"), i128::from(n)))
            .collect();
        family(
            "mqtt_integration_http_responses_total",
            "counter",
            "HTTP requests answered by the routes, by status code (only codes answered so far).",
            &responses,
        );
        let log_bytes: Vec<_> = self
            .log_bytes
            .lock()
            .iter()
            .map(|(app, bytes)| {
                (
                    format!("{{app=\"{}\"}}", escape_label(app)),
                    i128::from(*bytes),
                )
            })
            .collect();
        family(
            "mqtt_integration_log_bytes",
            "gauge",
            "Bytes of the embedded log's segment files on disk, by application (storage = \"disk\").",
            &log_bytes,
        );
        family(
            "mqtt_integration_log_segments",
            "gauge",
            "Segment files of the embedded log on disk.",
            &[unlabelled(self.log_segments.value())],
        );
        family(
            "mqtt_integration_log_recovery_truncations_total",
            "counter",
            "Segment files whose torn or damaged tail was cut off when the embedded log was opened.",
            &[unlabelled(self.log_recovery_truncations.value())],
        );
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
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {seconds}");
    }
    if let Some(bytes) = rss_bytes {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        );
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {bytes}");
    }
}

fn unlabelled(value: i128) -> (String, i128) {
    (String::new(), value)
}

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

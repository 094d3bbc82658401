//! The rendered families, their labels and the snapshot.

use super::*;
use std::sync::Arc;

/// The sample lines of `name` (with labels), as `"name{labels} value"`.
fn samples(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .map(str::to_owned)
        .collect()
}

fn assert_family(text: &str, name: &str, kind: &str) {
    assert!(text.contains(&format!("# HELP {name} ")), "HELP of {name}");
    assert!(
        text.contains(&format!("# TYPE {name} {kind}\n")),
        "TYPE of {name}"
    );
}

#[test]
fn every_family_has_help_and_type() {
    let text = Metrics::new().render();
    for (name, kind) in [
        ("mqtt_integration_connections", "gauge"),
        ("mqtt_integration_subscriptions", "gauge"),
        ("mqtt_integration_events_delivered_total", "counter"),
        ("mqtt_integration_events_delivered_bytes_total", "counter"),
        ("mqtt_integration_events_acked_total", "counter"),
        ("mqtt_integration_commands_total", "counter"),
        ("mqtt_integration_ingested_events_total", "counter"),
        ("mqtt_integration_groups", "gauge"),
        ("mqtt_integration_group_lag", "gauge"),
        ("mqtt_integration_bytes_sent_total", "counter"),
        ("mqtt_integration_bytes_received_total", "counter"),
        ("mqtt_integration_records_skipped_total", "counter"),
        ("mqtt_integration_queued_bytes", "gauge"),
        ("mqtt_integration_backend_consumers", "gauge"),
        ("mqtt_integration_max_connections", "gauge"),
        ("mqtt_integration_ready", "gauge"),
        ("mqtt_integration_http_responses_total", "counter"),
        ("mqtt_integration_config_reloads_total", "counter"),
        ("mqtt_integration_commands_expired_total", "counter"),
        ("mqtt_integration_config_loaded_timestamp_seconds", "gauge"),
    ] {
        assert_family(&text, name, kind);
    }
}

/// Connections by protocol, deliveries by mode and QoS, commands by outcome: every label
/// value is rendered, the ones never counted as 0.
#[test]
fn labelled_families() {
    let m = Metrics::new();
    m.connection_opened(Protocol::Mqtt);
    m.connection_opened(Protocol::Mqtt);
    m.connection_opened(Protocol::Wss);
    m.connection_closed(Protocol::Mqtt);
    m.delivered(Mode::Structured, 0, 100);
    m.delivered(Mode::Structured, 1, 10);
    m.delivered(Mode::Binary, 2, 5);
    m.command(CommandOutcome::Accepted);
    m.command(CommandOutcome::Accepted);
    m.command(CommandOutcome::Dropped);
    let text = m.render();
    for (family, expected) in [
        (
            "mqtt_integration_connections",
            &[
                "mqtt_integration_connections{protocol=\"mqtt\"} 1",
                "mqtt_integration_connections{protocol=\"mqtts\"} 0",
                "mqtt_integration_connections{protocol=\"ws\"} 0",
                "mqtt_integration_connections{protocol=\"wss\"} 1",
            ][..],
        ),
        (
            "mqtt_integration_events_delivered_total",
            &[
                "mqtt_integration_events_delivered_total{mode=\"structured\",qos=\"0\"} 1",
                "mqtt_integration_events_delivered_total{mode=\"structured\",qos=\"1\"} 1",
                "mqtt_integration_events_delivered_total{mode=\"binary\",qos=\"0\"} 0",
                "mqtt_integration_events_delivered_total{mode=\"binary\",qos=\"1\"} 1",
            ],
        ),
        (
            "mqtt_integration_events_delivered_bytes_total",
            &[
                "mqtt_integration_events_delivered_bytes_total{mode=\"structured\"} 110",
                "mqtt_integration_events_delivered_bytes_total{mode=\"binary\"} 5",
            ],
        ),
        (
            "mqtt_integration_commands_total",
            &[
                "mqtt_integration_commands_total{outcome=\"accepted\"} 2",
                "mqtt_integration_commands_total{outcome=\"unauthorized\"} 0",
                "mqtt_integration_commands_total{outcome=\"invalid_topic\"} 0",
                "mqtt_integration_commands_total{outcome=\"backend_error\"} 0",
                "mqtt_integration_commands_total{outcome=\"dropped\"} 1",
            ],
        ),
    ] {
        assert_eq!(samples(&text, family), expected, "{family}");
    }
}

#[test]
fn unlabelled_counters_and_gauges() {
    let m = Metrics::new();
    m.add_subscriptions(3);
    m.add_subscriptions(-1);
    m.acked(7);
    m.ingested(4);
    m.bytes_sent(1000);
    m.bytes_received(20);
    m.record_skipped();
    m.add_queued_bytes(500);
    m.add_queued_bytes(-200);
    let text = m.render();
    for (name, value) in [
        ("mqtt_integration_subscriptions", 2),
        ("mqtt_integration_events_acked_total", 7),
        ("mqtt_integration_ingested_events_total", 4),
        ("mqtt_integration_bytes_sent_total", 1000),
        ("mqtt_integration_bytes_received_total", 20),
        ("mqtt_integration_records_skipped_total", 1),
        ("mqtt_integration_queued_bytes", 300),
    ] {
        assert_eq!(samples(&text, name), [format!("{name} {value}")]);
    }
}

#[test]
fn group_lag_by_group_with_escaping() {
    let m = Metrics::new();
    m.set_group_lag("demo.client", 5);
    m.set_group_lag("demo.client", 3);
    m.set_group_lag("odd\"group\\\n", 1);
    m.set_group_lag("gone", 9);
    m.remove_group("gone");
    assert_eq!(
        samples(&m.render(), "mqtt_integration_group_lag"),
        [
            "mqtt_integration_group_lag{group=\"demo.client\"} 3",
            "mqtt_integration_group_lag{group=\"odd\\\"group\\\\\\n\"} 1",
        ]
    );
}

#[test]
#[cfg(target_os = "linux")]
fn process_cpu_and_memory() {
    let text = Metrics::new().render();
    assert_family(&text, "process_cpu_seconds_total", "counter");
    assert_family(&text, "process_resident_memory_bytes", "gauge");
    let rss = &samples(&text, "process_resident_memory_bytes")[0];
    let bytes: u64 = rss.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(bytes > 1024 * 1024, "{rss}");
}

#[test]
fn http_responses_by_code_only_those_seen() {
    let m = Metrics::new();
    m.http_response(200);
    m.http_response(200);
    m.http_response(401);
    m.http_response(99);
    m.http_response(600);
    assert_eq!(
        samples(&m.render(), "mqtt_integration_http_responses_total"),
        [
            "mqtt_integration_http_responses_total{code=\"200\"} 2",
            "mqtt_integration_http_responses_total{code=\"401\"} 1",
        ]
    );
}

#[test]
fn snapshot_reads_the_rendered_counters() {
    let m = Metrics::new();
    m.set_max_connections(100);
    m.connection_opened(Protocol::Ws);
    m.add_subscriptions(2);
    m.ingested(5);
    m.delivered(Mode::Structured, 0, 1);
    m.delivered(Mode::Binary, 1, 1);
    m.set_group_lag("demo.a", 4);
    let s = m.snapshot();
    assert_eq!(s.connections[Protocol::Ws as usize], (Protocol::Ws, 1));
    assert_eq!(s.max_connections, 100);
    assert_eq!((s.subscriptions, s.events_in, s.events_out), (2, 5, 2));
    assert_eq!(s.group_lag, [("demo.a".to_owned(), 4)]);
    assert!(m
        .render()
        .contains("mqtt_integration_max_connections 100\n"));
}

#[test]
fn shared_across_threads() {
    static GLOBAL: Metrics = Metrics::new();
    let m = Arc::new(Metrics::new());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    m.delivered(Mode::Binary, 0, 1);
                    GLOBAL.acked(1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(m
        .render()
        .contains("mqtt_integration_events_delivered_total{mode=\"binary\",qos=\"0\"} 4000\n"));
    assert!(GLOBAL
        .render()
        .contains("mqtt_integration_events_acked_total 4000\n"));
}

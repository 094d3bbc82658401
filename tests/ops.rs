//! Issue #16, running on bare metal: JSON logs, and systemd's notify protocol (READY, WATCHDOG
//! from the event loops' liveness, STOPPING) against a socket the test listens on.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mqtt-integration");

#[test]
fn json_log_is_one_object_per_line_with_level_target_message() {
    let mut svc = Service::start("[log]\nformat = \"json\"\n");
    svc.terminate();
    let log = svc.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "too few log lines:\n{log}");
    let mut messages = Vec::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object per line ({e}): {line}"));
        for field in ["level", "target", "message", "timestamp"] {
            assert!(v[field].is_string(), "no {field} in {line}");
        }
        messages.push(v["message"].as_str().unwrap().to_string());
    }
    assert!(
        messages.iter().any(|m| m == "mqtt-integration is ready"),
        "{log}"
    );
    assert!(messages.iter().any(|m| m == "stopped"), "{log}");
}

#[test]
fn an_unknown_log_format_is_a_configuration_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[log]\nformat = \"xml\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log.format"), "{err}");
}

/// The notify socket a test listens on, and what arrived on it with arrival times.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            _dir: dir,
            path,
            sock,
        }
    }

    /// Messages received until `until` returns true for one or `timeout` passes.
    fn collect(
        &self,
        timeout: Duration,
        mut until: impl FnMut(&str) -> bool,
    ) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                let done = until(&msg);
                out.push((Instant::now(), msg));
                if done {
                    break;
                }
            }
        }
        out
    }
}

fn start_notified(sock: &NotifySocket, extra_env: &[(&str, &str)]) -> Service {
    let path = sock.path.to_str().unwrap().to_string();
    let mut env = vec![
        ("NOTIFY_SOCKET", path.as_str()),
        ("WATCHDOG_USEC", "1000000"),
    ];
    env.extend_from_slice(extra_env);
    Service::start_with("", APPS, &env)
}

#[test]
fn ready_then_watchdog_pings_then_stopping_on_sigterm() {
    let sock = NotifySocket::bind();
    let mut svc = start_notified(&sock, &[]);
    let first = sock.collect(Duration::from_secs(10), |m| m == "READY=1");
    assert_eq!(
        first.last().map(|m| m.1.as_str()),
        Some("READY=1"),
        "{first:?}"
    );
    // WATCHDOG_USEC = 1 s: a ping every 0.5 s.
    let mut pings = 0;
    let got = sock.collect(Duration::from_secs(5), |m| {
        pings += (m == "WATCHDOG=1") as usize;
        pings == 4
    });
    assert_eq!(pings, 4, "{got:?}\n{}", svc.log());
    assert!(svc.terminate().success());
    let end = sock.collect(Duration::from_secs(2), |m| m == "STOPPING=1");
    assert_eq!(
        end.last().map(|m| m.1.as_str()),
        Some("STOPPING=1"),
        "{end:?}"
    );
}

#[test]
fn a_reload_is_announced_as_reloading_then_ready() {
    let sock = NotifySocket::bind();
    let svc = start_notified(&sock, &[]);
    sock.collect(Duration::from_secs(10), |m| m == "READY=1");
    assert!(std::process::Command::new("kill")
        .arg("-HUP")
        .arg(svc.child.id().to_string())
        .status()
        .unwrap()
        .success());
    let msgs = sock.collect(Duration::from_secs(5), |m| m == "READY=1");
    let reloading = msgs
        .iter()
        .position(|m| m.1.starts_with("RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1: {msgs:?}"));
    assert!(
        msgs[reloading].1.contains("MONOTONIC_USEC="),
        "Type=notify-reload needs the time: {msgs:?}"
    );
    assert_eq!(
        msgs.last().map(|m| m.1.as_str()),
        Some("READY=1"),
        "{msgs:?}"
    );
}

#[test]
fn watchdog_pings_stop_when_an_event_loop_is_stuck() {
    let sock = NotifySocket::bind();
    // Debug-build test hook: shard 0's loop hangs 3 s after start-up.
    let svc = start_notified(&sock, &[("MQTT_INTEGRATION_TEST_STALL_SHARD_AFTER", "3s")]);
    let msgs = sock.collect(Duration::from_secs(9), |_| false);
    let ready = msgs
        .iter()
        .position(|m| m.1 == "READY=1")
        .unwrap_or_else(|| panic!("no READY=1: {msgs:?}"));
    let pings: Vec<Instant> = msgs[ready..]
        .iter()
        .filter(|m| m.1 == "WATCHDOG=1")
        .map(|m| m.0)
        .collect();
    assert!(pings.len() >= 2, "no pings before the stall: {msgs:?}");
    // The stall starts at 3 s and is noticed within a second; the window ends near 9 s, so the
    // last 4 s must be silent.
    let silent = msgs
        .last()
        .map_or(Instant::now(), |m| m.0.max(Instant::now()))
        - *pings.last().unwrap();
    assert!(
        silent >= Duration::from_secs(4),
        "pings went on after the loop hung (last one {silent:?} before the end): {msgs:?}"
    );
    assert!(
        eventually(Duration::from_secs(2), || svc
            .log()
            .contains("withholding the systemd watchdog ping")),
        "{}",
        svc.log()
    );
}

//! Spec 6: command line, configuration errors (exit 2), runtime failures (exit 1), SIGTERM.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mqtt-integration");

/// Runs the binary; kills it after `timeout`. Returns (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err = dir.path().join("err");
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        code,
        std::fs::read_to_string(out).unwrap_or_default(),
        std::fs::read_to_string(err).unwrap_or_default(),
    )
}

/// A valid configuration on free ports.
fn valid_config() -> String {
    format!(
        "[[listener]]\nkind = \"mqtt\"\nbind = \"127.0.0.1:{}\"\n\n[http]\nbind = \"127.0.0.1:{}\"\n{APPS}",
        free_port(),
        free_port()
    )
}

const T: Duration = Duration::from_secs(10);

#[test]
fn check_config_accepts_the_example() {
    let (code, out, err) = run(&["check-config", "config/example.toml"], &[], T);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(
        out.to_lowercase().contains("ok") || err.to_lowercase().contains("ok"),
        "no `ok`: {out} / {err}"
    );
}

#[test]
fn config_errors_exit_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, format!("[server]\nthreadz = 2\n{}", valid_config())).unwrap();
    let typo_s = typo.to_str().unwrap();
    let (code, _, err) = run(&["check-config", typo_s], &[], T);
    assert_eq!(code, Some(2), "check-config typo: {err}");
    assert!(
        err.contains(typo_s) && err.contains("threadz"),
        "stderr must name file and key: {err}"
    );
    let (code, _, err) = run(&["--config", typo_s], &[], T);
    assert_eq!(code, Some(2), "run typo: {err}");
    assert!(
        err.contains(typo_s) && err.contains("threadz"),
        "stderr must name file and key: {err}"
    );

    let bad_type = dir.path().join("type.toml");
    std::fs::write(
        &bad_type,
        format!("[server]\nmax_connections = \"many\"\n{}", valid_config()),
    )
    .unwrap();
    let (code, _, err) = run(&["--config", bad_type.to_str().unwrap()], &[], T);
    assert_eq!(code, Some(2), "bad type: {err}");
    assert!(
        err.contains("max_connections") && err.contains(bad_type.to_str().unwrap()),
        "stderr must name file and key: {err}"
    );

    let missing = dir.path().join("missing.toml");
    let (code, _, err) = run(&["--config", missing.to_str().unwrap()], &[], T);
    assert_eq!(code, Some(2), "missing file: {err}");
    assert!(
        err.contains(missing.to_str().unwrap()),
        "stderr must name the path: {err}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, valid_config()).unwrap();
    let (code, _, err) = run(
        &["--config", good.to_str().unwrap()],
        &[("MQTT_INTEGRATION__SERVER__THREADS", "abc")],
        T,
    );
    assert_eq!(code, Some(2), "bad env value: {err}");
    assert!(
        err.contains("MQTT_INTEGRATION__SERVER__THREADS"),
        "stderr must name the variable: {err}"
    );
}

#[test]
fn port_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[[listener]]\nkind = \"mqtt\"\nbind = \"{addr}\"\n\n[http]\nbind = \"127.0.0.1:{}\"\n{APPS}", free_port()),
    )
    .unwrap();
    let (code, _, err) = run(&["--config", path.to_str().unwrap()], &[], T);
    assert_eq!(code, Some(1), "port in use: {err}");
    assert!(
        err.contains(&addr.to_string()),
        "stderr must name {addr}: {err}"
    );
    drop(taken);
}

#[test]
fn help_lists_check_config() {
    let (code, out, err) = run(&["--help"], &[], T);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("check-config"), "--help: {out}");
}

#[test]
fn sigterm_tells_v5_clients_and_exits_0() {
    let mut svc = Service::start("");
    let mut s = raw_connect(&svc, 5, "cli-sigterm", 30);
    let started = Instant::now();
    let status = svc.terminate();
    assert_eq!(
        expect_disconnect(&mut s, Duration::from_secs(3)),
        Some(0x8B),
        "DISCONNECT server shutting down"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM:\n{}",
        svc.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

//! Live reload (issue #16): the real binary, its configuration file rewritten and SIGHUP sent
//! (or `mqtt-integration reload`), with subscribers connected before the reload watching what
//! happens to them.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(5);

/// An application that the base configuration does not have.
const FRESH: &str = "\n[[app]]\nname = \"fresh\"\nmembers = { anonymous = \"manager\" }\ndevices = [ { name = \"d1\" } ]\n";

/// The configuration file the harness wrote for `svc`.
fn config_path(svc: &Service) -> std::path::PathBuf {
    svc.dir.path().join("config.toml")
}

/// Replaces `from` (the applications part the file was started with) by `to` in the service's
/// configuration file.
fn rewrite(svc: &Service, from: &str, to: &str) {
    let path = config_path(svc);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(from),
        "the config file holds what the test started it with"
    );
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// `mqtt_integration_config_reloads_total{outcome}`.
fn reloads(svc: &Service, outcome: &str) -> u64 {
    let needle = format!("mqtt_integration_config_reloads_total{{outcome=\"{outcome}\"}} ");
    svc.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no {needle} in /metrics"))
}

/// Sends SIGHUP and waits until the service counted the reload with `outcome`.
fn sighup(svc: &Service, outcome: &str) {
    let before = reloads(svc, outcome);
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(svc.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        eventually(T, || reloads(svc, outcome) > before),
        "reload not counted as {outcome}:\n{}",
        svc.log()
    );
}

/// A raw v5 client subscribed to `filter` (QoS 0); returns the socket and the SUBACK's code.
fn v5_subscriber(svc: &Service, id: &str, filter: &str) -> (TcpStream, u8) {
    let mut s = raw_connect(svc, 5, id, 60);
    s.write_all(&subscribe_packet(5, 1, filter, 0)).unwrap();
    let (h, body) = read_packet(&mut s, T).expect("no SUBACK");
    assert_eq!(h, 0x90, "not a SUBACK: {body:?}");
    // Packet id, then the properties' length (a one-byte varint here) and the properties.
    let props = body[2] as usize;
    (s, body[3 + props])
}

/// Reads PUBLISH packets from a raw subscriber until one whose payload contains `needle`.
fn receives(s: &mut TcpStream, needle: &str) -> bool {
    let deadline = std::time::Instant::now() + T;
    while std::time::Instant::now() < deadline {
        match read_packet(s, T) {
            Some((h, body)) if h & 0xf0 == 0x30 => {
                if String::from_utf8_lossy(&body).contains(needle) {
                    return true;
                }
            }
            Some(_) => {}
            None => return false,
        }
    }
    false
}

#[test]
fn a_new_application_is_readable_after_sighup_and_earlier_subscribers_keep_receiving() {
    // On disk, so that the new application's log is opened in the directory the running
    // process holds locked.
    let data = tempfile::tempdir().unwrap();
    let svc = Service::start_with(
        "",
        APPS,
        &[
            ("MQTT_INTEGRATION__BACKEND__EMBEDDED__STORAGE", "disk"),
            (
                "MQTT_INTEGRATION__BACKEND__EMBEDDED__DIR",
                data.path().to_str().unwrap(),
            ),
        ],
    );
    let (mut before, code) = v5_subscriber(&svc, "before", "app/demo/#");
    assert_eq!(code, 0);
    let (_, refused) = v5_subscriber(&svc, "early", "app/fresh/#");
    assert_eq!(refused, 0x87, "no application `fresh` yet");
    assert_eq!(svc.ingest("fresh", "d1", "t", "text/plain", b"x"), 404);

    rewrite(&svc, APPS, &format!("{APPS}{FRESH}"));
    sighup(&svc, "ok");

    let (mut reader, code) = v5_subscriber(&svc, "reader", "app/fresh/#");
    assert_eq!(code, 0, "`fresh` is readable after the reload");
    assert_eq!(
        svc.ingest("fresh", "d1", "t", "text/plain", b"first-fresh-event"),
        202
    );
    assert!(receives(&mut reader, "first-fresh-event"));
    assert_eq!(
        svc.ingest("demo", "device1", "t", "text/plain", b"after-reload"),
        202
    );
    assert!(
        receives(&mut before, "after-reload"),
        "a subscriber from before the reload keeps receiving"
    );
    assert!(
        data.path().join("fresh").is_dir(),
        "the new application's log is on disk"
    );
    assert!(
        svc.log().contains("configuration reloaded"),
        "{}",
        svc.log()
    );
}

#[test]
fn revoked_readers_are_disconnected_and_the_others_stay() {
    let svc = Service::start("");
    let (mut v5, code) = v5_subscriber(&svc, "v5-reader", "app/readonly/#");
    assert_eq!(code, 0);
    let mut v3 = raw_subscriber(&svc, "v3-reader", "app/readonly/#", T);
    let (mut other, code) = v5_subscriber(&svc, "demo-reader", "app/demo/#");
    assert_eq!(code, 0);
    // A connection without subscriptions to `readonly` is not affected either.
    let mut idle = raw_connect(&svc, 5, "idle", 60);

    // `readonly` no longer lets anonymous clients read.
    rewrite(
        &svc,
        "name = \"readonly\"\nmembers = { anonymous = \"reader\" }",
        "name = \"readonly\"",
    );
    let sent = std::time::Instant::now();
    sighup(&svc, "ok");
    assert_eq!(
        expect_disconnect(&mut v5, Duration::from_secs(2)),
        Some(0x87),
        "v5: DISCONNECT Not authorized"
    );
    assert!(
        closed_within(&mut v3, Duration::from_secs(2)),
        "v3.1.1: the connection is closed"
    );
    assert!(sent.elapsed() < Duration::from_secs(3));
    assert_eq!(
        svc.ingest("demo", "device1", "t", "text/plain", b"still-here"),
        202
    );
    assert!(receives(&mut other, "still-here"), "others keep receiving");
    idle.write_all(&packet(0xC0, &[])).unwrap(); // PINGREQ
    let (h, _) = read_packet(&mut idle, T).expect("idle connection still served");
    assert_eq!(h, 0xD0);
    // And the right is gone for newcomers too.
    let (_, refused) = v5_subscriber(&svc, "late", "app/readonly/#");
    assert_eq!(refused, 0x87);
    assert!(
        svc.log().contains("revoked"),
        "the log says why: {}",
        svc.log()
    );
}

#[test]
fn an_invalid_file_changes_nothing_and_is_counted_as_failed() {
    let svc = Service::start("");
    let (mut sub, _) = v5_subscriber(&svc, "sub", "app/demo/#");
    // A valid new application, but also a key that does not exist: the whole file is refused.
    rewrite(
        &svc,
        APPS,
        &format!("{APPS}{FRESH}\n[[user]]\nname = \"x\"\napi_keys = []\nbogus_key = 1\n"),
    );
    sighup(&svc, "failed");
    assert_eq!(reloads(&svc, "ok"), 0);
    let log = svc.log();
    assert!(
        log.contains("configuration reload failed") && log.contains("bogus_key"),
        "the log names the problem: {log}"
    );
    let (_, refused) = v5_subscriber(&svc, "fresh-reader", "app/fresh/#");
    assert_eq!(refused, 0x87, "nothing of the invalid file applied");
    assert_eq!(
        svc.ingest("demo", "device1", "t", "text/plain", b"unchanged"),
        202
    );
    assert!(receives(&mut sub, "unchanged"));
}

/// CONNECT with user name and password (v5, raw); the CONNACK's reason code.
fn connack(svc: &Service, user: &str, password: &str) -> u8 {
    let mut body = Vec::new();
    mqtt_str(b"MQTT", &mut body);
    body.extend_from_slice(&[5, 0xC2, 0, 60, 0]); // v5, user name + password + clean start
    mqtt_str(format!("key-{user}").as_bytes(), &mut body);
    mqtt_str(user.as_bytes(), &mut body);
    mqtt_str(password.as_bytes(), &mut body);
    let mut s = svc.raw();
    s.write_all(&packet(0x10, &body)).unwrap();
    let (h, body) = read_packet(&mut s, T).expect("no CONNACK");
    assert_eq!(h, 0x20);
    body[1]
}

fn api_key() -> (String, String) {
    let k = mqtt_integration::auth::generate_api_key().expect("random source");
    (k.key, k.hash)
}

#[test]
fn api_keys_added_by_a_reload_work_and_removed_ones_stop_working_for_new_connections() {
    let (old_key, old_hash) = api_key();
    let (new_key, new_hash) = api_key();
    let users = format!("[[user]]\nname = \"bob\"\napi_keys = [\"{old_hash}\"]\n");
    let apps = format!("{users}{APPS}");
    // No waiting after a refusal: the test makes several.
    let svc = Service::start_with("[auth]\nfailure_delay = \"0s\"\n", &apps, &[]);
    assert_eq!(connack(&svc, "bob", &old_key), 0);
    assert_eq!(connack(&svc, "bob", &new_key), 0x86);
    let established = raw_connect(&svc, 5, "bob-session", 60);

    rewrite(
        &svc,
        &users,
        &format!("[[user]]\nname = \"bob\"\napi_keys = [\"{new_hash}\"]\n"),
    );
    sighup(&svc, "ok");
    assert_eq!(connack(&svc, "bob", &new_key), 0, "the added key works");
    assert_eq!(
        connack(&svc, "bob", &old_key),
        0x86,
        "the removed key stops working"
    );
    let mut established = established;
    established.write_all(&packet(0xC0, &[])).unwrap();
    assert_eq!(
        read_packet(&mut established, T).map(|p| p.0),
        Some(0xD0),
        "a connection made before stays"
    );
}

#[test]
fn keys_that_need_a_restart_are_reported_and_the_rest_applies() {
    let svc = Service::start("");
    let text = std::fs::read_to_string(config_path(&svc)).unwrap();
    let text = text.replacen("[server]\n", "[server]\nmax_connections = 77\n", 1);
    std::fs::write(config_path(&svc), format!("{text}{FRESH}")).unwrap();
    sighup(&svc, "ok");
    let log = svc.log();
    assert!(
        log.contains("need a restart") && log.contains("[server]"),
        "{log}"
    );
    assert!(
        svc.metrics()
            .contains("mqtt_integration_max_connections 100000\n"),
        "the old limit stays until a restart"
    );
    let (_, code) = v5_subscriber(&svc, "r", "app/fresh/#");
    assert_eq!(code, 0, "the applications applied");
}

#[test]
fn the_reload_command_finds_the_process_by_its_pid_file() {
    let svc_dir = tempfile::tempdir().unwrap();
    let pid_file = svc_dir.path().join("service.pid");
    let svc = Service::start(&format!("pid_file = \"{}\"\n", pid_file.display()));
    assert!(eventually(T, || pid_file.exists()));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        svc.child.id().to_string()
    );
    let reload = || {
        Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
            .arg("-c")
            .arg(config_path(&svc))
            .arg("reload")
            .output()
            .unwrap()
    };
    rewrite(&svc, APPS, &format!("{APPS}{FRESH}"));
    let out = reload();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent SIGHUP"));
    assert!(eventually(T, || reloads(&svc, "ok") == 1));

    // An invalid file: exit 2, nothing sent, the service unchanged.
    let text = std::fs::read_to_string(config_path(&svc)).unwrap();
    std::fs::write(config_path(&svc), format!("{text}\nnot toml at all")).unwrap();
    let out = reload();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was sent"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reloads(&svc, "failed"), 0, "the service got no signal");
    assert_eq!(reloads(&svc, "ok"), 1);
}

#[test]
fn a_reload_under_load_loses_no_event_for_unaffected_subscribers() {
    let svc = Arc::new(Service::start(""));
    // Fan-out: three QoS 1 subscribers in groups of their own.
    let mut subs: Vec<TcpStream> = (0..3)
        .map(|i| raw_subscriber(&svc, &format!("steady-{i}"), "app/demo/#", T))
        .collect();
    const N: u64 = 600;
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let svc = svc.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for n in 0..N {
                svc.ingest_seq("device1", n);
            }
            done.store(true, Ordering::Release);
        })
    };
    // Reload again and again while events flow: `fresh` comes and goes.
    let mut with_fresh = false;
    let mut reloaded = 0;
    while !done.load(Ordering::Acquire) && reloaded < 20 {
        if with_fresh {
            rewrite(&svc, FRESH, "");
        } else {
            let text = std::fs::read_to_string(config_path(&svc)).unwrap();
            std::fs::write(config_path(&svc), format!("{text}{FRESH}")).unwrap();
        }
        with_fresh = !with_fresh;
        sighup(&svc, "ok");
        reloaded += 1;
    }
    producer.join().unwrap();
    assert!(reloaded >= 2, "reloads happened while events flowed");
    for (i, sub) in subs.iter_mut().enumerate() {
        for next in 0..N {
            let (h, body) = read_packet(sub, T).unwrap_or_else(|| {
                panic!("subscriber {i}: event {next} of {N} missing after {reloaded} reloads")
            });
            let (_, id, seq) = raw_publish(h, &body);
            assert_eq!(seq, next, "subscriber {i}: in order, no gap");
            sub.write_all(&packet(0x40, &id.to_be_bytes())).unwrap();
        }
    }
}

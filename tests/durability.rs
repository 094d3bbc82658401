//! The embedded log on disk (issue #14) with the real binary: crash = SIGKILL by pid, restart on
//! the same `dir` and ports, real MQTT clients (v3.1.1 and v5) and HTTP ingest.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEVICES: [&str; 4] = ["device1", "device2", "device3", "device4"];
/// Long enough for the offsets file to be written (`offsets_flush_interval` is 1 s by default).
const FLUSH: Duration = Duration::from_millis(1500);
const QUIET: Duration = Duration::from_millis(1500);

/// The service on a disk log in `dir`, on fixed ports so that a restart is on the same ones.
struct Disk {
    child: Child,
    mqtt: SocketAddr,
    http: SocketAddr,
    stderr: PathBuf,
    /// Spawned through strace: the service is strace's child, and strace detaches from it on
    /// SIGTERM instead of passing it on, so the service is stopped by its own pid.
    traced: bool,
}

struct Setup {
    work: tempfile::TempDir,
    mqtt: SocketAddr,
    http: SocketAddr,
    embedded: String,
}

impl Setup {
    /// A working directory with the log in `<work>/data`; `embedded` are extra
    /// `[backend.embedded]` keys.
    fn new(embedded: &str) -> Setup {
        let work = tempfile::tempdir().unwrap();
        Setup {
            mqtt: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            http: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            embedded: embedded.to_owned(),
            work,
        }
    }

    fn dir(&self) -> PathBuf {
        self.work.path().join("data")
    }

    fn config(&self, mqtt: SocketAddr, http: SocketAddr) -> PathBuf {
        let config = format!(
            "[server]\nthreads = 2\nconnect_timeout = \"2s\"\nshutdown_timeout = \"5s\"\n\n\
             [[listener]]\nkind = \"mqtt\"\nbind = \"{mqtt}\"\n\n[http]\nbind = \"{http}\"\n\n\
             [backend.embedded]\nstorage = \"disk\"\ndir = \"{}\"\n{}\n\n{APPS}",
            self.dir().display(),
            self.embedded
        );
        let path = self
            .work
            .path()
            .join(format!("config-{}.toml", mqtt.port()));
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Spawns the binary (optionally through `wrap`, e.g. strace) on this setup's ports.
    fn spawn(&self, wrap: &[&str], name: &str) -> Disk {
        self.spawn_on(self.mqtt, self.http, wrap, name)
    }

    fn spawn_on(&self, mqtt: SocketAddr, http: SocketAddr, wrap: &[&str], name: &str) -> Disk {
        let config = self.config(mqtt, http);
        let stderr = self.work.path().join(format!("{name}.stderr"));
        let bin = env!("CARGO_BIN_EXE_mqtt-integration");
        let mut args: Vec<&str> = wrap.to_vec();
        args.extend([bin, "--config", config.to_str().unwrap()]);
        let child = Command::new(args[0])
            .args(&args[1..])
            .current_dir(self.work.path())
            .env_remove("MQTT_INTEGRATION__BACKEND__EMBEDDED__STORAGE")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("cannot start mqtt-integration");
        Disk {
            child,
            mqtt,
            http,
            stderr,
            traced: wrap.first() == Some(&"strace"),
        }
    }

    fn start(&self, name: &str) -> Disk {
        let mut d = self.spawn(&[], name);
        d.wait_ready();
        d
    }
}

impl Disk {
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("service exited during start-up ({status}):\n{}", self.log());
            }
            if let Ok(r) = ureq::get(&format!("http://{}/readyz", self.http)).call() {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "service not ready in 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The crash: SIGKILL by pid, and wait for it to be gone.
    fn crash(mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    fn ingest_seq(&self, device: &str, n: u64) -> u16 {
        let url = format!(
            "http://{}/api/v1/apps/demo/devices/{device}/events/seq",
            self.http
        );
        match ureq::post(&url)
            .set("Content-Type", "application/json")
            .send_string(&format!("{{\"seq\":{n}}}"))
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("ingest failed: {e}"),
        }
    }

    /// Posts a batch of `n` events of about `size` bytes of data each, for device1.
    fn ingest_batch(&self, from: u64, n: u64, size: usize) -> u16 {
        let pad = "x".repeat(size);
        let events: Vec<String> = (from..from + n)
            .map(|seq| {
                format!(
                    r#"{{"device":"device1","subject":"s","datacontenttype":"application/json","data":{{"seq":{seq},"pad":"{pad}"}}}}"#
                )
            })
            .collect();
        let url = format!("http://{}/api/v1/apps/demo/events", self.http);
        match ureq::post(&url)
            .set("Content-Type", "application/cloudevents-batch+json")
            .send_string(&format!("[{}]", events.join(",")))
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("batch ingest failed: {e}"),
        }
    }

    fn metrics(&self) -> String {
        ureq::get(&format!("http://{}/metrics", self.http))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.traced {
            let pid = self.child.id();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for child in children.split_whitespace() {
                let _ = Command::new("kill").arg("-TERM").arg(child).status();
            }
            // strace exits once the service did.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        terminate(&mut self.child);
    }
}

/// (device, seq) of every structured event delivered until none comes for `quiet`.
fn drain_v5(c: &V5, quiet: Duration) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    while let Some(p) = c.next_publish(quiet) {
        let ce = cloudevent(&p.payload);
        out.push((
            ce["device"].as_str().unwrap().to_owned(),
            seq_of(&p.payload),
        ));
    }
    out
}

fn drain_v3(c: &V3, quiet: Duration) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    while let Some(p) = c.next_publish(quiet) {
        let ce = cloudevent(&p.payload);
        out.push((
            ce["device"].as_str().unwrap().to_owned(),
            seq_of(&p.payload),
        ));
    }
    out
}

/// Per device, the seqs in the order delivered.
fn by_device(got: &[(String, u64)]) -> BTreeMap<String, Vec<u64>> {
    let mut m: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (d, s) in got {
        m.entry(d.clone()).or_default().push(*s);
    }
    m
}

fn v3_persistent(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = v3_options(addr, id);
    o.set_clean_session(false);
    o
}

fn v5_persistent(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
    let mut o = v5_options(addr, id);
    o.set_clean_start(false);
    o
}

/// Every event answered 202 before a SIGKILL reaches its durable group after the restart:
/// v3.1.1 and v5, QoS 1, in order per device, no gap.
#[test]
fn events_answered_202_before_a_crash_reach_durable_groups_after_it() {
    let setup = Setup::new("");
    let svc = setup.start("first");
    // The groups exist (and are written to the offsets file) before the events come.
    let v5 = V5::connect(v5_persistent(svc.mqtt, "durable-v5"));
    v5.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    let v3 = V3::connect(v3_persistent(svc.mqtt, "durable-v3"));
    v3.subscribe("app/demo", rumqttc::QoS::AtLeastOnce);
    v5.client.disconnect().unwrap();
    v3.client.disconnect().unwrap();
    v5.wait_end(Duration::from_secs(5));
    v3.wait_end(Duration::from_secs(5));
    std::thread::sleep(FLUSH);

    let per_device = 50;
    for n in 0..per_device {
        for d in DEVICES {
            assert_eq!(svc.ingest_seq(d, n), 202, "seq {n} of {d}");
        }
    }
    svc.crash();

    let svc = setup.start("second");
    let expected: BTreeMap<String, Vec<u64>> = DEVICES
        .iter()
        .map(|d| (d.to_string(), (0..per_device).collect()))
        .collect();
    let v5 = V5::connect(v5_persistent(svc.mqtt, "durable-v5"));
    v5.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    assert_eq!(by_device(&drain_v5(&v5, QUIET)), expected, "v5 group");
    let v3 = V3::connect(v3_persistent(svc.mqtt, "durable-v3"));
    v3.subscribe("app/demo", rumqttc::QoS::AtLeastOnce);
    assert_eq!(by_device(&drain_v3(&v3, QUIET)), expected, "v3.1.1 group");
}

/// A group's events PUBACKed more than a second before the crash are not delivered again; a new
/// group after the restart starts at the end; `start = earliest` replays from the disk.
#[test]
fn acknowledged_events_stay_acknowledged_and_new_groups_start_at_the_end() {
    let setup = Setup::new("");
    let svc = setup.start("first");
    let c = V5::connect(v5_persistent(svc.mqtt, "acked"));
    c.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    for n in 0..30 {
        assert_eq!(svc.ingest_seq("device1", n), 202);
    }
    let got: Vec<u64> = drain_v5(&c, QUIET).into_iter().map(|(_, s)| s).collect();
    assert_eq!(got, (0..30).collect::<Vec<_>>());
    // rumqttc PUBACKs as it receives; give the offsets file its second.
    std::thread::sleep(FLUSH);
    svc.crash();

    let svc = setup.start("second");
    let c = V5::connect(v5_persistent(svc.mqtt, "acked"));
    c.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    let fresh = V5::connect(v5_persistent(svc.mqtt, "fresh-after-restart"));
    fresh.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    assert_eq!(svc.ingest_seq("device1", 30), 202);
    let again: Vec<u64> = drain_v5(&c, QUIET).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        again,
        vec![30],
        "only the new event, nothing acknowledged again"
    );
    let new: Vec<u64> = drain_v5(&fresh, QUIET)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(new, vec![30], "a new group starts at the end of the log");

    // Replay from the disk.
    let replay = V5::connect(v5_options(svc.mqtt, "replay-earliest"));
    let props = rumqttc::v5::mqttbytes::v5::SubscribeProperties {
        id: None,
        user_properties: vec![("start".into(), "earliest".into())],
    };
    replay
        .client
        .subscribe_with_properties("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, props)
        .unwrap();
    let all: Vec<u64> = drain_v5(&replay, QUIET)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(all, (0..=30).collect::<Vec<_>>(), "start = earliest");
}

/// Appends `bytes` random bytes to every file under `dir`.
fn append_garbage(dir: &Path, rng: &mut Rng, touched: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            append_garbage(&path, rng, touched);
        } else {
            let n = 1 + (rng.next() % 200) as usize;
            let garbage: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(&garbage).unwrap();
            touched.push(path);
        }
    }
}

/// Random bytes appended to every file under `dir` after a SIGKILL: the service starts and
/// every complete record is delivered; the cut is logged and counted.
#[test]
fn garbage_after_a_crash_is_cut_and_every_complete_record_delivered() {
    let setup = Setup::new("");
    let svc = setup.start("first");
    let c = V5::connect(v5_persistent(svc.mqtt, "garbage"));
    c.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    c.client.disconnect().unwrap();
    c.wait_end(Duration::from_secs(5));
    std::thread::sleep(FLUSH);
    for n in 0..40 {
        for d in DEVICES {
            assert_eq!(svc.ingest_seq(d, n), 202);
        }
    }
    svc.crash();
    let mut touched = Vec::new();
    append_garbage(&setup.dir(), &mut Rng(0x1234_5678_9abc_def1), &mut touched);
    assert!(touched
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "log")));
    assert!(touched.iter().any(|p| p.ends_with("offsets")));

    let svc = setup.start("second");
    let c = V5::connect(v5_persistent(svc.mqtt, "garbage"));
    c.subscribe("app/demo", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, None);
    let expected: BTreeMap<String, Vec<u64>> = DEVICES
        .iter()
        .map(|d| (d.to_string(), (0..40).collect()))
        .collect();
    assert_eq!(by_device(&drain_v5(&c, QUIET)), expected);
    let log = svc.log();
    assert!(
        log.contains("torn or damaged tail") || log.contains("truncat"),
        "{log}"
    );
    let metrics = svc.metrics();
    let cut = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mqtt_integration_log_recovery_truncations_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no truncation counter:\n{metrics}"));
    assert!(cut >= 1, "{metrics}");
}

/// A second process on the same `dir` exits 1 naming it.
#[test]
fn a_second_process_on_the_same_dir_exits_1_naming_it() {
    let setup = Setup::new("");
    let _first = setup.start("first");
    let mqtt: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut second = setup.spawn_on(mqtt, http, &[], "second");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second process kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{}", second.log());
    let lock = setup.dir().join("LOCK");
    assert!(
        second.log().contains(&lock.display().to_string()),
        "{}",
        second.log()
    );
}

/// `strace -f` on the binary: for one POST with `fsync = "always"`, the segment is written, then
/// fdatasync'ed, and only then the HTTP response is written.
#[test]
fn the_202_is_written_after_the_fdatasync() {
    if Command::new("strace").arg("-V").output().is_err() {
        println!("SKIPPED: strace is not installed");
        return;
    }
    let setup = Setup::new("fsync = \"always\"");
    let trace = setup.work.path().join("strace.out");
    let trace_arg = trace.to_str().unwrap().to_owned();
    let mut svc = setup.spawn(
        &[
            "strace",
            "-f",
            "-s",
            "2000",
            "-e",
            "trace=fdatasync,fsync,write,sendto,writev,pwrite64",
            "-o",
            &trace_arg,
        ],
        "traced",
    );
    svc.wait_ready();
    // Everything the start wrote and synced is in the trace before this marker.
    let before = std::fs::read_to_string(&trace).unwrap().lines().count();
    assert_eq!(svc.ingest_seq("device1", 7), 202);
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().skip(before).collect();
    let find = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    // The segment write carries the event's data.
    let write = find(&|l: &str| {
        (l.contains("write(") || l.contains("pwrite64(") || l.contains("writev("))
            && l.contains("seq")
            && !l.contains("HTTP/1.1")
    })
    .unwrap_or_else(|| panic!("no segment write in:\n{}", lines.join("\n")));
    // The descriptor written: `<tid>  pwrite64(<fd>, …`.
    let fd = lines[write]
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(','))
        .map(|(fd, _)| fd.to_owned())
        .unwrap();
    // `fdatasync(7) = 0`, or `fdatasync(7 <unfinished ...>` when another thread's call is
    // printed before this one returns (strace -f splits the line then).
    let sync = find(&|l: &str| {
        ["fdatasync", "fsync"].iter().any(|call| {
            l.contains(&format!("{call}({fd})")) || l.contains(&format!("{call}({fd} <unfinished"))
        })
    })
    .unwrap_or_else(|| panic!("no fdatasync of fd {fd} in:\n{}", lines.join("\n")));
    let answer = find(&|l: &str| l.contains("HTTP/1.1 202"))
        .unwrap_or_else(|| panic!("no 202 written in:\n{}", lines.join("\n")));
    assert!(
        write < sync && sync < answer,
        "order write {write}, fdatasync {sync}, 202 {answer}:\n{}",
        lines.join("\n")
    );
    // The fdatasync was timed, and the segments are counted.
    let metrics = svc.metrics();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    assert!(value("mqtt_integration_log_fsync_seconds_count") >= 1.0);
    assert!(value("mqtt_integration_log_segments") >= 1.0);
}

/// RssAnon of the process, in KiB.
fn rss_anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/<pid>/status")
}

/// 100,000 retained 1 KiB events grow RssAnon by less than 64 MiB: reads come from the files,
/// nothing is kept in RAM per event.
#[test]
fn retained_events_on_disk_do_not_grow_anonymous_memory() {
    let setup = Setup::new("fsync = \"interval\"");
    let svc = setup.start("rss");
    // Warm up the allocator and the HTTP path.
    assert_eq!(svc.ingest_batch(0, 500, 1000), 202);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_anon_kib(svc.child.id());
    // Bodies stay under http.max_body_size (1 MiB).
    let per_batch = 500;
    for b in 0..200u64 {
        assert_eq!(svc.ingest_batch(1000 + b * per_batch, per_batch, 1000), 202);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_anon_kib(svc.child.id());
    let grown = after.saturating_sub(before);
    println!(
        "RssAnon {before} KiB -> {after} KiB (+{grown} KiB) for 100,000 retained 1 KiB events"
    );
    assert!(grown < 64 * 1024, "RssAnon grew by {grown} KiB");
    // And they are retained: on disk.
    let metrics = svc.metrics();
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mqtt_integration_log_bytes{app=\"demo\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no log bytes:\n{metrics}"));
    assert!(bytes > 100_000 * 1000, "{bytes} bytes on disk");
}

/// A full disk: ingest answers 503 with a clear log line naming the file, and the log is not
/// corrupted: everything answered 202 before is delivered, in order. The disk is a 1 MiB tmpfs
/// mounted in a user and mount namespace of the service's own (`unshare -rm`); where the
/// machine does not allow that, the test is skipped with the reason.
#[test]
fn a_full_disk_answers_503_and_keeps_the_log_whole() {
    let probe = Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "SKIPPED: cannot mount a tmpfs in a user namespace here: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        Err(e) => {
            println!("SKIPPED: no unshare: {e}");
            return;
        }
    }
    let setup = Setup::new("");
    std::fs::create_dir_all(setup.dir()).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs '{}' && exec \"$0\" \"$@\"",
        setup.dir().display()
    );
    let mut svc = setup.spawn(&["unshare", "-rm", "sh", "-c", &script], "full");
    svc.wait_ready();
    let per_batch = 50;
    let mut accepted = 0;
    let mut refused = 0;
    for b in 0..100u64 {
        match svc.ingest_batch(b * per_batch, per_batch, 1000) {
            202 if refused == 0 => accepted += per_batch,
            202 => panic!("a batch accepted after a refusal: the disk freed itself?"),
            503 => {
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "the 1 MiB disk never filled:\n{}", svc.log());
    assert!(accepted > 0, "nothing fit:\n{}", svc.log());
    let log = svc.log();
    let line = log
        .lines()
        .find(|l| l.contains("disk is full"))
        .unwrap_or_else(|| panic!("no 'disk is full' line:\n{log}"));
    assert!(
        line.contains(".log"),
        "the line names the segment file: {line}"
    );

    // Every accepted event is readable, in order, and nothing of the refused batches.
    let c = V5::connect(v5_options(svc.mqtt, ""));
    let props = rumqttc::v5::mqttbytes::v5::SubscribeProperties {
        id: None,
        user_properties: vec![("start".into(), "earliest".into())],
    };
    c.client
        .subscribe_with_properties("app/demo", rumqttc::v5::mqttbytes::QoS::AtMostOnce, props)
        .unwrap();
    let got: Vec<u64> = drain_v5(&c, QUIET).into_iter().map(|(_, s)| s).collect();
    assert_eq!(got, (0..accepted).collect::<Vec<_>>());
}

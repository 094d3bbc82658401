//! Kafka backend under failure: a service process killed mid-stream (SIGKILL) and restarted,
//! a shared group over two service processes (one killed), and the broker stopped for 20 s.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rumqttc::v5::mqttbytes::QoS;

/// Collects `data.seq` of every PUBLISH until `want` distinct ones are seen or `timeout`.
fn collect(
    c: &V5,
    seen: &mut BTreeMap<u64, u32>,
    want: impl Fn(&BTreeMap<u64, u32>) -> bool,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while !want(seen) && Instant::now() < deadline {
        if let Some(p) = c.next_publish(Duration::from_millis(200)) {
            *seen.entry(seq_of(&p.payload)).or_default() += 1;
        }
    }
}

fn durable(addr: std::net::SocketAddr, id: &str) -> V5 {
    let mut o = v5_options(addr, id);
    o.set_clean_start(false);
    V5::connect(o)
}

fn produce_range(bootstrap: &str, topic: &str, app: &str, range: std::ops::Range<u64>) {
    let p = kafka::producer(bootstrap);
    for seq in range {
        kafka::produce_binary(&p, topic, app, &format!("dev-{}", seq % 16), seq);
    }
}

#[test]
fn qos1_client_survives_a_service_crash() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("crash");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 4);
    let extra = kafka::backend_toml(&bootstrap, &kafka::unique("cmd"));
    let apps = kafka::apps_toml(&app);
    let mut svc = Service::start_with(&extra, &apps, &[]);
    let c = durable(svc.mqtt, "crash-client");
    c.subscribe(&format!("app/{app}"), QoS::AtLeastOnce, None);

    let total = 300u64;
    let producer = {
        let (b, t, a) = (bootstrap.clone(), topic.clone(), app.clone());
        std::thread::spawn(move || {
            let p = kafka::producer(&b);
            for seq in 0..total {
                kafka::produce_binary(&p, &t, &a, &format!("dev-{}", seq % 16), seq);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut seen = BTreeMap::new();
    collect(&c, &mut seen, |s| s.len() >= 100, Duration::from_secs(30));
    assert!(
        seen.len() >= 100,
        "only {} events before the crash",
        seen.len()
    );
    // SIGKILL: nothing is committed on the way out.
    svc.child.kill().unwrap();
    let _ = svc.child.wait();
    drop(c);
    let svc2 = Service::start_with(&extra, &apps, &[]);
    let c = durable(svc2.mqtt, "crash-client");
    c.subscribe(&format!("app/{app}"), QoS::AtLeastOnce, None);
    producer.join().unwrap();
    collect(
        &c,
        &mut seen,
        |s| s.len() as u64 >= total,
        Duration::from_secs(60),
    );
    let missing: Vec<u64> = (0..total).filter(|s| !seen.contains_key(s)).collect();
    let dups: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!("crash test: {} distinct, {dups} duplicates", seen.len());
    assert!(missing.is_empty(), "gaps after the crash: {missing:?}");
    drop(svc);
}

#[test]
fn shared_group_over_two_processes() {
    let bootstrap = kafka::bootstrap();
    let app = kafka::unique("shared");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 4);
    let extra = kafka::backend_toml(&bootstrap, &kafka::unique("cmd"));
    let apps = kafka::apps_toml(&app);
    let mut a = Service::start_with(&extra, &apps, &[]);
    let b = Service::start_with(&extra, &apps, &[]);
    let filter = format!("$share/g/app/{app}");
    let ca = V5::connect(v5_options(a.mqtt, "shared-a"));
    ca.subscribe(&filter, QoS::AtLeastOnce, None);
    let cb = V5::connect(v5_options(b.mqtt, "shared-b"));
    cb.subscribe(&filter, QoS::AtLeastOnce, None);
    // Both processes hold partitions once B logged its assignment.
    assert!(
        eventually(Duration::from_secs(30), || b
            .log()
            .contains("partitions assigned")),
        "B never got partitions:\n{}",
        b.log()
    );
    std::thread::sleep(Duration::from_secs(1));

    produce_range(&bootstrap, &topic, &app, 0..200);
    let mut sa = BTreeMap::new();
    let mut sb = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sa.len() + sb.len() < 200 && Instant::now() < deadline {
        if let Some(p) = ca.next_publish(Duration::from_millis(50)) {
            *sa.entry(seq_of(&p.payload)).or_default() += 1;
        }
        if let Some(p) = cb.next_publish(Duration::from_millis(50)) {
            *sb.entry(seq_of(&p.payload)).or_default() += 1;
        }
    }
    let mut both: HashMap<u64, u32> = HashMap::new();
    for (s, n) in sa.iter().chain(sb.iter()) {
        *both.entry(*s).or_default() += n;
    }
    for s in 0..200 {
        assert_eq!(
            both.get(&s).copied().unwrap_or(0),
            1,
            "seq {s}: exactly once across both (A {}, B {})",
            sa.len(),
            sb.len()
        );
    }
    assert!(
        !sa.is_empty() && !sb.is_empty(),
        "both members get a share (A {}, B {})",
        sa.len(),
        sb.len()
    );

    // Kill A: B takes over its partitions (after the session timeout), nothing is lost.
    a.child.kill().unwrap();
    let _ = a.child.wait();
    drop(ca);
    produce_range(&bootstrap, &topic, &app, 200..300);
    let mut later = BTreeMap::new();
    collect(
        &cb,
        &mut later,
        |s| (200..300).all(|x| s.contains_key(&x)),
        Duration::from_secs(60),
    );
    let missing: Vec<u64> = (200..300).filter(|s| !later.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost after A was killed: {missing:?}");
}

#[test]
fn broker_outage_of_20s() {
    kafka::bootstrap(); // the suite's broker must be there (this test starts its own as well)
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
    let start = || {
        let out = Command::new(script)
            .args(["start", "--dir"])
            .arg(dir.path())
            .output()
            .expect("scripts/kafka");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("bootstrap=").map(str::to_owned))
            .expect("no bootstrap= line")
    };
    let stop = || {
        let _ = Command::new(script)
            .args(["stop", "--dir"])
            .arg(dir.path())
            .status();
    };
    struct Guard<F: Fn()>(F);
    impl<F: Fn()> Drop for Guard<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let bootstrap = start();
    let _guard = Guard(stop);
    let app = kafka::unique("outage");
    let topic = format!("events-{app}");
    kafka::create_topic(&bootstrap, &topic, 2);
    let svc = Service::start_with(
        &kafka::backend_toml(&bootstrap, "iot-commands"),
        &kafka::apps_toml(&app),
        &[],
    );
    let c = durable(svc.mqtt, "outage-client");
    c.subscribe(&format!("app/{app}"), QoS::AtLeastOnce, None);
    // An ephemeral reader too (empty client id: it reads through the application's tail).
    let e = V5::connect(v5_options(svc.mqtt, ""));
    e.subscribe(&format!("app/{app}"), QoS::AtMostOnce, None);
    produce_range(&bootstrap, &topic, &app, 0..50);
    let mut seen = BTreeMap::new();
    collect(&c, &mut seen, |s| s.len() >= 50, Duration::from_secs(30));
    assert_eq!(seen.len(), 50);
    let mut seen_e = BTreeMap::new();
    collect(&e, &mut seen_e, |s| s.len() >= 50, Duration::from_secs(30));
    assert_eq!(seen_e.len(), 50, "the ephemeral reader before the outage");

    stop();
    std::thread::sleep(Duration::from_secs(20));
    start();
    produce_range(&bootstrap, &topic, &app, 50..100);
    // The same connection (V5::wait panics if it ends) gets everything.
    collect(&c, &mut seen, |s| s.len() >= 100, Duration::from_secs(90));
    let missing: Vec<u64> = (0..100).filter(|s| !seen.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "lost across the broker outage: {missing:?}"
    );
    collect(&e, &mut seen_e, |s| s.len() >= 100, Duration::from_secs(60));
    let missing: Vec<u64> = (0..100).filter(|s| !seen_e.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "the ephemeral reader lost across the broker outage: {missing:?}"
    );
    assert!(
        seen_e.values().all(|&n| n == 1),
        "the ephemeral reader got duplicates"
    );
}

//! Kafka backend against a secured broker: TLS and SASL (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN)
//! configured only through `backend.kafka.properties`, as for Drogue Cloud / Strimzi.
//!
//! The test starts a broker of its own (`scripts/kafka start --sasl-scram … --tls …` in
//! `target/kafka-security-<unique>`, with a CA and server certificate made here by the `openssl`
//! CLI) and stops it when done, even on failure (a Drop guard). It needs the broker jars
//! (`scripts/kafka fetch`, done by `scripts/test`) and Java; when the broker cannot start the test
//! FAILS, it never skips.

mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/pki.rs"]
mod pki;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pki::Pki;
use rdkafka::message::Message;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Event, Incoming};

const USER: &str = "mqtt-integration";
const PASSWORD: &str = "Scram-pw.4711";

/// How long `scripts/kafka start` (format + JVM start-up) may take before the test fails.
const BROKER_START_TIMEOUT: &str = "180";

/// A broker with a PLAINTEXT, a SASL_PLAINTEXT, an SSL and a SASL_SSL listener.
struct SecureBroker {
    sasl: String,
    ssl: String,
    sasl_ssl: String,
    /// The CA that signed the broker's certificate (PEM).
    ca: PathBuf,
    _certs: Pki,
    _guard: BrokerGuard,
}

/// Stops the broker of `dir` and removes the directory (also when the start failed halfway).
struct BrokerGuard(PathBuf);

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["60", script().to_str().unwrap(), "stop", "--dir"])
            .arg(&self.0)
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka")
}

impl SecureBroker {
    fn start() -> SecureBroker {
        let certs = Pki::new();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(kafka::unique("kafka-security"));
        let guard = BrokerGuard(dir.clone());
        let t = Instant::now();
        let out = Command::new("timeout")
            .arg(BROKER_START_TIMEOUT)
            .arg(script())
            .arg("start")
            .arg("--dir")
            .arg(&dir)
            .arg("--sasl-scram")
            .arg(format!("{USER}:{PASSWORD}"))
            .arg("--tls")
            .arg(certs.dir())
            .output()
            .expect("cannot run scripts/kafka");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the secured Kafka broker did not start ({}; it needs Java 17+ and the broker jars, \
             scripts/kafka fetch):\n{}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("scripts/kafka printed no {name}=:\n{stdout}"))
                .to_owned()
        };
        let b = SecureBroker {
            sasl: addr("sasl_bootstrap"),
            ssl: addr("ssl_bootstrap"),
            sasl_ssl: addr("sasl_ssl_bootstrap"),
            ca: certs.path("ca.crt"),
            _certs: certs,
            _guard: guard,
        };
        eprintln!(
            "secured broker up in {:.1} s: {}",
            t.elapsed().as_secs_f64(),
            stdout.trim().replace('\n', ", ")
        );
        b
    }

    /// Client settings for `protocol` (SASL_SSL, SASL_PLAINTEXT, SSL) and `mechanism`.
    fn props<'a>(
        &'a self,
        protocol: &'a str,
        mechanism: &'a str,
        password: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        let mut p = vec![("security.protocol", protocol)];
        if protocol.starts_with("SASL") {
            p.extend([
                ("sasl.mechanism", mechanism),
                ("sasl.username", USER),
                ("sasl.password", password),
            ]);
        }
        if protocol.ends_with("SSL") {
            p.push(("ssl.ca.location", self.ca.to_str().unwrap()));
        }
        p
    }

    fn bootstrap(&self, protocol: &str) -> &str {
        match protocol {
            "SASL_SSL" => &self.sasl_ssl,
            "SASL_PLAINTEXT" => &self.sasl,
            "SSL" => &self.ssl,
            other => panic!("no listener for {other}"),
        }
    }
}

/// The service's `[backend]` section: `bootstrap`, `command_topic` and `props` as
/// `backend.kafka.properties`.
fn backend_toml(bootstrap: &str, command_topic: &str, props: &[(&str, &str)]) -> String {
    let mut s = kafka::backend_toml(bootstrap, command_topic);
    s.push_str("\n[backend.kafka.properties]\n");
    for (k, v) in props {
        s.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    s
}

fn readyz(http: std::net::SocketAddr) -> u16 {
    match ureq::get(&format!("http://{http}/readyz"))
        .timeout(Duration::from_secs(2))
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("/readyz: {e}"),
    }
}

#[test]
fn tls_and_sasl_through_backend_properties() {
    let broker = SecureBroker::start();
    let app = kafka::unique("sec");
    let events = format!("events-{app}");
    let command_topic = kafka::unique("sec-commands");

    // --- SASL_SSL + SCRAM-SHA-512 (Strimzi's `tls` listener with `scram-sha-512` auth): events
    // and commands end to end. The topics are created and the records produced and read by
    // clients with the same credentials.
    let props = broker.props("SASL_SSL", "SCRAM-SHA-512", PASSWORD);
    let bootstrap = broker.bootstrap("SASL_SSL");
    kafka::create_topic_with(bootstrap, &props, &events, 2);
    kafka::create_topic_with(bootstrap, &props, &command_topic, 2);
    // The password comes from the environment (not the file), as a deployment would pass it.
    let without_password: Vec<_> = props
        .iter()
        .copied()
        .filter(|(k, _)| *k != "sasl.password")
        .collect();
    let svc = Service::start_with(
        &backend_toml(bootstrap, &command_topic, &without_password),
        &kafka::apps_toml(&app),
        &[(
            "MQTT_INTEGRATION__BACKEND__KAFKA__PROPERTIES__SASL__PASSWORD",
            PASSWORD,
        )],
    );

    let sub = V5::connect(v5_options(svc.mqtt, "sec-sub"));
    sub.subscribe(&format!("app/{app}"), QoS::AtLeastOnce, None);
    let p = kafka::producer_with(bootstrap, &props);
    kafka::produce_binary(&p, &events, &app, "device1", 1);
    let got = sub
        .next_publish(Duration::from_secs(20))
        .expect("SASL_SSL: the record produced to Kafka did not reach the MQTT subscriber");
    assert_eq!(got.topic, format!("app/{app}"));
    let ce = cloudevent(&got.payload);
    assert_eq!(ce["data"]["seq"], 1, "{ce}");
    assert_eq!(ce["id"], "id-1");
    assert_eq!(ce["device"], "device1");

    let cmd = V5::connect(v5_options(svc.mqtt, "sec-cmd"));
    cmd.client
        .publish(
            format!("command/{app}/device2/set-light"),
            QoS::AtLeastOnce,
            false,
            b"on".to_vec(),
        )
        .unwrap();
    match cmd.wait(Duration::from_secs(30), |e| {
        matches!(e, Event::Incoming(Incoming::PubAck(_)))
    }) {
        Some(Event::Incoming(Incoming::PubAck(a))) => assert_eq!(
            a.reason,
            rumqttc::v5::mqttbytes::v5::PubAckReason::Success,
            "command PUBACK"
        ),
        other => panic!("SASL_SSL: no PUBACK for the command: {other:?}"),
    }
    let records = kafka::read_topic_with(
        bootstrap,
        &props,
        &command_topic,
        1,
        Duration::from_secs(15),
    );
    assert_eq!(
        records.len(),
        1,
        "the PUBACKed command is in the command topic"
    );
    assert_eq!(records[0].key(), Some(format!("{app}/device2").as_bytes()));
    assert_eq!(records[0].payload(), Some(&b"on"[..]));
    assert_eq!(
        kafka::header(&records[0], "ce_subject").as_deref(),
        Some("set-light")
    );
    assert!(
        !svc.log().contains(PASSWORD),
        "the service logged the SASL password:\n{}",
        svc.log()
    );
    drop((sub, cmd, svc));

    // --- The other protocols and mechanisms: the service becomes ready (metadata over the
    // listener; Service::start_with waits for /readyz 200) and an ingested event is
    // acknowledged by Kafka (202 comes from the delivery report).
    for (protocol, mechanism) in [
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_SSL", "SCRAM-SHA-256"),
        ("SSL", ""),
    ] {
        let t = Instant::now();
        let props = broker.props(protocol, mechanism, PASSWORD);
        let svc = Service::start_with(
            &backend_toml(broker.bootstrap(protocol), &command_topic, &props),
            &kafka::apps_toml(&app),
            &[],
        );
        let status = svc.ingest(&app, "device3", "temp", "application/json", b"{\"t\":1}");
        assert_eq!(status, 202, "{protocol} {mechanism}: ingest");
        eprintln!(
            "{protocol} {mechanism}: ready and ingest acknowledged in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let ingested = kafka::read_topic_with(bootstrap, &props, &events, 6, Duration::from_secs(15));
    assert_eq!(ingested.len(), 6, "1 produced + 5 ingested events");

    // --- A wrong password: the service runs but is not ready, and says why.
    let wrong = broker.props("SASL_SSL", "SCRAM-SHA-512", "not-the-password");
    let bad = kafka::start_unready(
        &backend_toml(bootstrap, &command_topic, &wrong),
        &kafka::apps_toml(&app),
    );
    // librdkafka's message names the cause; the readiness probe's own warning carries the
    // metadata request's error (Authentication).
    let said_why = eventually(Duration::from_secs(20), || {
        let log = bad.log();
        log.contains("Authentication failed")
            && log
                .lines()
                .any(|l| l.contains("Kafka is not reachable") && l.contains("Authentication"))
    });
    assert!(
        said_why,
        "no authentication failure in the log of a service with a wrong password:\n{}",
        bad.log()
    );
    // Not ready now, nor after two more readiness probes (every 3 s).
    assert_eq!(readyz(bad.http), 503, "wrong password: /readyz");
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(readyz(bad.http), 503, "wrong password: /readyz after 7 s");
    let wrong_password_log = bad.log();
    drop(bad);

    // --- A broker certificate the client does not trust (`probe`: the system's CA store, which
    // does not hold the test CA): not ready either, and the log names the TLS failure.
    let untrusted = [("security.protocol", "SSL"), ("ssl.ca.location", "probe")];
    let bad = kafka::start_unready(
        &backend_toml(broker.bootstrap("SSL"), &command_topic, &untrusted),
        &kafka::apps_toml(&app),
    );
    let said_why = eventually(Duration::from_secs(20), || {
        bad.log().lines().any(|l| {
            l.contains("Kafka is not reachable") && l.contains("certificate verify failed")
        })
    });
    assert!(
        said_why,
        "no certificate failure in the log of a service that does not trust the broker:\n{}",
        bad.log()
    );
    assert_eq!(readyz(bad.http), 503, "untrusted certificate: /readyz");
    eprintln!(
        "untrusted certificate, the service logged:\n{}",
        bad.log()
            .lines()
            .filter(|l| l.contains("Kafka is not reachable"))
            .take(1)
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "wrong password, the service logged:\n{}",
        wrong_password_log
            .lines()
            .filter(|l| l.contains("Kafka is not reachable") || l.contains("FAIL"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

//! Shared harness of the integration tests: the real `mqtt-integration` binary, started on free
//! loopback ports with a configuration written for the test, and stopped (SIGTERM) on drop.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running service process.
pub struct Service {
    pub child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

/// Applications and devices every test configuration has.
pub const APPS: &str = r#"
[[user]]
name = "alice"
api_keys = []

[[app]]
name = "demo"
members = { anonymous = "manager" }
devices = [ { name = "device1" }, { name = "device2" }, { name = "device3" }, { name = "device4" }, { name = "off", enabled = false } ]

[[app]]
name = "readonly"
members = { anonymous = "reader" }
devices = [ { name = "device1" } ]

[[app]]
name = "private"
owner = "alice"
devices = [ { name = "device1" } ]
"#;

/// A free port on 127.0.0.1 (bound and released: the kernel will not hand it out again soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port")
}

impl Service {
    /// Starts the service with the common apps and `extra` TOML (sections not in the base).
    pub fn start(extra: &str) -> Service {
        Service::start_with(extra, APPS, &[])
    }

    pub fn start_with(extra: &str, apps: &str, env: &[(&str, &str)]) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let mqtt: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = format!(
            "[server]\nthreads = 2\nconnect_timeout = \"2s\"\nshutdown_timeout = \"5s\"\n{extra}\n\n[[listener]]\nkind = \"mqtt\"\nbind = \"{mqtt}\"\n\n[http]\nbind = \"{http}\"\n{apps}"
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let log = dir.path().join("service.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mqtt-integration"))
            .arg("--config")
            .arg(&path)
            .envs(env.iter().copied())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("cannot start mqtt-integration");
        let mut s = Service { child, mqtt, http, dir, log };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("service exited during start-up ({status}):\n{}", self.log());
            }
            if let Ok(r) = ureq::get(&format!("http://{}/readyz", self.http)).call() {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "service not ready in 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the service logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Posts one event through the ingest route; returns the HTTP status.
    pub fn ingest(&self, app: &str, device: &str, channel: &str, content_type: &str, body: &[u8]) -> u16 {
        let url = format!("http://{}/api/v1/apps/{app}/devices/{device}/events/{channel}", self.http);
        match ureq::post(&url).set("Content-Type", content_type).send_bytes(body) {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("ingest failed: {e}"),
        }
    }

    pub fn metrics(&self) -> String {
        ureq::get(&format!("http://{}/metrics", self.http)).call().unwrap().into_string().unwrap()
    }

    /// A raw TCP connection to the MQTT listener.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(self.mqtt).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("service did not stop within 15 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads from a raw socket until EOF or timeout; returns the bytes.
pub fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

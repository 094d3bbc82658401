//! Hostile-input limits: connections per source address, the delay after a refused CONNECT, and
//! a client that floods requests without reading the answers.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 has them all).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn connack_code(s: &mut TcpStream) -> Option<u8> {
    let (h, body) = read_packet(s, Duration::from_secs(5))?;
    assert_eq!(h, 0x20, "expected CONNACK");
    body.get(1).copied()
}

#[test]
fn connections_per_source_address_are_limited() {
    let svc = Service::start("max_connections_per_ip = 2\n");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.1", svc.mqtt);
        s.write_all(&connect_packet(4, "", 0)).unwrap();
        assert_eq!(connack_code(&mut s), Some(0));
        held.push(s);
    }
    let mut third = connect_from("127.0.0.1", svc.mqtt);
    let _ = third.write_all(&connect_packet(4, "", 0));
    assert!(
        closed_within(&mut third, Duration::from_secs(3)),
        "a third connection from 127.0.0.1 is refused"
    );
    assert!(
        svc.log().contains("max_connections_per_ip"),
        "the refusal is logged:\n{}",
        svc.log()
    );

    let mut other = connect_from("127.0.0.2", svc.mqtt);
    other.write_all(&connect_packet(4, "", 0)).unwrap();
    assert_eq!(
        connack_code(&mut other),
        Some(0),
        "another address has its own count"
    );

    drop(held.pop());
    assert!(
        eventually(Duration::from_secs(3), || {
            let mut s = connect_from("127.0.0.1", svc.mqtt);
            s.write_all(&connect_packet(4, "", 0)).is_ok() && connack_code(&mut s) == Some(0)
        }),
        "a closed connection frees its place"
    );
}

#[test]
fn refused_credentials_are_answered_after_the_failure_delay() {
    let svc = Service::start_with(
        "[auth]\nallow_anonymous = false\nfailure_delay = \"800ms\"\n",
        APPS,
        &[],
    );
    // CONNECT with a user name (3.1.1): refused, but only after the delay.
    let mut b = Vec::new();
    mqtt_str(b"MQTT", &mut b);
    b.extend_from_slice(&[4, 0x82, 0, 0]);
    mqtt_str(b"guess", &mut b);
    mqtt_str(b"someone", &mut b);
    let mut s = svc.raw();
    let started = Instant::now();
    s.write_all(&packet(0x10, &b)).unwrap();
    assert_eq!(connack_code(&mut s), Some(4), "bad user name or password");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "answered after {waited:?}"
    );
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

#[test]
fn a_client_that_floods_without_reading_is_paused_not_buffered() {
    let svc = Service::start("[mqtt]\nmax_queued_bytes = 65536\n");
    let mut flooder = raw_connect(&svc, 4, "flooder", 0);
    flooder
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // 2 MB of PINGREQs; their 2 MB of PINGRESPs are never read.
    let pings = [0xC0u8, 0x00].repeat(64 * 1024);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut sent = 0usize;
    while sent < 2 * 1024 * 1024 && Instant::now() < deadline {
        match flooder.write(&pings) {
            Ok(n) => sent += n,
            Err(_) => break, // the service stopped reading: our socket buffer is full
        }
    }
    let queued = svc
        .metrics()
        .lines()
        .find(|l| l.starts_with("mqtt_integration_queued_bytes"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .expect("queued bytes gauge");
    assert!(
        queued <= 65536 + 64 * 1024 + 64 * 1024,
        "answers held for the flooder: {queued} bytes"
    );
    // Everyone else is still served.
    let mut other = raw_connect(&svc, 4, "bystander", 0);
    other.write_all(&[0xC0, 0x00]).unwrap();
    assert_eq!(
        read_packet(&mut other, Duration::from_secs(5)).map(|p| p.0),
        Some(0xD0)
    );
}

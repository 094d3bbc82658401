//! Entry points for fuzzing: each takes arbitrary bytes and must never panic, loop forever or
//! grow without bound. `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run <target>`);
//! `tests/fuzz_corpus.rs` runs them over the committed corpus on stable, in every test run.
//!
//! Owns: the fuzz entry points (the one place outside `backend/` allowed into its internals).
//! Must not touch: anything at run time; the service never calls it.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::kafka::codec;
use crate::cloudevents::Event;
use crate::config::Config;
use crate::protocol::{self, Version};
use crate::registry::{Current, Identity, Registry};
use crate::seam::{BackendError, ConnId};
use crate::session::{Session, SessionConfig, SessionEvent};
use crate::shard::transport::WsStream;

/// The MQTT decoder, both versions and before CONNECT: `frame_len` then `decode` on every frame;
/// a decoded packet must encode again.
pub fn decode(data: &[u8]) {
    for version in [None, Some(Version::V311), Some(Version::V5)] {
        let mut rest = data;
        while let Ok(Some(len)) = protocol::frame_len(rest, 1 << 20) {
            assert!(len <= rest.len(), "frame_len promised more than there is");
            if let Ok(packet) = protocol::decode(&rest[..len], version) {
                let mut out = bytes::BytesMut::new();
                let _ = packet.encode(version.unwrap_or(Version::V5), &mut out);
            }
            rest = &rest[len..];
        }
    }
}

/// A session fed arbitrary bytes in arbitrary chunks, with the shell's part played: CONNECTs
/// accepted, joins answered (alternately failed), commands completed, time moving on.
pub fn session(data: &[u8]) {
    let Some((&chunking, data)) = data.split_first() else {
        return;
    };
    let config = Arc::new(SessionConfig {
        max_packet_size: 4096,
        default_receive_maximum: 4,
        server_receive_maximum: 4,
        max_inflight: 16,
        connect_timeout: Duration::from_secs(5),
        server_keep_alive: None,
        max_subscriptions: 64,
        registry: registry(),
    });
    let mut now = Instant::now();
    let conn = ConnId {
        shard: 0,
        slot: 0,
        generation: 1,
    };
    let mut s = Session::new(conn, config, now);
    let step = usize::from(chunking % 64) + 1;
    let mut buf: Vec<u8> = Vec::new();
    let mut answered = 0u64;
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            let n = s.handle_input(now, &buf);
            buf.drain(..n);
            let mut progressed = n > 0;
            while let Some(event) = s.poll_event() {
                progressed = true;
                match event {
                    SessionEvent::Connect(_) => s.accept_connect(now, Identity::Anonymous),
                    SessionEvent::Join(join) => {
                        answered += 1;
                        let result = if answered % 3 == 0 {
                            Err(BackendError::Unavailable("fuzz".into()))
                        } else {
                            Ok(())
                        };
                        s.joined(join.member, join.request, result);
                    }
                    SessionEvent::Command(c) if c.packet_id != 0 => {
                        s.command_done(c.packet_id, Ok(()))
                    }
                    _ => {}
                }
            }
            drain(&mut s);
            if !progressed || s.is_closed() {
                break;
            }
        }
        if s.is_closed() {
            break;
        }
        now += Duration::from_millis(u64::from(chunking));
        s.handle_timeout(now);
        assert!(
            buf.len() <= 4096 + 8,
            "the session left more than one packet unconsumed"
        );
    }
    let _ = s.teardown();
}

fn drain(s: &mut Session) {
    let out = s.out();
    let n = out.len();
    out.consume(n);
}

/// Built once: parsing the TOML on every input would make the session target ten times slower.
fn registry() -> Arc<Current> {
    static REGISTRY: std::sync::OnceLock<Arc<Current>> = std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(|| Arc::new(build_registry().into()))
        .clone()
}

fn build_registry() -> Registry {
    const APPS: &str = r#"
[[app]]
name = "demo"
members = { anonymous = "manager" }
devices = [ { name = "device1" }, { name = "off", enabled = false } ]
"#;
    match Config::from_toml_str(APPS, "fuzz", Vec::new()) {
        Ok(c) => Registry::from_config(&c),
        Err(e) => panic!("fuzz registry: {e}"),
    }
}

/// The WebSocket upgrade and framing, over an in-memory stream that returns `WouldBlock` when
/// the input runs out (as a non-blocking socket does).
pub fn websocket(data: &[u8]) {
    let mut ws = WsStream::new(
        Pipe {
            input: data,
            output: Vec::new(),
        },
        "/mqtt",
        4096,
    );
    let mut buf = [0u8; 512];
    for _ in 0..64 {
        match ws.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {
                let _ = ws.write(&buf[..4]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
    }
    let _ = ws.flush();
}

struct Pipe<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.input.read(buf)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Bounded like a socket buffer, so a writer that ignores WouldBlock is caught.
        if self.output.len() > 1 << 20 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Kafka's encoding of record headers (record format v2: zigzag varints), as the broker sends
/// them; what [`codec::WireHeaders`] reads.
pub fn wire_headers<'h>(
    headers: impl ExactSizeIterator<Item = (&'h [u8], Option<&'h [u8]>)>,
) -> Vec<u8> {
    fn varint(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let mut out = Vec::new();
    varint(headers.len() as i64, &mut out);
    for (k, v) in headers {
        varint(k.len() as i64, &mut out);
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                varint(v.len() as i64, &mut out);
                out.extend_from_slice(v);
            }
            None => varint(-1, &mut out),
        }
    }
    out
}

/// The Kafka record decoder (CloudEvents Kafka binding, binary and structured mode). Input
/// layout: a header count byte, then per header a key and a value, each a length byte and its
/// bytes (value length 255 = no value), then the payload. The headers are also read as Kafka's
/// header bytes, and the whole input as such bytes.
pub fn kafka_record(data: &[u8]) {
    let mut rest = data;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let Some(&[count]) = take(1) else { return };
    let mut headers: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    for _ in 0..count {
        let Some(&[klen]) = take(1) else { return };
        let Some(key) = take(usize::from(klen)) else {
            return;
        };
        let Some(&[vlen]) = take(1) else { return };
        let value = if vlen == 255 {
            None
        } else {
            let Some(v) = take(usize::from(vlen)) else {
                return;
            };
            Some(v.to_vec())
        };
        headers.push((String::from_utf8_lossy(key).into_owned(), value));
    }
    let payload = rest;
    // The same headers as Kafka stores them must read the same way; arbitrary bytes as header
    // bytes must not panic.
    let _ = codec::read_wire_headers(data);
    let wire = wire_headers(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_deref())));
    let from_wire = codec::read_wire_headers(&wire);
    let attributes = codec::read_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
    assert_eq!(
        format!("{from_wire:?}"),
        format!("{attributes:?}"),
        "header bytes and header list read differently"
    );
    let Ok(attributes) = attributes else {
        return;
    };
    let event = if attributes.is_structured() {
        Event::from_structured_json(&mut payload.to_vec()).ok()
    } else {
        attributes
            .into_event(bytes::Bytes::copy_from_slice(payload))
            .ok()
    };
    // A decoded event must encode in both MQTT content modes.
    if let Some(event) = event {
        let mut out = Vec::new();
        event.write_structured(&mut out);
        let _: Vec<_> = event.binary_attributes().collect();
    }
}

/// The embedded store's recovery: arbitrary segment and index contents, or a log written and
/// then damaged; opening never panics and never returns a record not written intact.
pub fn log_recovery(data: &[u8]) {
    crate::backend::embedded::disk::fuzz::log_recovery(data)
}

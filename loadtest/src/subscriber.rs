//! A minimal, fast MQTT subscriber on a blocking socket: CONNECT, SUBSCRIBE, then count
//! PUBLISHes (acknowledging QoS 1 in batches) and sample their latency from the `"t"` field.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use mqtt_integration::protocol::{
    self, Connect, Packet, Properties, QoS, Subscribe, SubscribeFilter, SubscribeOptions, Version,
};

pub struct SubscriberOptions {
    pub addr: String,
    pub client_id: String,
    pub filter: String,
    pub qos: u8,
    pub v5: bool,
    pub binary: bool,
    /// Check every event's `"seq"` against `lo..lo + n` (`(lo, n)`): gaps, duplicates and
    /// events from outside the range are reported.
    pub seqs: Option<(u64, u64)>,
}

pub struct Subscriber {
    stream: TcpStream,
    version: Version,
    seqs: Option<SeqTracker>,
}

pub struct Report {
    pub count: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub latencies_us: Vec<u64>,
    /// With `SubscriberOptions::seqs`: what the `"seq"` fields showed.
    pub seqs: Option<SeqReport>,
}

/// Sequence numbers seen by one subscriber.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqReport {
    /// Sequence numbers of the range never delivered.
    pub missing: u64,
    /// Deliveries beyond the first of a sequence number.
    pub duplicates: u64,
    /// Events without a `"seq"` or with one outside the range.
    pub foreign: u64,
}

/// Counts deliveries per sequence number (saturating at 255).
pub struct SeqTracker {
    lo: u64,
    seen: Vec<u8>,
    duplicates: u64,
    foreign: u64,
}

impl SeqTracker {
    pub fn new(lo: u64, n: u64) -> SeqTracker {
        SeqTracker {
            lo,
            seen: vec![0; n as usize],
            duplicates: 0,
            foreign: 0,
        }
    }

    pub fn record(&mut self, seq: Option<u64>) {
        match seq
            .and_then(|s| s.checked_sub(self.lo))
            .and_then(|i| self.seen.get_mut(i as usize))
        {
            Some(c) => {
                if *c > 0 {
                    self.duplicates += 1;
                }
                *c = c.saturating_add(1);
            }
            None => self.foreign += 1,
        }
    }

    pub fn report(&self) -> SeqReport {
        SeqReport {
            missing: self.seen.iter().filter(|c| **c == 0).count() as u64,
            duplicates: self.duplicates,
            foreign: self.foreign,
        }
    }
}

/// One latency sample every this many events per subscriber.
const SAMPLE_EVERY: u64 = 97;

impl Subscriber {
    pub fn connect(o: SubscriberOptions) -> std::io::Result<Subscriber> {
        let version = if o.v5 { Version::V5 } else { Version::V311 };
        let mut stream = TcpStream::connect(&o.addr)?;
        stream.set_nodelay(true)?;
        let mut out = BytesMut::new();
        let connect_props = Properties {
            receive_maximum: Some(1024),
            ..Properties::default()
        };
        Packet::Connect(Connect {
            version,
            clean_start: true,
            keep_alive: 0,
            client_id: &o.client_id,
            will: None,
            username: None,
            password: None,
            properties: connect_props,
        })
        .encode(version, &mut out)
        .map_err(std::io::Error::other)?;
        let user_properties = if o.binary {
            vec![("content-mode", "binary")]
        } else {
            vec![]
        };
        let qos = if o.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties {
                user_properties,
                ..Properties::default()
            },
            filters: vec![SubscribeFilter {
                filter: &o.filter,
                options: SubscribeOptions {
                    qos,
                    ..SubscribeOptions::default()
                },
            }],
        })
        .encode(version, &mut out)
        .map_err(std::io::Error::other)?;
        stream.write_all(&out)?;
        // Wait for CONNACK and SUBACK before the producer starts: a new group starts at the end.
        let mut buf = BytesMut::with_capacity(1024);
        let mut seen = 0;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        while seen < 2 {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other(
                    "connection closed during CONNECT/SUBSCRIBE",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Some(len) =
                protocol::frame_len(&buf, u32::MAX).map_err(std::io::Error::other)?
            {
                match protocol::decode(&buf[..len], Some(version)).map_err(std::io::Error::other)? {
                    Packet::ConnAck(c) if c.code.0 != 0 => {
                        return Err(std::io::Error::other(format!(
                            "CONNACK refused: {:?}",
                            c.code
                        )))
                    }
                    Packet::SubAck(s) if s.codes.iter().any(|c| c.0 >= 0x80) => {
                        return Err(std::io::Error::other(format!(
                            "SUBACK refused: {:?}",
                            s.codes
                        )))
                    }
                    _ => seen += 1,
                }
                let _ = buf.split_to(len);
            }
        }
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let seqs = o.seqs.map(|(lo, n)| SeqTracker::new(lo, n));
        Ok(Subscriber {
            stream,
            version,
            seqs,
        })
    }

    pub fn spawn(self, received: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> JoinHandle<Report> {
        std::thread::spawn(move || self.run(&received, &stop))
    }

    fn run(mut self, received: &AtomicU64, stop: &AtomicBool) -> Report {
        let mut report = Report {
            count: 0,
            first: None,
            last: None,
            latencies_us: Vec::new(),
            seqs: None,
        };
        let mut buf = BytesMut::with_capacity(256 * 1024);
        let mut acks = BytesMut::new();
        let mut chunk = vec![0u8; 128 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => break,
            };
            buf.extend_from_slice(&chunk[..n]);
            let now = Instant::now();
            let mut counted = 0;
            while let Ok(Some(len)) = protocol::frame_len(&buf, u32::MAX) {
                if let Ok(Packet::Publish(p)) = protocol::decode(&buf[..len], Some(self.version)) {
                    report.count += 1;
                    counted += 1;
                    if let Some(t) = self.seqs.as_mut() {
                        t.record(field(p.payload, b"\"seq\":"));
                    }
                    if report.count % SAMPLE_EVERY == 1 {
                        if let Some(t) = sent_at(p.payload) {
                            let now_us = SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .map(|d| d.as_micros() as u64)
                                .unwrap_or(0);
                            report.latencies_us.push(now_us.saturating_sub(t));
                        }
                    }
                    if let Some(id) = p.packet_id {
                        let _ = Packet::PubAck(protocol::Ack {
                            packet_id: id,
                            code: protocol::ReasonCode::SUCCESS,
                            properties: Properties::default(),
                        })
                        .encode(self.version, &mut acks);
                    }
                }
                let _ = buf.split_to(len);
            }
            if counted > 0 {
                report.first.get_or_insert(now);
                report.last = Some(now);
                received.fetch_add(counted, Ordering::Relaxed);
            }
            if !acks.is_empty() {
                if self.stream.write_all(&acks).is_err() {
                    break;
                }
                acks.clear();
            }
        }
        report.seqs = self.seqs.as_ref().map(SeqTracker::report);
        report
    }
}

/// The `"t":<micros>` send time in an event's data (structured or binary).
pub fn sent_at(payload: &[u8]) -> Option<u64> {
    field(payload, b"\"t\":")
}

/// The unsigned integer after the first `name` (`"seq":`, say) in `payload`.
pub fn field(payload: &[u8], name: &[u8]) -> Option<u64> {
    let pos = payload.windows(name.len()).position(|w| w == name)? + name.len();
    let digits = payload[pos..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[pos..pos + digits])
        .ok()?
        .parse()
        .ok()
}

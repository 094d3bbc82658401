//! The client event loop: one mio `Poll` per rig thread driving many connections (subscribers,
//! MQTT publishers, idle connections) — connect, CONNECT/SUBSCRIBE, read and count PUBLISHes,
//! acknowledge QoS 1, publish at a rate, answer keep-alive rounds. Nothing is allocated per
//! message: read buffers grow to their working size once, PUBLISHes are parsed in place and
//! counted into preallocated sets and histograms.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use mqtt_integration::protocol::{self, Packet, Version};
use slab::Slab;

use crate::net::{self, Transport, WsEvent};
use crate::payload::{self, Template};
use crate::stats::{histogram, SeqSet, Shared};
use crate::wire;

/// A connection to open.
pub struct Spec {
    pub index: usize,
    pub client_id: String,
    pub role: Role,
}

pub enum Role {
    /// Subscriber `sub` (global index), reading application `app` through `filter`.
    Sub {
        sub: usize,
        app: usize,
        filter: String,
    },
    /// MQTT publisher for producer `producer` (against a plain broker).
    Pub { producer: usize, topic: String },
    /// Connects and answers keep-alive rounds.
    Idle,
}

/// Settings shared by all connections.
pub struct Settings {
    pub transport: Transport,
    pub v5: bool,
    pub qos: u8,
    pub binary: bool,
    pub keep_alive: u16,
    /// QoS 1 window: the subscribers' Receive Maximum, the publishers' in-flight limit.
    pub inflight: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub payload: usize,
    /// The data is binary and arrives base64-encoded in structured events (`--data binary`).
    pub data_base64: bool,
    /// Per publisher, events/s; 0 = as fast as the server takes them.
    pub pub_rate: f64,
    pub events_per_producer: Option<u64>,
    pub max_lead: u64,
    /// Connections opened per second by each thread (0: as fast as possible).
    pub connect_rate: f64,
    /// Connections still connecting at once, per thread.
    pub connect_window: usize,
    pub connect_timeout: Duration,
    pub pacing: Pacing,
}

/// Who must keep up with producer p: per producer, its application's groups, each a list of
/// subscriber indexes (one member for a non-shared subscription).
pub struct Pacing {
    pub groups_of_producer: Vec<Vec<Vec<usize>>>,
    pub app_of_producer: Vec<usize>,
}

impl Pacing {
    /// How far the slowest group of producer p is behind `seq` (0 without subscribers).
    pub fn lag(&self, shared: &Shared, p: usize, seq: u64) -> u64 {
        let slowest = self.groups_of_producer[p]
            .iter()
            .map(|members| {
                members
                    .iter()
                    .map(|&m| shared.seen_end[m * shared.producers + p].load(Ordering::Relaxed))
                    .max()
                    .unwrap_or(0)
            })
            .min();
        slowest.map_or(0, |s| seq.saturating_sub(s))
    }
}

/// Run control set by the main thread.
pub struct Control {
    pub stop: AtomicBool,
    /// Publishers may publish (set once all subscribers are subscribed).
    pub go: AtomicBool,
    /// µs after `base`: end of warm-up, end of producing.
    pub base: Instant,
    /// µs after `base`: start of publishing.
    pub go_us: AtomicU64,
    pub warmup_end_us: AtomicU64,
    pub produce_end_us: AtomicU64,
    /// Incremented by the main thread: every ready connection sends one PINGREQ.
    pub ping_round: AtomicU64,
}

impl Control {
    pub fn new() -> Control {
        Control {
            stop: AtomicBool::new(false),
            go: AtomicBool::new(false),
            base: Instant::now(),
            go_us: AtomicU64::new(0),
            warmup_end_us: AtomicU64::new(u64::MAX),
            produce_end_us: AtomicU64::new(u64::MAX),
            ping_round: AtomicU64::new(0),
        }
    }

    /// Publishing starts at `go`; the measurement window is `warmup_end..produce_end`.
    pub fn set_phases(&self, go: Instant, warmup_end: Instant, produce_end: Instant) {
        let us = |t: Instant| t.duration_since(self.base).as_micros() as u64;
        self.go_us.store(us(go), Ordering::SeqCst);
        self.warmup_end_us.store(us(warmup_end), Ordering::SeqCst);
        self.produce_end_us.store(us(produce_end), Ordering::SeqCst);
        self.go.store(true, Ordering::SeqCst);
    }
}

/// One subscriber's figures.
pub struct SubResult {
    pub sub: usize,
    pub app: usize,
    /// Deliveries received inside the measurement window / in all.
    pub window_count: u64,
    pub window_bytes: u64,
    pub total: u64,
    /// Per producer.
    pub seqs: Vec<SeqSet>,
    /// Deliveries without a marker, or from a producer of another application.
    pub foreign: u64,
}

/// A thread's figures.
pub struct ThreadResult {
    pub subs: Vec<SubResult>,
    /// Send → receive latency of events sent after warm-up, µs.
    pub latency: Histogram<u64>,
    /// Connect start → CONNACK, µs.
    pub connect: Histogram<u64>,
    pub first_connect_start: Option<Instant>,
    pub last_connack: Option<Instant>,
    /// When the last PUBLISH arrived.
    pub last_delivery: Option<Instant>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Connecting,
    WsHandshake,
    WaitConnAck,
    WaitSubAck,
    Ready,
}

struct SubState {
    result: SubResult,
}

struct PubState {
    producer: usize,
    topic: String,
    seq: u64,
    inflight: u32,
    next_id: u16,
}

struct Conn {
    sock: mio::net::TcpStream,
    index: usize,
    state: State,
    started: Instant,
    hello: Vec<u8>,
    tls: Option<Box<rustls::ClientConnection>>,
    /// WebSocket: raw bytes not yet deframed.
    ws_raw: Option<Vec<u8>>,
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// MQTT bytes queued this turn, framed and handed to the transport by `commit`.
    out: Vec<u8>,
    ping_outstanding: bool,
    sub: Option<SubState>,
    publ: Option<PubState>,
}

const READ_CHUNK: usize = 64 * 1024;
/// Bytes of PUBLISHes a max-rate publisher queues per turn.
const PUB_BATCH_BYTES: usize = 64 * 1024;

/// Runs one rig thread until `control.stop`.
pub fn run(
    specs: Vec<Spec>,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    control: Arc<Control>,
) -> ThreadResult {
    let mut d = Driver {
        poll: match Poll::new() {
            Ok(p) => p,
            Err(e) => {
                shared.error(format!("cannot create a poll instance: {e}"));
                return ThreadResult::empty();
            }
        },
        conns: Slab::with_capacity(specs.len()),
        settings,
        shared,
        control,
        template: Template::new(1),
        scratch: vec![0u8; READ_CHUNK],
        latency: histogram(),
        connect: histogram(),
        first_connect_start: None,
        last_connack: None,
        last_delivery: None,
        done: Vec::new(),
        ping_round: 0,
    };
    d.template = Template::new(d.settings.payload);
    d.run(specs);
    let mut subs: Vec<SubResult> = d
        .conns
        .drain()
        .filter_map(|c| c.sub.map(|s| s.result))
        .collect();
    subs.append(&mut d.done);
    ThreadResult {
        subs,
        latency: d.latency,
        connect: d.connect,
        first_connect_start: d.first_connect_start,
        last_connack: d.last_connack,
        last_delivery: d.last_delivery,
    }
}

impl ThreadResult {
    fn empty() -> ThreadResult {
        ThreadResult {
            subs: Vec::new(),
            latency: histogram(),
            connect: histogram(),
            first_connect_start: None,
            last_connack: None,
            last_delivery: None,
        }
    }
}

struct Driver {
    poll: Poll,
    conns: Slab<Conn>,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    control: Arc<Control>,
    template: Template,
    scratch: Vec<u8>,
    latency: Histogram<u64>,
    connect: Histogram<u64>,
    first_connect_start: Option<Instant>,
    last_connack: Option<Instant>,
    last_delivery: Option<Instant>,
    /// Results of subscribers whose connection ended.
    done: Vec<SubResult>,
    ping_round: u64,
}

impl Driver {
    fn run(&mut self, specs: Vec<Spec>) {
        let mut events = Events::with_capacity(1024);
        let mut pending = specs.into_iter().peekable();
        let mut opened = 0u64;
        let mut connecting = 0usize;
        let started = Instant::now();
        let mut last_sweep = started;
        let mut busy = false;
        while !self.control.stop.load(Ordering::Relaxed) {
            // Open more connections within the rate and the window.
            if pending.peek().is_some() {
                let allowed = if self.settings.connect_rate > 0.0 {
                    (started.elapsed().as_secs_f64() * self.settings.connect_rate) as u64 + 1
                } else {
                    u64::MAX
                };
                while opened < allowed && connecting < self.settings.connect_window {
                    let Some(spec) = pending.next() else { break };
                    opened += 1;
                    if self.open(spec) {
                        connecting += 1;
                    }
                }
            }
            let timeout = if busy {
                Duration::ZERO
            } else if pending.peek().is_some() || self.settings.pub_rate > 0.0 {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(20)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.shared.error(format!("poll failed: {e}"));
                    return;
                }
            }
            let now = Instant::now();
            let now_us = payload::now_us();
            for ev in events.iter() {
                let key = ev.token().0;
                let Some(c) = self.conns.get(key) else {
                    continue;
                };
                let was_connecting = c.state == State::Connecting;
                let result = self.service(key, now, now_us);
                if was_connecting && self.conns.get(key).map(|c| c.state) != Some(State::Connecting)
                {
                    connecting = connecting.saturating_sub(1);
                }
                if let Err(msg) = result {
                    self.close(key, msg);
                }
            }
            // Connect timeouts (and the count of connections still connecting).
            if now.duration_since(last_sweep) > Duration::from_millis(200) {
                last_sweep = now;
                let timeout = self.settings.connect_timeout;
                let expired: Vec<usize> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| {
                        c.state != State::Ready && now.duration_since(c.started) > timeout
                    })
                    .map(|(k, _)| k)
                    .collect();
                for key in expired {
                    self.close(key, format!("no CONNACK/SUBACK within {timeout:?}"));
                }
                connecting = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.state == State::Connecting)
                    .count();
            }
            let round = self.control.ping_round.load(Ordering::Relaxed);
            if round != self.ping_round {
                self.ping_round = round;
                self.ping_all();
            }
            busy = self.publish_turn(now);
        }
    }

    fn open(&mut self, spec: Spec) -> bool {
        let s = &self.settings;
        let sock = match net::open(&s.transport, spec.index) {
            Ok(sock) => sock,
            Err(e) => {
                self.fail_connect(format!("connect to {} failed: {e}", s.transport.target), &e);
                return false;
            }
        };
        let (subscribe, sub, publ) = match spec.role {
            Role::Sub { sub, app, filter } => (
                Some(filter),
                Some(SubState {
                    result: SubResult {
                        sub,
                        app,
                        window_count: 0,
                        window_bytes: 0,
                        total: 0,
                        seqs: vec![SeqSet::default(); self.shared.producers],
                        foreign: 0,
                    },
                }),
                None,
            ),
            Role::Pub { producer, topic } => (
                None,
                None,
                Some(PubState {
                    producer,
                    topic,
                    seq: 0,
                    inflight: 0,
                    next_id: 1,
                }),
            ),
            Role::Idle => (None, None, None),
        };
        let hello = wire::hello(
            &wire::Hello {
                v5: s.v5,
                client_id: &spec.client_id,
                keep_alive: s.keep_alive,
                receive_maximum: s.inflight,
                username: s.username.as_deref(),
                password: s.password.as_deref(),
            },
            subscribe.as_deref().map(|f| (f, s.qos, s.binary)),
        );
        let now = Instant::now();
        self.first_connect_start.get_or_insert(now);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let mut conn = Conn {
            sock,
            index: spec.index,
            state: State::Connecting,
            started: now,
            hello,
            tls: None,
            ws_raw: None,
            rbuf: Vec::new(),
            rpos: 0,
            rlen: 0,
            wbuf: Vec::new(),
            wpos: 0,
            out: Vec::new(),
            ping_outstanding: false,
            sub,
            publ,
        };
        if let Err(e) = self.poll.registry().register(
            &mut conn.sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.fail_connect(format!("cannot register a socket: {e}"), &e);
            return false;
        }
        entry.insert(conn);
        true
    }

    fn fail_connect(&self, msg: String, e: &io::Error) {
        self.shared.connect_failed.fetch_add(1, Ordering::Relaxed);
        let hint = if e.raw_os_error() == Some(libc::EMFILE) {
            " (open-files limit reached: lower the connection count or raise `ulimit -n`)"
        } else if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
            " (out of local ports: use more --source-ips)"
        } else {
            ""
        };
        self.shared.error(format!("{msg}{hint}"));
    }

    fn close(&mut self, key: usize, msg: String) {
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.sock);
        if c.state == State::Ready {
            if !self.control.stop.load(Ordering::Relaxed) {
                self.shared.closed.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .error(format!("connection {} closed: {msg}", c.index));
            }
        } else {
            self.shared.connect_failed.fetch_add(1, Ordering::Relaxed);
            self.shared
                .error(format!("connection {} failed: {msg}", c.index));
        }
        if let Some(s) = c.sub.take() {
            self.done.push(s.result);
        }
    }

    /// Handles readiness of connection `key`: finish connecting, read, process, write.
    fn service(&mut self, key: usize, now: Instant, now_us: u64) -> Result<(), String> {
        let settings = self.settings.clone();
        let c = &mut self.conns[key];
        if c.state == State::Connecting {
            if let Ok(Some(e)) | Err(e) = c.sock.take_error() {
                return Err(format!("connect to {}: {e}", settings.transport.target));
            }
            match c.sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect to {}: {e}", settings.transport.target)),
            }
            if let Some((config, name)) = &settings.transport.tls {
                let tls = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| format!("TLS: {e}"))?;
                c.tls = Some(Box::new(tls));
            }
            if let Some((path, host)) = &settings.transport.ws {
                let req = net::ws_request(path, host, c.index);
                c.put_transport(&req)?;
                c.ws_raw = Some(Vec::new());
                c.state = State::WsHandshake;
            } else {
                let hello = std::mem::take(&mut c.hello);
                c.out.extend_from_slice(&hello);
                c.commit()?;
                c.state = State::WaitConnAck;
            }
        }
        let eof = c.read_all(&mut self.scratch)?;
        if c.state == State::WsHandshake {
            c.ws_handshake()?;
        }
        if c.ws_raw.is_some() && c.state != State::WsHandshake {
            let raw = c.ws_raw.as_mut().expect("checked");
            let mut plain = std::mem::take(&mut c.rbuf);
            plain.truncate(c.rlen);
            let ev = net::ws_deframe(raw, &mut plain)?;
            c.rlen = plain.len();
            c.rbuf = plain;
            match ev {
                WsEvent::More => {}
                WsEvent::Closed => return Err("the server closed the WebSocket".into()),
                WsEvent::Ping(p) => c.put_transport(&net::ws_pong(&p))?,
            }
        }
        self.process(key, now, now_us)?;
        let c = &mut self.conns[key];
        c.commit()?;
        c.flush().map_err(|e| format!("write: {e}"))?;
        if eof {
            return Err("the server closed the connection".into());
        }
        Ok(())
    }

    /// Handles the complete packets in connection `key`'s read buffer.
    fn process(&mut self, key: usize, now: Instant, now_us: u64) -> Result<(), String> {
        let v5 = self.settings.v5;
        let warmup_end = self.control.warmup_end_us.load(Ordering::Relaxed);
        let produce_end = self.control.produce_end_us.load(Ordering::Relaxed);
        let rel_us = now.duration_since(self.control.base).as_micros() as u64;
        let in_window = rel_us >= warmup_end && rel_us <= produce_end;
        let base_us = now_us.saturating_sub(rel_us);
        let mut interval: Option<MutexGuard<'_, Histogram<u64>>> = None;
        let shared = &*self.shared;
        let c = &mut self.conns[key];
        let mut delivered = 0u64;
        let mut delivered_bytes = 0u64;
        loop {
            let buf = &c.rbuf[c.rpos..c.rlen];
            let len = match protocol::frame_len(buf, u32::MAX) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return Err(format!("bad packet from the server: {e}")),
            };
            let frame = &buf[..len];
            match frame[0] >> 4 {
                3 => {
                    let Some(p) = wire::parse_publish(frame, v5) else {
                        return Err("malformed PUBLISH".into());
                    };
                    let Some(s) = c.sub.as_mut() else {
                        return Err("PUBLISH on a connection that did not subscribe".into());
                    };
                    let r = &mut s.result;
                    r.total += 1;
                    delivered += 1;
                    if in_window {
                        r.window_count += 1;
                        r.window_bytes += p.payload.len() as u64;
                        delivered_bytes += p.payload.len() as u64;
                    }
                    let marker = if self.settings.data_base64 {
                        payload::find_base64(p.payload, self.settings.payload)
                    } else {
                        payload::find(p.payload)
                    };
                    match marker {
                        Some(m)
                            if (m.producer as usize) < r.seqs.len()
                                && self.settings.pacing.app_of_producer[m.producer as usize]
                                    == r.app =>
                        {
                            r.seqs[m.producer as usize].record(m.seq);
                            if m.sent_us >= base_us + warmup_end {
                                let lat = now_us.saturating_sub(m.sent_us).max(1);
                                let _ = self.latency.record(lat);
                                let iv = interval.get_or_insert_with(|| {
                                    shared.interval.lock().unwrap_or_else(|e| e.into_inner())
                                });
                                let _ = iv.record(lat);
                            }
                        }
                        _ => r.foreign += 1,
                    }
                    if p.qos > 0 {
                        wire::put_puback(&mut c.out, p.packet_id);
                    }
                }
                2 => {
                    let version = if v5 { Version::V5 } else { Version::V311 };
                    match protocol::decode(frame, Some(version)) {
                        Ok(Packet::ConnAck(a)) if a.code.0 == 0 => {}
                        Ok(Packet::ConnAck(a)) => {
                            return Err(format!(
                                "CONNACK refused: code 0x{:02x}{}",
                                a.code.0,
                                a.properties
                                    .reason_string
                                    .map(|r| format!(" ({r})"))
                                    .unwrap_or_default()
                            ))
                        }
                        _ => return Err("malformed CONNACK".into()),
                    }
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                    let _ = self
                        .connect
                        .record(now.duration_since(c.started).as_micros().max(1) as u64);
                    self.last_connack = Some(now);
                    c.state = if c.sub.is_some() {
                        State::WaitSubAck
                    } else {
                        State::Ready
                    };
                }
                9 => {
                    let version = if v5 { Version::V5 } else { Version::V311 };
                    match protocol::decode(frame, Some(version)) {
                        Ok(Packet::SubAck(a)) if a.codes.iter().all(|c| c.0 < 0x80) => {}
                        Ok(Packet::SubAck(a)) => {
                            return Err(format!(
                                "SUBACK refused: {:02x?}",
                                a.codes.iter().map(|c| c.0).collect::<Vec<_>>()
                            ))
                        }
                        _ => return Err("malformed SUBACK".into()),
                    }
                    shared.subscribed.fetch_add(1, Ordering::Relaxed);
                    c.state = State::Ready;
                }
                4 => {
                    if let Some(p) = c.publ.as_mut() {
                        p.inflight = p.inflight.saturating_sub(1);
                    }
                }
                13 => {
                    c.ping_outstanding = false;
                    shared.pings_answered.fetch_add(1, Ordering::Relaxed);
                }
                14 => {
                    let reason = frame.get(2).copied().unwrap_or(0);
                    return Err(format!(
                        "the server sent DISCONNECT (reason 0x{reason:02x})"
                    ));
                }
                t => return Err(format!("unexpected packet type {t} from the server")),
            }
            c.rpos += len;
        }
        if c.rpos == c.rlen {
            c.rpos = 0;
            c.rlen = 0;
        }
        if delivered > 0 {
            self.last_delivery = Some(now);
            shared.delivered.fetch_add(delivered, Ordering::Relaxed);
            shared
                .delivered_bytes
                .fetch_add(delivered_bytes, Ordering::Relaxed);
            if let Some(s) = c.sub.as_ref() {
                let base = s.result.sub * shared.producers;
                for (p, set) in s.result.seqs.iter().enumerate() {
                    shared.seen_end[base + p].store(set.end, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn ping_all(&mut self) {
        let mut sent = 0;
        let mut failed = Vec::new();
        for (key, c) in self.conns.iter_mut() {
            if c.state != State::Ready || c.ping_outstanding {
                continue;
            }
            c.out.extend_from_slice(&wire::PINGREQ);
            c.ping_outstanding = true;
            sent += 1;
            if let Err(e) = c
                .commit()
                .and_then(|_| c.flush().map_err(|e| e.to_string()))
            {
                failed.push((key, e));
            }
        }
        self.shared.pings_sent.fetch_add(sent, Ordering::Relaxed);
        for (key, e) in failed {
            self.close(key, format!("PINGREQ: {e}"));
        }
    }

    /// Lets every ready publisher publish what is due; true if one could do more right away.
    fn publish_turn(&mut self, now: Instant) -> bool {
        if !self.control.go.load(Ordering::Relaxed) {
            return false;
        }
        let s = self.settings.clone();
        let rel_us = now.duration_since(self.control.base).as_micros() as u64;
        if rel_us > self.control.produce_end_us.load(Ordering::Relaxed) {
            return false;
        }
        let go_us = self.control.go_us.load(Ordering::Relaxed);
        let now_us = payload::now_us();
        let mut busy = false;
        let mut failed = Vec::new();
        let msg_bytes = self.template.len() + 32;
        for (key, c) in self.conns.iter_mut() {
            let Some(p) = c.publ.as_mut() else { continue };
            if c.state != State::Ready {
                continue;
            }
            // Paced from the start of publishing (the warm-up is part of it).
            let mut n = if s.pub_rate > 0.0 {
                let since_go = rel_us.saturating_sub(go_us) as f64 / 1e6;
                ((since_go * s.pub_rate) as u64).saturating_sub(p.seq)
            } else if c.wpos < c.wbuf.len() || c.tls.as_ref().is_some_and(|t| t.wants_write()) {
                0
            } else {
                (PUB_BATCH_BYTES / msg_bytes).max(1) as u64
            };
            if let Some(cap) = s.events_per_producer {
                n = n.min(cap.saturating_sub(p.seq));
            }
            if s.qos > 0 {
                n = n.min(u64::from(s.inflight).saturating_sub(u64::from(p.inflight)));
            }
            if n > 0 && s.pacing.lag(&self.shared, p.producer, p.seq) > s.max_lead {
                n = 0;
            }
            // Never queue more than a few batches behind a slow socket.
            n = n.min(4 * (PUB_BATCH_BYTES / msg_bytes).max(1) as u64);
            for _ in 0..n {
                let payload = self.template.stamp(p.producer as u32, p.seq, now_us);
                let id = if s.qos > 0 {
                    let id = p.next_id;
                    p.next_id = p.next_id.checked_add(1).unwrap_or(1);
                    p.inflight += 1;
                    id
                } else {
                    0
                };
                wire::put_publish(&mut c.out, s.v5, s.qos, id, &p.topic, payload);
                p.seq += 1;
            }
            if n > 0 {
                self.shared.produced[p.producer].store(p.seq, Ordering::Relaxed);
                if s.pub_rate == 0.0 && s.qos == 0 {
                    busy = true;
                }
                if let Err(e) = c
                    .commit()
                    .and_then(|_| c.flush().map_err(|e| e.to_string()))
                {
                    failed.push((key, e));
                }
            }
        }
        for (key, e) in failed {
            self.close(key, format!("publish: {e}"));
        }
        busy
    }
}

impl Conn {
    /// Hands bytes to the transport below MQTT (TLS or TCP), unframed.
    fn put_transport(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.tls.as_mut() {
            Some(tls) => tls
                .writer()
                .write_all(bytes)
                .map_err(|e| format!("TLS write: {e}")),
            None => {
                if self.wpos == self.wbuf.len() {
                    self.wbuf.clear();
                    self.wpos = 0;
                }
                self.wbuf.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Moves the MQTT bytes queued this turn to the transport (in one WebSocket frame if any).
    fn commit(&mut self) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let r = if self.ws_raw.is_some() {
            let mut hdr = Vec::with_capacity(14);
            net::ws_frame_header(&mut hdr, out.len());
            self.put_transport(&hdr)
                .and_then(|_| self.put_transport(&out))
        } else if self.tls.is_none() && self.wpos == self.wbuf.len() {
            // Plain TCP with nothing pending: swap buffers instead of copying.
            self.wbuf.clear();
            self.wpos = 0;
            let mut out = out;
            std::mem::swap(&mut self.wbuf, &mut out);
            self.out = out;
            self.out.clear();
            return Ok(());
        } else {
            self.put_transport(&out)
        };
        self.out = out;
        self.out.clear();
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                match tls.write_tls(&mut self.sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        while self.wpos < self.wbuf.len() {
            match net::write_some(&mut self.sock, &self.wbuf[self.wpos..]) {
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(())
    }

    /// Makes room for `READ_CHUNK` more bytes at `rlen`.
    fn reserve_read(&mut self) {
        if self.rbuf.len() - self.rlen < READ_CHUNK / 4 {
            if self.rpos > 0 {
                self.rbuf.copy_within(self.rpos..self.rlen, 0);
                self.rlen -= self.rpos;
                self.rpos = 0;
            }
            if self.rbuf.len() - self.rlen < READ_CHUNK / 4 {
                let want = (self.rbuf.len() * 2).max(READ_CHUNK);
                self.rbuf.resize(want, 0);
            }
        }
    }

    /// Reads everything available; true at end of stream. Plain TCP reads straight into the
    /// MQTT buffer; TLS and WebSocket go through `scratch`.
    fn read_all(&mut self, scratch: &mut [u8]) -> Result<bool, String> {
        loop {
            if let Some(tls) = self.tls.as_mut() {
                match tls.read_tls(&mut self.sock) {
                    Ok(0) => return Ok(true),
                    Ok(_) => {
                        tls.process_new_packets().map_err(|e| format!("TLS: {e}"))?;
                        loop {
                            let tls = self.tls.as_mut().expect("TLS connection");
                            match io::Read::read(&mut tls.reader(), scratch) {
                                Ok(0) => return Ok(true),
                                Ok(n) => self.accept_plain(n, scratch),
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                Err(e) => return Err(format!("TLS read: {e}")),
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            } else if self.ws_raw.is_some() {
                match net::read_some(&mut self.sock, scratch) {
                    Ok(0) => return Ok(true),
                    Ok(n) => self.accept_plain(n, scratch),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(format!("read: {e}")),
                }
            } else {
                self.reserve_read();
                let rlen = self.rlen;
                match net::read_some(&mut self.sock, &mut self.rbuf[rlen..]) {
                    Ok(0) => return Ok(true),
                    Ok(n) => self.rlen += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
    }

    /// Bytes that came out of TLS or off a WebSocket connection's socket.
    fn accept_plain(&mut self, n: usize, scratch: &[u8]) {
        if let Some(raw) = self.ws_raw.as_mut() {
            raw.extend_from_slice(&scratch[..n]);
        } else {
            self.reserve_read();
            self.rbuf[self.rlen..self.rlen + n].copy_from_slice(&scratch[..n]);
            self.rlen += n;
        }
    }

    /// Looks for the end of the upgrade response; on `101`, sends CONNECT.
    fn ws_handshake(&mut self) -> Result<(), String> {
        let raw = self.ws_raw.as_mut().expect("WebSocket connection");
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        if !head.starts_with("HTTP/1.1 101") {
            let line = head.lines().next().unwrap_or("");
            return Err(format!("WebSocket upgrade refused: {line}"));
        }
        raw.drain(..end + 4);
        self.state = State::WaitConnAck;
        let hello = std::mem::take(&mut self.hello);
        self.out.extend_from_slice(&hello);
        Ok(())
    }
}

//! `http`: single-event POSTs from many keep-alive connections (issue #15's device side):
//! requests/s answered `2xx`, latency (request written → response read, HdrHistogram), errors by
//! status, and the server's CPU and RSS (per connection, too). Run it against the service's
//! ingest route, and against `loadtest/http-reference` (a minimal hyper server answering `202`
//! to everything) for what an HTTP stack can do on the same box.
//!
//! Closed loop by default (each connection sends its next request when the answer came); with
//! `--rate`, open loop: each connection sends at `rate / connections` per second (late requests
//! are sent at once, so latency counts the queueing).

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};

use crate::net::{self, Transport};
use crate::stats::{histogram, pid_listening_on, ProcSampler};

/// Knobs of the `http` scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// HTTP address of the server.
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: String,
    /// Request path (the service's single-event ingest by default).
    #[arg(long, default_value = "/api/v1/apps/demo/devices/device1/events/load")]
    path: String,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Total requests/s over all connections; as fast as answered when omitted.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of measurement after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of traffic before the measurement starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Bytes of request body (JSON).
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Client event-loop threads (connections are spread over them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Spread connections over source addresses 127.0.0.2 … 127.0.0.(N+1).
    #[arg(long, default_value_t = 8)]
    source_ips: u32,
    /// Label of this run in the report.
    #[arg(long, default_value = "server")]
    label: String,
}

/// What one client thread measured.
#[derive(Default)]
struct Tally {
    ok: u64,
    /// Non-2xx answers by status.
    refused: Vec<(u16, u64)>,
    /// Connections that failed or were closed by the server.
    broken: u64,
    latency: Option<Histogram<u64>>,
}

struct Conn {
    sock: mio::net::TcpStream,
    connected: bool,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
    /// Send times of the requests in flight, oldest first.
    sent: VecDeque<Instant>,
    next_send: Instant,
    dead: bool,
}

pub fn run(args: Args) -> i32 {
    let target: SocketAddr = match args.http.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => crate::exit_with(&format!("--http {}: not an address", args.http)),
    };
    let limit = net::raise_nofile();
    if args.connections as u64 + 64 > limit {
        crate::exit_with(&format!(
            "{} connections need more open files than the limit ({limit}); lower --connections",
            args.connections
        ));
    }
    let server = pid_listening_on(target.port()).map(ProcSampler::new);
    let rss_before = server.as_ref().and_then(ProcSampler::rss_kib);
    let threads = args.threads.max(1);
    let body = body(args.payload);
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        args.path,
        args.http,
        body.len(),
        body
    )
    .into_bytes();
    let start = Instant::now() + Duration::from_millis(500);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let per_conn_interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(0.001)));
    eprintln!(
        "http: {} connections to {target}{} over {threads} thread(s), {}; {:.0} s warm-up, {:.0} s measured",
        args.connections,
        args.path,
        args.rate.map_or("closed loop".to_owned(), |r| format!("{r:.0} requests/s")),
        args.warmup,
        args.duration
    );
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let transport = Transport {
                target,
                tls: None,
                ws: None,
                source_ips: args.source_ips,
            };
            let indexes: Vec<usize> = (t..args.connections).step_by(threads).collect();
            let request = request.clone();
            std::thread::spawn(move || {
                client(
                    &transport,
                    &indexes,
                    &request,
                    per_conn_interval,
                    start,
                    measure_from,
                    end,
                )
            })
        })
        .collect();
    // Server figures: RSS once every connection is open (after the warm-up), CPU over the
    // measured window.
    let mut sampler = server;
    std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
    let rss_connected = sampler.as_ref().and_then(ProcSampler::rss_kib);
    if let Some(s) = sampler.as_mut() {
        s.sample();
    }
    let mut last_progress = Instant::now();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprint!(
                "\r  measuring: {:.0} s left ",
                end.saturating_duration_since(Instant::now()).as_secs_f64()
            );
        }
    }
    eprintln!();
    let cpu = sampler
        .as_mut()
        .and_then(ProcSampler::sample)
        .map(|s| s.cpu_percent);
    let mut total = Tally::default();
    for h in handles {
        let t = h.join().unwrap_or_default();
        total.ok += t.ok;
        total.broken += t.broken;
        for (status, n) in t.refused {
            match total.refused.iter_mut().find(|(s, _)| *s == status) {
                Some(e) => e.1 += n,
                None => total.refused.push((status, n)),
            }
        }
        if let Some(l) = t.latency {
            match total.latency.as_mut() {
                Some(all) => {
                    let _ = all.add(&l);
                }
                None => total.latency = Some(l),
            }
        }
    }
    let secs = args.duration;
    let lat = total.latency.unwrap_or_else(histogram);
    let ms = |q: f64| lat.value_at_quantile(q) as f64 / 1000.0;
    println!("label={}", args.label);
    println!("connections={}", args.connections);
    println!("requests_per_s={:.0}", total.ok as f64 / secs);
    println!(
        "latency_ms p50={:.3} p99={:.3} max={:.3}",
        ms(0.5),
        ms(0.99),
        lat.max() as f64 / 1000.0
    );
    println!(
        "refused={}",
        total
            .refused
            .iter()
            .map(|(s, n)| format!("{s}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("broken_connections={}", total.broken);
    if let Some(cpu) = cpu {
        println!("server_cpu_percent={cpu:.1}");
    }
    if let (Some(before), Some(connected)) = (rss_before, rss_connected) {
        let per = connected.saturating_sub(before) as f64 * 1024.0 / args.connections as f64;
        println!("server_rss_kib={connected} rss_per_connection_bytes={per:.0}");
    }
    i32::from(total.ok == 0 || total.broken > 0)
}

/// A JSON body of `len` bytes.
fn body(len: usize) -> String {
    let mut b = String::from("{\"d\":\"");
    while b.len() + 2 < len.max(8) {
        b.push('x');
    }
    b.push_str("\"}");
    b
}

fn client(
    transport: &Transport,
    indexes: &[usize],
    request: &[u8],
    interval: Option<Duration>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally {
        latency: Some(histogram()),
        ..Tally::default()
    };
    let mut poll = Poll::new().expect("poll");
    let mut conns: Vec<Conn> = Vec::with_capacity(indexes.len());
    for (k, &i) in indexes.iter().enumerate() {
        let mut sock = match net::open(transport, i) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("http: connection {i} failed to open: {e}");
                tally.broken += 1;
                continue;
            }
        };
        poll.registry()
            .register(
                &mut sock,
                Token(conns.len()),
                Interest::READABLE | Interest::WRITABLE,
            )
            .expect("register");
        // Spread the first sends over one interval, so that an open loop starts smooth.
        let offset = interval.map_or(Duration::ZERO, |iv| {
            iv.mul_f64(k as f64 / indexes.len().max(1) as f64)
        });
        conns.push(Conn {
            sock,
            connected: false,
            out: Vec::new(),
            written: 0,
            inbuf: Vec::with_capacity(1024),
            sent: VecDeque::new(),
            next_send: start + offset,
            dead: false,
        });
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < end {
        let now = Instant::now();
        // Queue the requests that are due.
        for c in conns.iter_mut().filter(|c| c.connected && !c.dead) {
            let due = match interval {
                None => c.sent.is_empty() && now >= start,
                Some(_) => now >= c.next_send,
            };
            if due {
                c.out.extend_from_slice(request);
                c.sent.push_back(now);
                if let Some(iv) = interval {
                    c.next_send += iv;
                }
                flush(c, &mut tally);
            }
        }
        let _ = poll.poll(&mut events, Some(Duration::from_millis(1)));
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.dead {
                continue;
            }
            if ev.is_writable() {
                c.connected = true;
                flush(c, &mut tally);
            }
            if ev.is_readable() {
                read(c, &mut buf, measure_from, end, &mut tally);
            }
        }
    }
    tally
}

fn flush(c: &mut Conn, tally: &mut Tally) {
    while c.written < c.out.len() {
        match net::write_some(&mut c.sock, &c.out[c.written..]) {
            Ok(n) => c.written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.dead = true;
                tally.broken += 1;
                return;
            }
        }
    }
    c.out.clear();
    c.written = 0;
}

fn read(c: &mut Conn, buf: &mut [u8], measure_from: Instant, end: Instant, tally: &mut Tally) {
    loop {
        match net::read_some(&mut c.sock, buf) {
            Ok(0) => {
                c.dead = true;
                tally.broken += 1;
                return;
            }
            Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => {
                c.dead = true;
                tally.broken += 1;
                return;
            }
        }
    }
    // Whole responses: status line, headers, Content-Length body (a 204 has none).
    while let Some((status, len)) = response_len(&c.inbuf) {
        c.inbuf.drain(..len);
        let sent = c.sent.pop_front();
        let now = Instant::now();
        if now < measure_from || now > end {
            continue;
        }
        if (200..300).contains(&status) {
            tally.ok += 1;
            if let (Some(sent), Some(h)) = (sent, tally.latency.as_mut()) {
                let _ = h.record(now.duration_since(sent).as_micros() as u64);
            }
        } else {
            match tally.refused.iter_mut().find(|(s, _)| *s == status) {
                Some(e) => e.1 += 1,
                None => tally.refused.push((status, 1)),
            }
        }
    }
}

/// The status and total length of the first whole response in `b`, if it is all there.
fn response_len(b: &[u8]) -> Option<(u16, usize)> {
    let head_end = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&b[..head_end]).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let body = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (b.len() >= head_end + body).then_some((status, head_end + body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_content_length() {
        let two = b"HTTP/1.1 202 Accepted\r\nContent-Length: 14\r\n\r\n{\"accepted\":1}HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(response_len(two), Some((202, 59)));
        assert_eq!(response_len(&two[59..]), Some((204, 27)));
        assert_eq!(response_len(&two[..50]), None);
        assert_eq!(body(256).len(), 256);
    }
}

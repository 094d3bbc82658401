//! The traffic scenarios (`fanout`, `shared`, `apps`, `soak`) and `idle`: plan the
//! connections, start the client threads and producers, sample progress every second, and
//! report.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rustls::pki_types::ServerName;

use crate::driver::{self, Control, Pacing, Role, Settings, Spec, ThreadResult};
use crate::net::{self, Transport};
use crate::producer::{self, ProducerPlan, Sink};
use crate::report::{self, ConnectStats, IdleStats, Latency, Row, ServerStats, Spread, Summary};
use crate::stats::{pid_listening_on, ProcSampler, SeqSet, Shared};
use crate::{exit_with, mqtt_choice};

/// Knobs shared by every scenario but `kafka`.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Run against a plain MQTT broker at HOST:PORT (Mosquitto, rumqttd, …) instead of the
    /// service: producers then publish with MQTT to `app/<app>` and subscribers subscribe to it.
    #[arg(long, value_name = "HOST:PORT")]
    target_broker: Option<String>,
    /// MQTT address of the service (without --target-broker).
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// HTTP address of the service (batch ingest, `--source http`).
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: String,
    /// Where events come from when the target is the service: `http` (the batch ingest) or
    /// `kafka` (CloudEvents binary-mode records produced to `events-<app>`; the service must
    /// run with `backend.kind = "kafka"` on --bootstrap).
    #[arg(long, default_value = "http")]
    source: String,
    /// Kafka bootstrap servers for `--source kafka`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Application (with `apps`: the prefix of `<app>-1` … `<app>-A`).
    #[arg(long, default_value = "demo")]
    app: String,
    /// Device the producers send as (must exist in the service's config).
    #[arg(long, default_value = "device1")]
    device: String,
    /// Producers (each its own sequence numbers; `apps`: one per application).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Subscribers (default: 10; `apps`: one per application; `idle`: 0).
    #[arg(long)]
    subscribers: Option<usize>,
    /// QoS of subscriptions and (against a broker) of publishes: 0 or 1.
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// MQTT version: 5 or 311.
    #[arg(long, default_value = "5")]
    mqtt_version: String,
    /// CloudEvents content mode: structured or binary (binary needs MQTT 5; the service only).
    #[arg(long, default_value = "structured")]
    mode: String,
    /// Event data: `json` (datacontenttype application/json: structured mode embeds it as JSON)
    /// or `binary` (application/octet-stream, ingested as `data_base64`: structured mode carries
    /// it base64-encoded, binary mode as it is). The service only.
    #[arg(long, default_value = "json")]
    data: String,
    /// Bytes of event data (JSON with the send-time/sequence marker at its end; at least 49).
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Total events/s over all producers; as fast as the target takes them when omitted
    /// (`soak`: 10,000).
    #[arg(long)]
    rate: Option<u64>,
    /// Stop each producer after this many events (else it runs for --duration).
    #[arg(long)]
    events: Option<u64>,
    /// Seconds of measurement after the warm-up (`soak`: 300; `idle`: how long to hold).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of traffic before the measurement starts (not counted in rates and latency).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// At most this many seconds after producing ends to wait for the last deliveries.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// QoS 1 window: subscribers' Receive Maximum (MQTT 5), publishers' in-flight limit.
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// A producer waits while its slowest subscriber group is this many events behind it
    /// (throughput is then what subscribers sustain, not what queues absorb).
    #[arg(long, default_value_t = 50_000)]
    max_lead: u64,
    /// Events per HTTP ingest request (and at most per Kafka produce turn); capped so that a
    /// request stays under 1 MB.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Client event-loop threads (connections are spread over them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// New connections per second over all threads; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    connect_rate: f64,
    /// Connections being set up at once over all threads (keeps SYN backlogs from overflowing).
    #[arg(long, default_value_t = 1024)]
    connect_window: usize,
    /// Seconds a connection may take to get its CONNACK (and SUBACK).
    #[arg(long, default_value_t = 15.0)]
    connect_timeout: f64,
    /// Spread connections over source addresses 127.0.0.2 … 127.0.0.(N+1), beyond one address's
    /// ephemeral ports (default: 0 = kernel's choice; `idle`: 32).
    #[arg(long)]
    source_ips: Option<u32>,
    /// Keep Alive in CONNECT, seconds (the rig sends PINGREQ rounds well within it).
    #[arg(long, default_value_t = 60)]
    keep_alive: u16,
    /// TLS (rustls): trust the CA certificates in --ca.
    #[arg(long)]
    tls: bool,
    /// PEM file of the CA that signed the server's certificate (with --tls).
    #[arg(long, value_name = "FILE")]
    ca: Option<String>,
    /// Server name to check the certificate against (with --tls).
    #[arg(long, default_value = "localhost")]
    tls_server_name: String,
    /// WebSocket transport at this path (e.g. /mqtt), subprotocol `mqtt`; with --tls: wss.
    #[arg(long, value_name = "PATH")]
    ws: Option<String>,
    /// MQTT user name (and HTTP Basic user for ingest).
    #[arg(long)]
    username: Option<String>,
    /// MQTT password (and HTTP Basic password / API key for ingest).
    #[arg(long)]
    password: Option<String>,
    /// Process whose RSS and CPU to sample from /proc; default: the one listening on the
    /// target's port.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The service only, with --events: subscribe and leave, ingest --events per producer with
    /// nobody reading, then reconnect the same client ids (their groups resume where they left)
    /// and measure the drain: delivery alone, without the ingest in the way. Latency is not
    /// measured (it would be the backlog's age).
    #[arg(long)]
    backlog: bool,
    /// A name for the target in the report (e.g. `mosquitto`).
    #[arg(long)]
    label: Option<String>,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Draw delivered/produced events/s and latency over time to FILE.png.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<String>,
}

pub enum Kind {
    Fanout,
    Shared {
        groups: usize,
    },
    Apps {
        apps: usize,
    },
    Idle {
        connections: usize,
        ping_interval: f64,
    },
    Soak,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Fanout => "fanout",
            Kind::Shared { .. } => "shared",
            Kind::Apps { .. } => "apps",
            Kind::Idle { .. } => "idle",
            Kind::Soak => "soak",
        }
    }
}

/// Everything the run needs, checked.
struct Plan {
    kind_name: &'static str,
    label: String,
    broker: bool,
    target: SocketAddr,
    apps: Vec<String>,
    /// Per subscriber: (application index, filter).
    subs: Vec<(usize, String)>,
    producers: usize,
    idle: usize,
    rate: Option<u64>,
    duration: f64,
    settings: Arc<Settings>,
}

pub fn run(kind: Kind, c: Common) -> i32 {
    let plan = plan(&kind, &c);
    let nofile = net::raise_nofile();
    let wanted = plan.subs.len() + if plan.broker { plan.producers } else { 0 } + plan.idle;
    // The rig's own descriptors: poll, threads, HTTP, stdio, the report file.
    let usable = nofile.saturating_sub(64) as usize;
    let mut plan = plan;
    if wanted > usable {
        if plan.idle > 0 && wanted - plan.idle < usable {
            let capped = usable - (wanted - plan.idle);
            eprintln!(
                "note: the open-files limit is {nofile} (hard limit; raise it with `ulimit -Hn` as \
                 root), so this run holds {capped} idle connections instead of {}",
                plan.idle
            );
            plan.idle = capped;
        } else {
            exit_with(&format!(
                "{wanted} connections need more file descriptors than the open-files limit \
                 ({nofile}) allows: lower --subscribers/--producers or raise `ulimit -n`"
            ));
        }
    }
    let server_pid = c
        .server_pid
        .or_else(|| pid_listening_on(plan.target.port()));
    if server_pid.is_none() {
        eprintln!(
            "note: no process found listening on port {}; server RSS/CPU are not measured \
             (pass --server-pid)",
            plan.target.port()
        );
    }
    let mut sampler = server_pid.map(ProcSampler::new);
    let settings = plan.settings.clone();
    let producers = plan.producers;
    let shared = Arc::new(Shared::new(producers, plan.subs.len()));
    let control = Arc::new(Control::new());
    let pacing = Arc::new(Pacing {
        groups_of_producer: settings.pacing.groups_of_producer.clone(),
        app_of_producer: settings.pacing.app_of_producer.clone(),
    });
    let rss_before = sampler.as_mut().and_then(|s| s.sample()).map(|s| s.rss_kib);

    // Connections, spread round-robin over the client threads.
    let run_id = crate::payload::now_us() % 1_000_000_000;
    let threads = c.threads.max(1);
    let (per_thread, total_conns) = specs(&plan, &pacing, run_id, threads);
    let bar = progress_bar();
    let mut phases = None;
    if c.backlog {
        phases = Some(fill_backlog(
            &c, &plan, &bar, &pacing, &settings, &shared, &control, run_id, threads,
        ));
    }
    let handles = spawn_drivers(per_thread, &settings, &shared, &control);

    let mut summary = Summary::new(plan.kind_name, &plan.label, &c, &plan.apps, plan.broker);
    summary.subscribers = plan.subs.len();
    summary.producers = producers;
    summary.rate = plan.rate;
    summary.duration_s = plan.duration;

    // Connect phase.
    let connect_started = Instant::now();
    let connect_limit = Duration::from_secs_f64(
        c.connect_timeout + total_conns as f64 / c.connect_rate.max(1000.0) + 5.0,
    );
    loop {
        let ok = shared.connected.load(Ordering::Relaxed);
        let failed = shared.connect_failed.load(Ordering::Relaxed);
        let subscribed = shared.subscribed.load(Ordering::Relaxed);
        bar.set_message(format!(
            "connecting: {ok}/{total_conns} connected, {subscribed}/{} subscribed, {failed} failed",
            plan.subs.len()
        ));
        if ok + failed >= total_conns && subscribed as usize + failed as usize >= plan.subs.len() {
            break;
        }
        if connect_started.elapsed() > connect_limit {
            shared.error(format!(
                "only {ok} of {total_conns} connections were up after {connect_limit:?}"
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let connect_failed = shared.connect_failed.load(Ordering::Relaxed);
    if connect_failed > 0 && plan.idle == 0 {
        bar.finish_and_clear();
        let first = shared.first_error.lock().map(|e| e.clone()).unwrap_or(None);
        eprintln!(
            "error: {connect_failed} of {total_conns} connections to {} failed; first: {}",
            plan.target,
            first.unwrap_or_default()
        );
        control.stop.store(true, Ordering::SeqCst);
        for h in handles {
            let _ = h.join();
        }
        return 1;
    }

    let mut rows = Vec::new();
    let code = if let Kind::Idle { ping_interval, .. } = kind {
        let idle = hold_idle(
            &bar,
            &shared,
            &control,
            sampler.as_mut(),
            rss_before,
            plan.duration,
            ping_interval,
            &mut rows,
        );
        summary.idle = Some(idle);
        0
    } else {
        traffic(
            &c,
            phases,
            &plan.apps,
            plan.broker,
            plan.duration,
            plan.rate,
            &bar,
            &pacing,
            &shared,
            &control,
            sampler.as_mut(),
            &mut rows,
            &mut summary,
        )
    };
    bar.finish_and_clear();
    control.stop.store(true, Ordering::SeqCst);
    let results: Vec<ThreadResult> = handles.into_iter().filter_map(|h| h.join().ok()).collect();

    // Connect figures.
    let mut connect_hist = crate::stats::histogram();
    let mut first_start: Option<Instant> = None;
    let mut last_ack: Option<Instant> = None;
    for r in &results {
        let _ = connect_hist.add(&r.connect);
        first_start = match (first_start, r.first_connect_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last_ack = match (last_ack, r.last_connack) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let connected = shared.connected.load(Ordering::Relaxed);
    let connect_secs = match (first_start, last_ack) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    summary.connect = ConnectStats {
        attempted: total_conns,
        connected,
        failed: shared.connect_failed.load(Ordering::Relaxed),
        closed_early: shared.closed.load(Ordering::Relaxed),
        per_s: if connect_secs > 0.0 {
            connected as f64 / connect_secs
        } else {
            0.0
        },
        latency_p50_us: connect_hist.value_at_quantile(0.5),
        latency_p99_us: connect_hist.value_at_quantile(0.99),
        latency_max_us: connect_hist.max(),
    };

    // With --events (and --backlog) the window ends at the last delivery, to the microsecond.
    if c.events.is_some() && plan.idle == 0 {
        let go =
            control.base + Duration::from_micros(control.warmup_end_us.load(Ordering::Relaxed));
        if let Some(last) = results.iter().filter_map(|r| r.last_delivery).max() {
            let end = control.base
                + Duration::from_micros(control.produce_end_us.load(Ordering::Relaxed));
            summary.window_s = last.min(end).saturating_duration_since(go).as_secs_f64();
        }
    }
    // Deliveries: per subscriber, per group (merged sets), latency.
    if plan.idle == 0 {
        let mut latency = crate::stats::histogram();
        let mut subs: Vec<_> = results.iter().flat_map(|r| r.subs.iter()).collect();
        subs.sort_by_key(|s| s.sub);
        for r in &results {
            let _ = latency.add(&r.latency);
        }
        summary.latency_us = Latency::of(&latency);
        let window = summary.window_s;
        let rates: Vec<f64> = subs
            .iter()
            .map(|s| {
                if window > 0.0 {
                    s.window_count as f64 / window
                } else {
                    0.0
                }
            })
            .collect();
        summary.per_subscriber_per_s = Spread::of(&rates);
        summary.per_subscriber = rates;
        let window_count: u64 = subs.iter().map(|s| s.window_count).sum();
        let window_bytes: u64 = subs.iter().map(|s| s.window_bytes).sum();
        summary.delivered = window_count;
        summary.delivered_all = subs.iter().map(|s| s.total).sum();
        if window > 0.0 {
            summary.delivered_per_s = window_count as f64 / window;
            summary.delivered_bytes_per_s = (window_count * c.payload as u64) as f64 / window;
            summary.delivered_wire_bytes_per_s = window_bytes as f64 / window;
        }
        summary.foreign = subs.iter().map(|s| s.foreign).sum();
        let produced: Vec<u64> = shared
            .produced
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect();
        summary.produced = produced.iter().sum();
        summary.produced_by_producer = produced.clone();
        for (p, &n) in produced.iter().enumerate() {
            for members in &pacing.groups_of_producer[p] {
                let mut set = SeqSet::default();
                for &m in members {
                    if let Some(s) = subs.iter().find(|s| s.sub == m) {
                        set.merge(&s.seqs[p]);
                    }
                }
                summary.expected += n;
                summary.missing += n.saturating_sub(set.distinct);
                summary.duplicates += set.duplicates;
            }
        }
    }
    if let (Some(s), Some(before)) = (sampler.as_mut(), rss_before) {
        let end = s.rss_kib().unwrap_or(0);
        let peak = rows.iter().map(|r| r.rss_kib).max().unwrap_or(end).max(end);
        let cpu: Vec<f64> = rows
            .iter()
            .filter(|r| r.measuring)
            .map(|r| r.cpu_percent)
            .collect();
        summary.server = Some(ServerStats {
            pid: s.pid(),
            rss_start_kib: before,
            rss_peak_kib: peak,
            rss_end_kib: end,
            cpu_percent_mean: if cpu.is_empty() {
                0.0
            } else {
                cpu.iter().sum::<f64>() / cpu.len() as f64
            },
        });
    }
    if let Ok(Some(e)) = shared.first_error.lock().map(|e| e.clone()) {
        summary.errors.push(e);
    }
    summary.timeline = rows;
    report::print(&summary);
    if let Some(file) = &c.json {
        if let Err(e) = report::write_json(&summary, file) {
            eprintln!("error: writing --json {file}: {e}");
            return 1;
        }
    }
    if let Some(file) = &c.plot {
        if let Err(e) = crate::plot::draw(&summary, file) {
            eprintln!("error: drawing --plot {file}: {e}");
            return 1;
        }
    }
    code
}

fn plan(kind: &Kind, c: &Common) -> Plan {
    let (v5, binary) = mqtt_choice(&c.mqtt_version, &c.mode);
    if c.qos > 1 {
        exit_with("--qos must be 0 or 1");
    }
    if c.tls && c.ca.is_none() {
        exit_with("--tls needs --ca FILE (the CA certificate that signed the server's)");
    }
    let broker = c.target_broker.is_some();
    let addr = c.target_broker.as_deref().unwrap_or(&c.mqtt);
    let target = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(SocketAddr::is_ipv4))
        .unwrap_or_else(|| exit_with(&format!("cannot resolve `{addr}` to an IPv4 address")));
    if !target.ip().is_loopback() {
        exit_with(&format!(
            "{target} is not on 127.0.0.0/8: the rig only load-tests local servers"
        ));
    }
    if c.backlog && (broker || c.events.is_none() || matches!(kind, Kind::Idle { .. })) {
        exit_with("--backlog needs the service as the target (no --target-broker), --events N, and a traffic scenario");
    }
    if !matches!(c.data.as_str(), "json" | "binary") || (broker && c.data != "json") {
        exit_with("--data must be json or binary (binary: the service only)");
    }
    if broker && binary {
        exit_with("--mode binary is a CloudEvents mode of the service; a plain broker delivers the payload as it is");
    }
    if !broker && !matches!(c.source.as_str(), "http" | "kafka") {
        exit_with("--source must be http or kafka");
    }
    if c.payload < crate::payload::MIN_SIZE {
        exit_with(&format!(
            "--payload must be at least {} bytes (the send-time/sequence marker)",
            crate::payload::MIN_SIZE
        ));
    }
    let apps: Vec<String> = match kind {
        Kind::Apps { apps } => (1..=(*apps).max(1))
            .map(|i| format!("{}-{i}", c.app))
            .collect(),
        _ => vec![c.app.clone()],
    };
    let (producers, subscribers, idle) = match kind {
        Kind::Idle { connections, .. } => (0, c.subscribers.unwrap_or(0), *connections),
        Kind::Apps { apps } => (
            apps.max(&1) * c.producers.max(1),
            c.subscribers.unwrap_or(*apps),
            0,
        ),
        _ => (c.producers.max(1), c.subscribers.unwrap_or(10), 0),
    };
    if subscribers == 0 && idle == 0 {
        exit_with("--subscribers must be at least 1");
    }
    let groups = match kind {
        Kind::Shared { groups } => (*groups).clamp(1, subscribers.max(1)),
        _ => 0,
    };
    // Subscriber i reads app i mod A; shared: group i mod G of that app.
    let subs: Vec<(usize, String)> = (0..subscribers)
        .map(|i| {
            let app = i % apps.len();
            let filter = if groups > 0 {
                format!("$share/g{}/app/{}", (i / apps.len()) % groups, apps[app])
            } else {
                format!("app/{}", apps[app])
            };
            (app, filter)
        })
        .collect();
    let app_of_producer: Vec<usize> = (0..producers).map(|p| p % apps.len()).collect();
    let groups_of_app: Vec<Vec<Vec<usize>>> = (0..apps.len())
        .map(|a| {
            let members: Vec<usize> = (0..subscribers).filter(|&i| subs[i].0 == a).collect();
            if groups > 0 {
                (0..groups)
                    .map(|g| {
                        members
                            .iter()
                            .copied()
                            .filter(|&i| (i / apps.len()) % groups == g)
                            .collect::<Vec<_>>()
                    })
                    .filter(|m| !m.is_empty())
                    .collect()
            } else {
                members.into_iter().map(|m| vec![m]).collect()
            }
        })
        .collect();
    let pacing = Pacing {
        groups_of_producer: app_of_producer
            .iter()
            .map(|&a| groups_of_app[a].clone())
            .collect(),
        app_of_producer,
    };
    let rate = match kind {
        Kind::Soak => Some(c.rate.unwrap_or(10_000)),
        _ => c.rate,
    }
    .filter(|&r| r > 0);
    let duration = c.duration.unwrap_or(match kind {
        Kind::Soak => 300.0,
        _ => 10.0,
    });
    let tls = if c.tls {
        let config =
            net::tls_config(c.ca.as_deref().unwrap_or_default()).unwrap_or_else(|e| exit_with(&e));
        let name = ServerName::try_from(c.tls_server_name.clone()).unwrap_or_else(|e| {
            exit_with(&format!("--tls-server-name {}: {e}", c.tls_server_name))
        });
        Some((config, name))
    } else {
        None
    };
    let threads = c.threads.max(1);
    let transport = Transport {
        target,
        tls,
        ws: c.ws.as_ref().map(|p| (p.clone(), addr.to_string())),
        source_ips: c
            .source_ips
            .unwrap_or(if idle > 0 { 32 } else { 0 })
            .min(250),
    };
    let label = c.label.clone().unwrap_or_else(|| {
        if broker {
            format!("broker {target}")
        } else {
            "mqtt-integration".into()
        }
    });
    Plan {
        kind_name: kind.name(),
        label,
        broker,
        target,
        apps,
        subs,
        producers,
        idle,
        rate,
        duration,
        settings: Arc::new(Settings {
            transport,
            v5,
            qos: c.qos,
            binary,
            keep_alive: c.keep_alive,
            inflight: c.inflight.max(1),
            username: c.username.clone(),
            password: c.password.clone(),
            payload: c.payload,
            data_base64: c.data == "binary" && !binary,
            pub_rate: rate.map_or(0.0, |r| r as f64 / producers.max(1) as f64),
            events_per_producer: c.events,
            max_lead: c.max_lead.max(1),
            connect_rate: c.connect_rate / threads as f64,
            connect_window: (c.connect_window / threads).max(1),
            connect_timeout: Duration::from_secs_f64(c.connect_timeout.max(0.1)),
            pacing,
        }),
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Prints a plain progress line when stderr is not a terminal (indicatif draws nothing then).
fn log_line(bar: &ProgressBar, msg: &str) {
    if bar.is_hidden() {
        eprintln!("  {msg}");
    }
}

/// The connections of a run, spread round-robin over `threads`; and how many there are.
fn specs(plan: &Plan, pacing: &Pacing, run_id: u64, threads: usize) -> (Vec<Vec<Spec>>, u64) {
    let mut per_thread: Vec<Vec<Spec>> = (0..threads).map(|_| Vec::new()).collect();
    let mut index = 0;
    let mut push = |role: Role, client_id: String| {
        per_thread[index % threads].push(Spec {
            index,
            client_id,
            role,
        });
        index += 1;
    };
    for (i, (app, filter)) in plan.subs.iter().enumerate() {
        push(
            Role::Sub {
                sub: i,
                app: *app,
                filter: filter.clone(),
            },
            format!("lt{run_id}-s{i}"),
        );
    }
    if plan.broker {
        for p in 0..plan.producers {
            let app = &plan.apps[pacing.app_of_producer[p]];
            push(
                Role::Pub {
                    producer: p,
                    topic: format!("app/{app}"),
                },
                format!("lt{run_id}-p{p}"),
            );
        }
    }
    for i in 0..plan.idle {
        push(Role::Idle, format!("lt{run_id}-i{i}"));
    }
    (per_thread, index as u64)
}

fn spawn_drivers(
    per_thread: Vec<Vec<Spec>>,
    settings: &Arc<Settings>,
    shared: &Arc<Shared>,
    control: &Arc<Control>,
) -> Vec<std::thread::JoinHandle<ThreadResult>> {
    per_thread
        .into_iter()
        .map(|specs| {
            let (settings, shared, control) = (settings.clone(), shared.clone(), control.clone());
            std::thread::spawn(move || driver::run(specs, settings, shared, control))
        })
        .collect()
}

/// `--backlog`: the subscribers subscribe (their groups start at the end of the log) and leave;
/// the producers ingest `--events` each with nobody reading. Returns the phases of the drain that
/// follows (set before the subscribers come back, so that everything they receive is measured).
#[allow(clippy::too_many_arguments)]
fn fill_backlog(
    c: &Common,
    plan: &Plan,
    bar: &ProgressBar,
    pacing: &Arc<Pacing>,
    settings: &Arc<Settings>,
    shared: &Arc<Shared>,
    control: &Arc<Control>,
    run_id: u64,
    threads: usize,
) -> (Instant, Instant, Instant) {
    let first = Arc::new(Shared::new(shared.producers, plan.subs.len()));
    let first_control = Arc::new(Control::new());
    let (per_thread, _) = specs(plan, pacing, run_id, threads);
    let handles = spawn_drivers(per_thread, settings, &first, &first_control);
    let started = Instant::now();
    while (first.subscribed.load(Ordering::Relaxed) as usize) < plan.subs.len() {
        bar.set_message(format!(
            "backlog: subscribing {}/{}",
            first.subscribed.load(Ordering::Relaxed),
            plan.subs.len()
        ));
        let failed = first.connect_failed.load(Ordering::Relaxed);
        if failed > 0 || started.elapsed() > Duration::from_secs_f64(c.connect_timeout + 5.0) {
            let e = first.first_error.lock().map(|e| e.clone()).unwrap_or(None);
            exit_with(&format!(
                "backlog: the subscribers could not subscribe: {}",
                e.unwrap_or_else(|| "timed out".into())
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    first_control.stop.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    // Let the service notice the subscribers are gone before events arrive.
    std::thread::sleep(Duration::from_millis(500));
    let go = Instant::now();
    control.set_phases(go, go, go + Duration::from_secs(3600));
    let per_producer = c.events.unwrap_or(0);
    let mut producers = Vec::new();
    for p in 0..shared.producers {
        let app = plan.apps[pacing.app_of_producer[p]].clone();
        let sink = source_sink(c, &app);
        let plan = producer_plan(c, p, app, 0.0, Some(per_producer), u64::MAX);
        let (pacing, shared, control) = (pacing.clone(), shared.clone(), control.clone());
        producers.push(std::thread::spawn(move || {
            producer::run(plan, sink, pacing, shared, control)
        }));
    }
    while !producers.iter().all(|h| h.is_finished()) {
        let msg = format!(
            "backlog: ingested {}/{} with nobody reading",
            shared.produced_total(),
            per_producer * shared.producers as u64
        );
        bar.set_message(msg.clone());
        std::thread::sleep(Duration::from_millis(200));
    }
    for h in producers {
        if let Ok(Err(e)) = h.join() {
            exit_with(&format!("backlog: {e}"));
        }
    }
    eprintln!(
        "backlog: {} events ingested in {:.1} s; the subscribers come back and drain them",
        shared.produced_total(),
        go.elapsed().as_secs_f64()
    );
    let go = Instant::now();
    let end = go + Duration::from_secs_f64(c.drain.max(1.0) + 120.0);
    control.set_phases(go, go, end);
    (go, go, end)
}

/// What producer `producer` of `app` sends, with the run's device, payload, data kind and batch.
fn producer_plan(
    c: &Common,
    producer: usize,
    app: String,
    rate: f64,
    events: Option<u64>,
    max_lead: u64,
) -> ProducerPlan {
    ProducerPlan {
        producer,
        app,
        device: c.device.clone(),
        payload: c.payload,
        rate,
        batch: batch_size(c),
        events,
        max_lead,
        binary_data: c.data == "binary",
    }
}

/// Events per ingest request: --batch, kept under the service's default body limit
/// (`http.max_body_size`, 1 MiB) whatever the payload and its encoding.
fn batch_size(c: &Common) -> usize {
    let data = if c.data == "binary" {
        c.payload.div_ceil(3) * 4
    } else {
        c.payload
    };
    c.batch.clamp(1, (1_000_000 / (data + 160)).max(1))
}

fn source_sink(c: &Common, app: &str) -> Sink {
    if c.source == "kafka" {
        match Sink::kafka(&c.bootstrap, app, &c.device) {
            Ok(s) => s,
            Err(e) => exit_with(&e),
        }
    } else {
        let user = c.username.as_deref().zip(c.password.as_deref());
        Sink::http(&c.http, app, user)
    }
}

#[allow(clippy::too_many_arguments)]
fn traffic(
    c: &Common,
    phases: Option<(Instant, Instant, Instant)>,
    apps: &[String],
    broker: bool,
    duration: f64,
    rate: Option<u64>,
    bar: &ProgressBar,
    pacing: &Arc<Pacing>,
    shared: &Arc<Shared>,
    control: &Arc<Control>,
    mut sampler: Option<&mut ProcSampler>,
    rows: &mut Vec<Row>,
    summary: &mut Summary,
) -> i32 {
    let (go, warmup_end, produce_end) = phases.unwrap_or_else(|| {
        let go = Instant::now();
        let warmup_end = go + Duration::from_secs_f64(c.warmup.max(0.0));
        let produce_end = warmup_end + Duration::from_secs_f64(duration.max(0.1));
        control.set_phases(go, warmup_end, produce_end);
        (go, warmup_end, produce_end)
    });
    let mut producers = Vec::new();
    // With --backlog the events are already in the log: the subscribers only drain.
    if !broker && phases.is_none() {
        for p in 0..shared.producers {
            let app = apps[pacing.app_of_producer[p]].clone();
            let sink = source_sink(c, &app);
            let rate_each = rate.map_or(0.0, |r| r as f64 / shared.producers as f64);
            let plan = producer_plan(c, p, app, rate_each, c.events, c.max_lead.max(1));
            let (pacing, shared, control) = (pacing.clone(), shared.clone(), control.clone());
            producers.push(std::thread::spawn(move || {
                let r = producer::run(plan, sink, pacing, shared.clone(), control);
                if let Err(e) = &r {
                    shared.error(e.clone());
                }
                r
            }));
        }
    }
    let groups_of = |p: usize| pacing.groups_of_producer[p].len() as u64;
    let expected = || -> u64 {
        (0..shared.producers)
            .map(|p| shared.produced[p].load(Ordering::Relaxed) * groups_of(p))
            .sum()
    };
    let mut last_delivered = 0;
    let mut last_produced = 0;
    let mut last_growth = Instant::now();
    let mut window_last_delivery = warmup_end;
    let drain_end = produce_end + Duration::from_secs_f64(c.drain.max(0.0));
    let mut next = go + Duration::from_secs(1);
    let mut code = 0;
    // QoS 0 subscribers send nothing on their own: without PINGREQs a server closes them after
    // 1.5 × Keep Alive (MQTT 3.1.2.10), which a soak outlasts.
    let ping_every = Duration::from_secs(u64::from(c.keep_alive / 2).max(1));
    let mut next_ping = Instant::now() + ping_every;
    loop {
        if c.keep_alive > 0 && Instant::now() >= next_ping {
            next_ping += ping_every;
            control.ping_round.fetch_add(1, Ordering::SeqCst);
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            if Instant::now() < next {
                continue;
            }
        }
        next += Duration::from_secs(1);
        let now = Instant::now();
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let produced = shared.produced_total();
        let exp = expected();
        let interval = {
            let mut h = shared.interval.lock().unwrap_or_else(|e| e.into_inner());
            let copy = h.clone();
            h.reset();
            copy
        };
        let proc = sampler
            .as_mut()
            .and_then(|s| s.sample())
            .unwrap_or_default();
        let measuring = now > warmup_end && now <= produce_end + Duration::from_millis(500);
        let row = Row {
            t_s: now.duration_since(go).as_secs_f64(),
            delivered_per_s: (delivered - last_delivered) as f64,
            produced_per_s: (produced - last_produced) as f64,
            p50_us: interval.value_at_quantile(0.5),
            p99_us: interval.value_at_quantile(0.99),
            max_us: interval.max(),
            rss_kib: proc.rss_kib,
            cpu_percent: proc.cpu_percent,
            lag: exp.saturating_sub(delivered),
            measuring,
        };
        if delivered > last_delivered {
            last_growth = now;
            if now <= produce_end + Duration::from_millis(1000) {
                window_last_delivery = now.min(produce_end);
            }
        }
        let phase = if now < warmup_end {
            "warm-up"
        } else if now < produce_end {
            "measuring"
        } else {
            "draining"
        };
        let msg = format!(
            "{phase} {:>5.0}s | delivered {:>9.0}/s | produced {:>8.0}/s | p99 {:>8.2} ms | lag {:>8} | server {} MiB {:.0}% CPU",
            row.t_s,
            row.delivered_per_s,
            row.produced_per_s,
            row.p99_us as f64 / 1000.0,
            row.lag,
            proc.rss_kib / 1024,
            proc.cpu_percent
        );
        bar.set_message(msg.clone());
        log_line(bar, &msg);
        rows.push(row);
        last_delivered = delivered;
        last_produced = produced;
        if let Ok(Some(e)) = shared.first_error.lock().map(|e| e.clone()) {
            bar.suspend(|| eprintln!("error: {e}"));
            code = 1;
            break;
        }
        let producers_done = producers.iter().all(|h| h.is_finished())
            && (!broker
                || c.events.is_some_and(|n| {
                    shared
                        .produced
                        .iter()
                        .all(|p| p.load(Ordering::Relaxed) >= n)
                }));
        // Producers must have stopped (an HTTP request or a publisher turn in flight at the end
        // of the phase still adds events) before "caught up" means anything.
        let stopped = producers.iter().all(|h| h.is_finished())
            && (producers_done || now >= produce_end + Duration::from_millis(200));
        if stopped && (now >= produce_end || (producers_done && c.events.is_some())) {
            let exp = expected();
            let delivered = shared.delivered.load(Ordering::Relaxed);
            let caught_up = delivered >= exp;
            let stalled = now.duration_since(last_growth) > Duration::from_secs(2);
            if caught_up || stalled || now >= drain_end {
                break;
            }
        }
    }
    control.stop.store(true, Ordering::SeqCst);
    for h in producers {
        if let Ok(Err(_)) = h.join() {
            code = 1;
        }
    }
    let window_end = if c.events.is_some() {
        window_last_delivery
    } else {
        produce_end
    };
    summary.window_s = window_end
        .saturating_duration_since(warmup_end)
        .as_secs_f64();
    summary.produced_per_s = {
        let in_window: f64 = rows
            .iter()
            .filter(|r| r.measuring)
            .map(|r| r.produced_per_s)
            .sum();
        let n = rows.iter().filter(|r| r.measuring).count();
        if n > 0 {
            in_window / n as f64
        } else {
            0.0
        }
    };
    code
}

/// Asks every connection for a PINGREQ and waits (at most 10 s) until all were answered;
/// returns how long the round took, in ms.
fn ping_round(shared: &Shared, control: &Control) -> f64 {
    let answered_before = shared.pings_answered.load(Ordering::Relaxed);
    let sent_before = shared.pings_sent.load(Ordering::Relaxed);
    control.ping_round.fetch_add(1, Ordering::SeqCst);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
        let sent = shared.pings_sent.load(Ordering::Relaxed) - sent_before;
        let answered = shared.pings_answered.load(Ordering::Relaxed) - answered_before;
        if sent > 0 && answered >= sent {
            break;
        }
    }
    t0.elapsed().as_secs_f64() * 1000.0
}

#[allow(clippy::too_many_arguments)]
fn hold_idle(
    bar: &ProgressBar,
    shared: &Shared,
    control: &Control,
    mut sampler: Option<&mut ProcSampler>,
    rss_before: Option<u64>,
    duration: f64,
    ping_interval: f64,
    rows: &mut Vec<Row>,
) -> IdleStats {
    let connected = shared.connected.load(Ordering::Relaxed);
    // Let the server settle (buffers of the connect burst freed) before measuring.
    std::thread::sleep(Duration::from_millis(1000));
    let rss_connected = sampler.as_mut().and_then(|s| s.rss_kib());
    let start = Instant::now();
    let mut round_ms = Vec::new();
    let mut last_ping = None::<Instant>;
    let mut rss_after_ping = None;
    loop {
        let now = Instant::now();
        let due = last_ping.is_none_or(|t| now.duration_since(t).as_secs_f64() >= ping_interval);
        if due {
            let t0 = Instant::now();
            round_ms.push(ping_round(shared, control));
            last_ping = Some(t0);
            if rss_after_ping.is_none() {
                rss_after_ping = sampler.as_mut().and_then(|s| s.rss_kib());
            }
        }
        let proc = sampler
            .as_mut()
            .and_then(|s| s.sample())
            .unwrap_or_default();
        let msg = format!(
            "holding {:>4.0}/{duration:.0}s | {} connections | PINGREQ {} sent, {} answered | server {} MiB {:.0}% CPU",
            start.elapsed().as_secs_f64(),
            connected - shared.closed.load(Ordering::Relaxed),
            shared.pings_sent.load(Ordering::Relaxed),
            shared.pings_answered.load(Ordering::Relaxed),
            proc.rss_kib / 1024,
            proc.cpu_percent,
        );
        bar.set_message(msg.clone());
        log_line(bar, &msg);
        rows.push(Row {
            t_s: start.elapsed().as_secs_f64(),
            rss_kib: proc.rss_kib,
            cpu_percent: proc.cpu_percent,
            measuring: true,
            ..Row::default()
        });
        if start.elapsed().as_secs_f64() >= duration {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // A last round: every connection still answers.
    round_ms.push(ping_round(shared, control));
    let rss_end = sampler.as_mut().and_then(|s| s.rss_kib());
    let per_conn = |after: Option<u64>| match (rss_before, after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some(a.saturating_sub(b) as f64 * 1024.0 / connected as f64)
        }
        _ => None,
    };
    IdleStats {
        connections: connected,
        still_open: connected - shared.closed.load(Ordering::Relaxed),
        rss_before_kib: rss_before,
        rss_connected_kib: rss_connected,
        rss_after_ping_kib: rss_after_ping,
        rss_end_kib: rss_end,
        bytes_per_connection: per_conn(rss_after_ping.max(rss_connected)),
        bytes_per_connection_end: per_conn(rss_end),
        pings_sent: shared.pings_sent.load(Ordering::Relaxed),
        pings_answered: shared.pings_answered.load(Ordering::Relaxed),
        ping_round_ms_max: round_ms.iter().copied().fold(0.0, f64::max),
    }
}

/// Read-only views of the knobs for the report.
impl Common {
    pub fn target_addr(&self) -> &str {
        self.target_broker.as_deref().unwrap_or(&self.mqtt)
    }
    pub fn source_name(&self) -> &str {
        &self.source
    }
    pub fn version_name(&self) -> &str {
        if self.mqtt_version == "5" {
            "5"
        } else {
            "3.1.1"
        }
    }
    pub fn qos_value(&self) -> u8 {
        self.qos
    }
    pub fn mode_name(&self) -> &str {
        &self.mode
    }
    pub fn payload_size(&self) -> usize {
        self.payload
    }
    pub fn warmup_secs(&self) -> f64 {
        self.warmup
    }
    pub fn tls_enabled(&self) -> bool {
        self.tls
    }
    pub fn ws_path(&self) -> Option<&str> {
        self.ws.as_deref()
    }
}

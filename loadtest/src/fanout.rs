//! `loadtest fanout`: drives a running mqtt-integration with real MQTT subscribers and HTTP batch
//! ingest, and reports delivered events per second and end-to-end latency.
//!
//! The first scenario of the rig (fan-out: one producer, S subscribers, each its own consumer
//! group). Subscribers are plain TCP clients that use the service's own codec to frame packets,
//! so the client side costs little next to the server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::exit_with;
use crate::subscriber::{Subscriber, SubscriberOptions};

/// Fan-out load test: P=1 producer (HTTP batch ingest) → one application → S subscribers.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// MQTT address of the service.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// HTTP address of the service (ingest).
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: String,
    /// Application and device to publish as.
    #[arg(long, default_value = "demo")]
    app: String,
    #[arg(long, default_value = "device1")]
    device: String,
    /// Subscribers, each with its own client id (its own consumer group).
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Events to publish in all.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per HTTP batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Bytes of data per event (JSON padding included).
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Subscription QoS (0 or 1).
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// MQTT version: 5 or 311.
    #[arg(long, default_value = "5")]
    mqtt_version: String,
    /// CloudEvents content mode (binary needs MQTT 5).
    #[arg(long, default_value = "structured")]
    mode: String,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

pub fn run(args: Args) {
    let (v5, binary) = crate::mqtt_choice(&args.mqtt_version, &args.mode);
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut subs = Vec::new();
    for i in 0..args.subscribers {
        let opts = SubscriberOptions {
            addr: args.mqtt.clone(),
            client_id: format!("loadtest-{run_id}-{i}"),
            filter: format!("app/{}", args.app),
            qos: args.qos,
            v5,
            binary,
            seqs: None,
        };
        match Subscriber::connect(opts) {
            Ok(s) => subs.push(s),
            Err(e) => exit_with(&format!(
                "subscriber {i} cannot connect to {}: {e}",
                args.mqtt
            )),
        }
    }
    let handles: Vec<_> = subs
        .into_iter()
        .map(|s| s.spawn(received.clone(), stop.clone()))
        .collect();
    eprintln!(
        "{} subscribers connected; publishing {} events of {} bytes in batches of {}",
        args.subscribers, args.events, args.payload, args.batch
    );

    let producer = {
        let args = args.clone();
        std::thread::spawn(move || produce(&args))
    };
    let expected = args.events * args.subscribers as u64;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let mut last = 0;
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let now = received.load(Ordering::Relaxed);
        eprintln!(
            "  {:>6.1}s  delivered {now}/{expected}  ({} events/s)",
            started.elapsed().as_secs_f64(),
            now - last
        );
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let produced = producer.join().unwrap_or(0);
    let results: Vec<_> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    let total: u64 = results.iter().map(|r| r.count).sum();
    let first = results.iter().filter_map(|r| r.first).min();
    let last_at = results.iter().filter_map(|r| r.last).max();
    let mut latencies: Vec<u64> = results
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let secs = match (first, last_at) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    println!("produced events        {produced}");
    println!("delivered events       {total} of {expected}");
    if secs > 0.0 {
        println!("delivered events/s     {:.0}", total as f64 / secs);
        println!(
            "delivered MB/s (data)  {:.1}",
            total as f64 * args.payload as f64 / secs / 1e6
        );
    }
    println!(
        "latency p50/p99/max    {} / {} / {} µs (sampled, publish-to-receive)",
        pct(0.5),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    if total < expected {
        eprintln!(
            "error: {} events were not delivered within {} s",
            expected - total,
            args.timeout
        );
        std::process::exit(1);
    }
}

/// Posts `events` events as CloudEvents batches; each event's data carries its send time.
fn produce(args: &Args) -> u64 {
    let url = format!("http://{}/api/v1/apps/{}/events", args.http, args.app);
    let mut sent = 0u64;
    while sent < args.events {
        let n = (args.events - sent).min(args.batch as u64);
        let mut body = String::with_capacity(n as usize * (args.payload + 64));
        body.push('[');
        for i in 0..n {
            if i > 0 {
                body.push(',');
            }
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            let head = format!("{{\"t\":{t},\"seq\":{},\"pad\":\"", sent + i);
            let pad = args.payload.saturating_sub(head.len() + 2);
            body.push_str(&format!(
                "{{\"device\":\"{}\",\"subject\":\"load\",\"datacontenttype\":\"application/json\",\"data\":{head}{}\"}}}}",
                args.device,
                "x".repeat(pad)
            ));
        }
        body.push(']');
        if let Err(e) = ureq::post(&url)
            .set("Content-Type", "application/cloudevents-batch+json")
            .send_string(&body)
        {
            exit_with(&format!("ingest to {url} failed: {e}"));
        }
        sent += n;
    }
    sent
}

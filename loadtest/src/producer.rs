//! Event sources against the service: HTTP batch ingest and Kafka (CloudEvents binary-mode
//! records straight into `events-<app>`). One thread per producer, paced by `--rate`, held back
//! by `--max-lead`, stopped at the end of the producing phase. (Against a plain broker the
//! producers are MQTT connections in the client event loop: `driver`.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::driver::{Control, Pacing};
use crate::payload::{self, Template};
use crate::stats::Shared;

pub enum Sink {
    Http {
        url: String,
        agent: ureq::Agent,
        auth: Option<String>,
    },
    Kafka {
        producer: BaseProducer,
        topic: String,
        source: String,
    },
}

pub struct ProducerPlan {
    pub producer: usize,
    pub app: String,
    pub device: String,
    pub payload: usize,
    /// Events/s of this producer; 0 = as fast as the service accepts them.
    pub rate: f64,
    pub batch: usize,
    pub events: Option<u64>,
    pub max_lead: u64,
    /// Send the data as application/octet-stream (`data_base64` in the ingest batch).
    pub binary_data: bool,
}

impl Sink {
    pub fn http(http: &str, app: &str, user: Option<(&str, &str)>) -> Sink {
        use base64::Engine;
        Sink::Http {
            url: format!("http://{http}/api/v1/apps/{app}/events"),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            auth: user.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
        }
    }

    pub fn kafka(bootstrap: &str, app: &str, device: &str) -> Result<Sink, String> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "loadtest")
            .set("linger.ms", "1")
            .set("queue.buffering.max.messages", "1000000")
            .set("queue.buffering.max.kbytes", "1048576")
            .create()
            .map_err(|e| format!("Kafka producer for {bootstrap}: {e}"))?;
        Ok(Sink::Kafka {
            producer,
            topic: mqtt_integration::backend::kafka::topic::events_topic(app),
            source: format!("drogue://{app}/{device}"),
        })
    }
}

/// Produces until the end of the producing phase (or `events`); errors end the run.
pub fn run(
    plan: ProducerPlan,
    mut sink: Sink,
    pacing: Arc<Pacing>,
    shared: Arc<Shared>,
    control: Arc<Control>,
) -> Result<(), String> {
    let mut template = Template::new(plan.payload);
    let mut body = Vec::with_capacity(plan.batch * (plan.payload + 128) + 2);
    let p = plan.producer;
    let go = control.base + Duration::from_micros(control.go_us.load(Ordering::SeqCst));
    let end = control.base + Duration::from_micros(control.produce_end_us.load(Ordering::SeqCst));
    let mut seq = 0u64;
    let cap = plan.events.unwrap_or(u64::MAX);
    let produced: &AtomicU64 = &shared.produced[p];
    loop {
        let now = Instant::now();
        if now >= end || seq >= cap || control.stop.load(Ordering::Relaxed) {
            break;
        }
        let mut n = if plan.rate > 0.0 {
            let due = (now.duration_since(go).as_secs_f64() * plan.rate) as u64 + 1;
            due.saturating_sub(seq)
        } else {
            plan.batch as u64
        };
        n = n.min(plan.batch as u64).min(cap - seq);
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        if pacing.lag(&shared, p, seq) > plan.max_lead {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let sent_us = payload::now_us();
        match &mut sink {
            Sink::Http { url, agent, auth } => {
                body.clear();
                body.push(b'[');
                for i in 0..n {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(b"{\"device\":\"");
                    body.extend_from_slice(plan.device.as_bytes());
                    let data = template.stamp(p as u32, seq + i, sent_us);
                    if plan.binary_data {
                        use base64::Engine;
                        body.extend_from_slice(
                            b"\",\"subject\":\"load\",\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"",
                        );
                        let at = body.len();
                        body.resize(at + data.len().div_ceil(3) * 4, 0);
                        let n = base64::engine::general_purpose::STANDARD
                            .encode_slice(data, &mut body[at..])
                            .unwrap_or(0);
                        body.truncate(at + n);
                        body.extend_from_slice(b"\"}");
                    } else {
                        body.extend_from_slice(
                            b"\",\"subject\":\"load\",\"datacontenttype\":\"application/json\",\"data\":",
                        );
                        body.extend_from_slice(data);
                        body.push(b'}');
                    }
                }
                body.push(b']');
                let mut req = agent
                    .post(url)
                    .set("Content-Type", "application/cloudevents-batch+json");
                if let Some(a) = auth {
                    req = req.set("Authorization", a);
                }
                req.send_bytes(&body).map_err(|e| match e {
                    ureq::Error::Status(code, r) => format!(
                        "ingest to {url} answered {code}: {}",
                        r.into_string().unwrap_or_default()
                    ),
                    e => format!("ingest to {url} failed: {e} (is the service running?)"),
                })?;
            }
            Sink::Kafka {
                producer,
                topic,
                source,
            } => {
                for i in 0..n {
                    let id = format!("{p}-{}", seq + i);
                    let headers = OwnedHeaders::new_with_capacity(8)
                        .insert(header("ce_specversion", "1.0"))
                        .insert(header("ce_id", &id))
                        .insert(header("ce_source", source))
                        .insert(header("ce_type", "io.drogue.event.v1"))
                        .insert(header("ce_subject", "load"))
                        .insert(header("ce_application", &plan.app))
                        .insert(header("ce_device", &plan.device))
                        .insert(header(
                            "content-type",
                            if plan.binary_data {
                                "application/octet-stream"
                            } else {
                                "application/json"
                            },
                        ));
                    let data = template.stamp(p as u32, seq + i, sent_us);
                    let mut record = BaseRecord::to(topic)
                        .key(plan.device.as_str())
                        .payload(data)
                        .headers(headers);
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                r,
                            )) => {
                                record = r;
                                producer.poll(Duration::from_millis(5));
                                if Instant::now() > deadline {
                                    return Err(format!(
                                        "Kafka: the producer queue for {topic} stayed full for 30 s"
                                    ));
                                }
                            }
                            Err((e, _)) => return Err(format!("Kafka: producing to {topic}: {e}")),
                        }
                    }
                }
                producer.poll(Duration::ZERO);
            }
        }
        seq += n;
        produced.store(seq, Ordering::Relaxed);
    }
    if let Sink::Kafka {
        producer, topic, ..
    } = &sink
    {
        producer
            .flush(Duration::from_secs(30))
            .map_err(|e| format!("Kafka: flushing {topic}: {e}"))?;
    }
    Ok(())
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}

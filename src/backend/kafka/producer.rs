//! The seam's [`Producer`] over Kafka: HTTP ingest and MQTT commands become binary-mode
//! CloudEvents records; the completion runs from the delivery report, so `202` and PUBACK mean
//! "in Kafka" (acks=all, idempotent, so a retry never reorders a device's events).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};

use super::clients;
use super::codec::encode_headers;
use super::topic::events_topic;
use crate::cloudevents::Event;
use crate::config::KafkaConfig;
use crate::seam::{BackendError, Completion, Producer};

/// How often the readiness thread asks the cluster for metadata.
const READY_INTERVAL: Duration = Duration::from_secs(3);

/// A record's completion. librdkafka's opaque must be `Sync`; the completion is only `Send`,
/// so it sits behind an (uncontended) mutex.
pub struct Done(parking_lot::Mutex<Option<Completion>>);

impl Done {
    fn new(done: Completion) -> Box<Done> {
        Box::new(Done(parking_lot::Mutex::new(Some(done))))
    }

    fn call(&self, result: Result<(), BackendError>) {
        if let Some(done) = self.0.lock().take() {
            done(result);
        }
    }
}

/// Calls each record's completion from its delivery report, and keeps librdkafka's last
/// global error (an authentication or TLS failure) for the readiness probe's message.
#[derive(Default)]
pub struct DeliveryContext {
    last_error: parking_lot::Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!("librdkafka: {error}: {reason}");
        let mut last = self.last_error.lock();
        // "All brokers down" follows the failure that caused it: keep the cause.
        if last.is_none() || error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            *last = Some(format!("{error}: {reason}"));
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Done>;

    fn delivery(&self, result: &DeliveryResult<'_>, done: Box<Done>) {
        done.call(match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(map_error(e)),
        });
    }
}

fn map_error(e: &KafkaError) -> BackendError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            BackendError::UnknownStream(e.to_string())
        }
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            BackendError::QuotaExceeded(e.to_string())
        }
        _ => BackendError::Unavailable(e.to_string()),
    }
}

pub struct KafkaProducer {
    producer: ThreadedProducer<DeliveryContext>,
    command_topic: String,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl KafkaProducer {
    pub fn new(config: &KafkaConfig) -> Result<KafkaProducer, KafkaError> {
        let producer: ThreadedProducer<DeliveryContext> = clients::base(
            config,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "2"),
                ("message.timeout.ms", "30000"),
                ("topic.metadata.propagation.max.ms", "5000"),
            ],
        )
        .create_with_context(DeliveryContext::default())?;
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        // Readiness: a metadata request every few seconds on a thread of its own, so `ready()`
        // is an atomic load and never blocks (spec 5, /readyz).
        let client = producer.clone();
        let (r, s) = (ready.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kafka-ready".into())
            .spawn(move || {
                // The first failure is logged too (not only a change): a service that never
                // reached Kafka says so, with librdkafka's error (e.g. an authentication failure).
                let mut first = true;
                while !s.load(Ordering::Acquire) {
                    let md = client.client().fetch_metadata(None, Duration::from_secs(2));
                    let ok = md.as_ref().is_ok_and(|md| !md.brokers().is_empty());
                    // The metadata error alone is mostly "broker transport failure"; the global
                    // error librdkafka reported since the last probe names the cause.
                    let cause = client.context().last_error.lock().take();
                    let was = r.swap(ok, Ordering::AcqRel);
                    if ok && !was {
                        tracing::info!("Kafka is reachable");
                    } else if !ok && (was || first) {
                        let error = match (&md, cause) {
                            (_, Some(cause)) => cause,
                            (Err(e), None) => e.to_string(),
                            (Ok(_), None) => "no brokers in the metadata".into(),
                        };
                        tracing::warn!(error, "Kafka is not reachable, not ready");
                    }
                    first = false;
                    let mut slept = Duration::ZERO;
                    while slept < READY_INTERVAL && !s.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(100));
                        slept += Duration::from_millis(100);
                    }
                }
            })
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        Ok(KafkaProducer {
            producer,
            command_topic: config.command_topic.clone(),
            ready,
            stop,
        })
    }

    fn send(&self, topic: &str, key: &str, event: &Event, done: Completion) {
        let record = BaseRecord::with_opaque_to(topic, Done::new(done))
            .key(key)
            .payload(&event.data[..])
            .headers(encode_headers(event));
        if let Err((e, record)) = self.producer.send(record) {
            record
                .delivery_opaque
                .call(Err(match e.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::QueueFull) => {
                        BackendError::Unavailable("the Kafka producer queue is full".into())
                    }
                    _ => map_error(&e),
                }));
        }
    }

    /// Waits for outstanding records (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

impl Drop for KafkaProducer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Producer for KafkaProducer {
    fn publish_event(&self, app: &str, event: Event, done: Completion) {
        // Key = device: Kafka's partitioner keeps one device's events in one partition, in order.
        let key = event.device().unwrap_or_default().to_owned();
        self.send(&events_topic(app), &key, &event, done);
    }

    fn send_command(&self, app: &str, device: &str, event: Event, done: Completion) {
        self.send(
            &self.command_topic,
            &format!("{app}/{device}"),
            &event,
            done,
        );
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

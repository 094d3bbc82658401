//! librdkafka client configuration and the few blocking admin operations the backend needs.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;

/// How long a metadata, offset or admin request may take before the backend gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings every client gets: the bootstrap servers, then our defaults, then the user's
/// `backend.kafka.properties` (which win).
pub fn base(config: &KafkaConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers);
    c.set("client.id", "mqtt-integration");
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in &config.properties {
        c.set(k, v);
    }
    c
}

/// Consumer settings: offsets are committed by the backend only (never automatically), a
/// partition without a committed offset starts at the beginning (only reachable when partitions
/// are added: a new group commits the end offsets before it subscribes), and the prefetch
/// queue is bounded so that a paused group holds little memory.
pub fn consumer_config(config: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut c = base(
        config,
        &[
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("allow.auto.create.topics", "false"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            ("fetch.wait.max.ms", "100"),
            ("queued.max.messages.kbytes", "8192"),
            // librdkafka waits this long before fetching again once its queue was full (1 s by
            // default): a reader that drains 8 MiB in a few milliseconds would idle for the rest.
            ("fetch.queue.backoff.ms", "10"),
            ("statistics.interval.ms", "5000"),
            ("topic.metadata.refresh.interval.ms", "10000"),
        ],
    );
    c.set("group.id", group_id);
    c
}

/// The number of partitions of `topic`, or None when it does not exist.
pub fn partitions_of<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
) -> Result<Option<i32>, KafkaError> {
    let md = client.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if let Some(err) = t.error() {
        let code = RDKafkaErrorCode::from(err);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition
            || code == RDKafkaErrorCode::UnknownTopic
        {
            return Ok(None);
        }
        return Err(KafkaError::MetadataFetch(code));
    }
    if t.partitions().is_empty() {
        return Ok(None);
    }
    Ok(Some(t.partitions().len() as i32))
}

/// Creates `topic` with the broker's default partitions and replication; "already exists" is
/// success.
pub fn create_topic(config: &KafkaConfig, topic: &str) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base(config, &[]).create()?;
    let new = NewTopic::new(topic, -1, TopicReplication::Fixed(-1));
    let opts = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let results = block_on(admin.create_topics([&new], &opts))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::warn!(topic = %name, error = %code, "cannot create topic");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    tracing::info!(topic, "created Kafka topic");
    Ok(())
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread (the admin API is future-based; librdkafka's own
/// thread completes it).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

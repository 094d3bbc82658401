//! Opening a consumer group's consumer: a few blocking round trips to Kafka (the topic's
//! metadata, committed offsets and their owner record, the start position), run on a
//! short-lived opener thread so that the worker's other groups keep flowing meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::bell::Bell;
use super::clients::{self, REQUEST_TIMEOUT};
use super::context::GroupContext;
use super::group::{Group, GroupState};
use super::payload::LiveMessages;
use super::topic::events_topic;
use super::KafkaStats;
use crate::config::KafkaConfig;
use crate::seam::{BackendError, Claim, GroupKey, Owner, StartAt};

/// A group's consumer, opened off the worker thread.
/// What a worker makes its consumers with: the configuration, the backend's figures, and the
/// worker's bell, which a consumer rings when records arrive. Cloned to the opener threads.
#[derive(Clone)]
pub(crate) struct ConsumerSetup {
    pub config: Arc<KafkaConfig>,
    pub stats: Arc<KafkaStats>,
    pub bell: Arc<Bell>,
}

pub(crate) struct Opened {
    pub key: GroupKey,
    /// The claim the group was opened with.
    pub claim: Claim,
    pub result: Result<OpenedGroup, BackendError>,
}

pub(crate) struct OpenedGroup {
    pub group: Group,
    /// An ephemeral reader's partitions and the offsets it was assigned at.
    pub assigned_at: Option<Vec<(i32, i64)>>,
}

/// Creates the group's consumer and fixes its start position (spec 2.4) before the join is
/// answered: a durable group without committed offsets commits the current end offsets
/// (synchronously) before it subscribes; an ephemeral reader is assigned the end offsets.
///
/// A durable group's owner (issue #17) is read from its committed offsets' metadata, where every
/// commit of this service writes it: Kafka keeps it with the offsets, any process of the service
/// reads it with them (no topic of our own to provision), and it expires with them
/// (`offsets.retention.minutes`). A refused `claim` returns before subscribing, so a thief never
/// joins the Kafka group (no rebalance for the owner's process). A group without an owner record
/// (new, or created by Drogue Cloud or an older version) is adopted: all its offsets are
/// committed again with the claimant as owner.
pub(crate) fn open(
    setup: &ConsumerSetup,
    key: &GroupKey,
    app: &Arc<str>,
    claim: &Claim,
    start: StartAt,
) -> Result<OpenedGroup, BackendError> {
    let ConsumerSetup { config, stats, .. } = setup;
    let topic: Arc<str> = events_topic(app).into();
    let unavailable = |e: rdkafka::error::KafkaError| BackendError::Unavailable(e.to_string());
    let consumer = new_consumer(setup, key, &topic).map_err(unavailable)?;
    let partitions = match clients::partitions_of(consumer.client(), &topic).map_err(unavailable)? {
        Some(n) => n,
        None if config.create_topics => {
            clients::create_topic(config, &topic).map_err(unavailable)?;
            let mut found = None;
            for _ in 0..50 {
                if let Some(n) =
                    clients::partitions_of(consumer.client(), &topic).map_err(unavailable)?
                {
                    found = Some(n);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            found.ok_or_else(|| {
                BackendError::Unavailable(format!(
                    "topic `{topic}` was created but has no metadata yet"
                ))
            })?
        }
        None => {
            tracing::warn!(app = %app, topic = %topic, "no Kafka topic for this application's events (create it, or set backend.kafka.create_topics = true)");
            return Err(BackendError::UnknownStream(app.to_string()));
        }
    };
    let live = LiveMessages::default();
    let state = GroupState::new(key.clone(), app.clone(), topic.clone(), live, stats.clone());
    let high = |p: i32| {
        retrying("reading the end offset", || {
            consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
        })
        .map(|(_, high)| high)
        .map_err(unavailable)
    };
    // Spec 2.1 `start`: where a new group (or an ephemeral reader) begins in partition `p`.
    let begin = |p: i32| match start {
        StartAt::Latest => high(p),
        StartAt::Earliest => retrying("reading the first offset", || {
            consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
        })
        .map(|(low, _)| low)
        .map_err(unavailable),
        StartAt::Time(_) | StartAt::Ago(_) => {
            let at = start
                .instant(SystemTime::now())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let millis = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, p, Offset::Offset(millis))
                .map_err(unavailable)?;
            let found = retrying("looking up offsets for a time", || {
                consumer.offsets_for_times(tpl.clone(), REQUEST_TIMEOUT)
            })
            .map_err(unavailable)?;
            match found.elements().first().map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Ok(o),
                // No record at or after that time: the end.
                _ => high(p),
            }
        }
    };
    let assigned_at = match key.name() {
        Some(name) => {
            let mut all = TopicPartitionList::new();
            all.add_partition_range(&topic, 0, partitions - 1);
            let committed = retrying("reading committed offsets", || {
                consumer.committed_offsets(all.clone(), REQUEST_TIMEOUT)
            })
            .map_err(unavailable)?;
            let recorded = committed
                .elements()
                .iter()
                .find_map(|e| Owner::decode(&metadata_of(e)?));
            if let Some(owner) = &recorded {
                claim.check(key, owner)?;
            }
            let adopt = recorded.is_none();
            let owner = recorded.unwrap_or_else(|| claim.owner.clone());
            let mut start = TopicPartitionList::new();
            let mut new = 0;
            for e in committed.elements() {
                let at = match e.offset() {
                    Offset::Offset(at) if adopt => at,
                    Offset::Offset(_) => continue,
                    _ => {
                        new += 1;
                        begin(e.partition())?
                    }
                };
                start
                    .add_partition_offset(&topic, e.partition(), Offset::Offset(at))
                    .map_err(unavailable)?;
            }
            if start.count() > 0 {
                super::context::tag(&start, &owner.encode());
                retrying("committing the start position", || {
                    consumer.commit(&start, rdkafka::consumer::CommitMode::Sync)
                })
                .map_err(unavailable)?;
                if new > 0 {
                    tracing::info!(group = name, topic = %topic, partitions = new, ?start, "new consumer group's start position fixed");
                }
                if adopt {
                    tracing::info!(group = name, %owner, "consumer group without an owner record adopted by its first joiner");
                }
            }
            let _ = consumer.context().owner.set(owner);
            consumer.subscribe(&[&topic]).map_err(unavailable)?;
            None
        }
        None => {
            let mut at = Vec::with_capacity(partitions as usize);
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                let h = begin(p)?;
                at.push((p, h));
                tpl.add_partition_offset(&topic, p, Offset::Offset(h))
                    .map_err(unavailable)?;
            }
            consumer.assign(&tpl).map_err(unavailable)?;
            Some(at)
        }
    };
    Ok(OpenedGroup {
        group: Group { consumer, state },
        assigned_at,
    })
}

/// The metadata of a committed offset. rdkafka's accessor panics on metadata that is not UTF-8
/// (another program may write anything there): such metadata is no owner record of ours.
fn metadata_of(e: &rdkafka::topic_partition_list::TopicPartitionListElem<'_>) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.metadata().to_owned())).ok()
}

/// A consumer for the group `key` reading `topic`, which rings the worker's bell when records
/// arrive. Nothing is asked of Kafka yet.
pub(crate) fn new_consumer(
    setup: &ConsumerSetup,
    key: &GroupKey,
    topic: &Arc<str>,
) -> rdkafka::error::KafkaResult<BaseConsumer<GroupContext>> {
    let ConsumerSetup {
        config,
        stats,
        bell,
    } = setup;
    let ctx = GroupContext::new(key.name().map(Arc::from), topic.clone(), stats.clone());
    // librdkafka wants a group id even for `assign`; an ephemeral reader's is random and
    // never used for commits or membership.
    let ephemeral_id = format!("mqtt-integration-ephemeral-{}", uuid::Uuid::new_v4());
    let group_id = key.name().unwrap_or(&ephemeral_id);
    let mut consumer: BaseConsumer<GroupContext> =
        clients::consumer_config(config, group_id).create_with_context(ctx)?;
    let bell = bell.clone();
    consumer.set_nonempty_callback(move || bell.ring());
    Ok(consumer)
}

/// How long a group's first join keeps retrying a failing request before it gives up.
pub(crate) const OPEN_RETRY_FOR: Duration = Duration::from_secs(15);

/// Runs a request of a group's first join, retrying failures for a while: right after a topic
/// or a cluster is created, Kafka answers "coordinator not available" or "leader not available"
/// for some seconds, and such a join should wait, not fail.
fn retrying<T>(
    what: &str,
    mut request: impl FnMut() -> Result<T, rdkafka::error::KafkaError>,
) -> Result<T, rdkafka::error::KafkaError> {
    let deadline = Instant::now() + OPEN_RETRY_FOR;
    loop {
        match request() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("{what} failed, retrying: {e}");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

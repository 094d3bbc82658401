//! The command topic, read for the devices waiting on this instance (issue #15): one consumer
//! per process, assigned every partition of `kafka.command_topic` from its end (no group: no
//! offsets are committed, and every instance sees every command), offering each command to the
//! [`Inbox`] in [`Keep::OnlyWaiting`](crate::inbox::Keep::OnlyWaiting) mode. A device
//! long-polling any instance therefore gets the commands published on any other.
//!
//! Records are keyed `<app>/<device>` (spec 4), the key the producer writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::clients;
use super::codec::read_wire_headers;
use super::payload::raw_headers;
use crate::cloudevents::Event;
use crate::config::KafkaConfig;
use crate::inbox::Inbox;

/// How often the topic's partitions are looked up again (the topic may not exist yet, or gain
/// partitions).
const REFRESH: Duration = Duration::from_secs(10);
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(5);

/// The running reader; [`CommandReader::stop`] ends it.
pub(crate) struct CommandReader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl CommandReader {
    pub(crate) fn start(config: &KafkaConfig, inbox: Arc<Inbox>) -> std::io::Result<CommandReader> {
        let stop = Arc::new(AtomicBool::new(false));
        let config = config.clone();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-commands".into())
            .spawn(move || run(&config, &inbox, &stopping))?;
        Ok(CommandReader { stop, thread })
    }

    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

fn run(config: &KafkaConfig, inbox: &Inbox, stop: &AtomicBool) {
    // A group id that no other process shares; it never joins or commits (assign only).
    let group = format!("mqtt-integration-commands-{}", uuid::Uuid::new_v4());
    let consumer: BaseConsumer = match clients::consumer_config(config, &group).create() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the command topic's reader: devices waiting over HTTP get no commands through this instance");
            return;
        }
    };
    let topic = config.command_topic.as_str();
    let mut assigned = 0;
    let mut next_refresh = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if Instant::now() >= next_refresh {
            next_refresh = Instant::now() + REFRESH;
            match clients::partitions_of(consumer.client(), topic) {
                Ok(Some(n)) if n > assigned => {
                    // The new partitions, from their end as it is now (resolved here, not at the
                    // first fetch: a command produced after the log line below is read); those
                    // already read go on.
                    let mut list = TopicPartitionList::new();
                    for p in assigned..n {
                        let at = match consumer.fetch_watermarks(topic, p, WATERMARKS_TIMEOUT) {
                            Ok((_, high)) => Offset::Offset(high),
                            Err(_) => Offset::End,
                        };
                        let _ = list.add_partition_offset(topic, p, at);
                    }
                    match consumer.incremental_assign(&list) {
                        Ok(()) => {
                            tracing::info!(
                                topic,
                                partitions = n,
                                "reading the command topic for devices waiting over HTTP"
                            );
                            assigned = n;
                        }
                        Err(e) => {
                            tracing::warn!(topic, error = %e, "cannot assign the command topic's partitions; retrying")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic, error = %e, "cannot look up the command topic; retrying")
                }
            }
        }
        if assigned == 0 {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => offer(inbox, &message),
            Some(Err(e)) => tracing::debug!(topic, error = %e, "command topic read error"),
        }
    }
}

/// Hands one command record to the inbox; records that are not commands are skipped (logged).
fn offer(inbox: &Inbox, message: &BorrowedMessage<'_>) {
    let Some((app, device)) = message
        .key()
        .and_then(|k| std::str::from_utf8(k).ok())
        .and_then(|k| k.split_once('/'))
    else {
        tracing::debug!(
            offset = message.offset(),
            "command record without an `<app>/<device>` key: skipped"
        );
        return;
    };
    match event_of(message) {
        Ok(event) => {
            inbox.offer(app, device, event, Instant::now());
        }
        Err(why) => {
            tracing::info!(
                app,
                device,
                offset = message.offset(),
                "command record is not a CloudEvent, skipped: {why}"
            );
        }
    }
}

fn event_of(message: &BorrowedMessage<'_>) -> Result<Event, String> {
    let attributes = read_wire_headers(raw_headers(message)).map_err(|e| e.to_string())?;
    let payload = message.payload().unwrap_or(&[]);
    if attributes.is_structured() {
        return Event::from_structured_json(&mut payload.to_vec()).map_err(|e| e.to_string());
    }
    attributes
        .into_event(Bytes::copy_from_slice(payload))
        .map_err(|e| e.to_string())
}

//! The reaper: retired consumers are destroyed off the worker threads, once none of their
//! records is alive, after their group's last commit.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::TopicPartitionList;

use super::context::GroupContext;
use super::payload::LiveMessages;
use crate::seam::GroupKey;

/// A consumer taken out of service, dropped by the reaper once no message of it is alive.
pub(crate) struct Retired {
    pub consumer: BaseConsumer<GroupContext>,
    pub live: LiveMessages,
    /// The group's last commit (its acknowledged prefix), made by the reaper before the consumer
    /// leaves the Kafka group: a synchronous commit takes up to librdkafka's request timeout
    /// when Kafka is down, which the worker's other groups should not wait out.
    pub last_commit: Option<(GroupKey, TopicPartitionList)>,
}

/// Drops retired consumers once none of their records is alive (see [`super::payload`]);
/// polls them meanwhile so that they leave their group cleanly.
pub(crate) fn reaper(rx: Receiver<Retired>) {
    let mut waiting: Vec<Retired> = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(mut r) => {
                // Commit while still a member (a non-member's commit is refused while others
                // are in the group), then leave.
                if let Some((group, tpl)) = r.last_commit.take() {
                    if let Err(e) = r.consumer.commit(&tpl, CommitMode::Sync) {
                        tracing::warn!(%group, error = %e, "last offset commit of a group failed; its next consumer starts from the commit before (events since come again)");
                    }
                }
                r.consumer.unsubscribe();
                waiting.push(r);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Consumers wait as long as their records are in use (a session may hold one until its
        // client acknowledges it); only at shutdown are they leaked after a grace period.
        let mut i = 0;
        while i < waiting.len() {
            let _ = waiting[i].consumer.poll(Duration::ZERO);
            if waiting[i].live.count() == 0 {
                drop(waiting.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }
    // Shutdown: the shards are gone, so records are being released; wait a little, then leak
    // what is still in use rather than destroy a client under its messages.
    let deadline = Instant::now() + Duration::from_secs(2);
    for r in waiting {
        if r.live
            .wait_zero(deadline.saturating_duration_since(Instant::now()))
        {
            drop(r);
        } else {
            tracing::warn!(
                messages = r.live.count(),
                "records of a Kafka consumer are still in use at shutdown; leaking the consumer"
            );
            std::mem::forget(r.consumer);
        }
    }
}

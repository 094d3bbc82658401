//! The command stream: one log for every application, partitioned by `<app>/<device>` (the
//! Kafka command topic's key, spec 4), so commands to one device stay in order.
//!
//! Nothing inside the process consumes commands (in production a command endpoint reads the
//! Kafka topic), so this log is simple: one mutex, touched once per command, and it keeps the
//! global append order so that tests and tools can read commands back with
//! [`super::EmbeddedLog::commands_since`].

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::hash;
use super::partition::Retention;
use crate::cloudevents::Event;
use crate::seam::Record;

pub(crate) struct CommandLog {
    partitions: u32,
    /// For the whole command log (not split: partitions here only carry the key's order).
    retention: Retention,
    state: Mutex<State>,
}

struct State {
    /// In append order.
    records: VecDeque<Arc<Record>>,
    /// Sequence number (0-based, over all partitions) of `records[0]`.
    first_seq: u64,
    next_offset: Vec<u64>,
    bytes: u64,
}

impl CommandLog {
    pub(crate) fn new(partitions: u32, retention: Retention) -> CommandLog {
        CommandLog {
            partitions,
            retention,
            state: Mutex::new(State {
                records: VecDeque::new(),
                first_seq: 0,
                next_offset: vec![0; partitions as usize],
                bytes: 0,
            }),
        }
    }

    /// Appends a command; returns its (partition, offset).
    pub(crate) fn append(&self, app: &str, device: &str, event: Event) -> (u32, u64) {
        let partition = hash::partition_of(Some(&format!("{app}/{device}")), self.partitions);
        let mut st = self.state.lock();
        let offset = st.next_offset.get(partition as usize).copied().unwrap_or(0);
        if let Some(next) = st.next_offset.get_mut(partition as usize) {
            *next = offset + 1;
        }
        let record = Arc::new(Record::new(event, partition, offset));
        st.bytes += record.footprint();
        st.records.push_back(record);
        while st.records.len() > 1 && self.exceeded(&st) {
            if let Some(old) = st.records.pop_front() {
                st.first_seq += 1;
                st.bytes = st.bytes.saturating_sub(old.footprint());
            }
        }
        (partition, offset)
    }

    fn exceeded(&self, st: &State) -> bool {
        let r = self.retention;
        (r.events != 0 && st.records.len() as u64 > r.events)
            || (r.bytes != 0 && st.bytes > r.bytes)
    }

    /// Commands from the `from`-th ever appended (0-based) on, in append order; those dropped
    /// by retention are left out.
    pub(crate) fn since(&self, from: usize) -> Vec<Arc<Record>> {
        let st = self.state.lock();
        let skip =
            usize::try_from((from as u64).saturating_sub(st.first_seq)).unwrap_or(usize::MAX);
        st.records.iter().skip(skip).cloned().collect()
    }

    /// How many commands were ever appended.
    pub(crate) fn appended(&self) -> usize {
        let st = self.state.lock();
        usize::try_from(st.first_seq).unwrap_or(usize::MAX) + st.records.len()
    }
}

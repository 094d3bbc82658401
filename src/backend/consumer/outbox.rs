//! Deliveries collected during one dispatch pass, one batch per shard.
//!
//! A worker sends at most one [`ToShard::Deliveries`] per shard per pass (one channel message and
//! one wake-up for the shard, however many events), through the unbounded seam channel, so the
//! worker never blocks on a shard.

use crate::seam::{Delivery, ShardLink, ToShard};

#[derive(Default)]
pub(crate) struct Outbox {
    batches: Vec<(u16, ShardLink, Vec<Delivery>)>,
    /// Index of the batch used last: consecutive deliveries mostly go to the same shard.
    last: usize,
    /// The largest batch of the last flush: a new batch starts with that capacity, instead of
    /// growing (reallocating and moving every delivery) from nothing each pass.
    hint: usize,
}

impl Outbox {
    pub(crate) fn push(&mut self, link: &ShardLink, delivery: Delivery) {
        let shard = delivery.conn.shard;
        let index = match self.batches.get(self.last) {
            Some((s, _, _)) if *s == shard => self.last,
            _ => match self.batches.iter().position(|(s, _, _)| *s == shard) {
                Some(i) => i,
                None => {
                    let batch = Vec::with_capacity(self.hint);
                    self.batches.push((shard, link.clone(), batch));
                    self.batches.len() - 1
                }
            },
        };
        self.last = index;
        self.batches[index].2.push(delivery);
    }

    /// Sends every batch; returns how many deliveries went out.
    pub(crate) fn flush(&mut self) -> usize {
        let mut sent = 0;
        let mut largest = 0;
        for (_, link, deliveries) in self.batches.drain(..) {
            sent += deliveries.len();
            largest = largest.max(deliveries.len());
            link.send(ToShard::Deliveries(deliveries));
        }
        self.last = 0;
        if sent > 0 {
            self.hint = largest;
        }
        sent
    }
}

//! Heartbeats of the shards' event loops, so the systemd watchdog reports the loops' own
//! liveness rather than that of a timer thread that would keep ticking beside a stuck loop.
//!
//! Each loop calls [`Liveness::beat`] once per turn (at least every tick, 250 ms, when idle); a
//! beat is one relaxed atomic store. [`Liveness::stale`] names a loop whose last beat is older
//! than the allowed age.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Debug builds only: `MQTT_INTEGRATION_TEST_STALL_SHARD_AFTER=<duration>` makes shard 0's loop
/// hang that long after start-up (the watchdog test's stuck loop). Ignored in release builds.
pub const STALL_ENV: &str = "MQTT_INTEGRATION_TEST_STALL_SHARD_AFTER";

pub struct Liveness {
    start: Instant,
    /// Milliseconds since `start` of each shard's last beat.
    beats: Box<[AtomicU64]>,
    stall_after: Option<Duration>,
}

impl Liveness {
    pub fn new(shards: usize) -> Liveness {
        let stall_after = if cfg!(debug_assertions) {
            std::env::var(STALL_ENV)
                .ok()
                .and_then(|v| humantime::parse_duration(&v).ok())
        } else {
            None
        };
        Liveness {
            start: Instant::now(),
            beats: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            stall_after,
        }
    }

    /// Records that `shard`'s loop completed a turn now.
    pub fn beat(&self, shard: usize) {
        let now = self.start.elapsed();
        if let Some(slot) = self.beats.get(shard) {
            slot.store(now.as_millis() as u64, Ordering::Relaxed);
        }
        if shard == 0 && self.stall_after.is_some_and(|after| now >= after) {
            tracing::warn!(
                shard,
                "{STALL_ENV} is set: this event loop now hangs (test hook)"
            );
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    /// The first shard whose last beat is older than `max_age`, if any.
    pub fn stale(&self, max_age: Duration) -> Option<usize> {
        let now = self.start.elapsed().as_millis() as u64;
        let max = max_age.as_millis() as u64;
        self.beats
            .iter()
            .position(|b| now.saturating_sub(b.load(Ordering::Relaxed)) > max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_named() {
        let l = Liveness::new(2);
        l.beat(0);
        l.beat(1);
        assert_eq!(l.stale(Duration::from_secs(5)), None);
        std::thread::sleep(Duration::from_millis(60));
        l.beat(0);
        assert_eq!(l.stale(Duration::from_millis(30)), Some(1));
    }
}

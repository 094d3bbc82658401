//! The primitives behind the figures: counters and gauges on cache lines of their own, and the
//! fixed-bucket histogram of the log's fdatasyncs.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// fdatasyncs of the on-disk log, timed where they happen (the store knows no [`Metrics`]):
/// process-wide, like the log itself.
pub(super) static LOG_FSYNC: Histogram = Histogram::new();

/// Counts one fdatasync of the embedded log that took `took`.
pub fn observe_log_fsync(took: std::time::Duration) {
    LOG_FSYNC.observe(took);
}

/// A histogram with fixed buckets, in seconds.
pub(super) struct Histogram {
    /// Observations at or below each bound of [`Histogram::BOUNDS`].
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const BOUNDS: [f64; 12] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ];

    pub(super) const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; 12],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(super) fn observe(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = Self::BOUNDS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    pub(super) fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in Self::BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// An atomic number on its own cache line, so that hot figures bumped by different shard
/// threads do not slow each other down by sharing one.
macro_rules! cell {
    ($(#[$doc:meta])* $name:ident($atomic:ty, $int:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        #[repr(align(64))]
        pub(super) struct $name(pub(super) $atomic);

        impl $name {
            pub(super) const fn new() -> $name {
                $name(<$atomic>::new(0))
            }

            pub(super) fn add(&self, n: $int) {
                self.0.fetch_add(n, Relaxed);
            }

            pub(super) fn value(&self) -> i128 {
                i128::from(self.0.load(Relaxed))
            }
        }
    };
}

cell! {
    /// A monotonic counter.
    Counter(AtomicU64, u64)
}

cell! {
    /// A gauge that goes up and down.
    Gauge(AtomicI64, i64)
}

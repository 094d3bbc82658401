//! The disk store (src/backend/embedded/store): appends of 256-byte records in batches of 1, 10
//! and 100 under each durability mode (with `Always`, one fdatasync per batch: the cost of
//! fsync on this disk), sequential reads from the page cache, and open (recovery) time of a log
//! of one million records. The logs live in a temporary directory under the target directory,
//! on the same disk as a real deployment's `data`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mqtt_integration::backend::embedded::disk::{Durability, Log, Options, RecordIn};

const VALUE: [u8; 256] = [0x5A; 256];
const KEY: &[u8] = b"d-0042";

fn temp_dir() -> tempfile::TempDir {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn records(n: usize) -> Vec<RecordIn<'static>> {
    (0..n)
        .map(|i| RecordIn {
            timestamp: 1_700_000_000_000 + i as u64,
            key: KEY,
            value: &VALUE,
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_append");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);
    let modes = [
        ("always", Durability::Always),
        (
            "interval_200ms",
            Durability::Interval(Duration::from_millis(200)),
        ),
        ("never", Durability::Never),
    ];
    for (name, durability) in modes {
        for batch in [1usize, 10, 100] {
            let dir = temp_dir();
            let mut log = Log::open(
                dir.path(),
                Options {
                    durability,
                    ..Options::default()
                },
            )
            .unwrap();
            let batch_records = records(batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::new(name, batch), |b| {
                b.iter(|| {
                    log.append(&batch_records).unwrap();
                    if durability == Durability::Always {
                        log.sync().unwrap();
                    }
                    // Bounded disk use: whole segments go once past 256 MiB.
                    if log.size_bytes() > 256 << 20 {
                        log.apply_retention(0, Some(128 << 20), None).unwrap();
                    }
                })
            });
        }
    }
    group.finish();
}

/// A log of `n` 256-byte records in batches of 100, written without fsync.
fn filled(n: usize) -> (tempfile::TempDir, Options) {
    let dir = temp_dir();
    let options = Options {
        durability: Durability::Never,
        ..Options::default()
    };
    let mut log = Log::open(dir.path(), options.clone()).unwrap();
    let batch = records(100);
    for _ in 0..n / 100 {
        log.append(&batch).unwrap();
    }
    (dir, options)
}

fn read(c: &mut Criterion) {
    let (dir, options) = filled(200_000);
    let log = Log::open(dir.path(), options).unwrap();
    let end = log.latest();
    let mut group = c.benchmark_group("store_read");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    // Bytes of keys and values per call, as a consumer asking for 1 MiB at a time.
    group.throughput(Throughput::Bytes(1 << 20));
    let mut from = 0;
    group.bench_function("sequential_1MiB", |b| {
        b.iter(|| {
            let got = log.read(from, 1 << 20).unwrap();
            from = got.last().map_or(0, |r| r.offset + 1);
            if from >= end {
                from = 0;
            }
            got.len()
        })
    });
    group.finish();
}

fn open(c: &mut Criterion) {
    let (dir, options) = filled(1_000_000);
    let mut group = c.benchmark_group("store_open");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("recover_1M_records", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Log::open(dir.path(), options.clone()).unwrap();
                total += start.elapsed();
                assert_eq!(log.latest(), 1_000_000);
            }
            total
        })
    });
    group.finish();
    // Memory does not grow with what is retained: open the million-record log and read it all,
    // then compare the process's anonymous memory with before.
    let before = rss_anon_kib();
    let log = Log::open(dir.path(), options).unwrap();
    let mut from = 0;
    let mut n = 0;
    loop {
        let got = log.read(from, 1 << 20).unwrap();
        let Some(last) = got.last() else { break };
        from = last.offset + 1;
        n += got.len();
    }
    let after = rss_anon_kib();
    eprintln!(
        "store_open: {n} records ({} MiB in {} segments) opened and read: RssAnon {before} KiB -> {after} KiB",
        log.size_bytes() >> 20,
        log.segment_count()
    );
}

fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

criterion_group!(benches, append, read, open);
criterion_main!(benches);

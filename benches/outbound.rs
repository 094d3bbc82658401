//! Copy or share? What it costs to queue PUBLISH payloads for a vectored write, by copying them
//! into the connection's tail buffer or by queuing the shared `Bytes` as its own iovec.
//! Sets `session::outbound::ZERO_COPY_THRESHOLD`.
//!
//! Each iteration queues 64 packets (a 40-byte header plus the payload), writes them with
//! `write_vectored` into a Unix socket drained by another thread, and consumes what was written:
//! the kernel's copy is in both variants, so the difference is the user-space part.

use std::io::{IoSlice, Read, Write};
use std::os::unix::net::UnixStream;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mqtt_integration::session::OutQueue;

const PACKETS: usize = 64;

fn drain(mut rx: UnixStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n) = rx.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
}

fn run(q: &mut OutQueue, tx: &mut UnixStream, payload: &Bytes, share: bool) {
    let header = [0x30u8; 40];
    for _ in 0..PACKETS {
        q.tail().extend_from_slice(&header);
        q.commit_tail(header.len());
        if share {
            q.push_shared(payload);
        } else {
            q.push_copy(payload);
        }
        q.charge_here(1);
    }
    while !q.is_empty() {
        let mut slices = [IoSlice::new(&[]); 64];
        let n = q.io_slices(&mut slices);
        let written = tx
            .write_vectored(&slices[..n])
            .expect("write to the drain socket");
        q.consume(written);
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_64_publishes");
    for size in [64usize, 256, 1024, 4096, 16384] {
        let payload = Bytes::from(vec![7u8; size]);
        group.throughput(Throughput::Bytes((size * PACKETS) as u64));
        for (name, share) in [("copy", false), ("share", true)] {
            let (mut tx, rx) = UnixStream::pair().expect("socketpair");
            drain(rx);
            let mut q = OutQueue::default();
            group.bench_with_input(BenchmarkId::new(name, size), &payload, |b, p| {
                b.iter(|| run(&mut q, &mut tx, p, share))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

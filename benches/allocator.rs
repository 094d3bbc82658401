//! Whether the binary should use mimalloc: the allocation pattern of the delivery path, with
//! glibc's malloc (`System`) and with mimalloc, through the same `GlobalAlloc` calls. (It does
//! not: mimalloc wins here by 3.5x, but held 0.5-0.9 KiB more RSS per idle connection in
//! `loadtest idle`, and the end-to-end throughput difference was within this machine's noise;
//! see README, Performance.)
//!
//! A backend thread decodes a record into a dozen small allocations (attribute strings, the
//! event, the shared record) and hands batches to a shard thread, which frees them after the
//! write. Frees therefore happen on another thread than the allocations: the case where glibc
//! takes arena locks and consolidates, and mimalloc defers the free to the owning heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::thread;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_channel::bounded;
use mimalloc::MiMalloc;

/// Sizes of one decoded Kafka record's allocations (binary mode, Drogue headers): id, source,
/// type, subject, time, content type, 5 extensions (name + value), the extension vector, the
/// event inside its `Arc<Record>`, the payload owner.
const RECORD: [usize; 18] = [
    36, 24, 24, 8, 30, 16, 11, 8, 8, 8, 6, 7, 9, 24, 6, 160, 320, 48,
];
const BATCH: usize = 256;
const RECORDS: usize = 20_000;

struct Ptrs(Vec<(usize, usize)>);

fn run<A: GlobalAlloc + Sync>(alloc: &'static A) {
    let (tx, rx) = bounded::<Ptrs>(64);
    let shard = thread::spawn(move || {
        for batch in rx {
            for (ptr, size) in batch.0 {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: allocated below with this layout by the same allocator.
                unsafe { alloc.dealloc(ptr as *mut u8, layout) };
            }
        }
    });
    let mut batch = Vec::with_capacity(BATCH * RECORD.len());
    for i in 0..RECORDS {
        for &size in &RECORD {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size; freed by the shard thread with the same layout.
            let ptr = unsafe { alloc.alloc(layout) };
            assert!(!ptr.is_null());
            // SAFETY: freshly allocated, `size` bytes (what the decoder does: write into it).
            unsafe { ptr.write_bytes(i as u8, size) };
            batch.push((ptr as usize, size));
        }
        if (i + 1) % BATCH == 0 {
            tx.send(Ptrs(std::mem::replace(
                &mut batch,
                Vec::with_capacity(BATCH * RECORD.len()),
            )))
            .unwrap();
        }
    }
    tx.send(Ptrs(batch)).unwrap();
    drop(tx);
    shard.join().unwrap();
}

static SYSTEM: System = System;
static MIMALLOC: MiMalloc = MiMalloc;

fn allocators(c: &mut Criterion) {
    let mut g = c.benchmark_group("records allocated on one thread, freed on another");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("glibc malloc (System)", |b| b.iter(|| run(&SYSTEM)));
    g.bench_function("mimalloc", |b| b.iter(|| run(&MIMALLOC)));
    g.finish();
}

criterion_group!(benches, allocators);
criterion_main!(benches);

//! How much heap a retained event holds. The embedded log keeps every event (with the encodings
//! its deliveries cached on it) until `retention_bytes` is reached, so each byte of slack here is
//! RSS times the number of retained events. At 0b5cd67 a 256-byte JSON event held ~3.6 KiB
//! (massif: a structured encoding sized for base64 and then doubled, simd-json's 1 KiB output
//! buffer kept for the data, a dozen small attribute strings); trimmed, it holds about a third
//! of that. This counts the bytes live on the heap per record through a counting allocator
//! (this test binary only) and fails if the slack comes back.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use mqtt_integration::cloudevents::{parse_batch, BatchContext};
use mqtt_integration::seam::Record;

/// `System`, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `n` events as the HTTP batch ingest receives them: device, channel, JSON content type and
/// 256 bytes of JSON data; id, time, type and source are filled in by the parser.
fn batch(n: usize) -> Vec<u8> {
    let mut data = br#"{"temp":21.5,"hum":48,"battery":97,"pad":""#.to_vec();
    data.resize(254, b'x');
    data.extend_from_slice(b"\"}");
    let data = String::from_utf8(data).unwrap();
    let element = format!(
        r#"{{"device":"device-0042","sender":"gateway-7","application":"my-app","partitionkey":"my-app/device-0042","instance":"mqtt-integration-0","subject":"sensors/environment","datacontenttype":"application/json","data":{data}}}"#
    );
    format!("[{}]", vec![element; n].join(",")).into_bytes()
}

#[test]
fn a_retained_event_holds_no_slack() {
    const N: usize = 2_000;
    let body = batch(N);
    let ok = |_: &str| Ok(());
    let ctx = BatchContext {
        app: "my-app",
        instance: "mqtt-integration-0",
        now: std::time::SystemTime::now(),
        check_device: &ok,
    };
    let before = LIVE.load(Ordering::Relaxed);
    let records: Vec<Record> = parse_batch(&body, &ctx)
        .expect("the batch parses")
        .into_iter()
        .enumerate()
        .map(|(offset, event)| Record::new(event, 0, offset as u64))
        .collect();
    for record in &records {
        // What a structured and a binary-mode subscriber make the record cache.
        assert!(!record.structured().is_empty());
        assert!(!record.binary_properties().is_empty());
    }
    let after = LIVE.load(Ordering::Relaxed);
    // The records' own structs are in the vector here (in the log, each in its `Arc`).
    let heap = (after - before) as usize - records.capacity() * std::mem::size_of::<Record>();
    let per_record = std::mem::size_of::<Record>() + heap / N;
    let r = &records[0];
    let (structured, properties) = (r.structured().len(), r.binary_properties().len());
    // What must be there: the struct, the data, both encodings. Besides them: the extension
    // vector (~300), the id and the time (~60).
    let floor = std::mem::size_of::<Record>() + r.event.data.len() + structured + properties;
    println!(
        "per retained record: {per_record} bytes (struct {}, data {}, structured {structured}, properties {properties})",
        std::mem::size_of::<Record>(),
        r.event.data.len()
    );
    assert!(
        per_record <= floor + 600,
        "a retained record holds {per_record} bytes, {} more than its struct, data and encodings ({floor}): a buffer kept its slack",
        per_record - floor
    );
}

//! The event data the rig sends: JSON that ends with a fixed-width marker carrying the producer,
//! its sequence number and the send time, so a subscriber finds them by looking at the last bytes
//! of a payload (structured mode puts `data` last; binary mode and plain brokers deliver the data
//! as it is) without parsing or allocating.
//!
//! Layout of `size` bytes: `{"pad":"xx…x","m":"PPPPSSSSSSSSSSSSTTTTTTTTTTTTTTTT"}` — producer
//! (4 digits), sequence (12 digits), send time in µs since the Unix epoch (16 digits). Strings,
//! not numbers: JSON numbers may not have leading zeros, and the service checks JSON data.

use std::time::{SystemTime, UNIX_EPOCH};

const HEAD: &[u8] = b"{\"pad\":\"";
const MARK: &[u8] = b"\",\"m\":\"";
const TAIL: &[u8] = b"\"}";
const DIGITS: usize = 4 + 12 + 16;
/// Smallest payload that holds the marker.
pub const MIN_SIZE: usize = HEAD.len() + MARK.len() + DIGITS + TAIL.len();
/// How far from the end of a delivered payload the marker may start (structured mode appends
/// the closing `}` of the event after the data).
const SEARCH_BACK: usize = MIN_SIZE + 16;

/// A payload template; [`Template::stamp`] writes the marker in place.
pub struct Template {
    bytes: Vec<u8>,
    digits_at: usize,
}

/// What a delivered payload's marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer: u32,
    pub seq: u64,
    pub sent_us: u64,
}

impl Template {
    pub fn new(size: usize) -> Template {
        let size = size.max(MIN_SIZE);
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(HEAD);
        bytes.resize(size - MARK.len() - DIGITS - TAIL.len(), b'x');
        bytes.extend_from_slice(MARK);
        let digits_at = bytes.len();
        bytes.resize(digits_at + DIGITS, b'0');
        bytes.extend_from_slice(TAIL);
        Template { bytes, digits_at }
    }

    /// The payload for `producer`'s event `seq` sent at `sent_us`.
    pub fn stamp(&mut self, producer: u32, seq: u64, sent_us: u64) -> &[u8] {
        let d = &mut self.bytes[self.digits_at..self.digits_at + DIGITS];
        write_digits(&mut d[..4], u64::from(producer));
        write_digits(&mut d[4..16], seq);
        write_digits(&mut d[16..], sent_us);
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

fn write_digits(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn read_digits(d: &[u8]) -> Option<u64> {
    d.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Finds the marker near the end of a delivered payload.
pub fn find(payload: &[u8]) -> Option<Marker> {
    let from = payload.len().saturating_sub(SEARCH_BACK);
    let tail = &payload[from..];
    let at = tail.windows(MARK.len()).rposition(|w| w == MARK)? + MARK.len();
    let d = tail.get(at..at + DIGITS)?;
    Some(Marker {
        producer: read_digits(&d[..4])? as u32,
        seq: read_digits(&d[4..16])?,
        sent_us: read_digits(&d[16..])?,
    })
}

/// Finds the marker of `data_len` bytes of data carried base64-encoded at the end of a
/// structured event (`…,"data_base64":"<base64>"}`): decodes only the last few base64 groups.
pub fn find_base64(payload: &[u8], data_len: usize) -> Option<Marker> {
    use base64::Engine;
    let b64_len = data_len.div_ceil(3) * 4;
    let end = payload.len().checked_sub(2)?;
    let start = end.checked_sub(b64_len)?;
    // The last 32 groups (96 data bytes) hold the marker.
    let groups = (b64_len / 4).min(32);
    let from = end - groups * 4;
    debug_assert!(from >= start);
    let mut out = [0u8; 96];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(&payload[from..end], &mut out)
        .ok()?;
    find(&out[..n])
}

/// Microseconds since the Unix epoch (the clock both ends of a loopback test share).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_finds_the_marker_in_json_and_inside_a_structured_event() {
        let mut t = Template::new(256);
        let p = t.stamp(3, 42, 1_764_340_000_123_456).to_vec();
        assert_eq!(p.len(), 256);
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert!(v["pad"].is_string());
        let m = Marker {
            producer: 3,
            seq: 42,
            sent_us: 1_764_340_000_123_456,
        };
        assert_eq!(find(&p), Some(m));
        let mut event = br#"{"specversion":"1.0","id":"x","data":"#.to_vec();
        event.extend_from_slice(&p);
        event.push(b'}');
        assert_eq!(find(&event), Some(m));
        assert_eq!(find(b"{}"), None);
        use base64::Engine;
        for size in [256, 257, 258, 4096] {
            let mut t = Template::new(size);
            let data = t.stamp(3, 42, 1_764_340_000_123_456).to_vec();
            let mut event = br#"{"id":"x","data_base64":""#.to_vec();
            event.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(&data)
                    .as_bytes(),
            );
            event.extend_from_slice(b"\"}");
            assert_eq!(find(&event), None);
            assert_eq!(find_base64(&event, size), Some(m), "size {size}");
        }
        assert_eq!(Template::new(1).len(), MIN_SIZE);
    }
}

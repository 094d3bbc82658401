//! Stable partitioning: FNV-1a over the key, so a device maps to the same partition in every
//! process and on every run (order is kept per device because it is kept per partition, spec 2.4).

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a, 64 bit.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The partition of `key` among `partitions`; events without a key (no `device` extension) go
/// to partition 0.
pub(crate) fn partition_of(key: Option<&str>, partitions: u32) -> u32 {
    match key {
        // `partitions` is at least 1 (checked at start), and the remainder fits in u32.
        Some(k) if partitions > 1 => (fnv1a(k.as_bytes()) % u64::from(partitions)) as u32,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_in_range() {
        // Reference values of FNV-1a 64: "" is the offset basis, "a" is well known.
        assert_eq!(fnv1a(b""), OFFSET_BASIS);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        for d in ["d1", "d2", "device-with-a-long-name"] {
            let p = partition_of(Some(d), 8);
            assert!(p < 8);
            assert_eq!(p, partition_of(Some(d), 8));
        }
        assert_eq!(partition_of(None, 8), 0);
        assert_eq!(partition_of(Some("d1"), 1), 0);
    }
}

//! The committed-offsets file: round trip, and torn at every byte.

use super::*;

#[test]
fn offsets_file_round_trip_and_torn_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offsets");
    let (file, loaded, _) = OffsetsFile::open(&path).unwrap();
    assert!(loaded.is_empty());
    let offsets = sample_offsets();
    file.save(&offsets).unwrap();
    assert!(!dir.path().join("offsets.tmp").exists());
    let (_, loaded, repair) = OffsetsFile::open(&path).unwrap();
    assert_eq!(loaded, offsets);
    assert_eq!(repair.bytes_dropped, 0);

    let bytes = std::fs::read(&path).unwrap();
    let entries: Vec<(String, String)> = offsets
        .iter()
        .flat_map(|(g, owners)| owners.keys().map(move |o| (g.clone(), o.clone())))
        .collect();
    // Where each entry ends.
    let mut ends = Vec::new();
    let mut pos = 8;
    while pos < bytes.len() {
        pos += 4 + batch::u32_at(&bytes, pos) as usize;
        ends.push(pos);
    }
    assert_eq!(ends.len(), entries.len());
    for len in 0..=bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let (_, loaded, repair) =
            OffsetsFile::open(&path).unwrap_or_else(|e| panic!("torn at {len}: {e}"));
        let whole = ends.iter().filter(|&&e| e <= len).count();
        let mut expected = CommittedOffsets::new();
        for (g, o) in &entries[..whole] {
            expected
                .entry(g.clone())
                .or_default()
                .insert(o.clone(), offsets[g][o].clone());
        }
        assert_eq!(loaded, expected, "torn at {len}");
        let good = match whole {
            0 if len < 8 => 0,
            0 => 8,
            n => ends[n - 1],
        };
        assert_eq!(repair.bytes_dropped, (len - good) as u64, "torn at {len}");
        // The repair is on disk: loading again drops nothing more.
        let (_, again, repair2) = OffsetsFile::open(&path).unwrap();
        assert_eq!(again, expected, "torn at {len}, reloaded");
        assert_eq!(repair2.bytes_dropped, 0, "torn at {len}, reloaded");
    }

    // Not an offsets file at all.
    std::fs::write(&path, b"{\"group\": 1}").unwrap();
    let e = OffsetsFile::open(&path).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("offsets"), "{e}");
}

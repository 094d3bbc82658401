//! The fuzz targets (`fuzz/`) over their committed corpus, on stable, in every test run: the
//! seeds (spec examples, client conversations) and every input a fuzz run ever saved there.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus for {target}");
    files
}

/// Every input, and every prefix of it (truncated packets are a favourite of attackers).
fn run(target: &str, f: fn(&[u8])) {
    for (name, data) in corpus(target) {
        for end in 0..=data.len() {
            let input = &data[..end];
            if std::panic::catch_unwind(|| f(input)).is_err() {
                panic!("{target}: input {name} truncated to {end} bytes panicked");
            }
        }
    }
}

#[test]
fn decode_corpus() {
    run("decode", mqtt_integration::fuzzing::decode);
}

#[test]
fn session_corpus() {
    run("session", mqtt_integration::fuzzing::session);
}

#[test]
fn websocket_corpus() {
    run("websocket", mqtt_integration::fuzzing::websocket);
}

#[test]
fn kafka_record_corpus() {
    run("kafka_record", mqtt_integration::fuzzing::kafka_record);
}

#[test]
fn log_recovery_corpus() {
    run("log_recovery", mqtt_integration::fuzzing::log_recovery);
}

//! Compiles `src/backend/kafka/raw_headers.c` against the librdkafka tree rdkafka-sys built
//! (it reads a field of librdkafka's internal message struct; see that file for why).

fn main() {
    println!("cargo:rerun-if-changed=src/backend/kafka/raw_headers.c");
    println!("cargo:rerun-if-env-changed=DEP_RDKAFKA_ROOT");
    // rdkafka-sys (`links = "rdkafka"`) exports the directory it configured and built
    // librdkafka in as `cargo:root`.
    let root = std::env::var("DEP_RDKAFKA_ROOT").expect(
        "DEP_RDKAFKA_ROOT is not set: rdkafka-sys must build librdkafka from its bundled source \
         (the default; not `dynamic-linking` or `cmake-build`)",
    );
    cc::Build::new()
        .file("src/backend/kafka/raw_headers.c")
        .include(format!("{root}/src"))
        .include(&root)
        .warnings(false)
        .compile("mqtt_integration_raw_headers");
}

//! Placeholder; the store benchmarks come in the next commit.
fn main() {}

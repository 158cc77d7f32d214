//! Criterion benchmarks for `Queue` (placeholder until the bench lands).
fn main() {}

//! `parquet_encode/{1k,10k}`: validated samples to one archive Parquet file
//! (sort by miner and time, Arrow arrays, zstd). Bytes counted: Parquet
//! bytes produced. One thread, so rows/s is per core.

use adit_benches::{gunzip, parse, sweep};
use adit_types::Sample;
use adit_writer::archive::parquet;
use criterion::{criterion_group, criterion_main, Criterion};

fn parquet_encode(c: &mut Criterion) {
    sweep(
        c,
        "parquet_encode",
        |upload| {
            let samples = parse(&gunzip(&upload.gzip)).samples;
            let refs: Vec<&Sample> = samples.iter().collect();
            let bytes = parquet::encode(&refs).expect("encodes").len() as u64;
            (samples, bytes)
        },
        |samples| {
            let refs: Vec<&Sample> = samples.iter().collect();
            parquet::encode(&refs).expect("encodes").len()
        },
    );
}

criterion_group! {
    name = benches;
    config = adit_benches::config();
    targets = parquet_encode
}
criterion_main!(benches);

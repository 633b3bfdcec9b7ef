//! `parquet_encode/{1k,10k}`: validated samples to one archive Parquet file
//! (sort by miner and time, Arrow arrays, zstd). Bytes counted: Parquet
//! bytes produced. One thread, so rows/s is per core.
//!
//! `parquet_encode/part_15x1k`: what the archiver writes while ingest runs,
//! one site-day part of 15 uploads of the same 1,000 miners, each parsed on
//! its own (so the samples lie where the parser left them, and the sort by
//! miner jumps between uploads as it does in the server).

use std::hint::black_box;

use adit_archive::parquet;
use adit_benches::{gunzip, gzip, parse, sweep, COLLECT_INTERVAL_S, FLEET_SEED, SITE_ID};
use adit_load::fleet::Fleet;
use adit_types::Sample;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

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

/// Uploads per part and miners per upload in `parquet_encode/part_15x1k`.
const PART_UPLOADS: usize = 15;
const PART_MINERS: usize = 1_000;

fn parquet_part(c: &mut Criterion) {
    let mut fleet = Fleet::new(SITE_ID, PART_MINERS, FLEET_SEED);
    let uploads: Vec<Vec<Sample>> = (0..PART_UPLOADS)
        .map(|_| {
            parse(&gunzip(&gzip(
                &fleet.collect_json(None, COLLECT_INTERVAL_S),
            )))
            .samples
        })
        .collect();
    let refs: Vec<&Sample> = uploads.iter().flatten().collect();
    let bytes = parquet::encode(&refs).expect("encodes").len() as u64;
    let mut group = c.benchmark_group("parquet_encode");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::ElementsAndBytes {
        elements: refs.len() as u64,
        bytes,
    });
    group.bench_function("part_15x1k", |b| {
        b.iter(|| black_box(parquet::encode(&refs).expect("encodes").len()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = adit_benches::config();
    targets = parquet_encode, parquet_part
}
criterion_main!(benches);

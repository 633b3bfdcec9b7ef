//! `copy_encode/{1k,10k}`: validated samples to one binary COPY stream in
//! a reused buffer. Bytes counted: COPY bytes produced.

use adit_benches::{encode_copy, gunzip, parse, sweep};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};

fn copy_encode(c: &mut Criterion) {
    sweep(
        c,
        "copy_encode",
        |upload| {
            let samples = parse(&gunzip(&upload.gzip)).samples;
            let mut buf = BytesMut::new();
            encode_copy(&mut buf, &samples);
            let copy_bytes = buf.len() as u64;
            ((samples, buf), copy_bytes)
        },
        |(samples, buf)| {
            encode_copy(buf, samples);
            buf.len()
        },
    );
}

criterion_group! {
    name = benches;
    config = adit_benches::config();
    targets = copy_encode
}
criterion_main!(benches);

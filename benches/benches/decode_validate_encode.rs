//! `decode_validate_encode/{1k,10k}`: the whole front-door CPU path of one
//! upload (gunzip, parse and validate, COPY-encode), the figure that bounds
//! the front-door rate per core. Bytes counted: compressed (wire) bytes.

use adit_benches::{front_door, now_micros, sweep};
use adit_ingest::validate::Rules;
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};

fn decode_validate_encode(c: &mut Criterion) {
    let rules = Rules::default();
    let now = now_micros();
    sweep(
        c,
        "decode_validate_encode",
        |upload| {
            let wire = upload.gzip.len() as u64;
            ((upload.gzip.clone(), BytesMut::new()), wire)
        },
        |(body, buf)| front_door(body, &rules, now, buf),
    );
}

criterion_group! {
    name = benches;
    config = adit_benches::config();
    targets = decode_validate_encode
}
criterion_main!(benches);

//! `parse_validate/{1k,10k}`: a decoded JSON body to typed, validated
//! samples with the default rules. Bytes counted: JSON bytes.

use adit_benches::{now_micros, sweep};
use adit_ingest::validate::{parse_batch, Rules};
use criterion::{criterion_group, criterion_main, Criterion};

fn parse_validate(c: &mut Criterion) {
    let rules = Rules::default();
    let now = now_micros();
    sweep(
        c,
        "parse_validate",
        |upload| {
            let len = upload.json.len() as u64;
            (upload.json.clone(), len)
        },
        |json| {
            let parsed = parse_batch(json, &rules, now).expect("a valid batch");
            parsed.samples.len()
        },
    );
}

criterion_group! {
    name = benches;
    config = adit_benches::config();
    targets = parse_validate
}
criterion_main!(benches);

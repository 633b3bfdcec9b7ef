//! `gzip_decode/{1k,10k}`: inflating a gzip upload body under the server's
//! decompressed-size limit. Bytes counted: compressed (wire) bytes.

use adit_benches::{gunzip, sweep};
use criterion::{criterion_group, criterion_main, Criterion};

fn gzip_decode(c: &mut Criterion) {
    sweep(
        c,
        "gzip_decode",
        |upload| {
            let wire = upload.gzip.len() as u64;
            (upload.gzip.clone(), wire)
        },
        |body| gunzip(body),
    );
}

criterion_group! {
    name = benches;
    config = adit_benches::config();
    targets = gzip_decode
}
criterion_main!(benches);

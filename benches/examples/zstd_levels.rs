//! Archive file size and encode time per zstd level, for choosing the
//! level: `cargo run --release -p adit-benches --example zstd_levels --
//! <out dir>` writes `level-<n>-<rows>.parquet` for a site's fleet of 1,000
//! miners over 15 and 60 rounds (the shape of an archive part), to compare
//! with what DuckDB writes for the same rows (`scripts/zstd-vs-duckdb.py`).

use std::time::Instant;

use adit_archive::parquet;
use adit_benches::{now_micros, parse};
use adit_load::fleet::Fleet;
use adit_types::Sample;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/zstd-levels".into());
    std::fs::create_dir_all(&out).expect("output directory");
    for rounds in [15, 60] {
        let mut fleet = Fleet::new(1, 1000, 7);
        let mut samples: Vec<Sample> = Vec::new();
        let start = now_micros() / 1_000_000 - 3600 * 6;
        for r in 0..rounds {
            let body = fleet.collect_json(Some(start + 60 * r), 60);
            samples.extend(parse(&body).samples);
        }
        let refs: Vec<&Sample> = samples.iter().collect();
        for level in [1, 2, 3, 4, 5, 6, 9] {
            let t = Instant::now();
            let mut bytes = Vec::new();
            for _ in 0..3 {
                bytes = parquet::encode_at(&refs, level).expect("encodes");
            }
            let per_row = t.elapsed().as_secs_f64() / 3.0 / refs.len() as f64 * 1e6;
            let path = format!("{out}/level-{level}-{}.parquet", refs.len());
            std::fs::write(&path, &bytes).expect("write");
            println!(
                "level {level:>2} rows {:>6} bytes {:>9} us/row {per_row:.2}",
                refs.len(),
                bytes.len()
            );
        }
    }
}

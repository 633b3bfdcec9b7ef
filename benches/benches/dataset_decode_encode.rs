//! `dataset_decode_encode/{1k,10k}`: a `metrics_aggregated` upload body
//! (JSON array, as sent after decompression) decoded into a typed Arrow
//! batch and COPY-encoded from it — the dataset engine's CPU path per
//! upload, to set beside telemetry's `parse_validate` + `copy_encode`.
//! Bytes counted: JSON bytes.

use std::hint::black_box;

use adit_benches::{now_micros, SIZES};
use adit_dataset::{copy, decode, BodyFormat, Catalog, Limits};
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

const SERVICES: [&str; 6] = [
    "model-api-v1",
    "model-api-v2",
    "embeddings",
    "rerank",
    "gateway",
    "batch-scorer",
];
const ENDPOINTS: [&str; 5] = [
    "/predict",
    "/embed",
    "/health",
    "/v1/chat/completions",
    "/score",
];

/// `rows` rows of one minute: every service and endpoint, values that
/// vary the way the monitoring agents' do.
fn body(rows: usize, now_micros: i64) -> String {
    let minute = now_micros / 60_000_000 * 60;
    let mut out = String::from("[");
    for i in 0..rows {
        if i > 0 {
            out.push(',');
        }
        let (s, e) = (SERVICES[i % 6], ENDPOINTS[(i / 6) % 5]);
        let ts = minute - 60 * (i as i64 / 30);
        let qps = 1.0 + (i % 97) as f64 * 0.37;
        let avg = 80.0 + (i % 53) as f64 * 1.9;
        out.push_str(&format!(
            r#"{{"timestamp":{ts},"service_name":"{s}","api_endpoint":"{e}","qps":{qps:.2},"avg_latency_ms":{avg:.2},"p95_latency_ms":{:.2},"p99_latency_ms":{:.2},"error_rate":{:.4},"total_requests":{}}}"#,
            avg * 1.5,
            avg * 2.1,
            (i % 17) as f64 / 1000.0,
            (qps * 60.0) as i64
        ));
    }
    out.push(']');
    out
}

fn dataset_decode_encode(c: &mut Criterion) {
    let catalog = Catalog::shipped().expect("shipped datasets load");
    let d = catalog.get("metrics_aggregated").expect("shipped").clone();
    let limits = Limits::default();
    let now = now_micros();
    let mut group = c.benchmark_group("dataset_decode_encode");
    group.sampling_mode(SamplingMode::Flat);
    for (rows, label) in SIZES {
        let json = body(rows, now);
        let decoded = decode(&d, json.as_bytes(), BodyFormat::JsonArray, &limits, now).unwrap();
        assert_eq!((decoded.batch.num_rows(), decoded.rejects.len()), (rows, 0));
        group.throughput(Throughput::ElementsAndBytes {
            elements: rows as u64,
            bytes: json.len() as u64,
        });
        let mut buf = BytesMut::new();
        group.bench_function(label, |b| {
            b.iter(|| {
                let decoded =
                    decode(&d, json.as_bytes(), BodyFormat::JsonArray, &limits, now).unwrap();
                buf.clear();
                copy::begin(&mut buf);
                copy::encode_batch(&mut buf, &d, 1, &decoded.batch);
                copy::end(&mut buf);
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = adit_benches::config();
    targets = dataset_decode_encode
}
criterion_main!(benches);

//! Fixtures shared by adit's criterion benches: realistic upload bodies from
//! the load generator's fleet model, the front-door stages chained the way
//! the server runs them, and [`sweep`], which measures one stage over
//! [`SIZES`] counting both rows and bytes, so that rows/s and MB/s can both
//! be read from criterion's output.

use std::hint::black_box;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use adit_ingest::decode::{self, Encoding};
use adit_ingest::validate::{self, Parsed, Rules};
use adit_load::fleet::Fleet;
use adit_types::Sample;
use adit_writer::copy;
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, SamplingMode, Throughput};

/// Site the benched rows belong to.
pub const SITE_ID: i32 = 7;
/// Fleet seed, fixed so every run measures the same rows.
pub const FLEET_SEED: u64 = 0xAD17;
/// Collection interval the fleet model advances its counters by.
pub const COLLECT_INTERVAL_S: i64 = 30;

/// Rows per upload that every bench sweeps, with the label of its id
/// (`<group>/1k`, `<group>/10k`).
pub const SIZES: [(usize, &str); 2] = [(1_000, "1k"), (10_000, "10k")];

/// One realistic upload: a fleet's collection round as JSON and gzipped.
#[derive(Debug, Clone)]
pub struct Upload {
    pub rows: usize,
    /// The decompressed body (a JSON array, one object per miner).
    pub json: Bytes,
    /// The body as a collector sends it (`Content-Encoding: gzip`).
    pub gzip: Bytes,
}

impl Upload {
    /// Builds an upload of `rows` miners and checks that every row passes
    /// validation, so the benches never measure the reject path by accident.
    pub fn new(rows: usize) -> Self {
        let mut fleet = Fleet::new(SITE_ID, rows, FLEET_SEED);
        // A second round, so counters have moved like a running fleet's.
        fleet.collect_json(None, COLLECT_INTERVAL_S);
        let json = Bytes::from(fleet.collect_json(None, COLLECT_INTERVAL_S));
        let gzip = gzip(&json);
        let parsed = parse(&json);
        assert_eq!(parsed.samples.len(), rows, "every fleet row validates");
        assert!(parsed.rejects.is_empty(), "no fleet row is rejected");
        Self { rows, json, gzip }
    }
}

/// Gzips `data` the way the load generator does (fastest level).
pub fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip into memory");
    Bytes::from(enc.finish().expect("gzip into memory"))
}

/// The server's default cap on a decompressed body.
pub fn decompressed_limit() -> usize {
    decode::DEFAULT_MAX_DECOMPRESSED_BYTES
}

/// The current time in Unix microseconds (the rows carry no timestamp, so
/// this only anchors the lateness window).
pub fn now_micros() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_micros()).expect("time fits i64")
}

/// Gunzips an upload body under the server's default limit.
pub fn gunzip(body: &Bytes) -> Bytes {
    decode::decompress(body.clone(), Encoding::Gzip, decompressed_limit()).expect("valid gzip")
}

/// Parses and validates a decoded body with the default rules.
pub fn parse(json: &[u8]) -> Parsed {
    validate::parse_batch(json, &Rules::default(), now_micros()).expect("a valid batch")
}

/// Encodes `samples` as one complete binary COPY stream into `buf`
/// (cleared first, so the buffer is reused like the writer's).
pub fn encode_copy(buf: &mut BytesMut, samples: &[Sample]) {
    buf.clear();
    copy::begin(buf);
    for sample in samples {
        copy::encode_sample(buf, SITE_ID, Some(1), sample);
    }
    copy::end(buf);
}

/// Everything the front door spends CPU on per upload: gunzip, parse and
/// validate, COPY-encode. Returns the number of rows encoded.
pub fn front_door(body: &Bytes, rules: &Rules, now_micros: i64, buf: &mut BytesMut) -> usize {
    let json =
        decode::decompress(body.clone(), Encoding::Gzip, decompressed_limit()).expect("valid gzip");
    let parsed = validate::parse_batch(&json, rules, now_micros).expect("a valid batch");
    encode_copy(buf, &parsed.samples);
    parsed.samples.len()
}

/// Samples per benchmark unless `--sample-size` says otherwise: with flat
/// sampling and uploads of up to ~100 ms, 20 samples fit a 3 s measurement.
pub const DEFAULT_SAMPLE_SIZE: usize = 20;

/// The criterion configuration of every bench target (command-line flags
/// still override it).
pub fn config() -> Criterion {
    Criterion::default().sample_size(DEFAULT_SAMPLE_SIZE)
}

/// Benches one stage over [`SIZES`] in group `name` (ids `1k`, `10k`),
/// each declaring `Throughput::ElementsAndBytes` so that criterion reports,
/// and records in `benchmark.json`, both rows/s and bytes/s of the same
/// measurement, with flat sampling.
///
/// `prepare` turns an upload into the routine's input and the byte count
/// to report; `routine` is the measured work.
pub fn sweep<S, R>(
    c: &mut Criterion,
    name: &str,
    mut prepare: impl FnMut(&Upload) -> (S, u64),
    mut routine: impl FnMut(&mut S) -> R,
) {
    let mut group = c.benchmark_group(name);
    // Every iteration is a whole upload (0.2-100 ms): equal-sized samples
    // fit a short measurement time where linear sampling would not.
    group.sampling_mode(SamplingMode::Flat);
    for (rows, label) in SIZES {
        let (mut state, bytes) = prepare(&Upload::new(rows));
        group.throughput(Throughput::ElementsAndBytes {
            elements: rows as u64,
            bytes,
        });
        group.bench_function(label, |b| b.iter(|| black_box(routine(&mut state))));
    }
    group.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_round_trip_a_small_upload() {
        let upload = Upload::new(50);
        assert_eq!(gunzip(&upload.gzip), upload.json);
        let mut buf = BytesMut::new();
        let rows = front_door(&upload.gzip, &Rules::default(), now_micros(), &mut buf);
        assert_eq!(rows, 50);
        assert!(buf.starts_with(b"PGCOPY\n\xff\r\n\0"));
        assert!(buf.ends_with(&[0xff, 0xff]));
    }
}

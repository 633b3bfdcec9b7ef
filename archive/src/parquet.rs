//! Samples → Parquet. The Arrow schema mirrors `miner_telemetry` (minus
//! `site_id`, which the hive path carries): lists for `temperature_chips`
//! and `fan_speeds`, a list of structs for `boards`, UTC microsecond
//! timestamps. Rows are sorted by miner then time; zstd (level 3 for parts,
//! 9 for compacted files), dictionaries, column statistics and the page
//! index are on.

use std::sync::{Arc, OnceLock};

use adit_types::Sample;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, StructBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::ArchiveError;

/// Rows per row group: large enough for scans, small enough to skip.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

fn board_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int16, true),
        Field::new("hashrate", DataType::Float32, true),
        Field::new("temp", DataType::Float32, true),
        Field::new("chips_ok", DataType::Int16, true),
        Field::new("chips_total", DataType::Int16, true),
    ])
}

fn list_of(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, true))),
        true,
    )
}

/// The archive's Arrow schema.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let f32f = |n: &str| Field::new(n, DataType::Float32, true);
            let f64f = |n: &str| Field::new(n, DataType::Float64, true);
            let i64f = |n: &str| Field::new(n, DataType::Int64, true);
            let text = |n: &str| Field::new(n, DataType::Utf8, true);
            Arc::new(Schema::new(vec![
                Field::new(
                    "ts",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                ),
                Field::new("miner_id", DataType::Utf8, false),
                text("ip_address"),
                Field::new("online", DataType::Boolean, true),
                f64f("hashrate_ghs"),
                f64f("hashrate_5s_ghs"),
                f64f("hashrate_expected_ghs"),
                f32f("temperature_avg"),
                f32f("temperature_min"),
                f32f("temperature_max"),
                list_of("temperature_chips", DataType::Float32),
                list_of("fan_speeds", DataType::Int32),
                f32f("frequency_avg"),
                i64f("accepted_shares"),
                i64f("rejected_shares"),
                i64f("hardware_errors"),
                i64f("uptime_seconds"),
                f32f("power_consumption"),
                f32f("efficiency"),
                text("pool_url"),
                text("worker_name"),
                f32f("pool_latency_ms"),
                list_of("boards", DataType::Struct(board_fields())),
                Field::new("boards_total", DataType::Int16, true),
                Field::new("boards_healthy", DataType::Int16, true),
                text("overall_health"),
                text("model"),
                text("firmware_version"),
                text("error_message"),
                f32f("latency_ms"),
                text("extra"),
            ]))
        })
        .clone()
}

/// Builds one record batch from samples already in file order.
///
/// Row by row into all the column builders at once: each sample is read
/// once, while its cache lines are in. Column by column, every one of the
/// ~40 passes reached each sample again through the sort's pointers (the
/// uploads of a part interleave), which cost 14 % of adit's CPU under load.
pub fn record_batch(rows: &[&Sample]) -> Result<RecordBatch, ArchiveError> {
    let n = rows.len();
    // The text columns' exact byte sizes (one pass): no builder regrows
    // (and copies) midway.
    let mut text_bytes = [0usize; TEXT_COLUMNS];
    for s in rows {
        for (total, t) in text_bytes.iter_mut().zip(texts(s)) {
            *total += t.map_or(0, str::len);
        }
    }
    let mut text: [StringBuilder; TEXT_COLUMNS] =
        std::array::from_fn(|i| StringBuilder::with_capacity(n, text_bytes[i]));
    let mut ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut online = BooleanBuilder::with_capacity(n);
    let mut f64s: [Float64Builder; 3] = std::array::from_fn(|_| Float64Builder::with_capacity(n));
    let mut f32s: [Float32Builder; 8] = std::array::from_fn(|_| Float32Builder::with_capacity(n));
    let mut i64s: [Int64Builder; 4] = std::array::from_fn(|_| Int64Builder::with_capacity(n));
    let mut i16s: [Int16Builder; 2] = std::array::from_fn(|_| Int16Builder::with_capacity(n));
    let mut chips = ListBuilder::with_capacity(Float32Builder::new(), n);
    let mut fans = ListBuilder::with_capacity(Int32Builder::new(), n);
    let mut boards = ListBuilder::with_capacity(StructBuilder::from_fields(board_fields(), 0), n);
    for (i, s) in rows.iter().enumerate() {
        if let Some(ahead) = rows.get(i + PREFETCH_AHEAD) {
            prefetch(ahead);
        }
        if let Some(ahead) = rows.get(i + PREFETCH_AHEAD / 2) {
            prefetch_arrays(ahead);
        }
        ts.append_value(s.ts_micros);
        for (b, t) in text.iter_mut().zip(texts(s)) {
            b.append_option(t);
        }
        online.append_option(s.online);
        for (b, v) in
            f64s.iter_mut()
                .zip([s.hashrate_ghs, s.hashrate_5s_ghs, s.hashrate_expected_ghs])
        {
            b.append_option(v);
        }
        let f32v = [
            s.temperature_avg,
            s.temperature_min,
            s.temperature_max,
            s.frequency_avg,
            s.power_consumption,
            s.efficiency,
            s.pool_latency_ms,
            s.latency_ms,
        ];
        for (b, v) in f32s.iter_mut().zip(f32v) {
            b.append_option(v);
        }
        let i64v = [
            s.accepted_shares,
            s.rejected_shares,
            s.hardware_errors,
            s.uptime_seconds,
        ];
        for (b, v) in i64s.iter_mut().zip(i64v) {
            b.append_option(v);
        }
        i16s[0].append_option(s.boards_total);
        i16s[1].append_option(s.boards_healthy);
        match &s.temperature_chips {
            Some(v) => {
                chips.values().append_slice(v);
                chips.append(true);
            }
            None => chips.append(false),
        }
        match &s.fan_speeds {
            Some(v) => {
                fans.values().append_slice(v);
                fans.append(true);
            }
            None => fans.append(false),
        }
        match &s.boards {
            // A whole field at a time: one downcast per field and row, not
            // per board.
            Some(b) => {
                let items = boards.values();
                let n = b.len();
                items
                    .field_builder::<Int16Builder>(0)
                    .expect("id")
                    .extend_from_iter_option(b.iter().map(|x| x.id));
                items
                    .field_builder::<Float32Builder>(1)
                    .expect("hashrate")
                    .extend_from_iter_option(b.iter().map(|x| x.hashrate));
                items
                    .field_builder::<Float32Builder>(2)
                    .expect("temp")
                    .extend_from_iter_option(b.iter().map(|x| x.temp));
                items
                    .field_builder::<Int16Builder>(3)
                    .expect("chips_ok")
                    .extend_from_iter_option(b.iter().map(|x| x.chips_ok));
                items
                    .field_builder::<Int16Builder>(4)
                    .expect("chips_total")
                    .extend_from_iter_option(b.iter().map(|x| x.chips_total));
                items.append_non_nulls(n);
                boards.append(true);
            }
            None => boards.append(false),
        }
    }
    fn done(b: &mut impl ArrayBuilder) -> ArrayRef {
        b.finish()
    }
    let [miner, ip, pool_url, worker, health, model, firmware, error, extra] = &mut text;
    let [hashrate, hashrate_5s, expected] = &mut f64s;
    let [t_avg, t_min, t_max, freq, power, efficiency, pool_latency, latency] = &mut f32s;
    let [accepted, rejected, hw_errors, uptime] = &mut i64s;
    let [boards_total, boards_healthy] = &mut i16s;
    // In the schema's order.
    let columns: Vec<ArrayRef> = vec![
        done(&mut ts),
        done(miner),
        done(ip),
        done(&mut online),
        done(hashrate),
        done(hashrate_5s),
        done(expected),
        done(t_avg),
        done(t_min),
        done(t_max),
        done(&mut chips),
        done(&mut fans),
        done(freq),
        done(accepted),
        done(rejected),
        done(hw_errors),
        done(uptime),
        done(power),
        done(efficiency),
        done(pool_url),
        done(worker),
        done(pool_latency),
        done(&mut boards),
        done(boards_total),
        done(boards_healthy),
        done(health),
        done(model),
        done(firmware),
        done(error),
        done(latency),
        done(extra),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// How many rows ahead [`record_batch`] asks for a sample's memory (and
/// half as many for the arrays it points to, read from the sample).
const PREFETCH_AHEAD: usize = 8;

/// Starts loading a sample's cache lines. Rows come in miner order, so a
/// part's samples are visited out of the order they were parsed in, and
/// each one is a cache miss the hardware cannot predict.
#[inline]
fn prefetch(s: &Sample) {
    let p = (s as *const Sample).cast::<u8>();
    for line in (0..std::mem::size_of::<Sample>()).step_by(64) {
        prefetch_line(p.wrapping_add(line));
    }
}

/// [`prefetch`] for the arrays a sample points to (first line of each).
#[inline]
fn prefetch_arrays(s: &Sample) {
    if let Some(v) = &s.temperature_chips {
        prefetch_line(v.as_ptr().cast());
    }
    if let Some(v) = &s.fan_speeds {
        prefetch_line(v.as_ptr().cast());
    }
    if let Some(v) = &s.boards {
        prefetch_line(v.as_ptr().cast());
    }
    if let Some(v) = s.pool_url.as_deref() {
        prefetch_line(v.as_ptr());
    }
}

#[inline]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint that never faults, whatever the address.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Text columns of a sample, in [`record_batch`]'s order.
const TEXT_COLUMNS: usize = 9;

fn texts(s: &Sample) -> [Option<&str>; TEXT_COLUMNS] {
    [
        Some(s.miner_id.as_str()),
        s.ip_address.as_deref(),
        s.pool_url.as_deref(),
        s.worker_name.as_deref(),
        s.overall_health.as_deref(),
        s.model.as_deref(),
        s.firmware_version.as_deref(),
        s.error_message.as_deref(),
        s.extra.as_deref(),
    ]
}

/// High-cardinality numbers: a dictionary only gets in zstd's way there
/// (measured against DuckDB's output for the same rows). Everything else
/// keeps its dictionary.
const PLAIN_COLUMNS: [&str; 7] = [
    "hashrate_ghs",
    "hashrate_5s_ghs",
    "accepted_shares",
    "rejected_shares",
    "hardware_errors",
    "uptime_seconds",
    "boards.list.item.hashrate",
];

/// zstd level of archive part files (written while ingest runs). Measured
/// with `cargo run --release -p adit-benches --example zstd_levels` on a
/// site's 1,000 miners over 15 and 60 rounds, against DuckDB's zstd output
/// for the same rows: level 3 gives 0.997 and 0.988 of DuckDB's size at
/// 1.6-1.9 us per row; level 6 gave 0.980 and 0.983 at 2.2-2.8 us per row.
pub const ZSTD_LEVEL: i32 = 3;

/// zstd level of compacted files (written off the hot path, read for
/// years): 0.951 and 0.941 of DuckDB's size in the same measurement.
pub const ZSTD_LEVEL_COMPACTED: i32 = 9;

pub fn writer_properties() -> WriterProperties {
    writer_properties_at(ZSTD_LEVEL)
}

/// [`writer_properties`] with another zstd level.
pub fn writer_properties_at(level: i32) -> WriterProperties {
    let zstd = ZstdLevel::try_new(level).expect("valid zstd level");
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(true);
    for col in PLAIN_COLUMNS {
        let path = ColumnPath::new(col.split('.').map(String::from).collect());
        b = b.set_column_dictionary_enabled(path, false);
    }
    b.build()
}

/// Encodes `samples` as one Parquet file, sorted by miner then time.
/// An empty input is an error, never an empty file.
pub fn encode(samples: &[&Sample]) -> Result<Vec<u8>, ArchiveError> {
    encode_at(samples, ZSTD_LEVEL)
}

/// [`encode`] at another zstd level.
pub fn encode_at(samples: &[&Sample], level: i32) -> Result<Vec<u8>, ArchiveError> {
    if samples.is_empty() {
        return Err(ArchiveError::Empty);
    }
    let rows = file_order(samples);
    let mut out = Vec::with_capacity(rows.len() * 120);
    let mut writer = ArrowWriter::try_new(&mut out, schema(), Some(writer_properties_at(level)))?;
    for chunk in rows.chunks(ROW_GROUP_ROWS) {
        writer.write(&record_batch(chunk)?)?;
    }
    writer.close()?;
    Ok(out)
}

/// `samples` sorted by miner then time.
///
/// The sort works on compact keys (the miner id's first 16 bytes as one
/// integer, the time, the index), not on the samples: comparing samples
/// reached each one through its pointer, a cache miss per comparison once
/// the samples have gone cold in the buffer. Only ids longer than 16 bytes
/// that share those bytes are compared in full.
fn file_order<'s>(samples: &[&'s Sample]) -> Vec<&'s Sample> {
    fn prefix(id: &str) -> u128 {
        let mut b = [0u8; 16];
        let n = id.len().min(16);
        b[..n].copy_from_slice(&id.as_bytes()[..n]);
        u128::from_be_bytes(b)
    }
    // (id prefix, id longer than the prefix, time, index)
    let mut keys: Vec<(u128, bool, i64, u32)> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                prefix(&s.miner_id),
                s.miner_id.len() > 16,
                s.ts_micros,
                i as u32,
            )
        })
        .collect();
    keys.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| {
                // Equal prefixes of ids no longer than 16 bytes are equal ids
                // (ids hold no NUL bytes to pad with).
                if a.1 || b.1 {
                    let id = |k: &(u128, bool, i64, u32)| &samples[k.3 as usize].miner_id;
                    id(a).cmp(id(b))
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then(a.2.cmp(&b.2))
    });
    keys.into_iter().map(|k| samples[k.3 as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use adit_types::Board;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn sample(miner: &str, ts: i64) -> Sample {
        Sample {
            ts_micros: ts,
            miner_id: miner.into(),
            accepted_shares: Some(ts * 2),
            temperature_chips: Some(vec![60.5, 61.5]),
            boards: Some(vec![
                Board {
                    id: Some(0),
                    hashrate: Some(100.5),
                    temp: Some(60.0),
                    chips_ok: Some(76),
                    chips_total: Some(76),
                },
                Board {
                    id: Some(1),
                    hashrate: None,
                    temp: Some(61.0),
                    chips_ok: Some(75),
                    chips_total: Some(76),
                },
            ]),
            extra: Some(r#"{"psu":"ok"}"#.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_file_reads_back_sorted_by_miner_then_time() {
        let rows = [
            sample("b", 5),
            sample("a", 9),
            sample("b", 1),
            sample("a", 3),
        ];
        let refs: Vec<&Sample> = rows.iter().collect();
        let bytes = encode(&refs).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let meta = reader.metadata().clone();
        assert!(
            meta.row_group(0).column(0).statistics().is_some(),
            "statistics on"
        );
        let batch = reader.build().unwrap().next().unwrap().unwrap();
        assert_eq!(batch.schema(), schema());
        let miners: Vec<&str> = batch
            .column(1)
            .as_string::<i32>()
            .iter()
            .map(|m| m.unwrap())
            .collect();
        assert_eq!(miners, ["a", "a", "b", "b"]);
        let ts: Vec<i64> = batch
            .column(0)
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec();
        assert_eq!(ts, [3, 9, 1, 5]);
        let shares = batch
            .column_by_name("accepted_shares")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(shares.value(0), 6);
        let chips = batch
            .column_by_name("temperature_chips")
            .unwrap()
            .as_list::<i32>();
        assert_eq!(
            chips
                .value(0)
                .as_primitive::<Float32Type>()
                .values()
                .to_vec(),
            [60.5, 61.5]
        );
        let boards = batch
            .column_by_name("boards")
            .unwrap()
            .as_list::<i32>()
            .value(0);
        let boards = boards.as_struct();
        assert_eq!(
            boards
                .column(0)
                .as_primitive::<arrow_array::types::Int16Type>()
                .values()
                .to_vec(),
            [0, 1]
        );
        assert!(
            boards.column(1).is_null(1),
            "a missing board hashrate stays null"
        );
        assert_eq!(
            batch
                .column_by_name("extra")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            r#"{"psu":"ok"}"#
        );
    }

    #[test]
    fn file_order_sorts_long_ids_that_share_their_first_16_bytes() {
        // Ids of 16 bytes and more share the key's prefix; shorter ids and
        // ids that are prefixes of others sort as plain strings do.
        let ids = [
            "site-0001-rack-07-m12",
            "site-0001-rack-07-m3",
            "site-0001-rack-07",
            "site-0001-rack-0",
            "site-0001-rack-07-m12",
            "m-2",
            "m-10",
            "site-0001-rack-07-m3",
            "",
            "m-2",
        ];
        let samples: Vec<Sample> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| sample(id, 1_000 - i as i64))
            .collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let got: Vec<(&str, i64)> = file_order(&refs)
            .iter()
            .map(|s| (s.miner_id.as_str(), s.ts_micros))
            .collect();
        let mut want: Vec<(&str, i64)> = samples
            .iter()
            .map(|s| (s.miner_id.as_str(), s.ts_micros))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn an_empty_batch_is_an_error_not_an_empty_file() {
        assert!(matches!(encode(&[]), Err(ArchiveError::Empty)));
    }
}

//! Samples → Parquet. The Arrow schema mirrors `miner_telemetry` (minus
//! `site_id`, which the hive path carries): lists for `temperature_chips`
//! and `fan_speeds`, a list of structs for `boards`, UTC microsecond
//! timestamps. Rows are sorted by miner then time; zstd (level 3 for parts,
//! 9 for compacted files), dictionaries, column statistics and the page
//! index are on.

use std::sync::{Arc, OnceLock};

use adit_types::Sample;
use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, StructBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::archive::ArchiveError;

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
pub fn record_batch(rows: &[&Sample]) -> Result<RecordBatch, ArchiveError> {
    let n = rows.len();
    macro_rules! column {
        ($builder:expr, $get:expr) => {{
            let mut b = $builder;
            for s in rows {
                b.append_option($get(*s));
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    // Exact byte sizes up front: no builder regrows (and copies) midway.
    let text = |get: fn(&Sample) -> Option<&str>| {
        let bytes = rows.iter().map(|s| get(s).map_or(0, str::len)).sum();
        column!(StringBuilder::with_capacity(n, bytes), get)
    };
    let f32c = |get: fn(&Sample) -> Option<f32>| column!(Float32Builder::with_capacity(n), get);
    let f64c = |get: fn(&Sample) -> Option<f64>| column!(Float64Builder::with_capacity(n), get);
    let i64c = |get: fn(&Sample) -> Option<i64>| column!(Int64Builder::with_capacity(n), get);
    let i16c = |get: fn(&Sample) -> Option<i16>| column!(Int16Builder::with_capacity(n), get);

    let ts = column!(
        TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
        |s: &Sample| Some(s.ts_micros)
    );
    let mut chips = ListBuilder::new(Float32Builder::new());
    let mut fans = ListBuilder::new(Int32Builder::new());
    let mut boards = ListBuilder::new(StructBuilder::from_fields(board_fields(), 0));
    for s in rows {
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
                let ids = items.field_builder::<Int16Builder>(0).expect("id");
                match &b.ids {
                    Some(v) => ids.extend_from_iter_option(v.iter().copied()),
                    None => ids.extend_from_iter_option((0..n).map(|i| Some(i as i16))),
                }
                items
                    .field_builder::<Float32Builder>(1)
                    .expect("hashrate")
                    .extend_from_iter_option(b.hashrate.iter().copied());
                items
                    .field_builder::<Float32Builder>(2)
                    .expect("temp")
                    .extend_from_iter_option(b.temp.iter().copied());
                items
                    .field_builder::<Int16Builder>(3)
                    .expect("chips_ok")
                    .extend_from_iter_option(b.chips_ok.iter().copied());
                items
                    .field_builder::<Int16Builder>(4)
                    .expect("chips_total")
                    .extend_from_iter_option(b.chips_total.iter().copied());
                items.append_non_nulls(n);
                boards.append(true);
            }
            None => boards.append(false),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        ts,
        text(|s| Some(s.miner_id.as_str())),
        text(|s| s.ip_address.as_deref()),
        column!(BooleanBuilder::with_capacity(n), |s: &Sample| s.online),
        f64c(|s| s.hashrate_ghs),
        f64c(|s| s.hashrate_5s_ghs),
        f64c(|s| s.hashrate_expected_ghs),
        f32c(|s| s.temperature_avg),
        f32c(|s| s.temperature_min),
        f32c(|s| s.temperature_max),
        Arc::new(chips.finish()),
        Arc::new(fans.finish()),
        f32c(|s| s.frequency_avg),
        i64c(|s| s.accepted_shares),
        i64c(|s| s.rejected_shares),
        i64c(|s| s.hardware_errors),
        i64c(|s| s.uptime_seconds),
        f32c(|s| s.power_consumption),
        f32c(|s| s.efficiency),
        text(|s| s.pool_url.as_deref()),
        text(|s| s.worker_name.as_deref()),
        f32c(|s| s.pool_latency_ms),
        Arc::new(boards.finish()),
        i16c(|s| s.boards_total),
        i16c(|s| s.boards_healthy),
        text(|s| s.overall_health.as_deref()),
        text(|s| s.model.as_deref()),
        text(|s| s.firmware_version.as_deref()),
        text(|s| s.error_message.as_deref()),
        f32c(|s| s.latency_ms),
        text(|s| s.extra.as_deref()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
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
    let mut rows: Vec<&Sample> = samples.to_vec();
    rows.sort_unstable_by(|a, b| {
        a.miner_id
            .cmp(&b.miner_id)
            .then(a.ts_micros.cmp(&b.ts_micros))
    });
    let mut out = Vec::with_capacity(rows.len() * 120);
    let mut writer = ArrowWriter::try_new(&mut out, schema(), Some(writer_properties_at(level)))?;
    for chunk in rows.chunks(ROW_GROUP_ROWS) {
        writer.write(&record_batch(chunk)?)?;
    }
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use adit_types::Boards;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn sample(miner: &str, ts: i64) -> Sample {
        Sample {
            ts_micros: ts,
            miner_id: miner.into(),
            accepted_shares: Some(ts * 2),
            temperature_chips: Some(vec![60.5, 61.5]),
            boards: Some(Boards {
                ids: None,
                hashrate: vec![Some(100.5), None],
                temp: vec![Some(60.0), Some(61.0)],
                chips_ok: vec![Some(76), Some(75)],
                chips_total: vec![Some(76), Some(76)],
            }),
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
    fn an_empty_batch_is_an_error_not_an_empty_file() {
        assert!(matches!(encode(&[]), Err(ArchiveError::Empty)));
    }
}

//! Binary COPY encoding, column by column, straight from typed samples into
//! one reused buffer (no per-value `dyn ToSql`, no intermediate rows).
//!
//! The column lists sit next to the encoders that must follow them; the
//! tables are defined in `migrations/0001_init.sql`. [`send`] hands an
//! encoded buffer to PostgreSQL (telemetry, rejects and datasets alike).

use adit_types::{implicit_board_ids, Reject, Sample, PG_EPOCH_OFFSET_MICROS};
use bytes::{BufMut, BytesMut};

pub use adit_types::TELEMETRY_COLUMNS;
/// What [`encode_sample`] writes: the sample columns, then `batch_id`.
pub const COPY_COLUMNS: &str = concat!(adit_types::telemetry_columns!(), ", batch_id");
const COPY_FIELD_COUNT: i16 = 37;

/// Columns of `ingest_rejects` in the order [`encode_reject`] writes them.
pub const REJECT_COLUMNS: &str =
    "received_at, site_id, key_id, upload_id, row_index, field, reason, raw";
const REJECT_FIELD_COUNT: i16 = 8;
/// [`REJECT_COLUMNS`] and the dataset, as [`encode_dataset_reject`] writes.
pub const DATASET_REJECT_COLUMNS: &str =
    "received_at, site_id, key_id, upload_id, row_index, field, reason, raw, dataset";

const OID_INT2: u32 = 21;
const OID_INT4: u32 = 23;
const OID_FLOAT4: u32 = 700;

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Starts a binary COPY stream.
pub fn begin(buf: &mut BytesMut) {
    buf.put_slice(HEADER);
}

/// Ends a binary COPY stream.
pub fn end(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// Appends one `miner_telemetry` row (columns [`COPY_COLUMNS`]); `batch_id`
/// ties the row to its flush for the archive (None when not archiving).
pub fn encode_sample(buf: &mut BytesMut, site_id: i32, batch_id: Option<i64>, s: &Sample) {
    buf.put_i16(COPY_FIELD_COUNT);
    timestamptz(buf, s.ts_micros);
    int4(buf, Some(site_id));
    text(buf, Some(&s.miner_id));
    text(buf, s.ip_address.as_deref());
    boolean(buf, s.online);
    float8(buf, s.hashrate_ghs);
    float8(buf, s.hashrate_5s_ghs);
    float8(buf, s.hashrate_expected_ghs);
    float4(buf, s.temperature_avg);
    float4(buf, s.temperature_min);
    float4(buf, s.temperature_max);
    array(buf, OID_FLOAT4, s.temperature_chips.as_deref(), |b, v| {
        b.put_i32(4);
        b.put_f32(*v)
    });
    array(buf, OID_INT4, s.fan_speeds.as_deref(), |b, v| {
        b.put_i32(4);
        b.put_i32(*v)
    });
    float4(buf, s.frequency_avg);
    int8(buf, s.accepted_shares);
    int8(buf, s.rejected_shares);
    int8(buf, s.hardware_errors);
    int8(buf, s.uptime_seconds);
    float4(buf, s.power_consumption);
    float4(buf, s.efficiency);
    text(buf, s.pool_url.as_deref());
    text(buf, s.worker_name.as_deref());
    float4(buf, s.pool_latency_ms);
    let boards = s.boards.as_deref();
    let ids = boards.filter(|b| !implicit_board_ids(b));
    array(
        buf,
        OID_INT2,
        ids.map(|b| b.iter().map(|x| &x.id)),
        opt_int2,
    );
    array(
        buf,
        OID_FLOAT4,
        boards.map(|b| b.iter().map(|x| &x.hashrate)),
        opt_float4,
    );
    array(
        buf,
        OID_FLOAT4,
        boards.map(|b| b.iter().map(|x| &x.temp)),
        opt_float4,
    );
    array(
        buf,
        OID_INT2,
        boards.map(|b| b.iter().map(|x| &x.chips_ok)),
        opt_int2,
    );
    array(
        buf,
        OID_INT2,
        boards.map(|b| b.iter().map(|x| &x.chips_total)),
        opt_int2,
    );
    int2(buf, s.boards_total);
    int2(buf, s.boards_healthy);
    text(buf, s.overall_health.as_deref());
    text(buf, s.model.as_deref());
    text(buf, s.firmware_version.as_deref());
    text(buf, s.error_message.as_deref());
    float4(buf, s.latency_ms);
    jsonb(buf, s.extra.as_deref());
    int8(buf, batch_id);
}

/// Identity of the upload a reject came from.
#[derive(Debug, Clone, Copy)]
pub struct RejectOrigin {
    pub received_at_micros: i64,
    pub site_id: i32,
    pub key_id: i32,
    pub upload_id: i64,
}

/// Appends one `ingest_rejects` row.
pub fn encode_reject(buf: &mut BytesMut, origin: RejectOrigin, r: &Reject) {
    buf.put_i16(REJECT_FIELD_COUNT);
    timestamptz(buf, origin.received_at_micros);
    int4(buf, Some(origin.site_id));
    int4(buf, Some(origin.key_id));
    int8(buf, Some(origin.upload_id));
    int4(buf, Some(r.error.index as i32));
    text(buf, Some(&r.error.field));
    text(buf, Some(&r.error.reason));
    text(buf, Some(&r.raw_json));
}

/// Appends one `ingest_rejects` row of a dataset upload (columns
/// [`DATASET_REJECT_COLUMNS`]).
pub fn encode_dataset_reject(buf: &mut BytesMut, origin: RejectOrigin, r: &Reject, dataset: &str) {
    buf.put_i16(REJECT_FIELD_COUNT + 1);
    timestamptz(buf, origin.received_at_micros);
    int4(buf, Some(origin.site_id));
    int4(buf, Some(origin.key_id));
    int8(buf, Some(origin.upload_id));
    int4(buf, Some(r.error.index as i32));
    text(buf, Some(&r.error.field));
    text(buf, Some(&r.error.reason));
    text(buf, Some(&r.raw_json));
    text(buf, Some(dataset));
}

fn null(buf: &mut BytesMut) {
    buf.put_i32(-1);
}

fn timestamptz(buf: &mut BytesMut, unix_micros: i64) {
    buf.put_i32(8);
    buf.put_i64(unix_micros - PG_EPOCH_OFFSET_MICROS);
}

fn boolean(buf: &mut BytesMut, v: Option<bool>) {
    match v {
        Some(v) => {
            buf.put_i32(1);
            buf.put_u8(v as u8);
        }
        None => null(buf),
    }
}

macro_rules! fixed {
    ($name:ident, $t:ty, $put:ident, $len:expr) => {
        fn $name(buf: &mut BytesMut, v: Option<$t>) {
            match v {
                Some(v) => {
                    buf.put_i32($len);
                    buf.$put(v);
                }
                None => null(buf),
            }
        }
    };
}
fixed!(int2, i16, put_i16, 2);
fixed!(int4, i32, put_i32, 4);
fixed!(int8, i64, put_i64, 8);
fixed!(float4, f32, put_f32, 4);
fixed!(float8, f64, put_f64, 8);

fn opt_int2(buf: &mut BytesMut, v: &Option<i16>) {
    int2(buf, *v)
}

fn opt_float4(buf: &mut BytesMut, v: &Option<f32>) {
    float4(buf, *v)
}

fn text(buf: &mut BytesMut, v: Option<&str>) {
    match v {
        Some(s) => {
            buf.put_i32(s.len() as i32);
            buf.put_slice(s.as_bytes());
        }
        None => null(buf),
    }
}

fn jsonb(buf: &mut BytesMut, v: Option<&str>) {
    match v {
        Some(s) => {
            buf.put_i32(s.len() as i32 + 1);
            buf.put_u8(1); // jsonb binary format version
            buf.put_slice(s.as_bytes());
        }
        None => null(buf),
    }
}

/// A one-dimensional array; `put` writes each element with its length.
fn array<I>(buf: &mut BytesMut, elem_oid: u32, v: Option<I>, put: impl Fn(&mut BytesMut, I::Item))
where
    I: IntoIterator,
    I::IntoIter: ExactSizeIterator,
{
    let Some(items) = v else { return null(buf) };
    let items = items.into_iter();
    let len_at = buf.len();
    buf.put_i32(0); // patched below
    if items.len() == 0 {
        buf.put_i32(0); // dimensions
        buf.put_i32(0); // has-nulls flag
        buf.put_u32(elem_oid);
    } else {
        buf.put_i32(1);
        let flag_at = buf.len();
        buf.put_i32(0); // has-nulls flag, patched below
        buf.put_u32(elem_oid);
        buf.put_i32(items.len() as i32);
        buf.put_i32(1); // lower bound
        let body_at = buf.len();
        let count = items.len();
        for item in items {
            put(buf, item);
        }
        if has_null_element(&buf[body_at..], count) {
            buf[flag_at..flag_at + 4].copy_from_slice(&1i32.to_be_bytes());
        }
    }
    let len = (buf.len() - len_at - 4) as i32;
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Walks `count` encoded elements and tells whether any is NULL.
fn has_null_element(mut body: &[u8], count: usize) -> bool {
    for _ in 0..count {
        let len = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if len < 0 {
            return true;
        }
        body = &body[4 + len as usize..];
    }
    false
}

/// Sends one encoded COPY buffer with `sql` (`COPY … FROM STDIN (FORMAT
/// binary)`) in `tx`, and checks PostgreSQL took exactly `expected` rows.
pub(crate) async fn send(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    buf: BytesMut,
    expected: u64,
    table: &'static str,
) -> crate::Result<()> {
    let mut sink = std::pin::pin!(tx.copy_in::<_, bytes::Bytes>(sql).await?);
    futures_util::SinkExt::send(&mut sink, buf.freeze()).await?;
    let written = sink.as_mut().finish().await?;
    if written != expected {
        return Err(crate::Error::CopyCount {
            table,
            written,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_match_field_counts() {
        assert_eq!(COPY_COLUMNS.split(',').count(), COPY_FIELD_COUNT as usize);
        assert_eq!(
            REJECT_COLUMNS.split(',').count(),
            REJECT_FIELD_COUNT as usize
        );
    }

    #[test]
    fn array_with_a_null_sets_the_flag_and_length() {
        let mut buf = BytesMut::new();
        array(&mut buf, OID_INT2, Some(&[Some(1i16), None][..]), opt_int2);
        let bytes = &buf[..];
        let total = i32::from_be_bytes(bytes[0..4].try_into().unwrap());
        assert_eq!(total as usize, bytes.len() - 4);
        assert_eq!(
            i32::from_be_bytes(bytes[8..12].try_into().unwrap()),
            1,
            "has-nulls"
        );
        assert_eq!(
            i32::from_be_bytes(bytes[16..20].try_into().unwrap()),
            2,
            "dim"
        );
    }

    #[test]
    fn empty_array_has_no_dimensions() {
        let mut buf = BytesMut::new();
        array(&mut buf, OID_FLOAT4, Some(&[] as &[f32]), |_, _| {});
        assert_eq!(
            &buf[..],
            &[0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 188]
        );
    }

    #[test]
    fn sample_row_starts_with_field_count_and_pg_epoch_time() {
        let mut buf = BytesMut::new();
        let s = Sample {
            ts_micros: PG_EPOCH_OFFSET_MICROS + 5,
            miner_id: "m".into(),
            ..Default::default()
        };
        encode_sample(&mut buf, 1, None, &s);
        assert_eq!(&buf[0..2], &37i16.to_be_bytes());
        assert_eq!(&buf[6..14], &5i64.to_be_bytes());
    }
}

//! Reading telemetry back from PostgreSQL as samples, for the sweeper and
//! compaction (the rows the stream did not deliver, or a whole window).

use adit_types::{Board, Boards, Sample, Text};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::ArchiveError;

/// The columns of `adit_types::TELEMETRY_COLUMNS`, with `extra` as text.
fn select_list() -> String {
    adit_types::TELEMETRY_COLUMNS.replace("extra", "extra::text")
}

pub fn sample_from_row(r: &Row) -> Sample {
    let ts: DateTime<Utc> = r.get(0);
    let boards = r.get::<_, Option<Vec<Option<f32>>>>(24).map(|hashrate| {
        let ids: Option<Vec<Option<i16>>> = r.get(23);
        let temp: Vec<Option<f32>> = r.get::<_, Option<_>>(25).unwrap_or_default();
        let ok: Vec<Option<i16>> = r.get::<_, Option<_>>(26).unwrap_or_default();
        let total: Vec<Option<i16>> = r.get::<_, Option<_>>(27).unwrap_or_default();
        let at = |v: &[Option<i16>], i: usize| v.get(i).copied().flatten();
        (0..hashrate.len())
            .map(|i| Board {
                id: ids.as_ref().map_or(Some(i as i16), |v| at(v, i)),
                hashrate: hashrate[i],
                temp: temp.get(i).copied().flatten(),
                chips_ok: at(&ok, i),
                chips_total: at(&total, i),
            })
            .collect::<Boards>()
    });
    Sample {
        ts_micros: ts.timestamp_micros(),
        miner_id: Text::from(r.get::<_, &str>(2)),
        ip_address: text(r, 3),
        online: r.get(4),
        hashrate_ghs: r.get(5),
        hashrate_5s_ghs: r.get(6),
        hashrate_expected_ghs: r.get(7),
        temperature_avg: r.get(8),
        temperature_min: r.get(9),
        temperature_max: r.get(10),
        temperature_chips: r.get(11),
        fan_speeds: r.get(12),
        frequency_avg: r.get(13),
        accepted_shares: r.get(14),
        rejected_shares: r.get(15),
        hardware_errors: r.get(16),
        uptime_seconds: r.get(17),
        power_consumption: r.get(18),
        efficiency: r.get(19),
        pool_url: text(r, 20),
        worker_name: text(r, 21),
        pool_latency_ms: r.get(22),
        boards,
        boards_total: r.get(28),
        boards_healthy: r.get(29),
        overall_health: text(r, 30),
        model: text(r, 31),
        firmware_version: text(r, 32),
        error_message: text(r, 33),
        latency_ms: r.get(34),
        extra: r.get(35),
    }
}

pub fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_time(NaiveTime::MIN).and_utc();
    (start, start + chrono::Duration::days(1))
}

/// The rows of the given batches in one site-day, each with its batch id.
pub async fn batches(
    client: &Client,
    site_id: i32,
    day: NaiveDate,
    batch_ids: &[i64],
) -> Result<Vec<(i64, Sample)>, ArchiveError> {
    let (from, to) = day_bounds(day);
    let sql = format!(
        "SELECT {}, batch_id FROM miner_telemetry \
         WHERE site_id = $1 AND ts >= $2 AND ts < $3 AND batch_id = ANY($4)",
        select_list()
    );
    let rows = client
        .query(&sql, &[&site_id, &from, &to, &batch_ids])
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(r.len() - 1), sample_from_row(r)))
        .collect())
}

/// A whole site-day, sorted by miner and time, as a row stream (convert
/// rows with [`sample_from_row`]), leaving out rows whose batch is still
/// queued (the stream or the sweeper will archive those).
pub async fn window_rows(
    client: &Client,
    site_id: i32,
    day: NaiveDate,
) -> Result<tokio_postgres::RowStream, ArchiveError> {
    let (from, to) = day_bounds(day);
    let sql = format!(
        "SELECT {} FROM miner_telemetry t WHERE site_id = $1 AND ts >= $2 AND ts < $3 \
           AND NOT EXISTS (SELECT 1 FROM archive_queue q WHERE q.batch_id = t.batch_id \
                           AND q.site_id = $1 AND q.day = $4) \
         ORDER BY miner_id, ts",
        select_list()
    );
    let params: [&(dyn ToSql + Sync); 4] = [&site_id, &from, &to, &day];
    Ok(client.query_raw(&sql, params).await?)
}

/// A nullable text column as a sample's [`Text`].
fn text(r: &Row, i: usize) -> Option<Text> {
    r.get::<_, Option<&str>>(i).map(Text::from)
}

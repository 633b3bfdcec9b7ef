//! The aggregates, as SQL. Each function recomputes one bucket completely
//! (DELETE + INSERT inside the caller's transaction), so running it twice
//! changes nothing. Column semantics are documented in
//! `migrations/0002_rollups.sql`.
//!
//! Counters are int8 and may be anywhere up to i64::MAX (ingest refuses
//! negative ones). One increase, `cur - prev` with both ≥ 0, always fits in
//! int8 (a negative baseline, which ingest never lets in, counts as a reset
//! rather than risk an overflow); `sum()` of int8 is numeric in
//! PostgreSQL, and sums are stored saturated at i64::MAX ([`I64_MAX_SQL`]);
//! reject rates are computed in numeric. So no reading a collector can send
//! makes an hour fail. (Casting every reading to numeric instead cost about
//! a quarter more time on a 600,000-row hour.)

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use crate::Result;

/// The largest int8: counter increases and their sums saturate here.
const I64_MAX_SQL: &str = "9223372036854775807";

/// Cumulative counters whose increases are rolled up.
const COUNTERS: [&str; 3] = ["accepted_shares", "rejected_shares", "hardware_errors"];

/// Increases of one counter per miner within the hour: pairs consecutive
/// readings (not offline, counter present), the first one of the hour with
/// the last reading before it (found through the (site, miner, ts) index).
fn counter_cte(col: &str) -> String {
    format!(
        "inc_{col} AS (
           SELECT miner_id,
                  least(sum(CASE WHEN prev IS NULL THEN 0 WHEN v >= prev AND prev >= 0 THEN v - prev
                                 ELSE greatest(v, 0) END), {I64_MAX_SQL})::int8 AS inc
           FROM (SELECT miner_id, ts, v, lag(v) OVER (PARTITION BY miner_id ORDER BY ts) AS prev
                 FROM (SELECT miner_id, ts, {col} AS v FROM hour_rows
                       WHERE online IS DISTINCT FROM false AND {col} IS NOT NULL
                       UNION ALL
                       SELECT m.miner_id, p.ts, p.v
                       FROM miners m
                       CROSS JOIN LATERAL (
                           SELECT t.ts, t.{col} AS v FROM miner_telemetry t
                           WHERE t.site_id = $1 AND t.miner_id = m.miner_id
                             AND t.ts < $2 AND t.ts >= $2 - make_interval(secs => $4::float8)
                             AND t.online IS DISTINCT FROM false AND t.{col} IS NOT NULL
                           ORDER BY t.ts DESC LIMIT 1) p
                      ) readings
                ) paired
           WHERE ts >= $2
           GROUP BY miner_id)"
    )
}

fn hourly_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let counters: Vec<String> = COUNTERS.iter().map(|c| counter_cte(c)).collect();
        format!(
            "WITH hour_rows AS (
                 SELECT miner_id, ts, online, hashrate_ghs, temperature_avg, temperature_max,
                        power_consumption, efficiency, {cols}
                 FROM miner_telemetry
                 WHERE site_id = $1 AND ts >= $2 AND ts < $2 + interval '1 hour'),
             miners AS (SELECT DISTINCT miner_id FROM hour_rows),
             {counters},
             agg AS (
                 SELECT miner_id, count(*)::int4 AS samples,
                        (count(*) FILTER (WHERE online))::int4 AS online_samples,
                        avg(hashrate_ghs) AS hashrate_avg, min(hashrate_ghs) AS hashrate_min,
                        max(hashrate_ghs) AS hashrate_max, count(hashrate_ghs)::int4 AS hashrate_n,
                        avg(temperature_avg) AS temperature_avg,
                        max(temperature_max)::float8 AS temperature_max,
                        count(temperature_avg)::int4 AS temperature_n,
                        avg(power_consumption) AS power_avg, count(power_consumption)::int4 AS power_n,
                        avg(efficiency) AS efficiency_avg, count(efficiency)::int4 AS efficiency_n
                 FROM hour_rows GROUP BY miner_id)
             INSERT INTO miner_telemetry_hourly (bucket, site_id, miner_id, samples, online_samples,
                 hashrate_avg, hashrate_min, hashrate_max, hashrate_n, temperature_avg,
                 temperature_max, temperature_n, power_avg, power_n, efficiency_avg, efficiency_n,
                 accepted_shares, rejected_shares, hardware_errors, reject_rate, uptime_pct)
             SELECT $2, $1, a.miner_id, a.samples, a.online_samples, a.hashrate_avg, a.hashrate_min,
                    a.hashrate_max, a.hashrate_n, a.temperature_avg, a.temperature_max,
                    a.temperature_n, a.power_avg, a.power_n, a.efficiency_avg, a.efficiency_n,
                    coalesce(acc.inc, 0), coalesce(rej.inc, 0), coalesce(hw.inc, 0),
                    CASE WHEN coalesce(acc.inc, 0)::numeric + coalesce(rej.inc, 0) > 0
                         THEN 100.0 * coalesce(rej.inc, 0)
                              / (coalesce(acc.inc, 0)::numeric + coalesce(rej.inc, 0)) END,
                    least(100.0, 100.0 * a.online_samples / $3::float8)
             FROM agg a
             LEFT JOIN inc_accepted_shares acc USING (miner_id)
             LEFT JOIN inc_rejected_shares rej USING (miner_id)
             LEFT JOIN inc_hardware_errors hw USING (miner_id)",
            cols = COUNTERS.join(", "),
            counters = counters.join(",\n"),
        )
    })
}

/// `sum(col)` of int8 counters (numeric in PostgreSQL), saturated into int8.
fn saturated_sum(col: &str) -> String {
    format!("least(sum({col}), {I64_MAX_SQL})::int8")
}

fn site_hourly_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO site_telemetry_hourly (bucket, site_id, miners, samples, online_samples,
             hashrate_total, hashrate_avg, hashrate_min, hashrate_max, temperature_avg,
             temperature_max, power_total, efficiency_avg, accepted_shares, rejected_shares,
             hardware_errors, reject_rate, uptime_pct)
         SELECT $2, $1, count(*)::int4, sum(samples)::int4, sum(online_samples)::int4,
                sum(hashrate_avg),
                sum(hashrate_avg * hashrate_n) / nullif(sum(hashrate_n), 0),
                min(hashrate_min), max(hashrate_max),
                sum(temperature_avg * temperature_n) / nullif(sum(temperature_n), 0),
                max(temperature_max), sum(power_avg),
                sum(efficiency_avg * efficiency_n) / nullif(sum(efficiency_n), 0),
                {sat_acc}, {sat_rej}, {sat_hw},
                CASE WHEN sum(accepted_shares) + sum(rejected_shares) > 0
                     THEN 100.0 * sum(rejected_shares) / (sum(accepted_shares) + sum(rejected_shares)) END,
                least(100.0, 100.0 * sum(online_samples) / (count(*) * $3::float8))
         FROM miner_telemetry_hourly WHERE site_id = $1 AND bucket = $2
         HAVING count(*) > 0",
            sat_acc = saturated_sum("accepted_shares"),
            sat_rej = saturated_sum("rejected_shares"),
            sat_hw = saturated_sum("hardware_errors"),
        )
    })
}

fn daily_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO miner_telemetry_daily (bucket, site_id, miner_id, samples, online_samples,
                 hashrate_avg, hashrate_min, hashrate_max, hashrate_n, temperature_avg,
                 temperature_max, temperature_n, power_avg, power_n, efficiency_avg, efficiency_n,
                 accepted_shares, rejected_shares, hardware_errors, reject_rate, uptime_pct)
             SELECT $2, $1, miner_id, sum(samples)::int4, sum(online_samples)::int4,
                    sum(hashrate_avg * hashrate_n) / nullif(sum(hashrate_n), 0),
                    min(hashrate_min), max(hashrate_max), sum(hashrate_n)::int4,
                    sum(temperature_avg * temperature_n) / nullif(sum(temperature_n), 0),
                    max(temperature_max), sum(temperature_n)::int4,
                    sum(power_avg * power_n) / nullif(sum(power_n), 0), sum(power_n)::int4,
                    sum(efficiency_avg * efficiency_n) / nullif(sum(efficiency_n), 0),
                    sum(efficiency_n)::int4,
                    {sat_acc}, {sat_rej}, {sat_hw},
                    CASE WHEN sum(accepted_shares) + sum(rejected_shares) > 0
                         THEN 100.0 * sum(rejected_shares) / (sum(accepted_shares) + sum(rejected_shares)) END,
                    least(100.0, 100.0 * sum(online_samples) / (24 * $3::float8))
             FROM miner_telemetry_hourly
             WHERE site_id = $1 AND bucket >= $2 AND bucket < $2 + interval '1 day'
             GROUP BY miner_id",
            sat_acc = saturated_sum("accepted_shares"),
            sat_rej = saturated_sum("rejected_shares"),
            sat_hw = saturated_sum("hardware_errors"),
        )
    })
}

/// Recomputes the per-miner and per-site rollups of one site-hour; returns
/// the number of miners.
pub async fn hour(
    tx: &Transaction<'_>,
    site_id: i32,
    bucket: DateTime<Utc>,
    expected_per_hour: f64,
    lookback: Duration,
) -> Result<u64> {
    let lookback = lookback.as_secs_f64();
    tx.execute(
        "DELETE FROM miner_telemetry_hourly WHERE site_id = $1 AND bucket = $2",
        &[&site_id, &bucket],
    )
    .await?;
    let miners = tx
        .execute(
            hourly_sql(),
            &[&site_id, &bucket, &expected_per_hour, &lookback],
        )
        .await?;
    tx.execute(
        "DELETE FROM site_telemetry_hourly WHERE site_id = $1 AND bucket = $2",
        &[&site_id, &bucket],
    )
    .await?;
    tx.execute(site_hourly_sql(), &[&site_id, &bucket, &expected_per_hour])
        .await?;
    Ok(miners)
}

/// Recomputes the daily per-miner rollup of one site-day from its hourly
/// rows; `day` is midnight UTC. Returns the number of miners.
pub async fn day(
    tx: &Transaction<'_>,
    site_id: i32,
    day: DateTime<Utc>,
    expected_per_hour: f64,
) -> Result<u64> {
    tx.execute(
        "DELETE FROM miner_telemetry_daily WHERE site_id = $1 AND bucket = $2",
        &[&site_id, &day],
    )
    .await?;
    let miners = tx
        .execute(daily_sql(), &[&site_id, &day, &expected_per_hour])
        .await?;
    Ok(miners)
}

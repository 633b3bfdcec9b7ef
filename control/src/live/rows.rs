//! Changed miners as columns, written to `miner_live` in one `unnest`
//! upsert per flush.

use tokio_postgres::Client;

use super::Entry;
use crate::Result;

/// Changed miners as columns, for one `unnest` upsert.
#[derive(Default)]
pub(super) struct Rows {
    site: Vec<i32>,
    miner: Vec<String>,
    ts: Vec<chrono::DateTime<chrono::Utc>>,
    online: Vec<Option<bool>>,
    ip: Vec<Option<String>>,
    model: Vec<Option<String>>,
    hashrate: Vec<Option<f64>>,
    expected: Vec<Option<f64>>,
    temp_avg: Vec<Option<f32>>,
    temp_max: Vec<Option<f32>>,
    fan_max: Vec<Option<i32>>,
    power: Vec<Option<f32>>,
    efficiency: Vec<Option<f32>>,
    accepted: Vec<Option<i64>>,
    rejected: Vec<Option<i64>>,
    hw_errors: Vec<Option<i64>>,
    uptime: Vec<Option<i64>>,
    pool_url: Vec<Option<String>>,
    worker: Vec<Option<String>>,
    boards_total: Vec<Option<i16>>,
    boards_healthy: Vec<Option<i16>>,
    health: Vec<Option<String>>,
    firmware: Vec<Option<String>>,
    error: Vec<Option<String>>,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rows({})", self.site.len())
    }
}

impl Rows {
    pub(super) fn len(&self) -> usize {
        self.site.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.site.is_empty()
    }

    /// (site, miner) of each row.
    pub(super) fn keys(&self) -> impl Iterator<Item = (i32, &str)> {
        self.site
            .iter()
            .copied()
            .zip(self.miner.iter().map(String::as_str))
    }

    pub(super) fn push(&mut self, site: i32, miner: &str, e: &Entry) {
        self.site.push(site);
        self.miner.push(miner.to_string());
        self.ts
            .push(chrono::DateTime::from_timestamp_micros(e.ts_micros).unwrap_or_default());
        self.online.push(e.online);
        self.ip.push(e.ip_address.as_deref().map(String::from));
        self.model.push(e.model.as_deref().map(String::from));
        self.hashrate.push(e.hashrate_ghs);
        self.expected.push(e.hashrate_expected_ghs);
        self.temp_avg.push(e.temperature_avg);
        self.temp_max.push(e.temperature_max);
        self.fan_max.push(e.fan_max_rpm);
        self.power.push(e.power_consumption);
        self.efficiency.push(e.efficiency);
        self.accepted.push(e.accepted_shares);
        self.rejected.push(e.rejected_shares);
        self.hw_errors.push(e.hardware_errors);
        self.uptime.push(e.uptime_seconds);
        self.pool_url.push(e.pool_url.as_deref().map(String::from));
        self.worker.push(e.worker_name.as_deref().map(String::from));
        self.boards_total.push(e.boards_total);
        self.boards_healthy.push(e.boards_healthy);
        self.health
            .push(e.overall_health.as_deref().map(String::from));
        self.firmware
            .push(e.firmware_version.as_deref().map(String::from));
        self.error
            .push(e.error_message.as_deref().map(String::from));
    }

    pub(super) async fn upsert(&self, client: &Client) -> Result<u64> {
        Ok(client
            .execute(
                "INSERT INTO miner_live (site_id, miner_id, ts, online, ip_address, model, \
                   hashrate_ghs, hashrate_expected_ghs, temperature_avg, temperature_max, \
                   fan_max_rpm, power_consumption, efficiency, accepted_shares, rejected_shares, \
                   hardware_errors, uptime_seconds, pool_url, worker_name, boards_total, \
                   boards_healthy, overall_health, firmware_version, error_message) \
                 SELECT * FROM unnest($1::int4[], $2::text[], $3::timestamptz[], $4::bool[], \
                   $5::text[], $6::text[], $7::float8[], $8::float8[], $9::float4[], $10::float4[], \
                   $11::int4[], $12::float4[], $13::float4[], $14::int8[], $15::int8[], $16::int8[], \
                   $17::int8[], $18::text[], $19::text[], $20::int2[], $21::int2[], $22::text[], \
                   $23::text[], $24::text[]) \
                 ON CONFLICT (site_id, miner_id) DO UPDATE SET \
                   ts = EXCLUDED.ts, updated_at = now(), online = EXCLUDED.online, \
                   ip_address = EXCLUDED.ip_address, model = EXCLUDED.model, \
                   hashrate_ghs = EXCLUDED.hashrate_ghs, \
                   hashrate_expected_ghs = EXCLUDED.hashrate_expected_ghs, \
                   temperature_avg = EXCLUDED.temperature_avg, \
                   temperature_max = EXCLUDED.temperature_max, fan_max_rpm = EXCLUDED.fan_max_rpm, \
                   power_consumption = EXCLUDED.power_consumption, efficiency = EXCLUDED.efficiency, \
                   accepted_shares = EXCLUDED.accepted_shares, \
                   rejected_shares = EXCLUDED.rejected_shares, \
                   hardware_errors = EXCLUDED.hardware_errors, \
                   uptime_seconds = EXCLUDED.uptime_seconds, pool_url = EXCLUDED.pool_url, \
                   worker_name = EXCLUDED.worker_name, boards_total = EXCLUDED.boards_total, \
                   boards_healthy = EXCLUDED.boards_healthy, \
                   overall_health = EXCLUDED.overall_health, \
                   firmware_version = EXCLUDED.firmware_version, \
                   error_message = EXCLUDED.error_message \
                 WHERE miner_live.ts <= EXCLUDED.ts",
                &[
                    &self.site,
                    &self.miner,
                    &self.ts,
                    &self.online,
                    &self.ip,
                    &self.model,
                    &self.hashrate,
                    &self.expected,
                    &self.temp_avg,
                    &self.temp_max,
                    &self.fan_max,
                    &self.power,
                    &self.efficiency,
                    &self.accepted,
                    &self.rejected,
                    &self.hw_errors,
                    &self.uptime,
                    &self.pool_url,
                    &self.worker,
                    &self.boards_total,
                    &self.boards_healthy,
                    &self.health,
                    &self.firmware,
                    &self.error,
                ],
            )
            .await?)
    }
}

//! The latest state per miner and the events telemetry raises, kept in
//! memory as committed rows go by (the writer's commit hook, after COMMIT,
//! off the COPY path) and written out every flush interval: a miner that
//! reports every second still costs one row write per interval.
//!
//! Events: `miner_offline` (`online` false), `high_temperature`
//! (`temperature_max` over the threshold), `hashrate_drop` (hashrate under
//! a share of `hashrate_expected_ghs`, while online). A condition that
//! starts opens its event; one that clears resolves it.

use std::collections::HashMap;
use std::sync::Mutex;

use adit_types::{Sample, Text};
use tokio_postgres::Client;
use tracing::warn;

use crate::events::{self, EventType};
use crate::{ControlConfig, Result};

/// The live columns of one miner (`miner_live`).
#[derive(Debug, Clone, Default)]
struct Entry {
    ts_micros: i64,
    online: Option<bool>,
    ip_address: Option<Text>,
    model: Option<Text>,
    hashrate_ghs: Option<f64>,
    hashrate_expected_ghs: Option<f64>,
    temperature_avg: Option<f32>,
    temperature_max: Option<f32>,
    fan_max_rpm: Option<i32>,
    power_consumption: Option<f32>,
    efficiency: Option<f32>,
    accepted_shares: Option<i64>,
    rejected_shares: Option<i64>,
    hardware_errors: Option<i64>,
    uptime_seconds: Option<i64>,
    pool_url: Option<Text>,
    worker_name: Option<Text>,
    boards_total: Option<i16>,
    boards_healthy: Option<i16>,
    overall_health: Option<Text>,
    firmware_version: Option<Text>,
    error_message: Option<Text>,
    /// Conditions as of the last sample (bit per [`EventType::TELEMETRY`]);
    /// `None` until the first sample since start.
    conditions: Option<u8>,
    dirty: bool,
}

/// Replaces `dst` with `src` without allocating when they are equal.
fn set(dst: &mut Option<Text>, src: &Option<Text>) {
    if dst != src {
        dst.clone_from(src);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// ahash: seeded per process like std's SipHash (a collector cannot
    /// aim collisions at it) and several times faster on short keys.
    sites: HashMap<i32, HashMap<Text, Entry, ahash::RandomState>>,
    /// Conditions with an unresolved event at start, per (site, miner).
    open_at_start: HashMap<(i32, String), u8>,
    opens: Vec<(i32, String, EventType, String)>,
    resolves: Vec<(i32, String, EventType)>,
}

/// Thresholds and the state behind the live table and telemetry events.
#[derive(Debug)]
pub struct LiveState {
    inner: Mutex<Inner>,
    high_temperature_c: f64,
    hashrate_drop_share: f64,
    enabled: bool,
}

impl LiveState {
    pub fn new(cfg: &ControlConfig) -> Self {
        Self {
            inner: Mutex::default(),
            high_temperature_c: cfg.high_temperature_c,
            hashrate_drop_share: cfg.hashrate_drop_share,
            enabled: cfg.live_enabled,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which conditions a sample shows, a bit per [`EventType::TELEMETRY`].
    fn conditions(&self, s: &Sample) -> u8 {
        let offline = s.online == Some(false);
        let hot = s
            .temperature_max
            .is_some_and(|t| f64::from(t) > self.high_temperature_c);
        let drop = !offline
            && matches!((s.hashrate_ghs, s.hashrate_expected_ghs),
                (Some(h), Some(e)) if e > 0.0 && h < e * self.hashrate_drop_share);
        u8::from(offline) | u8::from(hot) << 1 | u8::from(drop) << 2
    }

    fn message(ty: EventType, s: &Sample, cfg: &Self) -> String {
        match ty {
            EventType::MinerOffline => format!("miner {} reports offline", s.miner_id),
            EventType::HighTemperature => format!(
                "miner {} temperature_max {:.1} °C is over {} °C",
                s.miner_id,
                s.temperature_max.unwrap_or_default(),
                cfg.high_temperature_c
            ),
            _ => format!(
                "miner {} hashrate {:.0} GH/s is under {:.0}% of the expected {:.0} GH/s",
                s.miner_id,
                s.hashrate_ghs.unwrap_or_default(),
                cfg.hashrate_drop_share * 100.0,
                s.hashrate_expected_ghs.unwrap_or_default()
            ),
        }
    }

    /// Takes in the committed samples of one upload.
    pub fn observe(&self, site_id: i32, samples: &[Sample]) {
        if !self.enabled || samples.is_empty() {
            return;
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        let miners = inner.sites.entry(site_id).or_default();
        for s in samples {
            let e = match miners.get_mut(s.miner_id.as_str()) {
                Some(e) => e,
                None => miners.entry(s.miner_id.clone()).or_default(),
            };
            if e.ts_micros > s.ts_micros {
                continue; // a late row: the live state already has newer
            }
            let now = self.conditions(s);
            let before = match e.conditions {
                Some(c) => c,
                None => inner
                    .open_at_start
                    .remove(&(site_id, s.miner_id.to_string()))
                    .unwrap_or(0),
            };
            if now != before {
                for (bit, ty) in EventType::TELEMETRY.into_iter().enumerate() {
                    let (was, is) = (before >> bit & 1 == 1, now >> bit & 1 == 1);
                    if is && !was {
                        let msg = Self::message(ty, s, self);
                        inner.opens.push((site_id, s.miner_id.to_string(), ty, msg));
                    } else if was && !is {
                        inner.resolves.push((site_id, s.miner_id.to_string(), ty));
                    }
                }
            }
            e.conditions = Some(now);
            e.ts_micros = s.ts_micros;
            e.online = s.online;
            set(&mut e.ip_address, &s.ip_address);
            set(&mut e.model, &s.model);
            e.hashrate_ghs = s.hashrate_ghs;
            e.hashrate_expected_ghs = s.hashrate_expected_ghs;
            e.temperature_avg = s.temperature_avg;
            e.temperature_max = s.temperature_max;
            e.fan_max_rpm = s.fan_speeds.as_ref().and_then(|f| f.iter().copied().max());
            e.power_consumption = s.power_consumption;
            e.efficiency = s.efficiency;
            e.accepted_shares = s.accepted_shares;
            e.rejected_shares = s.rejected_shares;
            e.hardware_errors = s.hardware_errors;
            e.uptime_seconds = s.uptime_seconds;
            set(&mut e.pool_url, &s.pool_url);
            set(&mut e.worker_name, &s.worker_name);
            e.boards_total = s.boards_total;
            e.boards_healthy = s.boards_healthy;
            set(&mut e.overall_health, &s.overall_health);
            set(&mut e.firmware_version, &s.firmware_version);
            set(&mut e.error_message, &s.error_message);
            e.dirty = true;
        }
    }

    /// Learns which telemetry events are unresolved (at start), so that a
    /// miner's first healthy sample resolves them.
    pub async fn load_open_events(&self, client: &Client) -> Result<usize> {
        let rows = client
            .query(
                "SELECT site_id, subject, event_type FROM events \
                 WHERE status <> 'resolved' \
                   AND event_type IN ('miner_offline', 'high_temperature', 'hashrate_drop')",
                &[],
            )
            .await?;
        let mut inner = self.lock();
        for r in &rows {
            let ty: String = r.get(2);
            let Some(bit) = EventType::TELEMETRY.iter().position(|t| t.name() == ty) else {
                continue;
            };
            *inner.open_at_start.entry((r.get(0), r.get(1))).or_default() |= 1 << bit;
        }
        Ok(rows.len())
    }

    /// Writes changed miners to `miner_live` and applies event changes;
    /// returns the number of miners written. On failure the changes are
    /// kept for the next flush.
    pub async fn flush(&self, client: &Client) -> Result<usize> {
        let (rows, opens, resolves) = {
            let mut inner = self.lock();
            let mut rows = Rows::default();
            for (&site, miners) in inner.sites.iter_mut() {
                for (miner, e) in miners.iter_mut().filter(|(_, e)| e.dirty) {
                    e.dirty = false;
                    rows.push(site, miner, e);
                }
            }
            (
                rows,
                std::mem::take(&mut inner.opens),
                std::mem::take(&mut inner.resolves),
            )
        };
        let n = rows.site.len();
        let result = async {
            if n > 0 {
                rows.upsert(client).await?;
            }
            events::apply(client, &opens, &resolves).await
        }
        .await;
        if let Err(e) = result {
            warn!(error = %e, miners = n, "Live state flush failed; will retry.");
            let mut inner = self.lock();
            for (site, miner) in rows.site.iter().zip(&rows.miner) {
                if let Some(e) = inner
                    .sites
                    .get_mut(site)
                    .and_then(|m| m.get_mut(miner.as_str()))
                {
                    e.dirty = true;
                }
            }
            let mut o = opens;
            o.append(&mut inner.opens);
            inner.opens = o;
            let mut r = resolves;
            r.append(&mut inner.resolves);
            inner.resolves = r;
            return Err(e);
        }
        Ok(n)
    }
}

/// Changed miners as columns, for one `unnest` upsert.
#[derive(Default)]
struct Rows {
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
    fn push(&mut self, site: i32, miner: &str, e: &Entry) {
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

    async fn upsert(&self, client: &Client) -> Result<u64> {
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

impl adit_writer::CommitObserver for LiveState {
    fn committed(&self, site_id: i32, samples: &[Sample]) {
        self.observe(site_id, samples);
    }
}

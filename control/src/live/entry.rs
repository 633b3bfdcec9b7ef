//! The live columns of one miner, as the latest sample left them, and
//! the bookkeeping the live state keeps beside them.

use adit_types::{Sample, Text};

/// The live columns of one miner (`miner_live`).
#[derive(Debug, Clone, Default)]
pub(super) struct Entry {
    pub(super) ts_micros: i64,
    pub(super) online: Option<bool>,
    pub(super) ip_address: Option<Text>,
    pub(super) model: Option<Text>,
    pub(super) hashrate_ghs: Option<f64>,
    pub(super) hashrate_expected_ghs: Option<f64>,
    pub(super) temperature_avg: Option<f32>,
    pub(super) temperature_max: Option<f32>,
    pub(super) fan_max_rpm: Option<i32>,
    pub(super) power_consumption: Option<f32>,
    pub(super) efficiency: Option<f32>,
    pub(super) accepted_shares: Option<i64>,
    pub(super) rejected_shares: Option<i64>,
    pub(super) hardware_errors: Option<i64>,
    pub(super) uptime_seconds: Option<i64>,
    pub(super) pool_url: Option<Text>,
    pub(super) worker_name: Option<Text>,
    pub(super) boards_total: Option<i16>,
    pub(super) boards_healthy: Option<i16>,
    pub(super) overall_health: Option<Text>,
    pub(super) firmware_version: Option<Text>,
    pub(super) error_message: Option<Text>,
    /// Conditions as of the last sample (a bit per
    /// [`crate::events::EventType::TELEMETRY`]);
    /// `None` until the first sample since start.
    pub(super) conditions: Option<u8>,
    /// Seconds (since the state was made) of the last sample received.
    pub(super) seen_s: u32,
    /// Changed since the last flush (and listed in `Inner::dirty`).
    pub(super) dirty: bool,
}

impl Entry {
    /// Takes the live columns of a sample newer than the last, and the
    /// conditions it shows.
    pub(super) fn take(&mut self, s: &Sample, conditions: u8) {
        self.conditions = Some(conditions);
        self.ts_micros = s.ts_micros;
        self.online = s.online;
        set(&mut self.ip_address, &s.ip_address);
        set(&mut self.model, &s.model);
        self.hashrate_ghs = s.hashrate_ghs;
        self.hashrate_expected_ghs = s.hashrate_expected_ghs;
        self.temperature_avg = s.temperature_avg;
        self.temperature_max = s.temperature_max;
        self.fan_max_rpm = s.fan_speeds.as_ref().and_then(|f| f.iter().copied().max());
        self.power_consumption = s.power_consumption;
        self.efficiency = s.efficiency;
        self.accepted_shares = s.accepted_shares;
        self.rejected_shares = s.rejected_shares;
        self.hardware_errors = s.hardware_errors;
        self.uptime_seconds = s.uptime_seconds;
        set(&mut self.pool_url, &s.pool_url);
        set(&mut self.worker_name, &s.worker_name);
        self.boards_total = s.boards_total;
        self.boards_healthy = s.boards_healthy;
        set(&mut self.overall_health, &s.overall_health);
        set(&mut self.firmware_version, &s.firmware_version);
        set(&mut self.error_message, &s.error_message);
    }
}

/// Replaces `dst` with `src` without allocating when they are equal.
fn set(dst: &mut Option<Text>, src: &Option<Text>) {
    if dst != src {
        dst.clone_from(src);
    }
}

//! One sample as the collector posts it to `POST /api/collector/upload`.
//!
//! The field names are adit's upload contract; an absent value is left out
//! of the JSON rather than sent as `null`.

use serde::{Deserialize, Serialize};

/// adit keeps `error_message` up to this many characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub miner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate_ghs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate_5s_ghs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate_expected_ghs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_avg: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_max: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temperature_chips: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fan_speeds: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_avg: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_shares: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_shares: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_errors: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<i64>,
    /// Watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_consumption: Option<f64>,
    /// Joules per terahash (W per TH/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boards: Vec<Board>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boards_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boards_healthy: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// When the miner was asked, Unix seconds: a sample sent late still
    /// says when it was measured.
    pub timestamp: i64,
}

/// One hash board.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Board {
    pub id: i64,
    /// GH/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashrate: Option<f64>,
    /// °C, the board's (PCB) temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chips_ok: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chips_total: Option<i64>,
}

impl Sample {
    /// A miner that did not answer: `online: false` and why.
    pub fn offline(miner_id: &str, ip_address: Option<&str>, timestamp: i64, why: &str) -> Self {
        Self {
            miner_id: miner_id.to_owned(),
            ip_address: ip_address.map(str::to_owned),
            online: false,
            error_message: Some(truncate_chars(why, MAX_ERROR_MESSAGE_CHARS)),
            timestamp,
            ..Self::default()
        }
    }
}

/// The first `max` characters of `s`.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offline_sample_carries_only_what_is_known() {
        let s = Sample::offline("SN1", Some("10.0.0.5"), 1_764_900_000, "connection refused");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"miner_id":"SN1","ip_address":"10.0.0.5","online":false,
                "error_message":"connection refused","timestamp":1_764_900_000})
        );
    }

    #[test]
    fn long_error_messages_are_cut_at_adit_limit() {
        let s = Sample::offline("SN1", None, 0, &"é".repeat(2000));
        assert_eq!(
            s.error_message.unwrap().chars().count(),
            MAX_ERROR_MESSAGE_CHARS
        );
    }
}

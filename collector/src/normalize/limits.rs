//! adit's row rules, applied before sending: adit rejects a whole row for
//! one value outside them (a failed sensor reading 255 °C, a counter that
//! wrapped negative), so such a value is dropped here and named in
//! `error_message`, and the rest of the miner's sample still arrives.

use crate::sample::{truncate_chars, Sample};

const HASHRATE_MAX_GHS: f64 = 1e8;
const TEMPERATURE_C: (f64, f64) = (-40.0, 250.0);
const FAN_MAX_RPM: i64 = 30_000;
const POWER_MAX_W: f64 = 100_000.0;
const FREQUENCY_MAX_MHZ: f64 = 10_000.0;
const EFFICIENCY_MAX: f64 = 100_000.0;
const LATENCY_MAX_MS: f64 = 3_600_000.0;
const CHIPS_MAX: i64 = i16::MAX as i64;
const MAX_TEMPERATURE_CHIPS: usize = 1024;
const MAX_FANS: usize = 32;
const MAX_BOARDS: usize = 32;
const STRING_MAX_CHARS: usize = 256;
const LONG_STRING_MAX_CHARS: usize = 1024;

/// Whether adit takes `t` as a temperature.
pub(super) fn plausible_temperature(t: f64) -> bool {
    (TEMPERATURE_C.0..=TEMPERATURE_C.1).contains(&t)
}

/// Drops or cuts what adit would refuse; returns what was dropped.
pub(super) fn fit(sample: &mut Sample) -> Vec<String> {
    let mut dropped = Vec::new();
    let mut range = |name: &str, v: &mut Option<f64>, lo: f64, hi: f64| {
        if let Some(x) = *v {
            if !(lo..=hi).contains(&x) {
                dropped.push(format!("{name}={x}"));
                *v = None;
            }
        }
    };
    let (t_lo, t_hi) = TEMPERATURE_C;
    range(
        "hashrate_ghs",
        &mut sample.hashrate_ghs,
        0.0,
        HASHRATE_MAX_GHS,
    );
    range(
        "hashrate_5s_ghs",
        &mut sample.hashrate_5s_ghs,
        0.0,
        HASHRATE_MAX_GHS,
    );
    range(
        "hashrate_expected_ghs",
        &mut sample.hashrate_expected_ghs,
        0.0,
        HASHRATE_MAX_GHS,
    );
    range("temperature_avg", &mut sample.temperature_avg, t_lo, t_hi);
    range("temperature_min", &mut sample.temperature_min, t_lo, t_hi);
    range("temperature_max", &mut sample.temperature_max, t_lo, t_hi);
    range(
        "frequency_avg",
        &mut sample.frequency_avg,
        0.0,
        FREQUENCY_MAX_MHZ,
    );
    range(
        "power_consumption",
        &mut sample.power_consumption,
        0.0,
        POWER_MAX_W,
    );
    range("efficiency", &mut sample.efficiency, 0.0, EFFICIENCY_MAX);
    range(
        "pool_latency_ms",
        &mut sample.pool_latency_ms,
        0.0,
        LATENCY_MAX_MS,
    );
    for board in &mut sample.boards {
        let id = board.id;
        range(
            &format!("boards[{id}].hashrate"),
            &mut board.hashrate,
            0.0,
            HASHRATE_MAX_GHS,
        );
        range(&format!("boards[{id}].temp"), &mut board.temp, t_lo, t_hi);
    }

    let mut count = |name: &str, v: &mut Option<i64>, hi: i64| {
        if let Some(x) = *v {
            if !(0..=hi).contains(&x) {
                dropped.push(format!("{name}={x}"));
                *v = None;
            }
        }
    };
    count("accepted_shares", &mut sample.accepted_shares, i64::MAX);
    count("rejected_shares", &mut sample.rejected_shares, i64::MAX);
    count("hardware_errors", &mut sample.hardware_errors, i64::MAX);
    count("uptime_seconds", &mut sample.uptime_seconds, i64::MAX);
    for board in &mut sample.boards {
        let id = board.id;
        count(
            &format!("boards[{id}].chips_ok"),
            &mut board.chips_ok,
            CHIPS_MAX,
        );
        count(
            &format!("boards[{id}].chips_total"),
            &mut board.chips_total,
            CHIPS_MAX,
        );
    }

    let chips_before = sample.temperature_chips.len();
    sample
        .temperature_chips
        .retain(|t| (t_lo..=t_hi).contains(t));
    if sample.temperature_chips.len() != chips_before {
        dropped.push(format!(
            "{} temperature_chips readings",
            chips_before - sample.temperature_chips.len()
        ));
    }
    sample.temperature_chips.truncate(MAX_TEMPERATURE_CHIPS);
    let fans_before = sample.fan_speeds.len();
    sample
        .fan_speeds
        .retain(|rpm| (0..=FAN_MAX_RPM).contains(rpm));
    if sample.fan_speeds.len() != fans_before {
        dropped.push(format!(
            "{} fan_speeds readings",
            fans_before - sample.fan_speeds.len()
        ));
    }
    sample.fan_speeds.truncate(MAX_FANS);
    sample.boards.retain(|b| (0..=CHIPS_MAX).contains(&b.id));
    sample.boards.truncate(MAX_BOARDS);

    for text in [
        &mut sample.model,
        &mut sample.firmware_version,
        &mut sample.worker_name,
    ]
    .into_iter()
    .flatten()
    {
        *text = truncate_chars(text, STRING_MAX_CHARS);
    }
    if let Some(url) = &mut sample.pool_url {
        *url = truncate_chars(url, LONG_STRING_MAX_CHARS);
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Board;

    #[test]
    fn values_adit_would_refuse_are_dropped_and_named() {
        let mut s = Sample {
            miner_id: "SN".into(),
            online: true,
            temperature_max: Some(255.0),
            temperature_avg: Some(70.0),
            temperature_chips: vec![70.0, 255.0, -50.0],
            fan_speeds: vec![5000, 65535],
            hardware_errors: Some(-3),
            boards: vec![Board {
                id: 1,
                hashrate: Some(-1.0),
                temp: Some(60.0),
                chips_ok: Some(108),
                chips_total: Some(40_000),
            }],
            model: Some("x".repeat(300)),
            ..Sample::default()
        };
        let dropped = fit(&mut s);
        assert_eq!(
            dropped,
            [
                "temperature_max=255",
                "boards[1].hashrate=-1",
                "hardware_errors=-3",
                "boards[1].chips_total=40000",
                "2 temperature_chips readings",
                "1 fan_speeds readings",
            ]
        );
        assert_eq!((s.temperature_max, s.temperature_avg), (None, Some(70.0)));
        assert_eq!(s.temperature_chips, vec![70.0]);
        assert_eq!(s.fan_speeds, vec![5000]);
        assert_eq!(s.boards[0].temp, Some(60.0));
        assert_eq!(s.model.unwrap().len(), STRING_MAX_CHARS);
    }

    #[test]
    fn values_within_the_rules_are_kept() {
        let mut s = Sample {
            temperature_min: Some(-40.0),
            temperature_max: Some(250.0),
            fan_speeds: vec![0, 30_000],
            hashrate_ghs: Some(0.0),
            ..Sample::default()
        };
        let before = s.clone();
        assert!(fit(&mut s).is_empty());
        assert_eq!(s, before);
    }
}

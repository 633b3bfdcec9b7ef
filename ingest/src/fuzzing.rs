//! The property the fuzz target (`fuzz/`) checks, here so that a crash it
//! finds becomes a plain regression test (`fuzz/regressions/`).
//!
//! Input: the first byte picks the encoding (identity, gzip, deflate,
//! zstd), the rest is the body as sent. Properties:
//! - decompress, parse, validate and the `encode` hook (the fuzz target
//!   passes the writer's COPY encoder) never panic;
//! - adit accepts a body as a batch only if serde_json reads it as an
//!   array, and then with as many elements as it has samples plus rejects;
//! - the fast row path gives exactly what the full serde path gives
//!   (samples to the bit, rejects, errors);
//! - every accepted sample keeps the rules (miner_id length, finite numbers
//!   in range, array sizes), and the answer's counts add up.

use adit_types::Sample;
use bytes::Bytes;

use crate::decode::{self, Encoding};
use crate::validate::{self, Rules};

/// Small limits, so the fuzzer also reaches the limit paths.
const MAX_DECOMPRESSED: usize = 1 << 20;
const NOW_MICROS: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

/// Panics when a property does not hold for `data`; `encode` is called
/// with every accepted sample.
pub fn check(data: &[u8], mut encode: impl FnMut(&Sample)) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = match selector % 4 {
        0 => Encoding::Identity,
        1 => Encoding::Gzip,
        2 => Encoding::Deflate,
        _ => Encoding::Zstd,
    };
    let Ok(raw) = decode::decompress(Bytes::copy_from_slice(body), encoding, MAX_DECOMPRESSED)
    else {
        return;
    };
    assert!(raw.len() <= MAX_DECOMPRESSED, "decompressed past the limit");
    let rules = Rules {
        max_rows: 1000,
        ..Rules::default()
    };
    // serde_json's lenient reading (raw values, escapes unchecked) is the
    // reference for what a batch is; what is stored is checked below.
    let reference = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&raw);
    let result = validate::parse_batch(&raw, &rules, NOW_MICROS);
    // The fast path reads exactly what the full path reads, or stays out.
    let full = validate::parse_batch_full_path(&raw, &rules, NOW_MICROS);
    assert_eq!(
        format!("{result:?}"),
        format!("{full:?}"),
        "the fast path and the full path disagree"
    );
    let Ok(parsed) = result else {
        return;
    };
    let elements = reference
        .unwrap_or_else(|e| panic!("adit accepted a body serde_json refuses ({e})"))
        .len();
    let (ok, bad) = (parsed.samples.len(), parsed.rejects.len());
    assert_eq!(ok + bad, elements, "rows lost or invented");
    let s = &parsed.summary;
    assert_eq!(s.processed as usize, ok);
    assert_eq!(s.rejected as usize, bad);
    assert_eq!((s.online + s.offline) as usize, ok);
    assert!(s.errors.len() <= bad);
    for r in &parsed.rejects {
        // Stored in text columns and echoed in the answer.
        assert!(!r.error.field.contains('\0') && !r.raw_json.contains('\0'));
        assert!(
            r.error.field.chars().count() <= 129,
            "an unbounded field name"
        );
    }
    for sample in &parsed.samples {
        let chars = sample.miner_id.chars().count();
        assert!((1..=rules.miner_id_max_chars).contains(&chars));
        assert!(!sample.miner_id.chars().any(char::is_control));
        let floats = [
            sample.hashrate_ghs,
            sample.hashrate_5s_ghs,
            sample.hashrate_expected_ghs,
        ];
        for v in floats.into_iter().flatten() {
            assert!(v.is_finite() && (0.0..=rules.hashrate_max_ghs).contains(&v));
        }
        let temps = [
            sample.temperature_avg,
            sample.temperature_min,
            sample.temperature_max,
        ];
        let chips = sample.temperature_chips.as_deref().unwrap_or_default();
        for t in temps.into_iter().flatten().chain(chips.iter().copied()) {
            let t = f64::from(t);
            assert!(
                t.is_finite() && (rules.temperature_min_c..=rules.temperature_max_c).contains(&t)
            );
        }
        assert!(chips.len() <= rules.max_temperature_chips);
        let fans = sample.fan_speeds.as_deref().unwrap_or_default();
        assert!(fans.len() <= rules.max_fans);
        assert!(fans
            .iter()
            .all(|&f| f >= 0 && f64::from(f) <= rules.fan_max_rpm));
        for c in [
            sample.accepted_shares,
            sample.rejected_shares,
            sample.hardware_errors,
            sample.uptime_seconds,
        ] {
            assert!(c.is_none_or(|c| c >= 0), "a negative counter was accepted");
        }
        // What PostgreSQL would refuse in a text or jsonb column.
        if let Some(extra) = &sample.extra {
            // serde_json decodes every escape (as jsonb does) but, unlike
            // jsonb, cannot hold numbers beyond f64.
            match serde_json::from_str::<serde_json::Value>(extra) {
                Ok(v) => {
                    assert!(v.is_object(), "extra is not an object");
                    assert!(!has_nul(&v), "extra holds a NUL: {extra}");
                }
                Err(e) if e.to_string().starts_with("number out of range") => {}
                Err(e) => panic!("extra is not storable JSON ({e}): {extra}"),
            }
        }
        let texts = [
            Some(&sample.miner_id),
            sample.ip_address.as_ref(),
            sample.pool_url.as_ref(),
            sample.worker_name.as_ref(),
            sample.overall_health.as_ref(),
            sample.model.as_ref(),
            sample.firmware_version.as_ref(),
            sample.error_message.as_ref(),
        ];
        for t in texts.into_iter().flatten() {
            assert!(!t.contains('\0'), "a NUL character was accepted");
        }
        encode(sample);
    }
}

/// True when a string or member name anywhere in `v` holds U+0000.
fn has_nul(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

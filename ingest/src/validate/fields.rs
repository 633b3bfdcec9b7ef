//! Field by field: the contract's field names, each kind of value's rule
//! (text, number in range, integer, arrays of either, timestamps), the
//! messages a wrong type gets, and what JSON kept as it came must be to
//! be stored.

use std::borrow::Cow;

use adit_types::Text;
use serde_json::value::RawValue;

use super::rules::Window;

/// Why a row is refused: the field and the reason.
pub(super) struct Invalid<'a> {
    pub(super) field: Cow<'a, str>,
    pub(super) reason: String,
}

pub(super) type Field<T> = std::result::Result<Option<T>, String>;

pub(super) fn expected_string(_: &str) -> String {
    "expected a string".into()
}

pub(super) fn expected_bool(_: &str) -> String {
    "expected true or false".into()
}

pub(super) fn expected_numbers(_: &str) -> String {
    "expected an array of numbers".into()
}

pub(super) fn expected_integers(_: &str) -> String {
    "expected an array of integers".into()
}

pub(super) fn expected_number(message: &str) -> String {
    if message.contains("out of range") {
        "number out of range".into()
    } else {
        "expected a number".into()
    }
}

/// The bit of a field the contract names.
pub(super) fn known_bit(key: &str) -> Option<u32> {
    Some(match key {
        "miner_id" => 0,
        "ip_address" => 1,
        "online" => 2,
        "hashrate_ghs" => 3,
        "hashrate_5s_ghs" => 4,
        "hashrate_expected_ghs" => 5,
        "temperature_avg" => 6,
        "temperature_min" => 7,
        "temperature_max" => 8,
        "temperature_chips" => 9,
        "fan_speeds" => 10,
        "frequency_avg" => 11,
        "accepted_shares" => 12,
        "rejected_shares" => 13,
        "hardware_errors" => 14,
        "uptime_seconds" => 15,
        "power_consumption" => 16,
        "efficiency" => 17,
        "pool_url" => 18,
        "worker_name" => 19,
        "pool_latency_ms" => 20,
        "boards" => 21,
        "boards_total" => 22,
        "boards_healthy" => 23,
        "overall_health" => 24,
        "model" => 25,
        "firmware_version" => 26,
        "error_message" => 27,
        "latency_ms" => 28,
        "timestamp" => 29,
        _ => return None,
    })
}

/// An unknown member's value goes to a `jsonb` column as it came, so it
/// must be JSON that PostgreSQL stores: no `\u0000` (in the name either),
/// no unpaired UTF-16 surrogate escape (which the raw scan lets through).
pub(super) fn check_storable(key: &str, v: &RawValue) -> std::result::Result<(), String> {
    if key.contains('\0') {
        return Err("a member name contains \\u0000, which cannot be stored".into());
    }
    storable_json(v)
}

/// JSON text kept as it came for a `jsonb` column (unknown members, a
/// `boards` array with unknown board members): what PostgreSQL refuses
/// there is refused here, row by row, so it never reaches the writer's
/// batch.
pub(super) fn storable_json(v: &RawValue) -> std::result::Result<(), String> {
    match adit_types::json::unstorable_json(v.get().as_bytes()) {
        None => Ok(()),
        Some(reason) => Err(reason),
    }
}

pub(super) fn f32c(v: f64) -> f32 {
    v as f32
}

pub(super) fn i16c(v: i64) -> i16 {
    v as i16
}

/// A string field's rules.
pub(super) fn text_rule(s: Option<String>, max_chars: usize) -> Field<Text> {
    if let Some(s) = &s {
        if s.contains('\0') {
            return Err("contains \\u0000, which cannot be stored".into());
        }
        if s.len() > max_chars && s.chars().count() > max_chars {
            return Err(format!("longer than {max_chars} characters"));
        }
    }
    Ok(s.map(Text::from))
}

/// A number inside its range.
pub(super) fn range_rule(x: Option<f64>, (lo, hi): (f64, f64)) -> Field<f64> {
    match x {
        Some(x) if !(lo..=hi).contains(&x) => Err(format!("{x} is outside {lo}..={hi}")),
        x => Ok(x),
    }
}

/// An integer inside its range; a float with no fractional part counts.
pub(super) fn int_rule(n: Option<serde_json::Number>, (lo, hi): (i64, i64)) -> Field<i64> {
    n.map(|n| integer(&n, lo, hi)).transpose()
}

fn integer(n: &serde_json::Number, lo: i64, hi: i64) -> std::result::Result<i64, String> {
    let x = match n.as_i64() {
        Some(x) => x,
        None => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => f as i64,
            _ => return Err(format!("{n} is not an integer in {lo}..={hi}")),
        },
    };
    if (lo..=hi).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is outside {lo}..={hi}"))
    }
}

pub(super) fn float_items(
    xs: Option<Vec<f64>>,
    max_len: usize,
    (lo, hi): (f64, f64),
) -> Field<Vec<f32>> {
    let Some(xs) = xs else { return Ok(None) };
    if xs.len() > max_len {
        return Err(format!("more than {max_len} items"));
    }
    xs.iter()
        .map(|&x| {
            if (lo..=hi).contains(&x) {
                Ok(x as f32)
            } else {
                Err(format!("item {x} is outside {lo}..={hi}"))
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) fn int_items(
    xs: Option<Vec<serde_json::Number>>,
    max_len: usize,
    (lo, hi): (i64, i64),
) -> Field<Vec<i32>> {
    let Some(xs) = xs else { return Ok(None) };
    if xs.len() > max_len {
        return Err(format!("more than {max_len} items"));
    }
    xs.iter()
        .map(|n| {
            integer(n, lo, hi)
                .map(|x| x as i32)
                .map_err(|e| format!("item {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

/// RFC 3339 text or Unix seconds, inside the lateness window.
pub(super) fn timestamp(v: &RawValue, w: &Window) -> Field<i64> {
    timestamp_text(v.get(), w)
}

/// [`timestamp`] of a value's raw JSON text.
pub(super) fn timestamp_text(text: &str, w: &Window) -> Field<i64> {
    let micros = if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|_| "expected a string".to_string())?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map_err(|e| format!("not an RFC 3339 time: {e}"))?
            .timestamp_micros()
    } else if text == "null" {
        return Ok(None);
    } else {
        let secs: f64 = serde_json::from_str(text)
            .map_err(|_| "expected RFC 3339 text or Unix seconds".to_string())?;
        if !secs.is_finite() || secs.abs() > 1e11 {
            return Err("Unix seconds out of range".into());
        }
        (secs * 1e6).round() as i64
    };
    if micros > w.latest {
        return Err("more than the allowed skew in the future".into());
    }
    if micros < w.earliest {
        return Err("older than the lateness window".into());
    }
    Ok(Some(micros))
}

//! Parse, don't validate: a decoded body becomes typed [`Sample`]s, and
//! each row that breaks a rule becomes a [`Reject`] carrying its raw JSON
//! and the reason. A batch-level problem (not JSON, not an array, too deep,
//! too many rows) refuses the whole upload instead.

use std::borrow::Cow;
use std::time::Duration;

use adit_types::{Boards, Reject, RowError, Sample, UploadSummary, MAX_LISTED_ERRORS};
use serde_json::value::RawValue;

use crate::json::{nests_deeper_than, RawObject};
use crate::{Error, Result};

/// The bounds a row must respect (SPEC §2.1); every one can be configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Rows in one upload; a bigger batch is refused whole (413).
    pub max_rows: usize,
    /// Array/object nesting; deeper bodies are refused whole (400).
    pub max_depth: usize,
    pub miner_id_max_chars: usize,
    pub string_max_chars: usize,
    /// For `pool_url` and `error_message`.
    pub long_string_max_chars: usize,
    pub max_temperature_chips: usize,
    pub max_fans: usize,
    pub max_boards: usize,
    pub hashrate_max_ghs: f64,
    pub temperature_min_c: f64,
    pub temperature_max_c: f64,
    pub fan_max_rpm: f64,
    pub power_max_w: f64,
    /// How far ahead of the server clock a `timestamp` may be.
    pub max_future: Duration,
    /// How old a `timestamp` may be (the lateness window).
    pub lateness: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_rows: 20_000,
            max_depth: 64,
            miner_id_max_chars: 64,
            string_max_chars: 256,
            long_string_max_chars: 1024,
            max_temperature_chips: 1024,
            max_fans: 32,
            max_boards: 32,
            hashrate_max_ghs: 1e8,
            temperature_min_c: -40.0,
            temperature_max_c: 250.0,
            fan_max_rpm: 30_000.0,
            power_max_w: 100_000.0,
            max_future: Duration::from_secs(5 * 60),
            lateness: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Upper bounds of fields the spec does not give a range for: generous,
/// but they keep garbage (and overflow) out.
const FREQUENCY_MAX_MHZ: f64 = 10_000.0;
const EFFICIENCY_MAX: f64 = 100_000.0;
const LATENCY_MAX_MS: f64 = 3_600_000.0;
const BOARDS_COUNT_MAX: i64 = 1024;

/// A validated batch.
#[derive(Debug, Default)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    pub rejects: Vec<Reject>,
    pub summary: UploadSummary,
}

/// Splits a decoded body into valid samples and rejected rows.
/// `now_micros` is the receive time: the default sample time and the
/// reference for the lateness window.
pub fn parse_batch(body: &[u8], rules: &Rules, now_micros: i64) -> Result<Parsed> {
    if nests_deeper_than(body, rules.max_depth) {
        return Err(Error::TooDeep {
            limit: rules.max_depth,
        });
    }
    let rows: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            Error::NotAnArray
        } else {
            Error::MalformedJson {
                reason: e.to_string(),
            }
        }
    })?;
    if rows.len() > rules.max_rows {
        return Err(Error::TooManyRows {
            rows: rows.len(),
            limit: rules.max_rows,
        });
    }
    let window = Window {
        now: now_micros,
        earliest: now_micros - rules.lateness.as_micros() as i64,
        latest: now_micros + rules.max_future.as_micros() as i64,
    };
    let mut out = Parsed {
        samples: Vec::with_capacity(rows.len()),
        ..Default::default()
    };
    for (index, raw) in rows.into_iter().enumerate() {
        match parse_row(raw, rules, &window) {
            Ok(sample) => {
                if sample.online == Some(true) {
                    out.summary.online += 1;
                }
                out.samples.push(sample);
            }
            Err(Invalid { field, reason }) => {
                let error = RowError {
                    index: index as u32,
                    field: field_name(field),
                    reason,
                };
                if out.summary.errors.len() < MAX_LISTED_ERRORS {
                    out.summary.errors.push(error.clone());
                }
                out.rejects.push(Reject {
                    error,
                    raw_json: clip(raw.get()),
                });
            }
        }
    }
    out.summary.processed = out.samples.len() as u32;
    out.summary.offline = out.summary.processed - out.summary.online;
    out.summary.rejected = out.rejects.len() as u32;
    Ok(out)
}

/// Longest raw row kept in `ingest_rejects`; longer ones are cut (at a
/// character boundary) and marked, so a hostile 10 MB row costs 64 KiB.
pub const MAX_REJECT_RAW_BYTES: usize = 64 * 1024;

fn clip(raw: &str) -> String {
    if raw.len() <= MAX_REJECT_RAW_BYTES {
        return raw.to_owned();
    }
    let mut end = MAX_REJECT_RAW_BYTES;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut: {} bytes in all]", &raw[..end], raw.len())
}

/// Longest field name echoed back or stored with a reject.
const MAX_FIELD_NAME_CHARS: usize = 128;

/// A field name as the client sent it, made safe to echo and to store in a
/// text column: control characters (NUL included) escaped, cut at
/// [`MAX_FIELD_NAME_CHARS`].
fn field_name(name: Cow<'_, str>) -> String {
    if name.len() <= MAX_FIELD_NAME_CHARS && !name.chars().any(char::is_control) {
        return name.into_owned();
    }
    let mut out = String::new();
    let mut chars = 0;
    for c in name.chars() {
        let width = if c.is_control() {
            c.escape_unicode().count()
        } else {
            1
        };
        if chars + width > MAX_FIELD_NAME_CHARS {
            out.push('…');
            break;
        }
        chars += width;
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Acceptable sample times, Unix microseconds.
struct Window {
    now: i64,
    earliest: i64,
    latest: i64,
}

/// Why a row is refused: the field and the reason.
struct Invalid<'a> {
    field: Cow<'a, str>,
    reason: String,
}

type Field<T> = std::result::Result<Option<T>, String>;

fn parse_row<'a>(
    raw: &'a RawValue,
    rules: &Rules,
    window: &Window,
) -> std::result::Result<Sample, Invalid<'a>> {
    let obj: RawObject<'a> = serde_json::from_str(raw.get()).map_err(|_| Invalid {
        field: "row".into(),
        reason: "expected a JSON object".into(),
    })?;
    let mut s = Sample::default();
    let mut miner_id = None;
    let mut ts = None;
    let mut seen = 0u64;
    let mut extra: Vec<(&Cow<'a, str>, &RawValue)> = Vec::new();
    let mut boards_extra = None;
    let r = rules;
    let temp = (r.temperature_min_c, r.temperature_max_c);
    let hashrate = (0.0, r.hashrate_max_ghs);
    let s_max = r.string_max_chars;
    for (key, v) in &obj.0 {
        let fail = |reason: String| Invalid {
            field: key.clone(),
            reason,
        };
        let (bit, result): (u32, std::result::Result<(), String>) = match key.as_ref() {
            "miner_id" => (0, string(v, r.miner_id_max_chars).map(|x| miner_id = x)),
            "ip_address" => (1, string(v, s_max).map(|x| s.ip_address = x)),
            "online" => (2, boolean(v).map(|x| s.online = x)),
            "hashrate_ghs" => (3, float(v, hashrate).map(|x| s.hashrate_ghs = x)),
            "hashrate_5s_ghs" => (4, float(v, hashrate).map(|x| s.hashrate_5s_ghs = x)),
            "hashrate_expected_ghs" => (5, float(v, hashrate).map(|x| s.hashrate_expected_ghs = x)),
            "temperature_avg" => (6, float(v, temp).map(|x| s.temperature_avg = x.map(f32c))),
            "temperature_min" => (7, float(v, temp).map(|x| s.temperature_min = x.map(f32c))),
            "temperature_max" => (8, float(v, temp).map(|x| s.temperature_max = x.map(f32c))),
            "temperature_chips" => (
                9,
                float_array(v, r.max_temperature_chips, temp).map(|x| s.temperature_chips = x),
            ),
            "fan_speeds" => (
                10,
                int_array(v, r.max_fans, (0, r.fan_max_rpm as i64)).map(|x| s.fan_speeds = x),
            ),
            "frequency_avg" => (
                11,
                float(v, (0.0, FREQUENCY_MAX_MHZ)).map(|x| s.frequency_avg = x.map(f32c)),
            ),
            "accepted_shares" => (12, counter(v).map(|x| s.accepted_shares = x)),
            "rejected_shares" => (13, counter(v).map(|x| s.rejected_shares = x)),
            "hardware_errors" => (14, counter(v).map(|x| s.hardware_errors = x)),
            "uptime_seconds" => (15, counter(v).map(|x| s.uptime_seconds = x)),
            "power_consumption" => (
                16,
                float(v, (0.0, r.power_max_w)).map(|x| s.power_consumption = x.map(f32c)),
            ),
            "efficiency" => (
                17,
                float(v, (0.0, EFFICIENCY_MAX)).map(|x| s.efficiency = x.map(f32c)),
            ),
            "pool_url" => (
                18,
                string(v, r.long_string_max_chars).map(|x| s.pool_url = x),
            ),
            "worker_name" => (19, string(v, s_max).map(|x| s.worker_name = x)),
            "pool_latency_ms" => (
                20,
                float(v, (0.0, LATENCY_MAX_MS)).map(|x| s.pool_latency_ms = x.map(f32c)),
            ),
            "boards" => match boards(v, r) {
                Ok(b) => {
                    if b.as_ref().is_some_and(|(_, unknown)| *unknown) {
                        boards_extra = Some(*v);
                    }
                    s.boards = b.map(|(b, _)| b);
                    (21, Ok(()))
                }
                Err(Invalid { field, reason }) => {
                    return Err(Invalid {
                        field: format!("boards{field}").into(),
                        reason,
                    })
                }
            },
            "boards_total" => (
                22,
                int(v, (0, BOARDS_COUNT_MAX)).map(|x| s.boards_total = x.map(i16c)),
            ),
            "boards_healthy" => (
                23,
                int(v, (0, BOARDS_COUNT_MAX)).map(|x| s.boards_healthy = x.map(i16c)),
            ),
            "overall_health" => (24, string(v, s_max).map(|x| s.overall_health = x)),
            "model" => (25, string(v, s_max).map(|x| s.model = x)),
            "firmware_version" => (26, string(v, s_max).map(|x| s.firmware_version = x)),
            "error_message" => (
                27,
                string(v, r.long_string_max_chars).map(|x| s.error_message = x),
            ),
            "latency_ms" => (
                28,
                float(v, (0.0, LATENCY_MAX_MS)).map(|x| s.latency_ms = x.map(f32c)),
            ),
            "timestamp" => (29, timestamp(v, window).map(|x| ts = x)),
            _ => {
                if extra.iter().any(|(k, _)| *k == key) {
                    return Err(fail("duplicate key".into()));
                }
                check_storable(key, v).map_err(fail)?;
                extra.push((key, v));
                continue;
            }
        };
        if seen & (1 << bit) != 0 {
            return Err(fail("duplicate key".into()));
        }
        seen |= 1 << bit;
        result.map_err(fail)?;
    }
    s.miner_id = miner_id.ok_or_else(|| Invalid {
        field: "miner_id".into(),
        reason: "required".into(),
    })?;
    if s.miner_id.is_empty() || s.miner_id.chars().any(char::is_control) {
        return Err(Invalid {
            field: "miner_id".into(),
            reason: "must be 1-64 characters without control characters".into(),
        });
    }
    s.ts_micros = ts.unwrap_or(window.now);
    if let Some(boards) = boards_extra {
        extra.push((&BOARDS_KEY, boards));
    }
    s.extra = (!extra.is_empty()).then(|| render_object(&extra));
    Ok(s)
}

static BOARDS_KEY: Cow<'static, str> = Cow::Borrowed("boards");

/// The unknown members of a row as one JSON object text.
fn render_object(members: &[(&Cow<'_, str>, &RawValue)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        adit_types::push_json_string(&mut out, k);
        out.push(':');
        out.push_str(v.get());
    }
    out.push('}');
    out
}

/// An unknown member's value goes to a `jsonb` column as it came, so it
/// must be JSON that PostgreSQL stores: no `\u0000` (in the name either),
/// no unpaired UTF-16 surrogate escape (which the raw scan lets through).
fn check_storable(key: &str, v: &RawValue) -> std::result::Result<(), String> {
    if key.contains('\0') {
        return Err("a member name contains \\u0000, which cannot be stored".into());
    }
    match crate::json::check_escapes(v.get().as_bytes()) {
        Ok(()) => Ok(()),
        Err(crate::json::BadEscape::Nul) => Err("contains \\u0000, which cannot be stored".into()),
        Err(crate::json::BadEscape::Surrogate) => {
            Err("contains an unpaired UTF-16 surrogate escape".into())
        }
    }
}

fn f32c(v: f64) -> f32 {
    v as f32
}

fn i16c(v: i64) -> i16 {
    v as i16
}

fn string(v: &RawValue, max_chars: usize) -> Field<String> {
    let s: Option<String> =
        serde_json::from_str(v.get()).map_err(|_| "expected a string".to_string())?;
    if let Some(s) = &s {
        if s.contains('\0') {
            return Err("contains \\u0000, which cannot be stored".into());
        }
        if s.len() > max_chars && s.chars().count() > max_chars {
            return Err(format!("longer than {max_chars} characters"));
        }
    }
    Ok(s)
}

fn boolean(v: &RawValue) -> Field<bool> {
    serde_json::from_str(v.get()).map_err(|_| "expected true or false".to_string())
}

fn float(v: &RawValue, (lo, hi): (f64, f64)) -> Field<f64> {
    let x: Option<f64> = serde_json::from_str(v.get()).map_err(|e| number_error(&e))?;
    match x {
        Some(x) if !(lo..=hi).contains(&x) => Err(format!("{x} is outside {lo}..={hi}")),
        x => Ok(x),
    }
}

fn number_error(e: &serde_json::Error) -> String {
    if e.to_string().contains("out of range") {
        "number out of range".into()
    } else {
        "expected a number".into()
    }
}

/// An integer; a float with no fractional part counts as one.
fn int(v: &RawValue, (lo, hi): (i64, i64)) -> Field<i64> {
    let n: Option<serde_json::Number> =
        serde_json::from_str(v.get()).map_err(|e| number_error(&e))?;
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

fn counter(v: &RawValue) -> Field<i64> {
    int(v, (0, i64::MAX))
}

fn float_array(v: &RawValue, max_len: usize, (lo, hi): (f64, f64)) -> Field<Vec<f32>> {
    let xs: Option<Vec<f64>> =
        serde_json::from_str(v.get()).map_err(|_| "expected an array of numbers".to_string())?;
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

fn int_array(v: &RawValue, max_len: usize, (lo, hi): (i64, i64)) -> Field<Vec<i32>> {
    let xs: Option<Vec<serde_json::Number>> =
        serde_json::from_str(v.get()).map_err(|_| "expected an array of integers".to_string())?;
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

/// `boards[]` into parallel columns; the flag says some board carried
/// fields the contract does not name (the caller then keeps the raw array).
fn boards<'a>(
    v: &'a RawValue,
    rules: &Rules,
) -> std::result::Result<Option<(Boards, bool)>, Invalid<'a>> {
    let whole = |reason: &str| Invalid {
        field: "".into(),
        reason: reason.into(),
    };
    let items: Option<Vec<&RawValue>> =
        serde_json::from_str(v.get()).map_err(|_| whole("expected an array of objects"))?;
    let Some(items) = items else { return Ok(None) };
    if items.len() > rules.max_boards {
        return Err(whole(&format!("more than {} items", rules.max_boards)));
    }
    let n = items.len();
    let mut b = Boards {
        ids: None,
        hashrate: Vec::with_capacity(n),
        temp: Vec::with_capacity(n),
        chips_ok: Vec::with_capacity(n),
        chips_total: Vec::with_capacity(n),
    };
    let mut ids = Vec::with_capacity(n);
    let mut unknown = false;
    let temp = (rules.temperature_min_c, rules.temperature_max_c);
    let chips = (0, i16::MAX as i64);
    for (i, item) in items.iter().enumerate() {
        let at = |name: &str, reason: String| Invalid {
            field: format!("[{i}].{name}").into(),
            reason,
        };
        let obj: RawObject = serde_json::from_str(item.get()).map_err(|_| Invalid {
            field: format!("[{i}]").into(),
            reason: "expected an object".into(),
        })?;
        let (mut id, mut hashrate, mut t, mut ok, mut total) = (None, None, None, None, None);
        let mut seen = 0u8;
        for (key, v) in &obj.0 {
            let (bit, r) = match key.as_ref() {
                "id" => (0, int(v, chips).map(|x| id = x.map(i16c))),
                "hashrate" => (
                    1,
                    float(v, (0.0, rules.hashrate_max_ghs)).map(|x| hashrate = x.map(f32c)),
                ),
                "temp" => (2, float(v, temp).map(|x| t = x.map(f32c))),
                "chips_ok" => (3, int(v, chips).map(|x| ok = x.map(i16c))),
                "chips_total" => (4, int(v, chips).map(|x| total = x.map(i16c))),
                _ => {
                    unknown = true;
                    continue;
                }
            };
            if seen & (1 << bit) != 0 {
                return Err(at(key, "duplicate key".into()));
            }
            seen |= 1 << bit;
            r.map_err(|reason| at(key, reason))?;
        }
        ids.push(id);
        b.hashrate.push(hashrate);
        b.temp.push(t);
        b.chips_ok.push(ok);
        b.chips_total.push(total);
    }
    let implicit = ids.iter().enumerate().all(|(i, id)| *id == Some(i as i16));
    if !implicit {
        b.ids = Some(ids);
    }
    Ok(Some((b, unknown)))
}

/// RFC 3339 text or Unix seconds, inside the lateness window.
fn timestamp(v: &RawValue, w: &Window) -> Field<i64> {
    let text = v.get();
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

#[cfg(test)]
mod tests;

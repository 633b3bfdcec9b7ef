//! One row, the full way: the serde visitor that reads an object's
//! members into a [`Sample`] field by field (duplicates refused, unknown
//! members kept verbatim for `extra`), and the stream step that gives the
//! bytes the row took.

use std::borrow::Cow;

use adit_types::{Sample, Text};
use serde::de::{Deserialize, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::boards::boards;
use super::elements::{malformed, raw_len};
use super::fields::Invalid;
use super::fields::{
    check_storable, expected_bool, expected_integers, expected_number, expected_numbers,
    expected_string, f32c, float_items, i16c, int_items, int_rule, known_bit, range_rule,
    storable_json, text_rule, timestamp,
};
use super::rules::{
    Rules, Window, BOARDS_COUNT_MAX, EFFICIENCY_MAX, FREQUENCY_MAX_MHZ, LATENCY_MAX_MS,
};
use crate::json::Key;
use crate::Result;

thread_local! {
    /// The rules and time window of the batch this thread is parsing:
    /// serde_json reports the bytes a value took only through its stream
    /// deserializer, which builds values by `Deserialize`, not by a seed,
    /// so a row reaches its context here.
    pub(super) static BATCH: std::cell::RefCell<Option<(Rules, Window)>> = const { std::cell::RefCell::new(None) };
}

/// A row as the stream deserializer yields it.
struct RowOut<'a>(std::result::Result<Sample, Invalid<'a>>);

impl<'a> Deserialize<'a> for RowOut<'a> {
    fn deserialize<D: serde::Deserializer<'a>>(d: D) -> std::result::Result<Self, D::Error> {
        BATCH.with(|batch| {
            let batch = batch.borrow();
            let (rules, window) = batch
                .as_ref()
                .ok_or_else(|| serde::de::Error::custom("no batch context"))?;
            let mut row = Row::new(rules, window);
            match d.deserialize_map(&mut row) {
                Ok(()) => Ok(RowOut(row.finish())),
                // A broken rule: the row is refused, the stream stops here.
                Err(_) if row.failed.is_some() => {
                    Ok(RowOut(Err(row.failed.take().unwrap_or_else(|| Invalid {
                        field: "row".into(),
                        reason: "refused".into(),
                    }))))
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// Parses the row `text` starts with; returns it (or why it is refused) and
/// the bytes it took. Broken JSON anywhere refuses the whole batch.
pub(super) fn parse_row_at<'a>(
    text: &'a str,
) -> Result<(std::result::Result<Sample, Invalid<'a>>, usize)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<RowOut<'a>>();
    match stream.next() {
        Some(Ok(RowOut(Ok(sample)))) => Ok((Ok(sample), stream.byte_offset())),
        // Stopped early (a broken rule, or not an object): find where the
        // element ends, and whether it is JSON at all.
        Some(Ok(RowOut(Err(invalid)))) => Ok((Err(invalid), raw_len(text)?)),
        Some(Err(_)) => {
            let len = raw_len(text)?;
            Ok((
                Err(Invalid {
                    field: "row".into(),
                    reason: "expected a JSON object".into(),
                }),
                len,
            ))
        }
        None => Err(malformed("EOF while parsing a list")),
    }
}

/// A row while it is being parsed.
struct Row<'a, 'r> {
    rules: &'r Rules,
    window: &'r Window,
    s: Sample,
    miner_id: Option<Text>,
    ts: Option<i64>,
    /// Known fields seen so far, a bit each (duplicates are refused).
    seen: u64,
    extra: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The raw `boards` array, kept when a board has unknown members.
    boards_extra: Option<&'a RawValue>,
    /// Why the row stopped, when a rule (not the JSON) broke.
    failed: Option<Invalid<'a>>,
}

impl<'a> Visitor<'a> for &mut Row<'a, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> std::result::Result<(), M::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
            if let Err((field, reason)) = self.field(&key, &mut map) {
                self.failed = Some(Invalid {
                    field: field.unwrap_or(key),
                    reason,
                });
                return Err(serde::de::Error::custom("row refused"));
            }
        }
        Ok(())
    }
}

/// A field's failure: (field name when not the key itself, reason).
type FieldFailure<'a> = (Option<Cow<'a, str>>, String);

/// The next value as `T`, or `reason(serde's message)`.
fn next<'a, M: MapAccess<'a>, T: Deserialize<'a>>(
    map: &mut M,
    reason: fn(&str) -> String,
) -> std::result::Result<T, FieldFailure<'a>> {
    map.next_value::<T>()
        .map_err(|e| (None, reason(&e.to_string())))
}

impl<'a, 'r> Row<'a, 'r> {
    fn new(rules: &'r Rules, window: &'r Window) -> Self {
        Self {
            rules,
            window,
            s: Sample::default(),
            miner_id: None,
            ts: None,
            seen: 0,
            extra: Vec::new(),
            boards_extra: None,
            failed: None,
        }
    }

    /// The sample, once every field was read: the rules that need the
    /// whole row (miner_id present and clean; the default time).
    fn finish(self) -> std::result::Result<Sample, Invalid<'a>> {
        let Row {
            mut s,
            miner_id,
            ts,
            mut extra,
            boards_extra,
            window,
            ..
        } = self;
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
            extra.push((BOARDS_KEY.clone(), boards));
        }
        s.extra = (!extra.is_empty()).then(|| render_object(&extra));
        Ok(s)
    }

    fn field<M: MapAccess<'a>>(
        &mut self,
        key: &Cow<'a, str>,
        map: &mut M,
    ) -> std::result::Result<(), FieldFailure<'a>> {
        let bit = match known_bit(key) {
            Some(bit) => bit,
            None => {
                if self.extra.iter().any(|(k, _)| k == key) {
                    return Err((None, "duplicate key".into()));
                }
                let v: &'a RawValue = next(map, |_| "malformed value".into())?;
                check_storable(key, v).map_err(|r| (None, r))?;
                self.extra.push((key.clone(), v));
                return Ok(());
            }
        };
        if self.seen & (1 << bit) != 0 {
            return Err((None, "duplicate key".into()));
        }
        self.seen |= 1 << bit;
        let r = self.rules;
        let s = &mut self.s;
        let temp = (r.temperature_min_c, r.temperature_max_c);
        let hashrate = (0.0, r.hashrate_max_ghs);
        let s_max = r.string_max_chars;
        let fail = |reason: String| (None, reason);
        macro_rules! text {
            ($max:expr) => {
                text_rule(next(map, expected_string)?, $max).map_err(fail)?
            };
        }
        macro_rules! num {
            ($range:expr) => {
                range_rule(next(map, expected_number)?, $range).map_err(fail)?
            };
        }
        macro_rules! int {
            ($range:expr) => {
                int_rule(next(map, expected_number)?, $range).map_err(fail)?
            };
        }
        match bit {
            0 => self.miner_id = text!(r.miner_id_max_chars),
            1 => s.ip_address = text!(s_max),
            2 => s.online = next(map, expected_bool)?,
            3 => s.hashrate_ghs = num!(hashrate),
            4 => s.hashrate_5s_ghs = num!(hashrate),
            5 => s.hashrate_expected_ghs = num!(hashrate),
            6 => s.temperature_avg = num!(temp).map(f32c),
            7 => s.temperature_min = num!(temp).map(f32c),
            8 => s.temperature_max = num!(temp).map(f32c),
            9 => {
                s.temperature_chips =
                    float_items(next(map, expected_numbers)?, r.max_temperature_chips, temp)
                        .map_err(fail)?
            }
            10 => {
                s.fan_speeds = int_items(
                    next(map, expected_integers)?,
                    r.max_fans,
                    (0, r.fan_max_rpm as i64),
                )
                .map_err(fail)?
            }
            11 => s.frequency_avg = num!((0.0, FREQUENCY_MAX_MHZ)).map(f32c),
            12 => s.accepted_shares = int!((0, i64::MAX)),
            13 => s.rejected_shares = int!((0, i64::MAX)),
            14 => s.hardware_errors = int!((0, i64::MAX)),
            15 => s.uptime_seconds = int!((0, i64::MAX)),
            16 => s.power_consumption = num!((0.0, r.power_max_w)).map(f32c),
            17 => s.efficiency = num!((0.0, EFFICIENCY_MAX)).map(f32c),
            18 => s.pool_url = text!(r.long_string_max_chars),
            19 => s.worker_name = text!(s_max),
            20 => s.pool_latency_ms = num!((0.0, LATENCY_MAX_MS)).map(f32c),
            21 => {
                let v: &'a RawValue = next(map, |_| "malformed value".into())?;
                match boards(v, r) {
                    Ok(b) => {
                        if b.as_ref().is_some_and(|(_, unknown)| *unknown) {
                            storable_json(v).map_err(fail)?;
                            self.boards_extra = Some(v);
                        }
                        s.boards = b.map(|(b, _)| b);
                    }
                    Err(Invalid { field, reason }) => {
                        return Err((Some(format!("boards{field}").into()), reason))
                    }
                }
            }
            22 => s.boards_total = int!((0, BOARDS_COUNT_MAX)).map(i16c),
            23 => s.boards_healthy = int!((0, BOARDS_COUNT_MAX)).map(i16c),
            24 => s.overall_health = text!(s_max),
            25 => s.model = text!(s_max),
            26 => s.firmware_version = text!(s_max),
            27 => s.error_message = text!(r.long_string_max_chars),
            28 => s.latency_ms = num!((0.0, LATENCY_MAX_MS)).map(f32c),
            _ => {
                let v: &'a RawValue = next(map, |_| "malformed value".into())?;
                self.ts = timestamp(v, self.window).map_err(fail)?;
            }
        }
        Ok(())
    }
}

static BOARDS_KEY: Cow<'static, str> = Cow::Borrowed("boards");

/// The unknown members of a row as one JSON object text.
fn render_object(members: &[(Cow<'_, str>, &RawValue)]) -> String {
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

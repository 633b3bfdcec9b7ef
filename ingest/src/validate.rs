//! Parse, don't validate: a decoded body becomes typed [`Sample`]s, and
//! each row that breaks a rule becomes a [`Reject`] carrying its raw JSON
//! and the reason. A batch-level problem (not JSON, not an array, too deep,
//! too many rows) refuses the whole upload instead.

use std::borrow::Cow;
use std::time::Duration;

use adit_types::{Board, Boards, Reject, RowError, Sample, Text, UploadSummary, MAX_LISTED_ERRORS};
use serde::de::{Deserialize, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::json::{nests_deeper_than, Key};
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
    parse_batch_with(body, rules, now_micros, true)
}

/// [`parse_batch`] without the fast path: every row the full way. The
/// reference the fast path is checked against (tests, fuzz target).
#[doc(hidden)]
pub fn parse_batch_full_path(body: &[u8], rules: &Rules, now_micros: i64) -> Result<Parsed> {
    parse_batch_with(body, rules, now_micros, false)
}

/// The batch's nesting check, run at most once. Rows the fast path takes
/// nest no deeper than [`fast::DEPTH`], so a batch of such rows needs no
/// scan: it runs before the first row that takes the full path (serde
/// recurses) and before any error is answered, so a too-deep body is
/// refused as such whatever else is wrong with it.
struct Depth<'b> {
    body: &'b [u8],
    limit: usize,
    checked: bool,
}

impl Depth<'_> {
    fn check(&mut self) -> Result<()> {
        if !self.checked {
            self.checked = true;
            if nests_deeper_than(self.body, self.limit) {
                return Err(Error::TooDeep { limit: self.limit });
            }
        }
        Ok(())
    }
}

fn parse_batch_with(body: &[u8], rules: &Rules, now_micros: i64, fast: bool) -> Result<Parsed> {
    let fast = fast && rules.max_depth >= fast::DEPTH;
    let mut depth = Depth {
        body,
        limit: rules.max_depth,
        checked: false,
    };
    if !fast {
        depth.check()?;
    }
    let parsed = parse_rows(body, rules, now_micros, fast, &mut depth);
    if parsed.is_err() {
        depth.check()?;
    }
    parsed
}

fn parse_rows(
    body: &[u8],
    rules: &Rules,
    now_micros: i64,
    fast: bool,
    depth: &mut Depth<'_>,
) -> Result<Parsed> {
    let text = std::str::from_utf8(body).map_err(|e| Error::MalformedJson {
        reason: format!("invalid UTF-8: {e}"),
    })?;
    let window = Window {
        now: now_micros,
        earliest: now_micros - rules.lateness.as_micros() as i64,
        latest: now_micros + rules.max_future.as_micros() as i64,
    };
    let mut out = Parsed {
        samples: Vec::with_capacity(rules.max_rows.min(text.len() / 200 + 1)),
        ..Default::default()
    };
    // One pass: each element is parsed where it stands; its raw text is
    // cut out only when the row is rejected.
    let mut elements = Elements::open(text)?;
    BATCH.with(|b| *b.borrow_mut() = Some((rules.clone(), window)));
    let mut index = 0usize;
    while let Some(start) = elements.next_start()? {
        if index == rules.max_rows {
            return Err(Error::TooManyRows {
                rows: index + elements.count_from(start)?,
                limit: rules.max_rows,
            });
        }
        // The common row takes the fast path; anything it does not
        // handle (or would refuse) is parsed again the full way.
        let quick = fast
            .then(|| fast::row(&text[start..], rules, &window))
            .flatten();
        let (result, len) = match quick {
            Some((sample, len)) => (Ok(sample), len),
            None => {
                depth.check()?;
                parse_row_at(&text[start..])?
            }
        };
        elements.pos = start + len;
        match result {
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
                    raw_json: clip(&text[start..start + len]),
                });
            }
        }
        index += 1;
    }
    elements.close()?;
    out.summary.processed = out.samples.len() as u32;
    out.summary.offline = out.summary.processed - out.summary.online;
    out.summary.rejected = out.rejects.len() as u32;
    Ok(out)
}

/// The top-level array, walked by hand so that each element can be
/// parsed in place (serde_json gives the bytes each one took).
struct Elements<'t> {
    text: &'t str,
    pos: usize,
    first: bool,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedJson {
        reason: reason.into(),
    }
}

impl<'t> Elements<'t> {
    /// Past the opening `[`; a body that is JSON but no array is
    /// [`Error::NotAnArray`].
    fn open(text: &'t str) -> Result<Self> {
        let mut e = Self {
            text,
            pos: 0,
            first: true,
        };
        e.skip_ws();
        if text.as_bytes().get(e.pos) != Some(&b'[') {
            return Err(match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => Error::NotAnArray,
                Err(err) => malformed(err.to_string()),
            });
        }
        e.pos += 1;
        Ok(e)
    }

    fn skip_ws(&mut self) {
        let b = self.text.as_bytes();
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\n' | b'\r' | b'\t') {
            self.pos += 1;
        }
    }

    /// Where the next element starts, or None after the closing `]`.
    fn next_start(&mut self) -> Result<Option<usize>> {
        self.skip_ws();
        let b = self.text.as_bytes();
        match b.get(self.pos) {
            Some(b']') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !self.first => {
                self.pos += 1;
                self.skip_ws();
            }
            Some(_) if self.first => {}
            Some(_) => return Err(malformed("expected `,` or `]` between array elements")),
            None => return Err(malformed("EOF while parsing a list")),
        }
        self.first = false;
        if self.pos >= b.len() {
            return Err(malformed("EOF while parsing a list"));
        }
        Ok(Some(self.pos))
    }

    /// Counts the elements from `start` on (the over-the-limit path).
    fn count_from(&mut self, start: usize) -> Result<usize> {
        let mut n = 0;
        let mut at = Some(start);
        while let Some(start) = at {
            self.pos = start + raw_len(&self.text[start..])?;
            n += 1;
            at = self.next_start()?;
        }
        Ok(n)
    }

    /// Nothing but whitespace may follow the array.
    fn close(mut self) -> Result<()> {
        self.skip_ws();
        if self.pos != self.text.len() {
            return Err(malformed("trailing characters after the array"));
        }
        Ok(())
    }
}

/// The length of the JSON value `text` starts with.
fn raw_len(text: &str) -> Result<usize> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    match stream.next() {
        Some(Ok(_)) => Ok(stream.byte_offset()),
        Some(Err(e)) => Err(malformed(e.to_string())),
        None => Err(malformed("EOF while parsing a value")),
    }
}

thread_local! {
    /// The rules and time window of the batch this thread is parsing:
    /// serde_json reports the bytes a value took only through its stream
    /// deserializer, which builds values by `Deserialize`, not by a seed,
    /// so a row reaches its context here.
    static BATCH: std::cell::RefCell<Option<(Rules, Window)>> = const { std::cell::RefCell::new(None) };
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
fn parse_row_at<'a>(text: &'a str) -> Result<(std::result::Result<Sample, Invalid<'a>>, usize)> {
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
#[derive(Debug, Clone, Copy)]
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

fn expected_string(_: &str) -> String {
    "expected a string".into()
}

fn expected_bool(_: &str) -> String {
    "expected true or false".into()
}

fn expected_numbers(_: &str) -> String {
    "expected an array of numbers".into()
}

fn expected_integers(_: &str) -> String {
    "expected an array of integers".into()
}

fn expected_number(message: &str) -> String {
    if message.contains("out of range") {
        "number out of range".into()
    } else {
        "expected a number".into()
    }
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

/// The bit of a field the contract names.
fn known_bit(key: &str) -> Option<u32> {
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

/// An unknown member's value goes to a `jsonb` column as it came, so it
/// must be JSON that PostgreSQL stores: no `\u0000` (in the name either),
/// no unpaired UTF-16 surrogate escape (which the raw scan lets through).
fn check_storable(key: &str, v: &RawValue) -> std::result::Result<(), String> {
    if key.contains('\0') {
        return Err("a member name contains \\u0000, which cannot be stored".into());
    }
    storable_json(v)
}

/// JSON text kept as it came for a `jsonb` column (unknown members, a
/// `boards` array with unknown board members): what PostgreSQL refuses
/// there is refused here, row by row, so it never reaches the writer's
/// batch.
fn storable_json(v: &RawValue) -> std::result::Result<(), String> {
    let text = v.get().as_bytes();
    match crate::json::check_escapes(text) {
        Ok(()) => {}
        Err(crate::json::BadEscape::Nul) => {
            return Err("contains \\u0000, which cannot be stored".into())
        }
        Err(crate::json::BadEscape::Surrogate) => {
            return Err("contains an unpaired UTF-16 surrogate escape".into())
        }
    }
    crate::json::check_numbers(text).map_err(|_| {
        format!(
            "contains a number PostgreSQL cannot store (more than {} digits before \
             or {} after the decimal point)",
            crate::json::NUMERIC_MAX_INTEGER_DIGITS,
            crate::json::NUMERIC_MAX_SCALE
        )
    })
}

fn f32c(v: f64) -> f32 {
    v as f32
}

fn i16c(v: i64) -> i16 {
    v as i16
}

/// A string field's rules.
fn text_rule(s: Option<String>, max_chars: usize) -> Field<Text> {
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
fn range_rule(x: Option<f64>, (lo, hi): (f64, f64)) -> Field<f64> {
    match x {
        Some(x) if !(lo..=hi).contains(&x) => Err(format!("{x} is outside {lo}..={hi}")),
        x => Ok(x),
    }
}

/// An integer inside its range; a float with no fractional part counts.
fn int_rule(n: Option<serde_json::Number>, (lo, hi): (i64, i64)) -> Field<i64> {
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

fn float_items(xs: Option<Vec<f64>>, max_len: usize, (lo, hi): (f64, f64)) -> Field<Vec<f32>> {
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

fn int_items(
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

/// `boards[]` into [`Boards`], in one typed pass over the array; the
/// flag says some board carried fields the contract does not name (the
/// caller then keeps the raw array).
fn boards<'a>(
    v: &'a RawValue,
    rules: &Rules,
) -> std::result::Result<Option<(Boards, bool)>, Invalid<'a>> {
    if v.get() == "null" {
        return Ok(None);
    }
    let mut p = BoardsParse {
        rules,
        b: Vec::with_capacity(4),
        unknown: false,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_str(v.get());
    if serde::Deserializer::deserialize_seq(&mut de, &mut p).is_err() {
        return Err(p.failed.take().unwrap_or_else(|| Invalid {
            field: "".into(),
            reason: "expected an array of objects".into(),
        }));
    }
    let BoardsParse { b, unknown, .. } = p;
    Ok(Some((b, unknown)))
}

/// The boards array while it is being parsed.
struct BoardsParse<'r> {
    rules: &'r Rules,
    b: Boards,
    unknown: bool,
    failed: Option<Invalid<'static>>,
}

impl<'a> Visitor<'a> for &mut BoardsParse<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        loop {
            let index = self.b.len();
            if index == self.rules.max_boards {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    self.failed = Some(Invalid {
                        field: "".into(),
                        reason: format!("more than {} items", self.rules.max_boards),
                    });
                    return Err(serde::de::Error::custom("boards refused"));
                }
                return Ok(());
            }
            match seq.next_element_seed(BoardSeed {
                parse: &mut *self,
                index,
            }) {
                Ok(Some(())) => {}
                Ok(None) => return Ok(()),
                Err(e) => {
                    if self.failed.is_none() {
                        self.failed = Some(Invalid {
                            field: format!("[{index}]").into(),
                            reason: "expected an object".into(),
                        });
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// One board of the array.
struct BoardSeed<'p, 'r> {
    parse: &'p mut BoardsParse<'r>,
    index: usize,
}

impl<'a> serde::de::DeserializeSeed<'a> for BoardSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'a>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a> Visitor<'a> for BoardSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a board object")
    }

    fn visit_map<M: MapAccess<'a>>(self, mut map: M) -> std::result::Result<(), M::Error> {
        let p = self.parse;
        let rules = p.rules;
        let temp = (rules.temperature_min_c, rules.temperature_max_c);
        let chips = (0, i16::MAX as i64);
        let (mut id, mut hashrate, mut t, mut ok, mut total) = (None, None, None, None, None);
        let mut seen = 0u8;
        while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
            let bit = match key.as_ref() {
                "id" => 0,
                "hashrate" => 1,
                "temp" => 2,
                "chips_ok" => 3,
                "chips_total" => 4,
                _ => {
                    p.unknown = true;
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let result = if seen & (1 << bit) != 0 {
                Err("duplicate key".to_string())
            } else {
                seen |= 1 << bit;
                let number = map
                    .next_value::<Option<serde_json::Number>>()
                    .map_err(|e| expected_number(&e.to_string()));
                number.and_then(|n| match bit {
                    0 => int_rule(n, chips).map(|x| id = x.map(i16c)),
                    1 => range_rule(n.and_then(|n| n.as_f64()), (0.0, rules.hashrate_max_ghs))
                        .map(|x| hashrate = x.map(f32c)),
                    2 => range_rule(n.and_then(|n| n.as_f64()), temp).map(|x| t = x.map(f32c)),
                    3 => int_rule(n, chips).map(|x| ok = x.map(i16c)),
                    _ => int_rule(n, chips).map(|x| total = x.map(i16c)),
                })
            };
            if let Err(reason) = result {
                p.failed = Some(Invalid {
                    field: format!("[{}].{key}", self.index).into(),
                    reason,
                });
                return Err(serde::de::Error::custom("board refused"));
            }
        }
        p.b.push(Board {
            id,
            hashrate,
            temp: t,
            chips_ok: ok,
            chips_total: total,
        });
        Ok(())
    }
}

/// RFC 3339 text or Unix seconds, inside the lateness window.
fn timestamp(v: &RawValue, w: &Window) -> Field<i64> {
    timestamp_text(v.get(), w)
}

/// [`timestamp`] of a value's raw JSON text.
fn timestamp_text(text: &str, w: &Window) -> Field<i64> {
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

mod fast;
#[cfg(test)]
mod tests;

//! The fast path for the row every collector sends: an object of the
//! contract's fields only, strings without escapes, plain numbers, every
//! rule kept. It reads the row in one pass over the bytes, with no serde
//! machinery in between, and gives up (`None`) at the first thing it does
//! not handle — an escape, an exponent, an unknown or repeated key, a
//! broken rule, broken JSON — and the caller then parses the row the full
//! way, which decides and explains. So a row it accepts is exactly the
//! sample the full parser would build (checked by the differential test
//! below and by the fuzz target), and it never refuses anything itself.
//!
//! Numbers follow serde_json's own arithmetic (significand as `u64`, one
//! multiplication or division by an exact power of ten), so every float is
//! bit for bit what the full path reads.

use adit_types::{Board, Boards, Sample, Text};

use super::fields::{f32c, i16c, known_bit, timestamp_text};
use super::rules::{
    Rules, Window, BOARDS_COUNT_MAX, EFFICIENCY_MAX, FREQUENCY_MAX_MHZ, LATENCY_MAX_MS,
};

/// How deep a row the fast path takes nests, counting the batch's array:
/// batch, row, `boards`, board.
pub(super) const DEPTH: usize = 4;

/// The sample `text` starts with and the bytes its object took, or `None`
/// when the full parser must decide.
pub(super) fn row(text: &str, rules: &Rules, window: &Window) -> Option<(Sample, usize)> {
    let mut p = Scan {
        t: text,
        b: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let r = rules;
    let temp = (r.temperature_min_c, r.temperature_max_c);
    let hashrate = (0.0, r.hashrate_max_ghs);
    let mut s = Sample::default();
    let (mut miner_id, mut ts, mut seen) = (None, None, 0u64);
    p.ws();
    if p.peek()? == b'}' {
        return None; // no miner_id: the full path explains
    }
    loop {
        match p.member(&mut seen, known_bit)? {
            0 => miner_id = p.text(r.miner_id_max_chars)?,
            1 => s.ip_address = p.text(r.string_max_chars)?,
            2 => s.online = p.boolean()?,
            3 => s.hashrate_ghs = p.number(hashrate)?,
            4 => s.hashrate_5s_ghs = p.number(hashrate)?,
            5 => s.hashrate_expected_ghs = p.number(hashrate)?,
            6 => s.temperature_avg = p.number(temp)?.map(f32c),
            7 => s.temperature_min = p.number(temp)?.map(f32c),
            8 => s.temperature_max = p.number(temp)?.map(f32c),
            9 => s.temperature_chips = p.floats(r.max_temperature_chips, temp)?,
            10 => s.fan_speeds = p.ints(r.max_fans, r.fan_max_rpm as i64)?,
            11 => s.frequency_avg = p.number((0.0, FREQUENCY_MAX_MHZ))?.map(f32c),
            12 => s.accepted_shares = p.int(i64::MAX)?,
            13 => s.rejected_shares = p.int(i64::MAX)?,
            14 => s.hardware_errors = p.int(i64::MAX)?,
            15 => s.uptime_seconds = p.int(i64::MAX)?,
            16 => s.power_consumption = p.number((0.0, r.power_max_w))?.map(f32c),
            17 => s.efficiency = p.number((0.0, EFFICIENCY_MAX))?.map(f32c),
            18 => s.pool_url = p.text(r.long_string_max_chars)?,
            19 => s.worker_name = p.text(r.string_max_chars)?,
            20 => s.pool_latency_ms = p.number((0.0, LATENCY_MAX_MS))?.map(f32c),
            21 => s.boards = p.boards(r)?,
            22 => s.boards_total = p.int(BOARDS_COUNT_MAX)?.map(i16c),
            23 => s.boards_healthy = p.int(BOARDS_COUNT_MAX)?.map(i16c),
            24 => s.overall_health = p.text(r.string_max_chars)?,
            25 => s.model = p.text(r.string_max_chars)?,
            26 => s.firmware_version = p.text(r.string_max_chars)?,
            27 => s.error_message = p.text(r.long_string_max_chars)?,
            28 => s.latency_ms = p.number((0.0, LATENCY_MAX_MS))?.map(f32c),
            _ => ts = p.timestamp(window)?,
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    let miner_id: Text = miner_id?;
    if miner_id.is_empty() || miner_id.chars().any(char::is_control) {
        return None;
    }
    s.miner_id = miner_id;
    s.ts_micros = ts.unwrap_or(window.now);
    Some((s, p.i))
}

/// Exact powers of ten as `f64` (10^22 is the last one `f64` holds
/// exactly), the same values serde_json divides by.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A JSON number as the fast path reads it.
enum Number {
    /// A non-negative integer literal.
    Int(u64),
    /// Anything else it handles, as serde_json computes it.
    Float(f64),
}

impl Number {
    fn as_f64(&self) -> f64 {
        match *self {
            Number::Int(n) => n as f64,
            Number::Float(f) => f,
        }
    }
}

struct Scan<'a> {
    t: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// `literal` (after its first byte was peeked).
    fn word(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.i + literal.len();
        (self.b.get(self.i..end)? == literal).then(|| self.i = end)
    }

    /// True (and consumed) when a `null` is next.
    #[inline]
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.word(b"null")?;
            return Some(true);
        }
        Some(false)
    }

    /// The body of a string whose opening quote was read: no escapes, no
    /// control characters (which JSON forbids raw).
    fn string_body(&mut self) -> Option<&'a str> {
        let rest = &self.b[self.i..];
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[len] != b'"' || rest[..len].iter().any(|&c| c < 0x20) {
            return None;
        }
        let body = self.t.get(self.i..self.i + len)?;
        self.i += len + 1;
        Some(body)
    }

    /// The next member's name, as the bit `field` gives it (unknown and
    /// repeated names are left to the full path), up to its value.
    fn member(&mut self, seen: &mut u64, field: impl Fn(&str) -> Option<u32>) -> Option<u32> {
        self.ws();
        self.expect(b'"')?;
        let bit = field(self.string_body()?)?;
        if *seen & (1 << bit) != 0 {
            return None;
        }
        *seen |= 1 << bit;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(bit)
    }

    /// A text field: null or a string of at most `max` bytes (a longer one
    /// may still fit in `max` characters; the full path counts them).
    fn text(&mut self, max: usize) -> Option<Option<Text>> {
        if self.null()? {
            return Some(None);
        }
        self.expect(b'"')?;
        let s = self.string_body()?;
        (s.len() <= max).then(|| Some(Text::from(s)))
    }

    fn boolean(&mut self) -> Option<Option<bool>> {
        match self.peek()? {
            b'n' => self.word(b"null").map(|_| None),
            b't' => self.word(b"true").map(|_| Some(true)),
            b'f' => self.word(b"false").map(|_| Some(false)),
            _ => None,
        }
    }

    /// A number with at most 18 significant digits and no exponent, read
    /// the way serde_json reads it.
    fn raw_number(&mut self) -> Option<Number> {
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut significand: u64 = 0;
        match self.next()? {
            b'0' => {}
            c @ b'1'..=b'9' => {
                significand = u64::from(c - b'0');
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    if self.i - start == 18 {
                        return None;
                    }
                    significand = significand * 10 + u64::from(c - b'0');
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let mut fraction = 0;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let digits = self.i - start - 1;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                if digits + fraction == 18 {
                    return None;
                }
                significand = significand * 10 + u64::from(c - b'0');
                self.i += 1;
                fraction += 1;
            }
            if fraction == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E' | b'0'..=b'9') = self.peek() {
            return None;
        }
        if fraction == 0 && !negative {
            return Some(Number::Int(significand));
        }
        let f = significand as f64 / POW10[fraction];
        Some(Number::Float(if negative { -f } else { f }))
    }

    /// A number field inside `lo..=hi`, or null.
    fn number(&mut self, (lo, hi): (f64, f64)) -> Option<Option<f64>> {
        if self.null()? {
            return Some(None);
        }
        let x = self.raw_number()?.as_f64();
        (lo..=hi).contains(&x).then_some(Some(x))
    }

    /// An integer literal in `0..=hi`.
    fn uint(&mut self, hi: i64) -> Option<i64> {
        match self.raw_number()? {
            Number::Int(n) if n <= hi as u64 => Some(n as i64),
            _ => None,
        }
    }

    /// An integer field in `0..=hi`, or null.
    fn int(&mut self, hi: i64) -> Option<Option<i64>> {
        if self.null()? {
            return Some(None);
        }
        self.uint(hi).map(Some)
    }

    /// `[` items `]` with `item` reading one element; at most `max` of them.
    /// `guess` is the usual count: room for it up front, so a typical array
    /// costs one allocation, not one per doubling (9 chip temperatures took
    /// three).
    fn array<T>(
        &mut self,
        max: usize,
        guess: usize,
        mut item: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Option<Vec<T>>> {
        if self.null()? {
            return Some(None);
        }
        self.expect(b'[')?;
        let mut out = Vec::with_capacity(guess);
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(Some(out));
        }
        loop {
            self.ws();
            if out.len() == max {
                return None;
            }
            out.push(item(self)?);
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(Some(out)),
                _ => return None,
            }
        }
    }

    fn floats(&mut self, max: usize, (lo, hi): (f64, f64)) -> Option<Option<Vec<f32>>> {
        self.array(max, 16, |p| {
            let x = p.raw_number()?.as_f64();
            (lo..=hi).contains(&x).then_some(x as f32)
        })
    }

    fn ints(&mut self, max: usize, hi: i64) -> Option<Option<Vec<i32>>> {
        self.array(max, 4, |p| p.uint(hi).map(|x| x as i32))
    }

    /// `boards`: objects of the five board fields, nothing else.
    fn boards(&mut self, rules: &Rules) -> Option<Option<Boards>> {
        let temp = (rules.temperature_min_c, rules.temperature_max_c);
        let hashrate = (0.0, rules.hashrate_max_ghs);
        let chips = i64::from(i16::MAX);
        let mut b: Boards = Vec::with_capacity(4);
        let items = self.array(rules.max_boards, 0, |p| {
            p.expect(b'{')?;
            let (mut id, mut h, mut t, mut ok, mut total) = (None, None, None, None, None);
            let mut seen = 0u64;
            p.ws();
            if p.peek()? == b'}' {
                p.i += 1;
            } else {
                loop {
                    let field = |key: &str| {
                        Some(match key {
                            "id" => 0,
                            "hashrate" => 1,
                            "temp" => 2,
                            "chips_ok" => 3,
                            "chips_total" => 4,
                            _ => return None,
                        })
                    };
                    match p.member(&mut seen, field)? {
                        0 => id = p.int(chips)?.map(i16c),
                        1 => h = p.number(hashrate)?.map(f32c),
                        2 => t = p.number(temp)?.map(f32c),
                        3 => ok = p.int(chips)?.map(i16c),
                        _ => total = p.int(chips)?.map(i16c),
                    }
                    p.ws();
                    match p.next()? {
                        b',' => continue,
                        b'}' => break,
                        _ => return None,
                    }
                }
            }
            b.push(Board {
                id,
                hashrate: h,
                temp: t,
                chips_ok: ok,
                chips_total: total,
            });
            Some(())
        })?;
        if items.is_none() {
            return Some(None);
        }
        Some(Some(b))
    }

    /// `timestamp`: RFC 3339 text or Unix seconds, inside the window.
    fn timestamp(&mut self, window: &Window) -> Option<Option<i64>> {
        let start = self.i;
        match self.peek()? {
            b'n' => return self.word(b"null").map(|_| None),
            b'"' => {
                self.i += 1;
                self.string_body()?;
            }
            _ => {
                self.raw_number()?;
            }
        }
        timestamp_text(self.t.get(start..self.i)?, window).ok()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::super::rules::Window;
    use super::super::{parse_batch, parse_batch_full_path, Rules};

    const NOW: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

    fn pick<'a>(rng: &mut StdRng, xs: &[&'a str]) -> &'a str {
        xs[rng.random_range(0..xs.len())]
    }

    fn digits(rng: &mut StdRng, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect()
    }

    /// A number literal: in a clean row, plain and inside every rule;
    /// in a wild one, often at a rule's edge or outside what the fast path
    /// reads.
    fn number(rng: &mut StdRng, wild: bool) -> String {
        if !wild {
            return match rng.random_range(0..3) {
                0 => rng.random_range(0..200u32).to_string(),
                1 => format!("{}", rng.random_range(0.0..200.0f64)),
                _ => format!("{:.2}", rng.random_range(0.0..200.0f64)),
            };
        }
        match rng.random_range(0..12) {
            0 => pick(
                rng,
                &[
                    "0",
                    "-0",
                    "0.0",
                    "-0.0",
                    "250",
                    "250.0",
                    "250.00001",
                    "-40",
                    "-40.5",
                    "100000000",
                    "100000000.1",
                    "1e3",
                    "1E-2",
                    "2.5e+1",
                    "01",
                    "1.",
                    "-",
                    ".5",
                    "30000",
                    "30001",
                    "32767",
                    "32768",
                    "1024",
                    "1025",
                    "9223372036854775807",
                    "9223372036854775808",
                    "18446744073709551616",
                    "0.1",
                    "0.30000000000000004",
                    "1e200000",
                    "-1e-20000",
                    "0.0e-16383",
                ],
            )
            .to_string(),
            1 => {
                let n = rng.random_range(1..24);
                digits(rng, n).trim_start_matches('0').to_string() + "7"
            }
            2..=4 => {
                let int = rng.random_range(0..100_000u32).to_string();
                let n = rng.random_range(1..20);
                let frac = digits(rng, n);
                let sign = if rng.random_bool(0.2) { "-" } else { "" };
                format!("{sign}{int}.{frac}")
            }
            5 => format!("{}", rng.random::<f64>() * 1e5),
            6 => format!("{}", rng.random::<f32>() * 300.0 - 50.0),
            _ => rng.random_range(0..70_000u32).to_string(),
        }
    }

    fn integer(rng: &mut StdRng, wild: bool) -> String {
        if wild {
            number(rng, wild)
        } else {
            rng.random_range(0..1000u32).to_string()
        }
    }

    fn string(rng: &mut StdRng, wild: bool) -> String {
        if !wild {
            return format!("\"m-{}\"", rng.random_range(0..1000));
        }
        match rng.random_range(0..10) {
            0 => pick(
                rng,
                &[
                    r#""""#,
                    r#""a\"b""#,
                    r#""a\\b""#,
                    r#""\u0041""#,
                    "\"é中\"",
                    "\"x\u{7f}\"",
                    "\"x\u{85}y\"",
                    "\"\u{1}\"",
                    r#""\u0000""#,
                    "\"tab\there\"",
                ],
            )
            .to_string(),
            1 => format!("\"{}\"", "x".repeat(rng.random_range(60..300))),
            2 => format!("\"{}\"", "é".repeat(rng.random_range(30..140))),
            _ => format!("\"m-{}\"", rng.random_range(0..1000)),
        }
    }

    fn ws(rng: &mut StdRng) -> &'static str {
        if rng.random_bool(0.85) {
            ""
        } else {
            pick(rng, &[" ", "\n", "\t ", "\r\n  "])
        }
    }

    fn array(rng: &mut StdRng, wild: bool, item: fn(&mut StdRng, bool) -> String) -> String {
        let n = if wild && rng.random_bool(0.1) {
            rng.random_range(30..40)
        } else {
            rng.random_range(0..5)
        };
        let items: Vec<String> = (0..n).map(|_| item(rng, wild)).collect();
        format!("[{}{}]", ws(rng), items.join(&format!(",{}", ws(rng))))
    }

    fn board(rng: &mut StdRng, wild: bool) -> String {
        let mut keys = vec!["id", "hashrate", "temp", "chips_ok", "chips_total"];
        if wild && rng.random_bool(0.1) {
            keys.push(pick(rng, &["psu", "id", "temp"]));
        }
        let n = rng.random_range(0..=keys.len());
        let members: Vec<String> = keys[..n]
            .iter()
            .map(|k| format!("\"{k}\":{}{}", ws(rng), value(rng, wild, k)))
            .collect();
        format!("{{{}}}", members.join(","))
    }

    fn value(rng: &mut StdRng, wild: bool, key: &str) -> String {
        if wild && rng.random_bool(0.1) {
            return pick(
                rng,
                &["null", "true", "false", "[]", "{}", "\"1\"", "nul", "tru"],
            )
            .to_string();
        }
        if rng.random_bool(0.03) {
            return "null".into();
        }
        match key {
            "miner_id" | "ip_address" | "pool_url" | "worker_name" | "overall_health" | "model"
            | "firmware_version" | "error_message" => string(rng, wild),
            "online" => pick(rng, &["true", "false"]).to_string(),
            "temperature_chips" => array(rng, wild, number),
            "fan_speeds" => array(rng, wild, integer),
            "accepted_shares" | "rejected_shares" | "hardware_errors" | "uptime_seconds"
            | "boards_total" | "boards_healthy" | "id" | "chips_ok" | "chips_total" => {
                integer(rng, wild)
            }
            "boards" => array(rng, wild, board),
            "timestamp" => pick(
                rng,
                &[
                    "\"2025-12-31T23:59:00Z\"",
                    "\"2026-01-01T00:04:00+00:00\"",
                    "1767225500",
                    "1767225500.5",
                    "\"2026-01-01T01:00:00Z\"",
                    "\"yesterday\"",
                    "1767225600e0",
                    "1",
                ][..if wild { 8 } else { 4 }],
            )
            .to_string(),
            _ => number(rng, wild),
        }
    }

    const KEYS: [&str; 30] = [
        "miner_id",
        "ip_address",
        "online",
        "hashrate_ghs",
        "hashrate_5s_ghs",
        "hashrate_expected_ghs",
        "temperature_avg",
        "temperature_min",
        "temperature_max",
        "temperature_chips",
        "fan_speeds",
        "frequency_avg",
        "accepted_shares",
        "rejected_shares",
        "hardware_errors",
        "uptime_seconds",
        "power_consumption",
        "efficiency",
        "pool_url",
        "worker_name",
        "pool_latency_ms",
        "boards",
        "boards_total",
        "boards_healthy",
        "overall_health",
        "model",
        "firmware_version",
        "error_message",
        "latency_ms",
        "timestamp",
    ];

    fn row(rng: &mut StdRng) -> String {
        let wild = rng.random_bool(0.5);
        let mut keys: Vec<&str> = KEYS
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.8))
            .collect();
        if !wild || rng.random_bool(0.9) {
            keys.retain(|k| *k != "miner_id");
            keys.insert(0, "miner_id");
        }
        if wild && rng.random_bool(0.1) {
            keys.push(pick(rng, &["miner_id", "online", "custom", "boards"]));
        }
        let mut members: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    "{}\"{k}\"{}:{}{}{}",
                    ws(rng),
                    ws(rng),
                    ws(rng),
                    value(rng, wild, k),
                    ws(rng)
                )
            })
            .collect();
        if wild && rng.random_bool(0.05) {
            members.push(r#""miner\u005fid":"m-1""#.into());
        }
        if wild && rng.random_bool(0.02) {
            let n = rng.random_range(60..70);
            members.push(format!("\"deep\":{}{}", "[".repeat(n), "]".repeat(n)));
        }
        match if wild { rng.random_range(0..30) } else { 99 } {
            0 => "[1]".into(),
            1 => "\"row\"".into(),
            2 => format!("{{{},}}", members.join(",")),
            _ => format!("{{{}}}", members.join(",")),
        }
    }

    /// The fast path takes most generated rows, and every row it takes
    /// (and every batch) comes out exactly as the full path reads it:
    /// same samples to the bit (Debug shows -0.0), same rejects, same
    /// errors.
    #[test]
    fn the_fast_path_reads_exactly_what_the_full_path_reads() {
        let rules = Rules::default();
        let window = Window {
            now: NOW,
            earliest: NOW - rules.lateness.as_micros() as i64,
            latest: NOW + rules.max_future.as_micros() as i64,
        };
        let mut rng = StdRng::seed_from_u64(8);
        let (mut fast, mut rows) = (0, 0);
        for _ in 0..3_000 {
            let batch: Vec<String> = (0..rng.random_range(1..8)).map(|_| row(&mut rng)).collect();
            for r in &batch {
                rows += 1;
                if let Some((_, len)) = super::row(r, &rules, &window) {
                    fast += 1;
                    assert_eq!(len, r.len(), "{r}");
                }
            }
            let body = format!("[{}]", batch.join(","));
            let a = format!("{:?}", parse_batch(body.as_bytes(), &rules, NOW));
            let b = format!("{:?}", parse_batch_full_path(body.as_bytes(), &rules, NOW));
            assert_eq!(a, b, "paths differ on {body}");
        }
        assert!(
            fast * 3 >= rows,
            "only {fast} of {rows} rows took the fast path"
        );
        assert!(fast < rows, "no row took the full path");
    }

    /// The fleet's rows (what collectors send) all take the fast path.
    #[test]
    fn a_collector_row_takes_the_fast_path() {
        let rules = Rules::default();
        let window = Window {
            now: NOW,
            earliest: 0,
            latest: i64::MAX,
        };
        let row = r#"{"miner_id":"m-0001","ip_address":"10.0.0.1","online":true,"hashrate_ghs":95000.123456789,"hashrate_5s_ghs":94000.0,"hashrate_expected_ghs":100000.0,"temperature_avg":65.5,"temperature_min":60.0,"temperature_max":80.25,"temperature_chips":[60.0,61.5,-2.5],"fan_speeds":[4000,4100],"frequency_avg":600.0,"accepted_shares":123,"rejected_shares":1,"hardware_errors":0,"uptime_seconds":3600,"power_consumption":3250.0,"efficiency":34.2,"pool_url":"stratum+tcp://pool:3333","worker_name":"w1","pool_latency_ms":20,"boards":[{"id":0,"hashrate":31000.5,"temp":70.0,"chips_ok":76,"chips_total":76},{"id":1,"hashrate":null,"temp":71.0,"chips_ok":76,"chips_total":76}],"boards_total":2,"boards_healthy":2,"overall_health":"good","model":"S19","firmware_version":"1.0","error_message":"","latency_ms":12,"timestamp":1767225500}"#;
        let (s, len) = super::row(row, &rules, &window).expect("fast path");
        assert_eq!(len, row.len());
        assert_eq!(s.miner_id, "m-0001");
        assert_eq!(s.hashrate_ghs, Some(95000.123456789));
        assert_eq!(s.temperature_chips, Some(vec![60.0, 61.5, -2.5]));
        assert_eq!(s.ts_micros, 1_767_225_500_000_000);
        let b = s.boards.as_ref().unwrap();
        assert!(adit_types::implicit_board_ids(b), "ids 0, 1");
        assert_eq!(b[0].hashrate, Some(31000.5));
        assert_eq!(b[1].hashrate, None);
        let full = parse_batch_full_path(format!("[{row}]").as_bytes(), &rules, NOW).unwrap();
        assert_eq!(format!("{:?}", full.samples[0]), format!("{s:?}"));
    }
}

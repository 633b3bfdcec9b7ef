//! JSON hardening shared by every body parser (telemetry and datasets):
//! the nesting-depth pre-check, the escapes PostgreSQL's `jsonb` refuses,
//! numbers past what `numeric` stores, and the raw text kept for a refused
//! row.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

/// A JSON string (an object key, a text value), borrowed from the body
/// unless it had escapes (serde's own `Cow<str>` always copies).
#[derive(Debug)]
pub struct JsonStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// True when arrays/objects nest deeper than `limit` anywhere in `body`.
/// One pass over the bytes, skipping string contents.
pub fn nests_deeper_than(body: &[u8], limit: usize) -> bool {
    let n = body.len();
    let mut depth = 0usize;
    let mut i = 0;
    while i < n {
        match body[i] {
            b'"' => {
                // Jump from quote to backslash to quote (memchr: many bytes
                // a step) instead of looking at every byte of the string.
                i += 1;
                loop {
                    if i >= n {
                        return false; // unterminated: the parser refuses it
                    }
                    match memchr::memchr2(b'"', b'\\', &body[i..]) {
                        None => return false,
                        Some(j) if body[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time scan the memchr one replaced.
    fn reference(body: &[u8], limit: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in body {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    #[test]
    fn the_fast_scan_agrees_with_the_reference() {
        // Random strings over the bytes that matter, many of them.
        let alphabet = b"[]{}\"\\a1,:";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let body: Vec<u8> = (0..len)
                .map(|k| alphabet[((x >> (k % 50)) as usize + k * 7) % alphabet.len()])
                .collect();
            for limit in [1, 2, 3] {
                assert_eq!(
                    nests_deeper_than(&body, limit),
                    reference(&body, limit),
                    "{:?} limit {limit}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(!nests_deeper_than(br#"[{"a":[1]}]"#, 3));
        assert!(nests_deeper_than(br#"[{"a":[[1]]}]"#, 3));
        assert!(!nests_deeper_than(br#"[{"a":"[[[[[[\"[["}]"#, 2));
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert!(nests_deeper_than(deep.as_bytes(), 64));
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(!nests_deeper_than(ok.as_bytes(), 64));
        // Escaped quotes and backslashes do not end a string.
        assert!(!nests_deeper_than(br#"[{"a":"\"[[[[\\"}]"#, 2));
        assert!(nests_deeper_than(br#"[{"a":"\\"},[[[1]]]]"#, 3));
        // Unterminated strings and a trailing backslash end the scan.
        assert!(!nests_deeper_than(br#"["abc"#, 1));
        assert!(!nests_deeper_than(b"[\"ab\\", 1));
    }
}

/// A `\u` escape PostgreSQL's `jsonb` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadEscape {
    /// `\u0000`.
    Nul,
    /// A high surrogate not followed by a low one, or a low one alone.
    Surrogate,
}

/// Checks the `\u` escapes of raw JSON text (already known to be
/// well-formed otherwise): what serde's raw scan does not decode.
pub fn check_escapes(text: &[u8]) -> Result<(), BadEscape> {
    fn hex4(t: &[u8]) -> Option<u32> {
        let s = std::str::from_utf8(t.get(..4)?).ok()?;
        u32::from_str_radix(s, 16).ok()
    }
    let mut i = 0;
    // Set after a high surrogate: the next thing must be a low one.
    let mut want_low = false;
    while i < text.len() {
        if text[i] != b'\\' {
            if want_low {
                return Err(BadEscape::Surrogate);
            }
            i += 1;
            continue;
        }
        let Some(&c) = text.get(i + 1) else { break };
        if c != b'u' {
            if want_low {
                return Err(BadEscape::Surrogate);
            }
            i += 2;
            continue;
        }
        let Some(u) = hex4(&text[i + 2..]) else {
            // Malformed escapes are the parser's to refuse.
            return Ok(());
        };
        match u {
            0 => return Err(BadEscape::Nul),
            0xD800..=0xDBFF if !want_low => want_low = true,
            0xDC00..=0xDFFF if want_low => want_low = false,
            0xD800..=0xDFFF => return Err(BadEscape::Surrogate),
            _ if want_low => return Err(BadEscape::Surrogate),
            _ => {}
        }
        i += 6;
    }
    if want_low {
        return Err(BadEscape::Surrogate);
    }
    Ok(())
}

#[cfg(test)]
mod escape_tests {
    use super::{check_escapes, BadEscape};

    #[test]
    fn escapes_postgres_refuses_are_found() {
        let ok = |t: &str| check_escapes(t.as_bytes());
        assert_eq!(ok(r#""plain""#), Ok(()));
        assert_eq!(ok(r#""\u00e9 \ud83d\ude00 \n""#), Ok(()));
        assert_eq!(ok(r#""a literal \\u0000 is text""#), Ok(()));
        assert_eq!(ok(r#"{"a":"\u0000"}"#), Err(BadEscape::Nul));
        assert_eq!(ok(r#""\ud83dxx""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ud83d""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ude00""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ud83d\ud83d""#), Err(BadEscape::Surrogate));
        assert_eq!(ok(r#""\ud83d\n""#), Err(BadEscape::Surrogate));
    }
}

/// Decimal digits PostgreSQL's `numeric` (and so `jsonb`) holds before the
/// decimal point: a base-10000 weight of at most `i16::MAX`.
pub const NUMERIC_MAX_INTEGER_DIGITS: i64 = 131_072;
/// Digits it keeps after the decimal point (the display scale, 14 bits),
/// trailing zeros included: `0.0e-16383` is refused like `1e-16384`.
pub const NUMERIC_MAX_SCALE: i64 = 16_383;
/// Exponents PostgreSQL refuses outright, whatever the digits (`0e…`).
const NUMERIC_MAX_EXPONENT: i64 = i32::MAX as i64 / 2;

/// A JSON number `jsonb` refuses: its magnitude or its scale is past what
/// `numeric` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberOutOfRange;

/// Checks one JSON number literal (well-formed: `-?int(.frac)?(e±exp)?`)
/// against PostgreSQL's `numeric` input rules: the decimal exponent of the
/// first non-zero digit below [`NUMERIC_MAX_INTEGER_DIGITS`], the scale
/// (digits after the point, minus the exponent) at most
/// [`NUMERIC_MAX_SCALE`], and the exponent itself below `i32::MAX / 2`.
pub fn check_number(literal: &[u8]) -> Result<(), NumberOutOfRange> {
    let s = literal.strip_prefix(b"-").unwrap_or(literal);
    let (mantissa, exponent) = match s.iter().position(|&c| c == b'e' || c == b'E') {
        Some(at) => (&s[..at], &s[at + 1..]),
        None => (s, &b""[..]),
    };
    let (int, frac) = match mantissa.iter().position(|&c| c == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &b""[..]),
    };
    let negative_exp = exponent.first() == Some(&b'-');
    let mut exp: i64 = 0;
    for &c in exponent.iter().filter(|c| c.is_ascii_digit()) {
        exp = exp * 10 + i64::from(c - b'0');
        if exp >= NUMERIC_MAX_EXPONENT {
            return Err(NumberOutOfRange);
        }
    }
    if negative_exp {
        exp = -exp;
    }
    if frac.len() as i64 - exp > NUMERIC_MAX_SCALE {
        return Err(NumberOutOfRange);
    }
    // The decimal exponent of the first non-zero digit (none: zero fits).
    let leading = match int.iter().position(|&c| c != b'0') {
        Some(k) => (int.len() - 1 - k) as i64,
        None => match frac.iter().position(|&c| c != b'0') {
            Some(j) => -(j as i64) - 1,
            None => return Ok(()),
        },
    };
    if leading + exp >= NUMERIC_MAX_INTEGER_DIGITS {
        return Err(NumberOutOfRange);
    }
    Ok(())
}

/// Checks every number of raw JSON text (well-formed) with
/// [`check_number`], skipping string contents.
pub fn check_numbers(text: &[u8]) -> Result<(), NumberOutOfRange> {
    let n = text.len();
    let mut i = 0;
    while i < n {
        match text[i] {
            b'"' => {
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &text[i.min(n)..]) {
                        None => return Ok(()),
                        Some(j) if text[i + j] == b'\\' => i += j + 2,
                        Some(j) => {
                            i += j + 1;
                            break;
                        }
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < n && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                check_number(&text[start..i])?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod number_tests {
    use super::{check_number, check_numbers, NumberOutOfRange};

    /// Each literal with what PostgreSQL 15 answered for `'{"a":…}'::jsonb`
    /// (tests/storable.rs checks the rule against a live server too).
    #[test]
    fn numbers_past_numeric_are_found() {
        let ok = |s: &str| check_number(s.as_bytes()).is_ok();
        for fits in [
            "0",
            "-0",
            "1.5",
            "1e131071",
            "9.9e131071",
            "-1e131071",
            "0.1e131072",
            "0.01e131073",
            "0.00001e131076",
            "1e-16383",
            "1.5e-16382",
            "0e999999999",
            "0e1073741822",
            "1E+5",
            "123456789012345678901234567890",
        ] {
            assert!(ok(fits), "{fits} fits");
        }
        for refused in [
            "1e131072",
            "10e131071",
            "1e200000",
            "1e-16384",
            "0e-16384",
            "0.0e-16383",
            "1.55e-16382",
            "0e1073741823",
            "1e99999999999999999999",
            "-1e-200000",
        ] {
            assert!(!ok(refused), "{refused} is refused");
        }
        let digits = format!("1{}", "0".repeat(131_071));
        assert!(ok(&digits));
        assert!(!ok(&format!("{digits}0")));
        let scale = format!("0.{}1", "0".repeat(16_382));
        assert!(ok(&scale));
        assert!(!ok(&format!("0.{}1", "0".repeat(16_383))));
    }

    #[test]
    fn every_number_of_a_value_is_checked_and_strings_are_skipped() {
        let check = |s: &str| check_numbers(s.as_bytes());
        assert_eq!(check(r#"{"a":[1,{"b":2.5e3}],"c":"1e999999"}"#), Ok(()));
        assert_eq!(check(r#"{"a":[1,{"b":2e999999}]}"#), Err(NumberOutOfRange));
        assert_eq!(check(r#"["\"1e999999",-1e-99999]"#), Err(NumberOutOfRange));
        assert_eq!(check(r#"{"1e999999":true}"#), Ok(()));
        assert_eq!(check("1e200000"), Err(NumberOutOfRange));
    }
}

/// Longest raw row kept in `ingest_rejects`; longer ones are cut (at a
/// character boundary) and marked, so a hostile 10 MB row costs 64 KiB.
pub const MAX_REJECT_RAW_BYTES: usize = 64 * 1024;

/// A refused row's raw text as `ingest_rejects` keeps it: cut at
/// [`MAX_REJECT_RAW_BYTES`] (on a character boundary) and marked.
pub fn clip_raw(raw: &str) -> String {
    if raw.len() <= MAX_REJECT_RAW_BYTES {
        return raw.to_owned();
    }
    let mut end = MAX_REJECT_RAW_BYTES;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut: {} bytes in all]", &raw[..end], raw.len())
}

/// Why JSON text kept as it came cannot go to a `jsonb` column: what
/// PostgreSQL refuses there (`\u0000`, an unpaired surrogate escape, a
/// number past `numeric`), or `None` when it stores.
pub fn unstorable_json(text: &[u8]) -> Option<String> {
    match check_escapes(text) {
        Ok(()) => {}
        Err(BadEscape::Nul) => return Some("contains \\u0000, which cannot be stored".into()),
        Err(BadEscape::Surrogate) => {
            return Some("contains an unpaired UTF-16 surrogate escape".into())
        }
    }
    check_numbers(text).err().map(|_| {
        format!(
            "contains a number PostgreSQL cannot store (more than {NUMERIC_MAX_INTEGER_DIGITS} \
             digits before or {NUMERIC_MAX_SCALE} after the decimal point)"
        )
    })
}

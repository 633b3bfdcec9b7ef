//! One JSON value against its column: the type, then the column's bounds
//! (min/max, max length, allowed values), then what PostgreSQL would refuse
//! to store (NUL in text, unpaired surrogates and out-of-range numbers in
//! `jsonb`).

use std::borrow::Cow;

use adit_types::dataset::{Column, ColumnType};
use adit_types::json::{check_escapes, unstorable_json, BadEscape, JsonStr};

use crate::numeric::{parse_decimal, to_f64};

/// A checked value, borrowed from the body where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Null,
    Bool(bool),
    /// `int` and `bigint`.
    Int(i64),
    Double(f64),
    /// Unscaled: the value times 10^scale.
    Numeric(i128),
    /// Unix microseconds, UTC.
    Time(i64),
    Text(Cow<'a, str>),
    TextList(Vec<Cow<'a, str>>),
    DoubleList(Vec<f64>),
    /// JSON text as it came.
    Json(&'a str),
}

impl Cell<'_> {
    /// The number it holds, for bounds and cross-column checks.
    pub(crate) fn number(&self, ty: ColumnType) -> Option<f64> {
        match (self, ty) {
            (Cell::Int(x), _) => Some(*x as f64),
            (Cell::Double(x), _) => Some(*x),
            (Cell::Numeric(x), ColumnType::Numeric { scale, .. }) => Some(to_f64(*x, scale)),
            _ => None,
        }
    }
}

type Checked<'a> = Result<Cell<'a>, String>;

/// Reads `raw` (one JSON value's text) as a value of `col`.
pub(crate) fn cell<'a>(col: &Column, raw: &'a str) -> Checked<'a> {
    if raw == "null" {
        return Ok(Cell::Null);
    }
    let value = match col.ty {
        ColumnType::Bool => match raw {
            "true" => Cell::Bool(true),
            "false" => Cell::Bool(false),
            _ => return Err("expected true or false".into()),
        },
        ColumnType::Int => Cell::Int(integer(raw, i64::from(i32::MIN), i64::from(i32::MAX))?),
        ColumnType::BigInt => Cell::Int(integer(raw, i64::MIN, i64::MAX)?),
        ColumnType::Double => Cell::Double(double(raw)?),
        ColumnType::Numeric { precision, scale } => {
            if !is_number(raw) {
                return Err("expected a number".into());
            }
            Cell::Numeric(parse_decimal(raw, precision, scale)?)
        }
        ColumnType::Timestamptz => Cell::Time(timestamp(raw)?),
        ColumnType::Text => Cell::Text(text(raw)?),
        ColumnType::TextArray => {
            let items: Vec<JsonStr<'a>> =
                serde_json::from_str(raw).map_err(|_| match check_escapes(raw.as_bytes()) {
                    Err(BadEscape::Surrogate) => "contains an unpaired UTF-16 surrogate escape",
                    _ => "expected an array of strings",
                })?;
            let items: Vec<Cow<'a, str>> = items.into_iter().map(|s| s.0).collect();
            if items.iter().any(|s| s.contains('\0')) {
                return Err("an item contains \\u0000, which cannot be stored".into());
            }
            Cell::TextList(items)
        }
        ColumnType::DoubleArray => {
            let items: Vec<f64> = serde_json::from_str(raw).map_err(|e| {
                if e.to_string().contains("out of range") {
                    "an item is out of range".to_string()
                } else {
                    "expected an array of numbers".to_string()
                }
            })?;
            Cell::DoubleList(items)
        }
        ColumnType::Jsonb => {
            if let Some(reason) = unstorable_json(raw.as_bytes()) {
                return Err(reason);
            }
            Cell::Json(raw)
        }
    };
    bounds(col, &value)?;
    Ok(value)
}

fn is_number(raw: &str) -> bool {
    raw.starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// An integer in `lo..=hi`; a number with no fractional part counts.
fn integer(raw: &str, lo: i64, hi: i64) -> Result<i64, String> {
    if !is_number(raw) {
        return Err("expected an integer".into());
    }
    let x = match raw.parse::<i64>() {
        Ok(x) => x,
        Err(_) => match raw.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => f as i64,
            _ => return Err(format!("{raw} is not an integer in {lo}..={hi}")),
        },
    };
    if (lo..=hi).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is outside {lo}..={hi}"))
    }
}

fn double(raw: &str) -> Result<f64, String> {
    if !is_number(raw) {
        return Err("expected a number".into());
    }
    match raw.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err("number out of range".into()),
    }
}

fn text(raw: &str) -> Result<Cow<'_, str>, String> {
    if !raw.starts_with('"') {
        return Err("expected a string".into());
    }
    let s: JsonStr<'_> =
        serde_json::from_str(raw).map_err(|_| match check_escapes(raw.as_bytes()) {
            Err(BadEscape::Surrogate) => "contains an unpaired UTF-16 surrogate escape",
            _ => "expected a string",
        })?;
    if s.0.contains('\0') {
        return Err("contains \\u0000, which cannot be stored".into());
    }
    Ok(s.0)
}

/// Largest Unix seconds accepted (year 5138): keeps microseconds in range.
const MAX_UNIX_SECONDS: f64 = 1e11;

/// RFC 3339 text or Unix seconds, as Unix microseconds.
pub(crate) fn timestamp(raw: &str) -> Result<i64, String> {
    if raw.starts_with('"') {
        let s = text(raw).map_err(|_| "expected RFC 3339 text or Unix seconds")?;
        return chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_micros())
            .map_err(|e| format!("not an RFC 3339 time: {e}"));
    }
    let secs: f64 = if is_number(raw) {
        raw.parse()
            .map_err(|_| "expected RFC 3339 text or Unix seconds")?
    } else {
        return Err("expected RFC 3339 text or Unix seconds".into());
    };
    if !secs.is_finite() || secs.abs() > MAX_UNIX_SECONDS {
        return Err("Unix seconds out of range".into());
    }
    Ok((secs * 1e6).round() as i64)
}

/// The column's declared bounds.
fn bounds(col: &Column, value: &Cell<'_>) -> Result<(), String> {
    let in_range = |x: f64, what: &str| -> Result<(), String> {
        match (col.min, col.max) {
            (Some(lo), _) if x < lo => Err(format!("{what}{x} is below the minimum {lo}")),
            (_, Some(hi)) if x > hi => Err(format!("{what}{x} is above the maximum {hi}")),
            _ => Ok(()),
        }
    };
    if let Some(x) = value.number(col.ty) {
        in_range(x, "")?;
    }
    let max_len = col.max_length.map(|n| n as usize);
    match value {
        Cell::Text(s) => {
            if let Some(n) = max_len {
                if s.len() > n && s.chars().count() > n {
                    return Err(format!("longer than {n} characters"));
                }
            }
            if !col.allowed.is_empty() && !col.allowed.iter().any(|a| a == s) {
                return Err(format!("must be one of {}", col.allowed.join(", ")));
            }
        }
        Cell::TextList(items) if max_len.is_some_and(|n| items.len() > n) => {
            return Err(format!("more than {} items", max_len.unwrap_or(0)));
        }
        Cell::DoubleList(items) => {
            if max_len.is_some_and(|n| items.len() > n) {
                return Err(format!("more than {} items", max_len.unwrap_or(0)));
            }
            items.iter().try_for_each(|&x| in_range(x, "item "))?;
        }
        Cell::Json(text) if max_len.is_some_and(|n| text.len() > n) => {
            return Err(format!("longer than {} bytes", max_len.unwrap_or(0)));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: &str) -> Column {
        Column {
            name: "c".into(),
            ty: ty.parse().unwrap(),
            required: false,
            min: None,
            max: None,
            max_length: None,
            allowed: vec![],
            description: String::new(),
        }
    }

    #[test]
    fn each_type_reads_its_json_and_refuses_others() {
        assert_eq!(cell(&col("bool"), "true"), Ok(Cell::Bool(true)));
        assert!(cell(&col("bool"), "1").is_err());
        assert_eq!(cell(&col("int"), "7.0"), Ok(Cell::Int(7)));
        assert!(cell(&col("int"), "3000000000")
            .unwrap_err()
            .contains("outside"));
        assert!(cell(&col("int"), "\"7\"")
            .unwrap_err()
            .contains("expected an integer"));
        assert_eq!(
            cell(&col("bigint"), "3000000000"),
            Ok(Cell::Int(3_000_000_000))
        );
        assert_eq!(cell(&col("double"), "-1.5e2"), Ok(Cell::Double(-150.0)));
        assert_eq!(
            cell(&col("double"), "1e999"),
            Err("number out of range".into())
        );
        assert_eq!(
            cell(&col("double"), "\"high\""),
            Err("expected a number".into())
        );
        assert_eq!(cell(&col("numeric(5,4)"), "0.02"), Ok(Cell::Numeric(200)));
        assert_eq!(
            cell(&col("timestamptz"), "\"2025-07-01T10:30:00Z\""),
            Ok(Cell::Time(1_751_365_800_000_000))
        );
        assert_eq!(
            cell(&col("timestamptz"), "1751365800.5"),
            Ok(Cell::Time(1_751_365_800_500_000))
        );
        assert!(cell(&col("timestamptz"), "\"yesterday\"").is_err());
        assert_eq!(
            cell(&col("text"), r#""a\"b""#),
            Ok(Cell::Text("a\"b".into()))
        );
        assert!(cell(&col("text"), r#""a\u0000""#).is_err());
        let lone = Err("contains an unpaired UTF-16 surrogate escape".to_string());
        assert_eq!(cell(&col("text"), r#""a\ud800b""#), lone);
        assert_eq!(cell(&col("text[]"), r#"["\udc00"]"#), lone);
        assert!(cell(&col("text"), "5").is_err());
        assert_eq!(
            cell(&col("text[]"), r#"["a","b"]"#),
            Ok(Cell::TextList(vec!["a".into(), "b".into()]))
        );
        assert!(cell(&col("text[]"), r#"["a",1]"#).is_err());
        assert_eq!(
            cell(&col("double[]"), "[1,2.5]"),
            Ok(Cell::DoubleList(vec![1.0, 2.5]))
        );
        assert!(cell(&col("double[]"), "[1,null]").is_err());
        assert_eq!(
            cell(&col("jsonb"), r#"{"a":[1]}"#),
            Ok(Cell::Json(r#"{"a":[1]}"#))
        );
        assert!(cell(&col("jsonb"), r#"{"a":"\ud800"}"#).is_err());
        assert!(cell(&col("jsonb"), r#"{"a":1e999999}"#).is_err());
        assert_eq!(cell(&col("jsonb"), "null"), Ok(Cell::Null));
    }

    #[test]
    fn bounds_apply_per_column() {
        let mut rate = col("double");
        rate.min = Some(0.0);
        rate.max = Some(1.0);
        assert!(cell(&rate, "1.5")
            .unwrap_err()
            .contains("above the maximum 1"));
        assert!(cell(&rate, "-0.1")
            .unwrap_err()
            .contains("below the minimum 0"));
        let mut tf = col("text");
        tf.allowed = vec!["1m".into(), "1h".into()];
        assert!(cell(&tf, "\"2m\"").unwrap_err().contains("one of 1m, 1h"));
        let mut name = col("text");
        name.max_length = Some(3);
        assert!(cell(&name, "\"abcd\"").is_err());
        assert!(cell(&name, "\"äöü\"").is_ok());
        let mut xs = col("double[]");
        xs.max_length = Some(2);
        xs.min = Some(0.0);
        assert!(cell(&xs, "[1,2,3]").is_err());
        assert!(cell(&xs, "[1,-2]").unwrap_err().contains("item -2"));
    }
}

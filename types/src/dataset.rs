//! A dataset declaration: what a table of a declared dataset holds and how
//! rows are checked, written and kept. Pure data: the `dataset` crate loads
//! declarations from TOML, checks them, and derives from them the Arrow
//! schema, the DDL and the COPY encoding; the typed batch that crosses from
//! ingest to writer names its dataset by [`Dataset::name`].
//!
//! The serialised form (serde) is the declaration file's form; its JSON is
//! what `dataset_declarations` records as applied.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Column every dataset table has: the site of the collector key that sent
/// the row.
pub const SITE_ID_COLUMN: &str = "site_id";
/// Column every dataset table has: a row's fields the declaration does not
/// name, as one JSON object (NULL when there were none).
pub const EXTRA_COLUMN: &str = "extra";

/// One declared dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// The name in `POST /api/datasets/{name}/upload`; also the table's
    /// name unless [`Dataset::table`] says otherwise.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The `timestamptz` column the table is partitioned by.
    pub time_column: String,
    #[serde(default)]
    pub mode: WriteMode,
    /// Columns that identify a row: for `upsert`, a row whose key (and site)
    /// matches a stored one replaces it; for `append`, the lookup index.
    #[serde(default)]
    pub key: Vec<String>,
    pub partition: PartitionInterval,
    /// Whole partitions older than this are dropped; rows older than it are
    /// refused at the door.
    pub retention: Retention,
    /// Parquet sort order inside a file (default: key, then time).
    #[serde(default)]
    pub sort: Vec<String>,
    #[serde(default = "yes")]
    pub archive: bool,
    pub columns: Vec<Column>,
    /// Rules across columns, beyond each column's own bounds.
    #[serde(default)]
    pub checks: Vec<Check>,
}

fn yes() -> bool {
    true
}

impl Dataset {
    /// The table the rows go to.
    pub fn table(&self) -> &str {
        self.table.as_deref().unwrap_or(&self.name)
    }

    /// The declared column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Position of the declared column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The Parquet sort order: [`Dataset::sort`], or the key then the time
    /// column.
    pub fn sort_columns(&self) -> Vec<&str> {
        if !self.sort.is_empty() {
            return self.sort.iter().map(String::as_str).collect();
        }
        let mut out: Vec<&str> = self
            .key
            .iter()
            .map(String::as_str)
            .filter(|k| *k != self.time_column)
            .collect();
        out.push(&self.time_column);
        out
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// A row without it (or with `null`) is refused; the column is NOT NULL.
    #[serde(default)]
    pub required: bool,
    /// Inclusive bounds of a number (or of each item of `double[]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Characters of `text` (and of each item of `text[]`), items of an
    /// array, bytes of `jsonb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// The only values a `text` column takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The types a column can have, named as in the declaration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Text,
    Bool,
    /// 32-bit integer (`int4`).
    Int,
    /// 64-bit integer (`int8`).
    BigInt,
    /// `float8`.
    Double,
    /// Exact decimal with `precision` digits, `scale` of them after the
    /// point (precision 1–38).
    Numeric {
        precision: u8,
        scale: u8,
    },
    Timestamptz,
    TextArray,
    DoubleArray,
    Jsonb,
}

impl ColumnType {
    /// The PostgreSQL type the column is created with.
    pub fn sql(self) -> String {
        match self {
            Self::Text => "text".into(),
            Self::Bool => "boolean".into(),
            Self::Int => "int4".into(),
            Self::BigInt => "int8".into(),
            Self::Double => "float8".into(),
            Self::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            Self::Timestamptz => "timestamptz".into(),
            Self::TextArray => "text[]".into(),
            Self::DoubleArray => "float8[]".into(),
            Self::Jsonb => "jsonb".into(),
        }
    }

    /// Whether min/max apply (a number, or an array of numbers).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Int | Self::BigInt | Self::Double | Self::Numeric { .. } | Self::DoubleArray
        )
    }
}

/// The largest precision a `numeric` column may declare (what a 128-bit
/// decimal holds).
pub const MAX_NUMERIC_PRECISION: u8 = 38;

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text => f.write_str("text"),
            Self::Bool => f.write_str("bool"),
            Self::Int => f.write_str("int"),
            Self::BigInt => f.write_str("bigint"),
            Self::Double => f.write_str("double"),
            Self::Numeric { precision, scale } => write!(f, "numeric({precision},{scale})"),
            Self::Timestamptz => f.write_str("timestamptz"),
            Self::TextArray => f.write_str("text[]"),
            Self::DoubleArray => f.write_str("double[]"),
            Self::Jsonb => f.write_str("jsonb"),
        }
    }
}

/// A type name that is not one of [`ColumnType`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownType(pub String);

impl fmt::Display for UnknownType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown type {:?}; use one of text, bool, int, bigint, double, numeric(p,s) \
             (p 1–{MAX_NUMERIC_PRECISION}, s 0–p), timestamptz, text[], double[], jsonb",
            self.0
        )
    }
}

impl FromStr for ColumnType {
    type Err = UnknownType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Ok(match t {
            "text" => Self::Text,
            "bool" => Self::Bool,
            "int" => Self::Int,
            "bigint" => Self::BigInt,
            "double" => Self::Double,
            "timestamptz" => Self::Timestamptz,
            "text[]" => Self::TextArray,
            "double[]" => Self::DoubleArray,
            "jsonb" => Self::Jsonb,
            _ => {
                let inner = t
                    .strip_prefix("numeric(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| UnknownType(s.to_string()))?;
                let (p, sc) = inner
                    .split_once(',')
                    .ok_or_else(|| UnknownType(s.to_string()))?;
                let precision: u8 = p.trim().parse().map_err(|_| UnknownType(s.into()))?;
                let scale: u8 = sc.trim().parse().map_err(|_| UnknownType(s.into()))?;
                if precision == 0 || precision > MAX_NUMERIC_PRECISION || scale > precision {
                    return Err(UnknownType(s.to_string()));
                }
                Self::Numeric { precision, scale }
            }
        })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Every accepted row is a new row.
    #[default]
    Append,
    /// A row with the key (and site) of a stored row replaces it.
    Upsert,
}

/// The span of one partition of a dataset table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionInterval {
    /// A UTC day.
    Day,
    /// An ISO week, Monday 00:00 UTC to the next Monday.
    Week,
    /// A calendar month, UTC.
    Month,
}

impl PartitionInterval {
    /// The name `date_trunc` and the partition function take.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

/// How long rows are kept, in whole days. Written `"30d"`, `"12w"` or
/// `"1y"` (365 days) in a declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Retention {
    pub days: u32,
}

impl Retention {
    pub fn micros(self) -> i64 {
        i64::from(self.days) * crate::MICROS_PER_DAY
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}d", self.days)
    }
}

impl FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("retention {s:?} is not a number of days, weeks or years (30d, 12w, 1y)");
        let t = s.trim();
        let unit = t.chars().last().ok_or_else(bad)?;
        let n: u32 = t[..t.len() - unit.len_utf8()]
            .trim()
            .parse()
            .map_err(|_| bad())?;
        let days = match unit {
            'd' => Some(n),
            'w' => n.checked_mul(7),
            'y' => n.checked_mul(365),
            _ => None,
        }
        .filter(|&d| d > 0 && d <= 100 * 365)
        .ok_or_else(bad)?;
        Ok(Self { days })
    }
}

impl Serialize for Retention {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A rule across columns. A comparison holds when either side is NULL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// `column` ≥ each of `than` (e.g. a bar's high against open, close, low).
    NotLess { column: String, than: Vec<String> },
    /// `column` ≤ each of `than` (a bar's low against open and close).
    NotGreater { column: String, than: Vec<String> },
    /// The `timestamptz` `column` falls on a multiple (since the Unix
    /// epoch, UTC) of the interval that `interval_column` names: `30s`,
    /// `1m`, `5m`, `1h`, `4h`, `1d`.
    AlignedTo {
        column: String,
        interval_column: String,
    },
}

/// Microseconds in an interval written `<n>s`, `<n>m`, `<n>h`, `<n>d` or
/// `<n>w` (`1m`, `4h`, `1d`), or `None`.
pub fn interval_micros(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    (n > 0).then(|| n.checked_mul(secs)?.checked_mul(1_000_000))?
}

/// The counts a dataset upload is answered with (no online/offline: those
/// are telemetry's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatasetSummary {
    pub processed: u32,
    pub rejected: u32,
    /// The first [`crate::MAX_LISTED_ERRORS`] row errors.
    pub errors: Vec<crate::RowError>,
}

impl DatasetSummary {
    /// The 200 answer of a dataset upload, byte for byte what a retry with
    /// the same Idempotency-Key gets back.
    pub fn render(&self, processing_time_ms: u64) -> String {
        render_answer(
            self.processed,
            self.rejected,
            processing_time_ms,
            &self.errors,
        )
    }
}

/// The 200 answer of a dataset upload from its counts.
pub fn render_answer(
    processed: u32,
    rejected: u32,
    processing_time_ms: u64,
    errors: &[crate::RowError],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(96 + errors.len() * 96);
    let _ = write!(
        out,
        r#"{{"success":true,"data":{{"processed":{processed},"rejected":{rejected},"processing_time_ms":{processing_time_ms},"errors":["#
    );
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"index":{},"field":"#, e.index);
        crate::push_json_string(&mut out, &e.field);
        out.push_str(r#","reason":"#);
        crate::push_json_string(&mut out, &e.reason);
        out.push('}');
    }
    out.push_str("]}}");
    out
}

#[cfg(test)]
mod tests;

//! A decompressed body to a typed Arrow batch, columnar from the start:
//! each accepted row's values go straight into per-column builders; a row
//! that breaks a rule is refused alone (its raw JSON kept for
//! `ingest_rejects`); a body that is not rows at all is refused whole.
//!
//! Bodies are a JSON array of objects, or NDJSON (one object per line;
//! blank lines skipped; a line that is not JSON is that row's reject). Row
//! indexes count from 0 over the array's elements or the non-blank lines.

mod columns;
mod row;
mod value;

use std::time::Duration;

use adit_types::json::{clip_raw, nests_deeper_than};
use adit_types::{Reject, RowError, MAX_LISTED_ERRORS};
use arrow_array::RecordBatch;
use serde_json::value::RawValue;

use self::columns::Columns;
use self::row::{Scratch, Window};
use crate::declared::Declared;
use crate::{Error, Result};

/// How a body lays out its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON array of objects (`application/json`).
    JsonArray,
    /// One JSON object per line (`application/x-ndjson`).
    Ndjson,
}

impl BodyFormat {
    /// The format a `Content-Type` names: NDJSON for
    /// `application/x-ndjson` (or `application/jsonl`), else a JSON array.
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let essence = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => {
                Self::Ndjson
            }
            _ => Self::JsonArray,
        }
    }
}

/// Bounds on a body, beyond the declaration's own.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Rows in one upload; a bigger batch is refused whole.
    pub max_rows: usize,
    /// Array/object nesting; deeper bodies are refused whole.
    pub max_depth: usize,
    /// How far ahead of the server clock a row's time may be. (How old it
    /// may be is the dataset's retention.)
    pub max_future: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rows: 20_000,
            max_depth: 64,
            max_future: Duration::from_secs(5 * 60),
        }
    }
}

/// A decoded body: the accepted rows as one batch (schema
/// [`Declared::schema`]) and the refused ones.
#[derive(Debug)]
pub struct Decoded {
    pub batch: RecordBatch,
    pub rejects: Vec<Reject>,
    /// The first [`MAX_LISTED_ERRORS`] row errors, for the answer.
    pub errors: Vec<RowError>,
}

/// One element of the body: a value's raw text, or a line that is not JSON.
enum Element<'a> {
    Value(&'a str),
    Broken { raw: &'a str, reason: String },
}

/// Decodes `body` for dataset `d`; `now_micros` is the receive time.
pub fn decode(
    d: &Declared,
    body: &[u8],
    format: BodyFormat,
    limits: &Limits,
    now_micros: i64,
) -> Result<Decoded> {
    let text = std::str::from_utf8(body).map_err(|e| Error::MalformedJson {
        reason: format!("invalid UTF-8: {e}"),
    })?;
    let elements = match format {
        BodyFormat::JsonArray => array_elements(text, limits)?,
        BodyFormat::Ndjson => ndjson_elements(text, limits)?,
    };
    if elements.len() > limits.max_rows {
        return Err(Error::TooManyRows {
            rows: elements.len(),
            limit: limits.max_rows,
        });
    }
    let ds = d.dataset();
    let window = Window {
        earliest: now_micros.saturating_sub(ds.retention.micros()),
        latest: now_micros.saturating_add(limits.max_future.as_micros() as i64),
    };
    let mut columns = Columns::new(ds.columns.iter().map(|c| c.ty), elements.len());
    let mut scratch = Scratch::new(ds.columns.len());
    let (mut rejects, mut errors) = (Vec::new(), Vec::new());
    let mut extra = String::new();
    for (index, element) in elements.into_iter().enumerate() {
        let index = index as u32;
        let (raw, refused) = match element {
            Element::Value(raw) => (raw, scratch.read(d, window, index, raw).err()),
            Element::Broken { raw, reason } => (raw, Some(("row".to_string(), reason))),
        };
        match refused {
            None => {
                for (b, c) in columns.builders.iter_mut().zip(&scratch.cells) {
                    b.push(c);
                }
                if scratch.extra_json(&mut extra) {
                    columns.extra.append_value(&extra);
                } else {
                    columns.extra.append_null();
                }
            }
            Some((field, reason)) => {
                let error = RowError {
                    index,
                    field,
                    reason,
                };
                if errors.len() < MAX_LISTED_ERRORS {
                    errors.push(error.clone());
                }
                rejects.push(Reject {
                    error,
                    raw_json: clip_raw(raw),
                });
            }
        }
    }
    Ok(Decoded {
        batch: columns.finish(d.schema())?,
        rejects,
        errors,
    })
}

fn array_elements<'a>(text: &'a str, limits: &Limits) -> Result<Vec<Element<'a>>> {
    if nests_deeper_than(text.as_bytes(), limits.max_depth) {
        return Err(Error::TooDeep {
            limit: limits.max_depth,
        });
    }
    let trimmed = text.trim_start();
    if !trimmed.starts_with('[') {
        return Err(Error::MalformedJson {
            reason: "the body must be a JSON array of objects (or NDJSON with \
                     Content-Type: application/x-ndjson)"
                .into(),
        });
    }
    let values: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| Error::MalformedJson {
        reason: e.to_string(),
    })?;
    Ok(values
        .into_iter()
        .map(|v| Element::Value(v.get()))
        .collect())
}

fn ndjson_elements<'a>(text: &'a str, limits: &Limits) -> Result<Vec<Element<'a>>> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
        if line.is_empty() {
            continue;
        }
        if out.len() == limits.max_rows {
            // Count the rest for the answer, without parsing it.
            let rest = text.split('\n').filter(|l| !l.trim().is_empty()).count();
            return Err(Error::TooManyRows {
                rows: rest,
                limit: limits.max_rows,
            });
        }
        if nests_deeper_than(line.as_bytes(), limits.max_depth) {
            return Err(Error::TooDeep {
                limit: limits.max_depth,
            });
        }
        out.push(match serde_json::from_str::<&RawValue>(line) {
            Ok(v) => Element::Value(v.get()),
            Err(e) => Element::Broken {
                raw: line,
                reason: format!("not valid JSON: {e}"),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

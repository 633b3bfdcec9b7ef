//! The batch loop: each element of the array becomes a sample (by the fast
//! path, else the full parser) or a reject with its raw JSON; the nesting
//! check and the row limit refuse the whole batch.

use std::borrow::Cow;

use adit_types::{Reject, RowError, MAX_LISTED_ERRORS};

use super::elements::Elements;
use super::fields::Invalid;
use super::row::{parse_row_at, BATCH};
use super::rules::{Rules, Window};
use super::{fast, Parsed};
use crate::json::nests_deeper_than;
use crate::{Error, Result};

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

pub(super) fn parse_batch_with(
    body: &[u8],
    rules: &Rules,
    now_micros: i64,
    fast: bool,
) -> Result<Parsed> {
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

use adit_types::json::clip_raw as clip;
pub use adit_types::json::MAX_REJECT_RAW_BYTES;

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

//! Parse, don't validate: a decoded body becomes typed [`Sample`]s, and
//! each row that breaks a rule becomes a [`Reject`] carrying its raw JSON
//! and the reason. A batch-level problem (not JSON, not an array, too deep,
//! too many rows) refuses the whole upload instead.
//!
//! The steps, a file each: `rules` (the bounds), `batch` (the loop over
//! the array), `elements` (walking the array), `row` (one row the full
//! way), `fields` (each field's rule), `boards` (the boards array), `fast`
//! (the common row in one pass over the bytes).

use adit_types::{Reject, Sample, UploadSummary};

use self::batch::parse_batch_with;
use crate::Result;

mod batch;
mod boards;
mod elements;
mod fast;
mod fields;
mod row;
mod rules;

pub use batch::MAX_REJECT_RAW_BYTES;
pub use rules::Rules;

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

#[cfg(test)]
mod tests;

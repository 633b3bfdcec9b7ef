//! JSON building blocks for validation: object keys borrowed from the body;
//! the hardening shared with the dataset engine (nesting pre-check, escapes
//! and numbers PostgreSQL's `jsonb` refuses) lives in `adit_types::json`.

pub(crate) use adit_types::json::JsonStr as Key;
pub use adit_types::json::{
    check_escapes, check_number, check_numbers, nests_deeper_than, BadEscape, NumberOutOfRange,
    NUMERIC_MAX_INTEGER_DIGITS, NUMERIC_MAX_SCALE,
};

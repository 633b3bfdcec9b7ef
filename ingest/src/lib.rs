//! adit's ingest stage: from the bytes of an upload to a typed
//! [`Upload`], with nothing of HTTP, the database or the writer in it.
//!
//! A body is decompressed within limits ([`decode`]), parsed and validated
//! row by row into typed samples and refused rows ([`validate`]), and
//! wrapped with where it came from ([`upload`]). A body that cannot be read
//! at all is an [`Error`]; a row that breaks a rule is only that row's
//! reject.

pub mod decode;
mod error;
pub mod fuzzing;
pub mod json;
pub mod validate;

use std::time::Instant;

use adit_types::{Idempotency, Upload};

pub use error::{Error, Result};

/// Where an upload came from, as the front door learned it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub site_id: i32,
    pub key_id: i32,
    /// When the request arrived, and the same moment as Unix microseconds
    /// (the sample time of rows without one).
    pub received_at: Instant,
    pub received_at_micros: i64,
    /// Body bytes as received (compressed).
    pub bytes_in: usize,
    pub idempotency: Option<Idempotency>,
}

/// Parses and validates a decompressed body into an [`Upload`] with the
/// random `upload_id` that links its log row, rejects and log lines.
pub fn upload(raw: &[u8], origin: Origin, rules: &validate::Rules) -> Result<Upload> {
    let parsed = validate::parse_batch(raw, rules, origin.received_at_micros)?;
    Ok(Upload {
        upload_id: rand::random::<i64>() & i64::MAX,
        site_id: origin.site_id,
        key_id: origin.key_id,
        received_at: origin.received_at,
        received_at_micros: origin.received_at_micros,
        samples: parsed.samples,
        dataset: None,
        rejects: parsed.rejects,
        summary: parsed.summary,
        idempotency: origin.idempotency,
        bytes_in: origin.bytes_in as u32,
        bytes_raw: raw.len() as u32,
        processing_time_ms: 0,
    })
}

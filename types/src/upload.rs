//! The upload that crosses from the front door to the writer, and the
//! Idempotency-Key it may carry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;

use crate::dataset::Dataset;
use crate::{Reject, Sample, UploadSummary};

/// One validated upload, ready to be written.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Random id linking the upload log, the rejects and the logs.
    pub upload_id: i64,
    pub site_id: i32,
    pub key_id: i32,
    /// When the request arrived (for `processing_time_ms`).
    pub received_at: Instant,
    /// The same moment on the wall clock, Unix microseconds.
    pub received_at_micros: i64,
    /// Miner telemetry rows (empty for a dataset upload).
    pub samples: Vec<Sample>,
    /// A declared dataset's rows, instead of telemetry samples: boxed so a
    /// telemetry upload carries one empty pointer and nothing else.
    pub dataset: Option<Box<DatasetRows>>,
    pub rejects: Vec<Reject>,
    pub summary: UploadSummary,
    pub idempotency: Option<Idempotency>,
    /// Body bytes as received, and after decompression.
    pub bytes_in: u32,
    pub bytes_raw: u32,
    /// Set by the writer when the batch is flushed.
    pub processing_time_ms: u32,
}

impl Upload {
    /// A minimal upload for tests of the batching logic.
    pub fn test_upload() -> Self {
        Self {
            upload_id: 1,
            site_id: 1,
            key_id: 1,
            received_at: Instant::now(),
            received_at_micros: 0,
            samples: Vec::new(),
            dataset: None,
            rejects: Vec::new(),
            summary: UploadSummary::default(),
            idempotency: None,
            bytes_in: 0,
            bytes_raw: 0,
            processing_time_ms: 0,
        }
    }
}

impl Upload {
    /// Rows accepted: samples, or the dataset batch's rows.
    pub fn rows(&self) -> usize {
        match &self.dataset {
            None => self.samples.len(),
            Some(d) => d.batch.num_rows(),
        }
    }

    /// The dataset's name, `None` for miner telemetry.
    pub fn dataset_name(&self) -> Option<&str> {
        self.dataset.as_ref().map(|d| d.dataset.name.as_str())
    }

    /// The 200 answer, byte for byte what an Idempotency-Key retry gets:
    /// telemetry's shape, or a dataset's (no online/offline).
    pub fn render(&self) -> String {
        let ms = u64::from(self.processing_time_ms);
        match self.dataset {
            None => self.summary.render(ms),
            Some(_) => self.summary.render_dataset(ms),
        }
    }
}

/// The accepted rows of a dataset upload: the declaration they were
/// decoded for and one Arrow batch of its schema (declared columns, then
/// `extra`; `site_id` comes from the upload).
#[derive(Debug, Clone)]
pub struct DatasetRows {
    pub dataset: Arc<Dataset>,
    pub batch: RecordBatch,
}

/// Something that wants committed samples (and nothing uncommitted): the
/// writer calls it after each COMMIT, on its own task, so it must be quick.
pub trait CommitObserver: Send + Sync + std::fmt::Debug {
    fn committed(&self, site_id: i32, samples: &[Sample]);

    /// A committed dataset upload's rows. The batch is shared, not copied;
    /// an observer that wants only some datasets checks the name first.
    fn committed_rows(&self, _site_id: i32, _rows: &DatasetRows) {}
}

/// Several observers, each told of every commit in order.
#[derive(Debug, Default)]
pub struct Observers(pub Vec<Arc<dyn CommitObserver>>);

impl CommitObserver for Observers {
    fn committed(&self, site_id: i32, samples: &[Sample]) {
        for o in &self.0 {
            o.committed(site_id, samples);
        }
    }

    fn committed_rows(&self, site_id: i32, rows: &DatasetRows) {
        for o in &self.0 {
            o.committed_rows(site_id, rows);
        }
    }
}

/// How long an Idempotency-Key holds: a retry within this time gets the
/// first answer; after it, the key may be used again (and is forgotten).
pub const IDEMPOTENCY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Longest Idempotency-Key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// The Idempotency-Key of an upload and the fingerprint of its decoded
/// body (128-bit XXH3, big-endian; see `migrations/0006_body_digest.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub body_digest: [u8; 16],
}

/// An `Idempotency-Key` header value: 1–128 printable ASCII characters,
/// or `None`.
pub fn parse_idempotency_key(raw: &[u8]) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && raw.iter().all(|b| (0x20..0x7f).contains(b));
    ok.then(|| String::from_utf8(raw.to_vec()).expect("ASCII is UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_format() {
        let parse = parse_idempotency_key;
        assert_eq!(parse(b"retry-1 ok").as_deref(), Some("retry-1 ok"));
        assert!(parse(b"").is_none());
        assert!(parse(&[b'a'; 129]).is_none());
        assert!(parse(&[b'a'; 128]).is_some());
        assert!(parse(b"tab\there").is_none());
        assert!(parse("é".as_bytes()).is_none());
    }
}

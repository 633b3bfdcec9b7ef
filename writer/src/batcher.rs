//! Group commit: uploads of many requests gather into one batch, which is
//! flushed (one transaction, one COPY per day partition) when it is big
//! enough or old enough. Under light load a batch leaves after `flush_interval`;
//! under heavy load batches fill up while the previous flush runs.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::{Ack, Result, Upload};

/// When a batch is flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Flush once this many sample rows are gathered.
    pub max_rows: usize,
    /// Flush once the encoded size estimate passes this many bytes.
    pub max_bytes: usize,
    /// Flush at the latest this long after the first upload arrived.
    pub flush_interval: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_rows: 20_000,
            max_bytes: 32 << 20,
            flush_interval: Duration::from_millis(5),
        }
    }
}

/// How many of `queued` uploads a worker starting a batch takes when
/// `workers` workers share the queue: `None` for all it can (one worker,
/// or no more queued than one takes), else its even share, after which it
/// flushes without waiting for more. After a stall (a commit waiting on
/// the disk), the workers come free a millisecond apart before a backlog;
/// the first one used to take all of it into one long COPY while the
/// other wrote the next upload alone, and the backlog's uploads waited out
/// the stall and that COPY in turn. Now each writes a part side by side.
pub fn share(queued: usize, workers: usize) -> Option<usize> {
    let each = queued.div_ceil(workers.max(1));
    (each < queued).then_some(each.max(1))
}

/// An upload waiting for its commit, and where to send the answer.
#[derive(Debug)]
pub struct Pending {
    pub upload: Upload,
    pub reply: oneshot::Sender<Result<Ack>>,
}

/// Uploads gathered for one flush.
#[derive(Debug, Default)]
pub struct Batch {
    pub pending: Vec<Pending>,
    rows: usize,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    pub fn push(&mut self, p: Pending, now: Instant) {
        self.rows += p.upload.rows() + p.upload.rejects.len();
        self.bytes += p.upload.bytes_raw as usize;
        self.started.get_or_insert(now);
        self.pending.push(p);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Uploads gathered.
    pub fn uploads(&self) -> usize {
        self.pending.len()
    }

    /// True when the batch must leave now.
    pub fn should_flush(&self, limits: &BatchLimits, now: Instant) -> bool {
        match self.started {
            None => false,
            Some(started) => {
                self.rows >= limits.max_rows
                    || self.bytes >= limits.max_bytes
                    || now.saturating_duration_since(started) >= limits.flush_interval
            }
        }
    }

    /// Time left before `flush_interval` forces a flush.
    pub fn time_left(&self, limits: &BatchLimits, now: Instant) -> Duration {
        match self.started {
            None => limits.flush_interval,
            Some(started) => (started + limits.flush_interval).saturating_duration_since(now),
        }
    }

    pub fn take(&mut self) -> Vec<Pending> {
        self.rows = 0;
        self.bytes = 0;
        self.started = None;
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adit_types::Sample;

    fn pending(rows: usize) -> Pending {
        let (reply, _rx) = oneshot::channel();
        let upload = Upload {
            samples: vec![Sample::default(); rows],
            bytes_raw: 100 * rows as u32,
            ..Upload::test_upload()
        };
        Pending { upload, reply }
    }

    #[test]
    fn a_backlog_is_shared_among_the_workers() {
        // One worker, or nothing to share: take all.
        assert_eq!(share(12, 1), None);
        assert_eq!(share(1, 2), None);
        assert_eq!(share(0, 2), None);
        assert_eq!(share(5, 0), None);
        // Two workers before twelve uploads: six each; odd counts round up.
        assert_eq!(share(12, 2), Some(6));
        assert_eq!(share(13, 2), Some(7));
        assert_eq!(share(2, 2), Some(1));
        assert_eq!(share(7, 3), Some(3));
    }

    #[test]
    fn empty_batch_never_flushes() {
        let b = Batch::default();
        let now = Instant::now();
        assert!(!b.should_flush(&BatchLimits::default(), now + Duration::from_secs(60)));
    }

    #[test]
    fn flushes_on_rows_bytes_or_age() {
        let limits = BatchLimits {
            max_rows: 10,
            max_bytes: 5_000,
            flush_interval: Duration::from_millis(20),
        };
        let t0 = Instant::now();
        let mut b = Batch::default();
        b.push(pending(3), t0);
        assert!(!b.should_flush(&limits, t0));
        assert_eq!(
            b.time_left(&limits, t0 + Duration::from_millis(5)),
            Duration::from_millis(15)
        );
        assert!(
            b.should_flush(&limits, t0 + Duration::from_millis(20)),
            "age"
        );
        b.push(pending(7), t0);
        assert!(b.should_flush(&limits, t0), "rows");
        let mut b = Batch::default();
        b.push(pending(6), t0);
        assert!(!b.should_flush(&limits, t0));
        let limits = BatchLimits {
            max_bytes: 600,
            ..limits
        };
        assert!(b.should_flush(&limits, t0), "bytes");
        assert_eq!(b.take().len(), 1);
        assert!(b.is_empty() && b.rows() == 0);
    }
}

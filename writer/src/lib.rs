//! adit's writer stage.
//!
//! Data comes from `ingest/` as validated [`Upload`]s through a bounded
//! lock-free queue ([`WriterHandle::submit`]); it goes to PostgreSQL:
//! workers gather uploads of many requests into one batch (group commit),
//! write each batch in one transaction with one binary COPY per daily
//! partition of `miner_telemetry` (and one per declared dataset, see
//! [`datasets`]), and only after COMMIT answer every
//! waiting request. A failed flush is retried on a fresh connection with
//! backoff; a commit whose answer was lost is checked before any retry, so
//! a batch is never written twice.

pub mod batcher;
pub mod copy;
pub mod datasets;
pub mod dirty;
pub mod flush;
pub mod idempotency;
pub mod partition;

mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adit_types::pg::DbErrorText;
use adit_types::UploadSummary;
pub use adit_types::{CommitObserver, Idempotency, Upload};
use crossbeam_queue::ArrayQueue;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub use batcher::BatchLimits;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the writer queue is full ({capacity} uploads waiting)")]
    QueueFull { capacity: usize },
    #[error("the writer is shutting down")]
    ShuttingDown,
    #[error("database: {}", DbErrorText(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("database unavailable: {}", DbErrorText(.source.as_ref()))]
    Unavailable { source: Arc<tokio_postgres::Error> },
    #[error("COPY into {table} wrote {written} rows, expected {expected}")]
    CopyCount {
        table: &'static str,
        written: u64,
        expected: u64,
    },
    #[error("the database refused the batch: {source}")]
    Refused { source: Arc<Error> },
}

/// The writer's answer to one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Committed: what the 200 answer says (the server renders it; the
    /// writer stored the same rendering for idempotent retries).
    Committed {
        summary: UploadSummary,
        processing_time_ms: u32,
    },
    /// An upload with the same Idempotency-Key committed first; this one
    /// wrote nothing. Look the first answer up and send that.
    Duplicate,
}

/// Writer settings. [`WriterConfig::test_config`] flushes fast and small.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub database_url: String,
    /// Parallel COPY connections.
    pub workers: usize,
    /// Uploads that may wait in the queue before new ones get 503.
    pub queue_capacity: usize,
    pub batch: BatchLimits,
    /// How long a batch keeps retrying a broken database before its uploads
    /// are answered 503.
    pub retry_for: Duration,
    /// Benchmarking only: acknowledge without writing anything.
    pub discard: bool,
    /// Where committed rows go for the Parquet archive (None: no archive).
    pub archive: Option<adit_archive::ArchiveHandle>,
    /// Told about every committed upload's samples, after COMMIT (live
    /// state, telemetry events). Must be quick: it runs on the writer task.
    pub on_commit: Option<std::sync::Arc<dyn CommitObserver>>,
}

impl WriterConfig {
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            workers: 2,
            queue_capacity: 1024,
            batch: BatchLimits::default(),
            retry_for: Duration::from_secs(30),
            discard: false,
            archive: None,
            on_commit: None,
        }
    }

    pub fn test_config(database_url: impl Into<String>) -> Self {
        Self {
            batch: BatchLimits {
                max_rows: 5_000,
                max_bytes: 8 << 20,
                flush_interval: Duration::from_millis(2),
            },
            retry_for: Duration::from_secs(10),
            ..Self::new(database_url)
        }
    }
}

/// Counters the server reports (queue depth is enqueued − dequeued).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub enqueued: AtomicU64,
    pub dequeued: AtomicU64,
    pub flushes: AtomicU64,
    pub rows_written: AtomicU64,
    pub flush_failures: AtomicU64,
    /// Time spent in flushes, microseconds.
    pub flush_micros: AtomicU64,
    /// False while the last attempt to reach the database failed.
    pub database_up: AtomicBool,
}

#[derive(Debug)]
struct Shared {
    queue: ArrayQueue<batcher::Pending>,
    notify: Notify,
    closing: AtomicBool,
    stats: WriterStats,
    config: WriterConfig,
}

/// The front door's side of the writer: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    shared: Arc<Shared>,
}

/// The running writer: its handle and its worker tasks.
#[derive(Debug)]
pub struct Writer {
    pub handle: WriterHandle,
    workers: Vec<JoinHandle<()>>,
}

impl Writer {
    /// Starts `config.workers` workers, each with its own connection
    /// (opened lazily and reopened after failures).
    pub fn spawn(config: WriterConfig) -> Self {
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(config.queue_capacity.max(1)),
            notify: Notify::new(),
            closing: AtomicBool::new(false),
            stats: WriterStats {
                database_up: AtomicBool::new(true),
                ..Default::default()
            },
            config,
        });
        let workers = (0..shared.config.workers.max(1))
            .map(|id| tokio::spawn(worker::run(id, shared.clone())))
            .collect();
        Self {
            handle: WriterHandle { shared },
            workers,
        }
    }

    /// Stops taking uploads, writes everything queued, then returns.
    pub async fn shutdown(self) {
        self.handle.shared.closing.store(true, Ordering::SeqCst);
        self.handle.shared.notify.notify_waiters();
        for w in self.workers {
            let _ = w.await;
        }
    }
}

impl WriterHandle {
    /// Queues an upload; the receiver yields its answer after COMMIT.
    /// Fails at once when the queue is full or the writer is stopping.
    pub fn submit(&self, upload: Upload) -> Result<oneshot::Receiver<Result<Ack>>> {
        if self.shared.closing.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let (reply, rx) = oneshot::channel();
        self.shared
            .queue
            .push(batcher::Pending { upload, reply })
            .map_err(|_| Error::QueueFull {
                capacity: self.shared.queue.capacity(),
            })?;
        self.shared.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        self.shared.notify.notify_one();
        Ok(rx)
    }

    pub fn stats(&self) -> &WriterStats {
        &self.shared.stats
    }

    /// Uploads waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.shared.queue.len()
    }

    pub fn queue_capacity(&self) -> usize {
        self.shared.queue.capacity()
    }
}

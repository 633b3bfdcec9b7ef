//! The Parquet archive: every committed telemetry row, once, in hive-style
//! Parquet files on an object store (`file://` or `s3://`).
//!
//! Rows come from the writer right after their transaction commits
//! ([`ArchiveHandle::offer`], never blocking it) and are buffered per
//! window (site, day); a window's buffer becomes a file when it is big
//! enough or old enough (the flush interval) and at shutdown. What the
//! stream misses — a crash, a full channel, a store that was down — is
//! still queued in `archive_queue` and is exported from PostgreSQL by the
//! sweeper. The queue row is the claim ticket that makes each batch land in
//! exactly one recorded file (see `migrations/0003_archive.sql`).

pub mod dataset;
pub mod export;
pub mod maintain;
pub mod parquet;
pub mod sink;
pub mod store;
pub mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adit_types::Sample;
use chrono::NaiveDate;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tracing::{info, warn};

pub use store::Archive;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("database: {}", adit_types::pg::DbErrorText(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("an archive file needs at least one row")]
    Empty,
    #[error("some batches were archived meanwhile by another path")]
    Claimed { still_queued: Vec<i64> },
    #[error("the files of window site {site_id} {day} changed meanwhile")]
    Replaced { site_id: i32, day: NaiveDate },
    #[error(
        "the file holds a different number of rows of batches {batches:?} than they committed"
    )]
    Incomplete { batches: Vec<i64> },
    #[error("a file staged for window site {site_id} {day} lost its manifest row meanwhile")]
    StagedGone { site_id: i32, day: NaiveDate },
}

/// Archive settings.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    pub url: String,
    pub database_url: String,
    /// A buffered row reaches a file at the latest this long after commit.
    pub flush_interval: Duration,
    /// Rows per file before a buffer is written early (and per compacted file).
    pub max_file_rows: usize,
    /// Buffered rows across windows before the largest buffer is written
    /// early (about 130 MB of samples at the default); if the store refuses
    /// it, the oldest buffers are dropped and their batches, still queued,
    /// are exported from PostgreSQL later.
    pub max_buffered_rows: usize,
    /// Windows whose day ended this long ago are closed and compacted.
    pub compact_after: Duration,
    /// At start, a file still 'writing' whose writer's connection is gone
    /// was cut short by a crash and is deleted. A file recorded before the
    /// writer was noted (migrations/0007) counts as such after this long.
    pub stale_writing: Duration,
    /// The declared datasets: those with `archive = true` are exported per
    /// closed day (see [`dataset`]); none when `None`.
    pub datasets: Option<adit_dataset::Catalog>,
    pub dataset: dataset::DatasetArchiveConfig,
}

impl ArchiveConfig {
    pub fn new(url: impl Into<String>, database_url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database_url: database_url.into(),
            flush_interval: Duration::from_secs(300),
            max_file_rows: 1_000_000,
            max_buffered_rows: 100_000,
            compact_after: Duration::from_secs(7 * 86_400 + 3600),
            stale_writing: Duration::from_secs(120),
            datasets: None,
            dataset: dataset::DatasetArchiveConfig::default(),
        }
    }
}

/// Rows of one batch (flush transaction) for one site: every upload of
/// the site that the transaction committed, handed over together. The
/// batch's claim ticket counts them all, and a file claims it only when it
/// holds every one of them.
#[derive(Debug)]
pub struct ArchiveBatch {
    pub batch_id: i64,
    pub site_id: i32,
    /// The samples, one vector per upload, as they came (no row is moved).
    pub uploads: Vec<Vec<Sample>>,
}

impl ArchiveBatch {
    pub fn rows(&self) -> usize {
        self.uploads.iter().map(Vec::len).sum()
    }
}

/// Counters for logs and metrics.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    pub buffered_rows: AtomicU64,
    pub files_written: AtomicU64,
    pub rows_archived: AtomicU64,
    pub dropped_batches: AtomicU64,
    pub store_errors: AtomicU64,
    /// Committed rows not yet in a recorded file (`archive_queue`: in
    /// memory or left to the sweeper), as last measured.
    pub queued_rows: AtomicU64,
    /// Age in seconds of the oldest of them (0 when none), as last measured.
    pub lag_s: AtomicU64,
}

/// The writer's side of the archive.
#[derive(Debug, Clone)]
pub struct ArchiveHandle {
    tx: mpsc::Sender<ArchiveBatch>,
    pub stats: Arc<ArchiveStats>,
}

impl ArchiveHandle {
    /// Hands committed rows over without waiting; when the archiver is
    /// behind, the rows stay queued in PostgreSQL for the sweeper.
    pub fn offer(&self, batch: ArchiveBatch) {
        if self.tx.try_send(batch).is_err() {
            self.stats.dropped_batches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running archiver.
#[derive(Debug)]
pub struct Archiver {
    pub handle: ArchiveHandle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    datasets: Option<dataset::DatasetArchiver>,
}

impl Archiver {
    pub fn spawn(config: ArchiveConfig, archive: Archive) -> Self {
        // 32 uploads (~32k rows): beyond it rows wait in PostgreSQL instead of memory.
        let (tx, rx) = mpsc::channel(32);
        let (stop, stopped) = oneshot::channel();
        let stats = Arc::new(ArchiveStats::default());
        let datasets = config.datasets.clone().and_then(|catalog| {
            dataset::DatasetArchiver::spawn(
                config.database_url.clone(),
                archive.clone(),
                catalog,
                config.dataset.clone(),
            )
        });
        let task = tokio::spawn(run(config, archive, rx, stopped, stats.clone()));
        Self {
            handle: ArchiveHandle { tx, stats },
            stop,
            task,
            datasets,
        }
    }

    /// Takes what was already handed over, writes everything buffered, and
    /// stops. Call after the writer has drained.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        if let Some(datasets) = self.datasets {
            datasets.shutdown().await;
        }
    }
}

type Window = (i32, NaiveDate);

/// Rows waiting to become a file, grouped by batch.
#[derive(Debug)]
struct Buffer {
    batches: Vec<(i64, Vec<Sample>)>,
    rows: usize,
    since: Instant,
}

pub(crate) async fn connect(url: &str) -> Client {
    let mut attempt = 0;
    loop {
        match adit_types::pg::connect(url).await {
            Ok(c) => return c,
            Err(e) => {
                warn!(error = %e, "Archiver cannot reach PostgreSQL; retrying.");
                tokio::time::sleep(adit_types::pg::retry::backoff(attempt)).await;
                attempt += 1;
            }
        }
    }
}

async fn run(
    cfg: ArchiveConfig,
    archive: Archive,
    mut rx: mpsc::Receiver<ArchiveBatch>,
    mut stopped: oneshot::Receiver<()>,
    stats: Arc<ArchiveStats>,
) {
    let mut client = connect(&cfg.database_url).await;
    let mut buffers: HashMap<Window, Buffer> = HashMap::new();
    if let Err(e) = maintain::recover(&mut client, &archive, &cfg, &stats).await {
        warn!(error = %e, "Archive recovery incomplete; the sweeper will retry.");
    }
    let sweep_age = cfg.flush_interval * 2 + Duration::from_secs(5);
    let mut tick = tokio::time::interval(Duration::from_millis(250).min(cfg.flush_interval));
    let mut last_sweep = Instant::now();
    let mut last_compact: Option<Instant> = None;
    let queue_every = QUEUE_STATS_EVERY.min(cfg.flush_interval);
    let mut last_queue_stats: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut stopped => {
                rx.close();
                while let Some(batch) = rx.recv().await {
                    add(&mut buffers, batch, &stats, usize::MAX);
                }
                break;
            }
            batch = rx.recv() => {
                let Some(batch) = batch else { break };
                let full = add(&mut buffers, batch, &stats, cfg.max_file_rows);
                if let Some(window) = full {
                    flush_window(&mut client, &archive, &mut buffers, window, &stats, &cfg).await;
                }
                // Over the memory budget: write the largest buffer early; if
                // the store refuses it, leave the oldest to the sweeper.
                while buffered(&buffers) > cfg.max_buffered_rows {
                    let Some(largest) = buffers.iter().max_by_key(|(_, b)| b.rows).map(|(w, _)| *w) else { break };
                    let before = buffers.get(&largest).map(|b| b.rows);
                    flush_window(&mut client, &archive, &mut buffers, largest, &stats, &cfg).await;
                    if buffers.get(&largest).map(|b| b.rows) == before {
                        shed(&mut buffers, &stats, cfg.max_buffered_rows);
                        break;
                    }
                }
            }
            _ = tick.tick() => {
                if client.is_closed() {
                    client = connect(&cfg.database_url).await;
                }
                let due: Vec<Window> = buffers
                    .iter()
                    .filter(|(_, b)| b.since.elapsed() >= cfg.flush_interval)
                    .map(|(w, _)| *w)
                    .collect();
                for window in due {
                    flush_window(&mut client, &archive, &mut buffers, window, &stats, &cfg).await;
                }
                if last_sweep.elapsed() >= sweep_age {
                    last_sweep = Instant::now();
                    let held: Vec<i64> = buffers.values().flat_map(|b| b.batches.iter().map(|(id, _)| *id)).collect();
                    if let Err(e) = maintain::sweep(&mut client, &archive, &cfg, &stats, sweep_age, &held).await {
                        warn!(error = %e, "Archive sweep failed; will retry.");
                    }
                }
                if last_queue_stats.is_none_or(|t| t.elapsed() >= queue_every) {
                    last_queue_stats = Some(Instant::now());
                    if let Err(e) = measure_queue(&client, &stats).await {
                        warn!(error = %e, "Cannot measure the archive queue; will retry.");
                    }
                }
                if last_compact.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    last_compact = Some(Instant::now());
                    if let Err(e) = maintain::compact_closed(&mut client, &archive, &cfg).await {
                        warn!(error = %e, "Archive compaction failed; will retry.");
                    }
                }
            }
        }
    }
    let windows: Vec<Window> = buffers.keys().copied().collect();
    for window in windows {
        flush_window(&mut client, &archive, &mut buffers, window, &stats, &cfg).await;
    }
    let left: usize = buffers.values().map(|b| b.rows).sum();
    if left > 0 {
        warn!(
            rows = left,
            "Archive store unavailable at shutdown; rows stay queued for the next start."
        );
    } else {
        info!("Archive flushed.");
    }
}

/// How often the archive's true backlog (`archive_queue`) is measured for
/// `/metrics` (or every flush interval, when shorter).
const QUEUE_STATS_EVERY: Duration = Duration::from_secs(15);

/// Measures what is still to archive: the rows of every queued batch and
/// the age of the oldest.
async fn measure_queue(client: &Client, stats: &ArchiveStats) -> Result<(), tokio_postgres::Error> {
    let r = client
        .query_one(
            "SELECT coalesce(sum(rows), 0)::int8, \
                    coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8 \
             FROM archive_queue",
            &[],
        )
        .await?;
    let (rows, age_s): (i64, f64) = (r.get(0), r.get(1));
    stats
        .queued_rows
        .store(rows.max(0) as u64, Ordering::Relaxed);
    stats.lag_s.store(age_s.max(0.0) as u64, Ordering::Relaxed);
    Ok(())
}

/// Adds a batch to its windows' buffers (all of it: a batch is never
/// split from its ticket); returns a window that is full.
fn add(
    buffers: &mut HashMap<Window, Buffer>,
    batch: ArchiveBatch,
    stats: &ArchiveStats,
    max_rows: usize,
) -> Option<Window> {
    let date = |d: i32| NaiveDate::from_num_days_from_ce_opt(d + 719_163).expect("day in range");
    let mut by_day: Vec<(NaiveDate, Vec<Sample>)> = Vec::with_capacity(batch.uploads.len());
    for samples in batch.uploads {
        let Some(first_day) = samples.first().map(Sample::day) else {
            continue;
        };
        if samples.iter().all(|s| s.day() == first_day) {
            // The usual upload: one day, kept as it came (no samples moved
            // one by one). The parser reserves generously, and the buffer
            // holds up to `max_buffered_rows`: give the spare capacity back
            // (a `make bench` peaked at 982 MiB instead of 791 without this).
            let mut samples = samples;
            samples.shrink_to_fit();
            by_day.push((date(first_day), samples));
        } else {
            let mut split: HashMap<NaiveDate, Vec<Sample>> = HashMap::new();
            for s in samples {
                split.entry(date(s.day())).or_default().push(s);
            }
            by_day.extend(split);
        }
    }
    let mut full = None;
    for (day, samples) in by_day {
        stats
            .buffered_rows
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        let b = buffers
            .entry((batch.site_id, day))
            .or_insert_with(|| Buffer {
                batches: Vec::new(),
                rows: 0,
                since: Instant::now(),
            });
        b.rows += samples.len();
        b.batches.push((batch.batch_id, samples));
        if b.rows >= max_rows {
            full = Some((batch.site_id, day));
        }
    }
    full
}

/// What a buffer claims: each batch it holds with the rows it holds of it
/// (a batch's uploads may sit in the buffer as several vectors).
fn claims(buffer: &Buffer) -> Vec<sink::Claim> {
    let mut rows: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    for (id, samples) in &buffer.batches {
        *rows.entry(*id).or_default() += samples.len() as i64;
    }
    rows.into_iter()
        .map(|(batch_id, rows)| sink::Claim { batch_id, rows })
        .collect()
}

/// Drops the batches `leave` says from a buffer (they stay queued in
/// PostgreSQL or were archived elsewhere).
fn leave_out(buffer: &mut Buffer, stats: &ArchiveStats, leave: impl Fn(i64) -> bool) {
    let before = buffer.rows;
    buffer.batches.retain(|(id, _)| !leave(*id));
    buffer.rows = buffer.batches.iter().map(|(_, s)| s.len()).sum();
    stats
        .buffered_rows
        .fetch_sub((before - buffer.rows) as u64, Ordering::Relaxed);
}

fn buffered(buffers: &HashMap<Window, Buffer>) -> usize {
    buffers.values().map(|b| b.rows).sum()
}

/// Drops the oldest buffers while too many rows are held (the store is
/// down or slow); their batches stay queued in PostgreSQL.
fn shed(buffers: &mut HashMap<Window, Buffer>, stats: &ArchiveStats, max_rows: usize) {
    let mut total: usize = buffers.values().map(|b| b.rows).sum();
    while total > max_rows {
        let Some(oldest) = buffers.iter().min_by_key(|(_, b)| b.since).map(|(w, _)| *w) else {
            break;
        };
        let b = buffers.remove(&oldest).expect("present");
        total -= b.rows;
        stats
            .buffered_rows
            .fetch_sub(b.rows as u64, Ordering::Relaxed);
        stats
            .dropped_batches
            .fetch_add(b.batches.len() as u64, Ordering::Relaxed);
        warn!(site_id = oldest.0, day = %oldest.1, rows = b.rows, "Archive backlog too large; leaving rows to the sweeper.");
    }
}

async fn flush_window(
    client: &mut Client,
    archive: &Archive,
    buffers: &mut HashMap<Window, Buffer>,
    window: Window,
    stats: &ArchiveStats,
    cfg: &ArchiveConfig,
) {
    let Some(mut buffer) = buffers.remove(&window) else {
        return;
    };
    // Each refused claim leaves at least one batch out, so this ends.
    while buffer.rows > 0 {
        let claims = claims(&buffer);
        let result = {
            let rows: Vec<&Sample> = buffer.batches.iter().flat_map(|(_, s)| s.iter()).collect();
            sink::write_part(client, archive, window, &rows, &claims).await
        };
        match result {
            Ok(n) => {
                stats
                    .buffered_rows
                    .fetch_sub(buffer.rows as u64, Ordering::Relaxed);
                stats.files_written.fetch_add(1, Ordering::Relaxed);
                stats.rows_archived.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Err(ArchiveError::Claimed { still_queued }) => {
                // Some batches were archived by the sweeper: keep only the rest.
                leave_out(&mut buffer, stats, |id| !still_queued.contains(&id));
            }
            Err(ArchiveError::Incomplete { batches }) => {
                // Not every row of these batches reached this buffer (a
                // commit whose answer was lost, say): PostgreSQL has them all.
                warn!(site_id = window.0, day = %window.1, ?batches,
                      "Archive buffer holds part of a batch; leaving the batch to the sweeper.");
                stats
                    .dropped_batches
                    .fetch_add(batches.len() as u64, Ordering::Relaxed);
                leave_out(&mut buffer, stats, |id| batches.contains(&id));
            }
            Err(e) => {
                stats.store_errors.fetch_add(1, Ordering::Relaxed);
                warn!(site_id = window.0, day = %window.1, rows = buffer.rows, error = %e,
                      backlog_rows = stats.buffered_rows.load(Ordering::Relaxed), "Archive write failed; will retry.");
                // Retry after another flush interval, at most.
                buffer.since = Instant::now()
                    .checked_sub(cfg.flush_interval / 2)
                    .unwrap_or_else(Instant::now);
                buffers.insert(window, buffer);
                return;
            }
        }
    }
}

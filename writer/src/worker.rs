//! A writer worker: gathers a batch from the queue, writes it with retries,
//! answers each upload. Several workers run side by side, each with its own
//! connection, so one batch is being COPYed while the next one gathers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use tracing::{debug, error, info, warn};

use crate::batcher::{self, Batch, Pending};
use crate::flush::{self, FlushFailure, Outcome, Tables};
use crate::{Ack, Error, Result, Shared, Upload};
use adit_archive::ArchiveBatch;
use adit_types::pg::retry;

/// Longest idle sleep between looks at the queue (also bounds how long a
/// worker takes to notice shutdown).
const IDLE_WAIT: Duration = Duration::from_millis(100);

pub(crate) async fn run(id: usize, shared: Arc<Shared>) {
    let mut conn = Connection {
        url: shared.config.database_url.clone(),
        client: None,
    };
    let mut tables = Tables::default();
    let mut batch = Batch::default();
    let limits = shared.config.batch;
    loop {
        // This batch's share of a backlog the other workers take too.
        let mut cap = None;
        loop {
            let now = Instant::now();
            if batch.is_empty() {
                cap = batcher::share(shared.queue.len(), shared.config.workers);
            }
            while !batch.should_flush(&limits, now) && cap.is_none_or(|c| batch.uploads() < c) {
                let Some(p) = shared.queue.pop() else { break };
                shared.stats.dequeued.fetch_add(1, Ordering::Relaxed);
                batch.push(p, now);
            }
            let taken_share = cap.is_some_and(|c| batch.uploads() >= c);
            let closing = shared.closing.load(Ordering::SeqCst);
            if batch.should_flush(&limits, now) || taken_share || (closing && !batch.is_empty()) {
                break;
            }
            if closing && shared.queue.is_empty() {
                debug!(worker = id, "Writer worker stopped.");
                return;
            }
            let wait = if batch.is_empty() {
                IDLE_WAIT
            } else {
                batch.time_left(&limits, now)
            };
            let _ = tokio::time::timeout(wait, shared.notify.notified()).await;
        }
        let rows = batch.rows();
        let pending = batch.take();
        let started = Instant::now();
        write_and_answer(&shared, &mut conn, &mut tables, pending).await;
        shared
            .stats
            .flush_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        debug!(
            worker = id,
            rows,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Flushed a batch."
        );
    }
}

/// Writes one gathered batch and sends every upload its answer.
async fn write_and_answer(
    shared: &Shared,
    conn: &mut Connection,
    tables: &mut Tables,
    mut pending: Vec<Pending>,
) {
    for p in &mut pending {
        p.upload.processing_time_ms = p.upload.received_at.elapsed().as_millis() as u32;
    }
    let uploads: Vec<&Upload> = pending.iter().map(|p| &p.upload).collect();
    let rows: u64 = uploads.iter().map(|u| u.rows() as u64).sum();
    let (answers, batch_of) = write_batch(shared, conn, tables, &uploads).await;
    drop(uploads);
    if answers.iter().all(Result::is_ok) {
        shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
        shared.stats.rows_written.fetch_add(rows, Ordering::Relaxed);
    } else {
        shared.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
    }
    let to_archive = answer(shared, pending, answers, batch_of);
    if let Some(archive) = &shared.config.archive {
        for batch in to_archive {
            archive.offer(batch);
        }
    }
}

/// Each upload's outcome, and the flush (transaction) each committed one
/// was written in, for the archive. A batch the database refuses is
/// written again upload by upload, so only the culprit fails.
async fn write_batch(
    shared: &Shared,
    conn: &mut Connection,
    tables: &mut Tables,
    uploads: &[&Upload],
) -> (Vec<Result<Outcome>>, Vec<Option<i64>>) {
    let mut batch_of: Vec<Option<i64>> = vec![None; uploads.len()];
    if shared.config.discard {
        return (
            uploads.iter().map(|_| Ok(Outcome::Committed)).collect(),
            batch_of,
        );
    }
    let now = Utc::now();
    let answers = match write_with_retry(shared, conn, tables, uploads, now).await {
        Ok((outcomes, batch_id)) => outcomes
            .into_iter()
            .zip(batch_of.iter_mut())
            .map(|(o, b)| {
                if o == Outcome::Committed {
                    *b = Some(batch_id);
                }
                Ok(o)
            })
            .collect(),
        Err(e) if uploads.len() > 1 && matches!(e, Error::Refused { .. }) => {
            warn!(uploads = uploads.len(), error = %e, "Batch refused; retrying its uploads one by one.");
            let mut answers = Vec::with_capacity(uploads.len());
            for (u, b) in uploads.iter().zip(batch_of.iter_mut()) {
                let one = write_with_retry(shared, conn, tables, &[*u], now)
                    .await
                    .map(|(mut o, batch_id)| {
                        let o = o.remove(0);
                        if o == Outcome::Committed {
                            *b = Some(batch_id);
                        }
                        o
                    });
                answers.push(one);
            }
            answers
        }
        Err(e) => {
            let shared_err = Arc::new(e);
            uploads
                .iter()
                .map(|_| Err(clone_failure(&shared_err)))
                .collect()
        }
    };
    (answers, batch_of)
}

/// Sends every upload its answer, tells the commit observer about the
/// committed samples, and returns them grouped for the archive: every
/// committed upload of one (batch, site) together, since the batch's claim
/// ticket counts all of them and a file written between two of them could
/// not claim it.
fn answer(
    shared: &Shared,
    pending: Vec<Pending>,
    answers: Vec<Result<Outcome>>,
    batch_of: Vec<Option<i64>>,
) -> Vec<ArchiveBatch> {
    let mut to_archive: Vec<ArchiveBatch> = Vec::new();
    for ((mut p, answer), batch) in pending.into_iter().zip(answers).zip(batch_of) {
        let samples = std::mem::take(&mut p.upload.samples);
        let committed = matches!(answer, Ok(Outcome::Committed)) && !shared.config.discard;
        let _ = p.reply.send(answer.map(|o| match o {
            Outcome::Committed => Ack::Committed {
                summary: std::mem::take(&mut p.upload.summary),
                processing_time_ms: p.upload.processing_time_ms,
            },
            Outcome::Duplicate => Ack::Duplicate,
        }));
        if let (true, Some(observer)) = (committed, &shared.config.on_commit) {
            match &p.upload.dataset {
                None => observer.committed(p.upload.site_id, &samples),
                Some(rows) => observer.committed_rows(p.upload.site_id, rows),
            }
        }
        let (Some(_), Some(batch_id)) = (&shared.config.archive, batch) else {
            continue;
        };
        if samples.is_empty() {
            continue;
        }
        let site_id = p.upload.site_id;
        match to_archive
            .iter_mut()
            .find(|a| a.batch_id == batch_id && a.site_id == site_id)
        {
            Some(a) => a.uploads.push(samples),
            None => to_archive.push(ArchiveBatch {
                batch_id,
                site_id,
                uploads: vec![samples],
            }),
        }
    }
    to_archive
}

/// The same failure, once per waiting upload.
fn clone_failure(e: &Arc<Error>) -> Error {
    match &**e {
        Error::Unavailable { source } => Error::Unavailable {
            source: source.clone(),
        },
        Error::Refused { source } => Error::Refused {
            source: source.clone(),
        },
        _ => Error::Refused { source: e.clone() },
    }
}

/// Writes `uploads` in one transaction, retrying connection-level failures
/// with backoff for up to `retry_for`. Returns `Unavailable` when the
/// database stayed out of reach, `Refused` when it rejected the batch.
async fn write_with_retry(
    shared: &Shared,
    conn: &mut Connection,
    tables: &mut Tables,
    uploads: &[&Upload],
    now: DateTime<Utc>,
) -> Result<(Vec<Outcome>, i64)> {
    let deadline = Instant::now() + shared.config.retry_for;
    // One id per transaction attempt series; rows carry it for the archive.
    let batch_id = rand::random::<i64>() & i64::MAX;
    let archive_batch = shared.config.archive.as_ref().map(|_| batch_id);
    let mut attempt = 0u32;
    let mut commit_unknown = false;
    let upload_ids: Vec<i64> = uploads.iter().map(|u| u.upload_id).collect();
    loop {
        let result = async {
            let client = conn.get().await?;
            if commit_unknown && flush::was_committed(client, &upload_ids).await? {
                info!(
                    uploads = uploads.len(),
                    "A batch whose COMMIT answer was lost had landed."
                );
                return Ok(committed_outcomes(uploads));
            }
            flush::flush(client, tables, uploads, now, archive_batch).await
        }
        .await;
        let FlushFailure { error, at_commit } = match result {
            Ok(outcomes) => {
                shared.stats.database_up.store(true, Ordering::Relaxed);
                return Ok((outcomes, batch_id));
            }
            Err(f) => f,
        };
        commit_unknown |= at_commit;
        let retryable = match &error {
            Error::Database(e) => retry::is_retryable(e),
            _ => false,
        };
        if !retryable {
            error!(error = %error, uploads = uploads.len(), "The database refused a batch.");
            return Err(Error::Refused {
                source: Arc::new(error),
            });
        }
        shared.stats.database_up.store(false, Ordering::Relaxed);
        conn.client = None;
        tables.partitions.clear();
        tables.datasets.clear();
        if Instant::now() >= deadline || shared.closing.load(Ordering::SeqCst) && attempt > 3 {
            error!(error = %error, uploads = uploads.len(), "Database unavailable; giving up on a batch.");
            let Error::Database(source) = error else {
                unreachable!("retryable errors are database errors")
            };
            return Err(Error::Unavailable {
                source: Arc::new(source),
            });
        }
        warn!(error = %error, attempt, "Database unavailable; retrying a batch.");
        tokio::time::sleep(retry::backoff(attempt)).await;
        attempt += 1;
    }
}

/// Outcomes of a batch found committed after its COMMIT answer was lost:
/// uploads with an Idempotency-Key look their stored answer up (it may be
/// theirs or that of an upload that claimed the key first).
fn committed_outcomes(uploads: &[&Upload]) -> Vec<Outcome> {
    uploads
        .iter()
        .map(|u| match u.idempotency {
            Some(_) => Outcome::Duplicate,
            None => Outcome::Committed,
        })
        .collect()
}

/// A lazily (re)opened connection.
#[derive(Debug)]
struct Connection {
    url: String,
    client: Option<Client>,
}

impl Connection {
    async fn get(&mut self) -> Result<&mut Client, FlushFailure> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            self.client = Some(adit_types::pg::connect(&self.url).await?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }
}

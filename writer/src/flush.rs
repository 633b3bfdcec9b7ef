//! One flush: a batch of uploads becomes one transaction — idempotency
//! claims, one binary COPY per day partition, the dataset rows
//! ([`crate::datasets`]), the rejects, the upload log — and nobody hears
//! "committed" before COMMIT returns.

use std::collections::{BTreeMap, HashSet};

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use crate::copy::{self, RejectOrigin, COPY_COLUMNS, DATASET_REJECT_COLUMNS, REJECT_COLUMNS};
use crate::datasets::DatasetTables;
use crate::dirty::{self, DirtyMarks};
use crate::idempotency;
use crate::partition::{DayPartition, PartitionCache, Partitioned};
use crate::{Error, Result, Upload};

/// What a flush did with each upload, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rows committed.
    Committed,
    /// Another upload with the same Idempotency-Key was committed first;
    /// nothing of this one was written.
    Duplicate,
}

/// Which stage a failed flush reached, so the caller knows whether the
/// transaction may have committed after all.
#[derive(Debug)]
pub struct FlushFailure {
    pub error: Error,
    /// True when COMMIT itself failed: the outcome is unknown.
    pub at_commit: bool,
}

impl From<Error> for FlushFailure {
    fn from(error: Error) -> Self {
        Self {
            error,
            at_commit: false,
        }
    }
}

impl From<tokio_postgres::Error> for FlushFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::from(e).into()
    }
}

/// What a writer worker keeps between flushes.
#[derive(Debug, Default)]
pub struct Tables {
    pub partitions: PartitionCache,
    pub datasets: DatasetTables,
    pub marks: DirtyMarks,
    /// The COPY buffer (see [`copy_samples`]).
    pub copy_buf: BytesMut,
    /// Largest encoded row size seen (bytes, rounded up), so the buffer
    /// is sized for a whole flush up front.
    pub copy_row_bytes: usize,
}

/// Writes `uploads` in one transaction.
pub async fn flush(
    client: &mut Client,
    tables: &mut Tables,
    uploads: &[&Upload],
    now: DateTime<Utc>,
    archive_batch: Option<i64>,
) -> Result<Vec<Outcome>, FlushFailure> {
    let log_day = adit_types::day_of(now.timestamp_micros());
    let mut wanted: HashSet<DayPartition> = uploads
        .iter()
        .flat_map(|u| u.samples.iter())
        .map(|s| DayPartition {
            table: Partitioned::MinerTelemetry,
            day: s.day(),
        })
        .collect();
    wanted.insert(DayPartition {
        table: Partitioned::UploadLog,
        day: log_day,
    });
    tables.partitions.ensure(client, wanted).await?;
    tables.datasets.prepare(client, uploads).await?;

    let tx = client.transaction().await?;
    let duplicates = idempotency::claim(&tx, uploads).await?;
    let kept: Vec<&Upload> = uploads
        .iter()
        .enumerate()
        .filter(|(i, _)| !duplicates.contains(i))
        .map(|(_, u)| *u)
        .collect();

    copy_samples(&tx, tables, &kept, archive_batch).await?;
    if let Some(batch_id) = archive_batch {
        queue_for_archive(&tx, &kept, batch_id).await?;
    }
    crate::datasets::write(&tx, &kept).await?;
    copy_rejects(&tx, &kept).await?;
    log_uploads(&tx, &kept, now).await?;
    let new_marks = tables.marks.wanted(&kept);
    dirty::write(&tx, &new_marks).await?;
    tx.commit().await.map_err(|e| FlushFailure {
        error: e.into(),
        at_commit: true,
    })?;
    tables.marks.committed(&new_marks, now.timestamp_micros());

    Ok((0..uploads.len())
        .map(|i| {
            if duplicates.contains(&i) {
                Outcome::Duplicate
            } else {
                Outcome::Committed
            }
        })
        .collect())
}

/// One binary COPY per day partition, straight into the partition.
///
/// The first day's rows are encoded into `reused`, the worker's buffer:
/// once PostgreSQL has taken a COPY, the buffer's memory is the worker's
/// alone again and the next flush writes over it, where a fresh
/// flush-sized buffer cost page faults and zeroing on every flush (a fifth
/// of the writer's CPU under load). Other days (a flush spanning midnight)
/// get a buffer of their own.
async fn copy_samples(
    tx: &tokio_postgres::Transaction<'_>,
    tables: &mut Tables,
    uploads: &[&Upload],
    batch_id: Option<i64>,
) -> Result<()> {
    let reused = &mut tables.copy_buf;
    let mut by_day: BTreeMap<i32, (BytesMut, u64)> = BTreeMap::new();
    // Sized for the whole flush up front from the largest row size seen (a
    // fleet row encodes to about 670 bytes), so the buffer is not regrown
    // and copied midway: a fixed 640 bytes per row outgrew it on every
    // flush, and the regrown buffer's fresh pages faulted in (3 % of
    // adit's CPU under load).
    let rows_in_flush: usize = uploads.iter().map(|u| u.samples.len()).sum();
    let row_bytes = tables.copy_row_bytes.max(ROW_BYTES_GUESS);
    let size = (rows_in_flush * row_bytes).max(1 << 16);
    let mut first_day = true;
    for u in uploads {
        for s in &u.samples {
            let (buf, rows) = by_day.entry(s.day()).or_insert_with(|| {
                let mut buf = if std::mem::take(&mut first_day) {
                    lend(reused, size)
                } else {
                    BytesMut::with_capacity(size)
                };
                copy::begin(&mut buf);
                (buf, 0)
            });
            copy::encode_sample(buf, u.site_id, batch_id, s);
            *rows += 1;
        }
    }
    for (buf, rows) in by_day.values() {
        let per_row = buf.len().div_ceil(*rows as usize).next_multiple_of(64);
        tables.copy_row_bytes = tables.copy_row_bytes.max(per_row);
    }
    for (day, (mut buf, rows)) in by_day {
        let table = DayPartition {
            table: Partitioned::MinerTelemetry,
            day,
        };
        copy::end(&mut buf);
        let sql = format!("COPY {table} ({COPY_COLUMNS}) FROM STDIN (FORMAT binary)");
        copy::send(tx, &sql, buf, rows, "miner_telemetry").await?;
    }
    Ok(())
}

/// Bytes per encoded row assumed before the first flush.
const ROW_BYTES_GUESS: usize = 640;

/// An empty buffer of at least `size` bytes out of `reused`'s memory:
/// `reserve` takes the whole allocation back when the bytes lent last time
/// are gone (else it allocates anew), and `split_off(0)` lends all of it
/// out while `reused` keeps a handle to reclaim it next time.
fn lend(reused: &mut BytesMut, size: usize) -> BytesMut {
    reused.clear();
    reused.reserve(size);
    reused.split_off(0)
}

/// One archive_queue row per (site, day) of the batch: the claim ticket
/// the archive must redeem in the transaction that records its file.
async fn queue_for_archive(
    tx: &tokio_postgres::Transaction<'_>,
    uploads: &[&Upload],
    batch_id: i64,
) -> Result<()> {
    let mut windows: BTreeMap<(i32, i32), (i32, i64, i64)> = BTreeMap::new();
    for u in uploads {
        for s in &u.samples {
            let w = windows
                .entry((u.site_id, s.day()))
                .or_insert((0, i64::MAX, i64::MIN));
            w.0 += 1;
            w.1 = w.1.min(s.ts_micros);
            w.2 = w.2.max(s.ts_micros);
        }
    }
    if windows.is_empty() {
        return Ok(());
    }
    let ts = |m: i64| DateTime::<Utc>::from_timestamp_micros(m).expect("time in range");
    let mut sites = Vec::new();
    let mut days = Vec::new();
    let mut rows = Vec::new();
    let mut mins = Vec::new();
    let mut maxs = Vec::new();
    for ((site, day), (n, lo, hi)) in windows {
        sites.push(site);
        days.push(
            DayPartition {
                table: Partitioned::MinerTelemetry,
                day,
            }
            .date(),
        );
        rows.push(n);
        mins.push(ts(lo));
        maxs.push(ts(hi));
    }
    tx.execute(
        "INSERT INTO archive_queue (batch_id, site_id, day, rows, min_ts, max_ts) \
         SELECT $1, * FROM unnest($2::int4[], $3::date[], $4::int4[], $5::timestamptz[], $6::timestamptz[])",
        &[&batch_id, &sites, &days, &rows, &mins, &maxs],
    )
    .await?;
    Ok(())
}

/// The refused rows: telemetry's as before, a dataset's with its name
/// (a second COPY, only when a dataset upload refused rows).
async fn copy_rejects(tx: &tokio_postgres::Transaction<'_>, uploads: &[&Upload]) -> Result<()> {
    let mut buf = BytesMut::new();
    let mut rows = 0u64;
    let mut of_datasets = false;
    for u in uploads.iter().filter(|u| !u.rejects.is_empty()) {
        if u.dataset.is_some() {
            of_datasets = true;
            continue;
        }
        if rows == 0 {
            copy::begin(&mut buf);
        }
        let origin = RejectOrigin {
            received_at_micros: u.received_at_micros,
            site_id: u.site_id,
            key_id: u.key_id,
            upload_id: u.upload_id,
        };
        for r in &u.rejects {
            copy::encode_reject(&mut buf, origin, r);
            rows += 1;
        }
    }
    if rows > 0 {
        copy::end(&mut buf);
        let sql = format!("COPY ingest_rejects ({REJECT_COLUMNS}) FROM STDIN (FORMAT binary)");
        copy::send(tx, &sql, buf, rows, "ingest_rejects").await?;
    }
    if of_datasets {
        copy_dataset_rejects(tx, uploads).await?;
    }
    Ok(())
}

async fn copy_dataset_rejects(
    tx: &tokio_postgres::Transaction<'_>,
    uploads: &[&Upload],
) -> Result<()> {
    let mut buf = BytesMut::new();
    copy::begin(&mut buf);
    let mut rows = 0u64;
    for u in uploads {
        let Some(dataset) = u.dataset_name() else {
            continue;
        };
        let origin = RejectOrigin {
            received_at_micros: u.received_at_micros,
            site_id: u.site_id,
            key_id: u.key_id,
            upload_id: u.upload_id,
        };
        for r in &u.rejects {
            copy::encode_dataset_reject(&mut buf, origin, r, dataset);
            rows += 1;
        }
    }
    copy::end(&mut buf);
    let sql = format!("COPY ingest_rejects ({DATASET_REJECT_COLUMNS}) FROM STDIN (FORMAT binary)");
    copy::send(tx, &sql, buf, rows, "ingest_rejects").await
}

async fn log_uploads(
    tx: &tokio_postgres::Transaction<'_>,
    uploads: &[&Upload],
    now: DateTime<Utc>,
) -> Result<()> {
    let n = uploads.len();
    let mut ids = Vec::with_capacity(n);
    let mut sites = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut counts: [Vec<i32>; 4] = Default::default();
    let mut bytes_in = Vec::with_capacity(n);
    let mut bytes_raw = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut idem = Vec::with_capacity(n);
    let mut datasets = Vec::with_capacity(n);
    for u in uploads {
        ids.push(u.upload_id);
        sites.push(u.site_id);
        keys.push(u.key_id);
        let s = &u.summary;
        for (col, v) in counts
            .iter_mut()
            .zip([s.processed, s.online, s.offline, s.rejected])
        {
            col.push(v as i32);
        }
        bytes_in.push(u.bytes_in as i32);
        bytes_raw.push(u.bytes_raw as i32);
        times.push(u.processing_time_ms as i32);
        idem.push(u.idempotency.as_ref().map(|i| i.key.as_str()));
        datasets.push(u.dataset_name());
    }
    tx.execute(
        "INSERT INTO upload_log (created_at, upload_id, site_id, key_id, processed, online, \
           offline, rejected, bytes_in, bytes_raw, processing_time_ms, idempotency_key, dataset) \
         SELECT $1, * FROM unnest($2::int8[], $3::int4[], $4::int4[], $5::int4[], $6::int4[], \
           $7::int4[], $8::int4[], $9::int4[], $10::int4[], $11::int4[], $12::text[], \
           $13::text[])",
        &[
            &now, &ids, &sites, &keys, &counts[0], &counts[1], &counts[2], &counts[3], &bytes_in,
            &bytes_raw, &times, &idem, &datasets,
        ],
    )
    .await?;
    Ok(())
}

/// After a COMMIT whose answer was lost: did the batch land? Every upload
/// the transaction wrote has its upload log row written in it, so the
/// presence of any of `upload_ids` says yes. (Not only the first: an upload
/// found to be an idempotency duplicate is not logged. A batch of nothing
/// but duplicates logs nothing, and writing it again writes nothing.)
pub async fn was_committed(client: &Client, upload_ids: &[i64]) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM upload_log WHERE upload_id = ANY($1) \
               AND created_at > now() - interval '1 day')",
            &[&upload_ids],
        )
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_buffer_is_reused_once_its_bytes_are_gone() {
        let mut reused = BytesMut::new();
        let mut a = lend(&mut reused, 1 << 20);
        assert!(a.capacity() >= 1 << 20);
        let first = a.as_ptr();
        a.extend_from_slice(b"PGCOPY");
        let sent = a.freeze();
        // Still held (a COPY in flight): a new allocation, not an overwrite.
        let b = lend(&mut reused, 1 << 20);
        assert_ne!(b.as_ptr(), first);
        assert_eq!(&sent[..], b"PGCOPY");
        drop(b);
        drop(sent);
        // Gone: the same memory again, however many flushes follow.
        let mut reused = BytesMut::new();
        let first = lend(&mut reused, 1 << 20).as_ptr();
        for _ in 0..3 {
            let mut next = lend(&mut reused, 1 << 20);
            assert_eq!(next.as_ptr(), first);
            assert!(next.is_empty() && next.capacity() >= 1 << 20);
            next.extend_from_slice(b"x");
            drop(next.freeze());
        }
        // A larger flush outgrows it: a bigger buffer, reused from then on.
        let bigger = lend(&mut reused, 4 << 20).as_ptr();
        assert_eq!(lend(&mut reused, 1 << 20).as_ptr(), bigger);
    }
}

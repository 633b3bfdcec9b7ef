//! `adit archive verify` and `adit archive ls`: per window (site, day),
//! PostgreSQL, the manifest and the files themselves must agree on the row
//! count and on a checksum of key columns (sums of ts and accepted_shares).

use std::collections::BTreeMap;

use arrow_array::{Array, Int64Array, TimestampMicrosecondArray};
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use tokio_postgres::Client;

use crate::sink::Checksum;
use crate::{Archive, ArchiveError};

/// Which windows to look at.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub site_id: Option<i32>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// What a window's views say, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every row archived once: PostgreSQL, the manifest and the files agree.
    Exact,
    /// Rows committed and still queued for the archive (the stream or the
    /// sweeper will write them); the rest agrees.
    Pending,
    /// Rows committed before the archive was enabled, or while it was off
    /// (no batch id, no ticket), are in no file: `adit archive backfill`.
    PredatesArchive,
    /// Rows in PostgreSQL that are neither queued nor in a file.
    Missing,
    /// The files disagree with the manifest, more rows are archived than
    /// PostgreSQL holds, or the checksums differ.
    Mismatch,
}

impl Status {
    /// The word `adit archive verify` prints.
    pub fn word(self) -> &'static str {
        match self {
            Status::Exact => "ok",
            Status::Pending => "pending",
            Status::PredatesArchive => "predates-archive",
            Status::Missing => "MISSING",
            Status::Mismatch => "MISMATCH",
        }
    }

    /// A defect (rows lost or wrong), as opposed to work not done yet.
    pub fn is_defect(self) -> bool {
        match self {
            Status::Exact | Status::Pending | Status::PredatesArchive => false,
            Status::Missing | Status::Mismatch => true,
        }
    }
}

/// One window's three views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCheck {
    pub site_id: i32,
    pub day: NaiveDate,
    pub database: Checksum,
    pub manifest: Checksum,
    pub files: Checksum,
    pub file_count: i64,
    /// Rows committed but not archived yet.
    pub queued_rows: i64,
    /// Rows in PostgreSQL with no batch id: written while no archive was
    /// on, so never queued (in files only after a backfill or compaction).
    pub untracked_rows: i64,
}

impl WindowCheck {
    pub fn status(&self) -> Status {
        if self.manifest != self.files {
            return Status::Mismatch;
        }
        let unarchived = self.database.rows - self.manifest.rows - self.queued_rows;
        if unarchived == 0 && self.queued_rows == 0 {
            if self.database == self.manifest {
                Status::Exact
            } else {
                Status::Mismatch
            }
        } else if unarchived == 0 {
            Status::Pending
        } else if unarchived > 0 && unarchived <= self.untracked_rows {
            Status::PredatesArchive
        } else if unarchived > 0 {
            Status::Missing
        } else {
            Status::Mismatch
        }
    }

    /// Everything archived and all three views equal.
    pub fn exact(&self) -> bool {
        self.status() == Status::Exact
    }

    /// Still being archived; the files and the manifest agree so far.
    pub fn pending(&self) -> bool {
        self.status() == Status::Pending
    }
}

fn int(text: &str) -> i128 {
    text.parse().unwrap_or_default()
}

const FILTER: &str = "($1::int4 IS NULL OR site_id = $1) AND ($2::date IS NULL OR {day} >= $2) \
                      AND ($3::date IS NULL OR {day} <= $3)";

/// Every window of `scope` with its three views.
pub async fn check(
    client: &Client,
    archive: &Archive,
    scope: &Scope,
) -> Result<Vec<WindowCheck>, ArchiveError> {
    let (mut windows, files) = snapshot(client, scope).await?;
    for (site_id, day, path) in &files {
        let sum = file_checksum(archive, path).await?;
        if let Some(w) = windows.get_mut(&(*site_id, *day)) {
            w.files.rows += sum.rows;
            w.files.ts_sum += sum.ts_sum;
            w.files.shares_sum += sum.shares_sum;
        }
    }
    Ok(windows.into_values().collect())
}

/// PostgreSQL's and the manifest's views of every window of `scope`, without
/// reading the files (`files` stays empty).
pub async fn counts(client: &Client, scope: &Scope) -> Result<Vec<WindowCheck>, ArchiveError> {
    Ok(snapshot(client, scope).await?.0.into_values().collect())
}

type Windows = BTreeMap<(i32, NaiveDate), WindowCheck>;

/// The table, the queue and the manifest read in one snapshot, so a file
/// committed meanwhile (rows leave the queue as the file becomes live) is
/// counted once; and the live files to read.
async fn snapshot(
    client: &Client,
    scope: &Scope,
) -> Result<(Windows, Vec<(i32, NaiveDate, String)>), ArchiveError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let result = read_views(client, scope).await;
    let end = client
        .batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await;
    let views = result?;
    end?;
    Ok(views)
}

async fn read_views(
    client: &Client,
    scope: &Scope,
) -> Result<(Windows, Vec<(i32, NaiveDate, String)>), ArchiveError> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&scope.site_id, &scope.from, &scope.to];
    let mut windows = Windows::new();
    fn entry(windows: &mut Windows, site_id: i32, day: NaiveDate) -> &mut WindowCheck {
        windows
            .entry((site_id, day))
            .or_insert_with(|| WindowCheck {
                site_id,
                day,
                ..Default::default()
            })
    }
    let day_expr = "(ts AT TIME ZONE 'UTC')::date";
    let db = client
        .query(
            &format!(
                "SELECT site_id, {day_expr}, count(*), \
                   coalesce(sum((extract(epoch FROM ts) * 1000000)::int8), 0)::text, \
                   coalesce(sum(accepted_shares), 0)::text, \
                   count(*) FILTER (WHERE batch_id IS NULL) \
                 FROM miner_telemetry WHERE {} GROUP BY 1, 2",
                FILTER.replace("{day}", day_expr)
            ),
            &params,
        )
        .await?;
    for r in &db {
        let w = entry(&mut windows, r.get(0), r.get(1));
        w.database = Checksum {
            rows: r.get(2),
            ts_sum: int(r.get(3)),
            shares_sum: int(r.get(4)),
        };
        w.untracked_rows = r.get(5);
    }
    let manifest = client
        .query(
            &format!(
                "SELECT site_id, day, count(*), sum(rows)::int8, sum(ts_sum)::text, sum(shares_sum)::text \
                 FROM archive_files WHERE state = 'live' AND {} GROUP BY 1, 2",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?;
    for r in &manifest {
        let w = entry(&mut windows, r.get(0), r.get(1));
        w.file_count = r.get(2);
        w.manifest = Checksum {
            rows: r.get(3),
            ts_sum: int(r.get(4)),
            shares_sum: int(r.get(5)),
        };
    }
    let queued = client
        .query(
            &format!(
                "SELECT site_id, day, sum(rows)::int8 FROM archive_queue WHERE {} GROUP BY 1, 2",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?;
    for r in &queued {
        entry(&mut windows, r.get(0), r.get(1)).queued_rows = r.get(2);
    }
    let files = client
        .query(
            &format!(
                "SELECT site_id, day, path FROM archive_files WHERE state = 'live' AND {}",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok((windows, files))
}

/// Reads a file's ts and accepted_shares columns back.
pub async fn file_checksum(archive: &Archive, path: &str) -> Result<Checksum, ArchiveError> {
    let bytes: Bytes = archive.store.get(&Path::from(path)).await?.bytes().await?;
    tokio::task::block_in_place(|| {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
        let schema = builder.parquet_schema();
        let ts_idx = schema
            .columns()
            .iter()
            .position(|c| c.name() == "ts")
            .unwrap_or(0);
        let shares_idx = schema
            .columns()
            .iter()
            .position(|c| c.name() == "accepted_shares")
            .unwrap_or(0);
        let mask = ProjectionMask::leaves(schema, [ts_idx, shares_idx]);
        let reader = builder.with_projection(mask).build()?;
        let mut sum = Checksum::default();
        for batch in reader {
            let batch = batch?;
            let ts = batch.column_by_name("ts").and_then(|c| {
                c.as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .cloned()
            });
            let shares = batch
                .column_by_name("accepted_shares")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
            let (Some(ts), Some(shares)) = (ts, shares) else {
                return Err(ArchiveError::Arrow(arrow_schema::ArrowError::SchemaError(
                    "archive file lacks ts or accepted_shares".into(),
                )));
            };
            for i in 0..batch.num_rows() {
                let s = (!shares.is_null(i)).then(|| shares.value(i));
                sum.add(ts.value(i), s);
            }
        }
        Ok(sum)
    })
}

/// One line per live file: window, kind, rows, bytes, path.
pub async fn list(client: &Client, scope: &Scope) -> Result<Vec<String>, ArchiveError> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&scope.site_id, &scope.from, &scope.to];
    let rows = client
        .query(
            &format!(
                "SELECT site_id, day, kind, rows, bytes, path FROM archive_files \
                 WHERE state = 'live' AND {} ORDER BY site_id, day, path",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "site={}\tdate={}\t{}\trows={}\tbytes={}\t{}",
                r.get::<_, i32>(0),
                r.get::<_, NaiveDate>(1),
                r.get::<_, &str>(2),
                r.get::<_, i64>(3),
                r.get::<_, i64>(4),
                r.get::<_, &str>(5)
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(rows: i64) -> Checksum {
        Checksum {
            rows,
            ts_sum: i128::from(rows) * 10,
            shares_sum: i128::from(rows),
        }
    }

    fn window(database: i64, archived: i64, queued: i64, untracked: i64) -> WindowCheck {
        WindowCheck {
            database: sum(database),
            manifest: sum(archived),
            files: sum(archived),
            queued_rows: queued,
            untracked_rows: untracked,
            ..Default::default()
        }
    }

    #[test]
    fn a_window_says_whether_rows_are_pending_predate_the_archive_or_are_missing() {
        assert_eq!(window(10, 10, 0, 0).status(), Status::Exact);
        assert_eq!(window(10, 10, 0, 4).status(), Status::Exact, "backfilled");
        assert_eq!(window(10, 7, 3, 0).status(), Status::Pending);
        assert_eq!(window(10, 6, 0, 4).status(), Status::PredatesArchive);
        assert_eq!(window(10, 0, 0, 10).status(), Status::PredatesArchive);
        assert_eq!(window(10, 4, 2, 4).status(), Status::PredatesArchive);
        assert_eq!(window(10, 8, 0, 0).status(), Status::Missing);
        assert_eq!(
            window(10, 5, 0, 4).status(),
            Status::Missing,
            "more than predates"
        );
        assert_eq!(window(10, 12, 0, 0).status(), Status::Mismatch, "doubled");
        let mut files_differ = window(10, 10, 0, 0);
        files_differ.files = sum(9);
        assert_eq!(files_differ.status(), Status::Mismatch);
        let mut checksum = window(10, 10, 0, 0);
        checksum.manifest.shares_sum += 1;
        checksum.files.shares_sum += 1;
        assert_eq!(checksum.status(), Status::Mismatch);
        assert!(Status::Missing.is_defect() && !Status::PredatesArchive.is_defect());
    }
}

//! `adit archive verify --dataset` and `adit archive ls --dataset`: per
//! window (site, day), PostgreSQL, the manifest and the files themselves
//! (read back) must agree on the row count and the sum of the time column.

use std::collections::BTreeMap;

use adit_dataset::ddl::quote;
use adit_types::dataset::{Dataset, SITE_ID_COLUMN};
use arrow_array::{Array, TimestampMicrosecondArray};
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::verify::Scope;
use crate::{Archive, ArchiveError};

/// Rows and the sum of their time column (µs since the Unix epoch).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sum {
    pub rows: i64,
    pub ts_sum: i128,
}

impl std::ops::AddAssign for Sum {
    fn add_assign(&mut self, o: Self) {
        self.rows += o.rows;
        self.ts_sum += o.ts_sum;
    }
}

/// A window's verdict, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// PostgreSQL, the manifest and the files agree.
    Exact,
    /// Rows of the window changed since it was exported (it is dirty), or
    /// its day has not ended: the next pass after the day closes exports it.
    Pending,
    /// A recorded file is gone, or a closed, clean window holds rows in
    /// PostgreSQL that no file holds.
    Missing,
    /// A file differs from its manifest row (bytes, rows or checksum), or
    /// the files hold other rows than PostgreSQL.
    Mismatch,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Exact => "ok",
            Status::Pending => "pending",
            Status::Missing => "MISSING",
            Status::Mismatch => "MISMATCH",
        }
    }

    pub fn is_defect(self) -> bool {
        matches!(self, Status::Missing | Status::Mismatch)
    }
}

/// One window's views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowCheck {
    pub site_id: i32,
    pub day: NaiveDate,
    pub database: Sum,
    pub manifest: Sum,
    pub files: Sum,
    pub file_count: i64,
    /// Recorded files not in the store.
    pub missing_files: i64,
    /// Recorded files whose bytes differ from the manifest's digest or that
    /// are not readable Parquet with the time column.
    pub bad_files: i64,
    pub dirty: bool,
    /// The day has not ended yet (UTC).
    pub open: bool,
    /// The day is older than the dataset's retention: PostgreSQL may have
    /// dropped its rows, the archive keeps them.
    pub beyond_retention: bool,
}

impl WindowCheck {
    fn new(site_id: i32, day: NaiveDate) -> Self {
        Self {
            site_id,
            day,
            database: Sum::default(),
            manifest: Sum::default(),
            files: Sum::default(),
            file_count: 0,
            missing_files: 0,
            bad_files: 0,
            dirty: false,
            open: false,
            beyond_retention: false,
        }
    }

    pub fn status(&self) -> Status {
        if self.missing_files > 0 {
            return Status::Missing;
        }
        if self.bad_files > 0 || self.files != self.manifest {
            return Status::Mismatch;
        }
        if self.dirty || self.open {
            return Status::Pending;
        }
        if self.beyond_retention && self.database.rows == 0 {
            return Status::Exact;
        }
        if self.database == self.manifest {
            Status::Exact
        } else if self.database.rows > self.manifest.rows {
            Status::Missing
        } else {
            Status::Mismatch
        }
    }
}

fn int(text: &str) -> i128 {
    text.parse().unwrap_or_default()
}

const FILTER: &str = "($1::int4 IS NULL OR site_id = $1) AND ($2::date IS NULL OR {day} >= $2) \
                      AND ($3::date IS NULL OR {day} <= $3)";

type Windows = BTreeMap<(i32, NaiveDate), WindowCheck>;
/// A live file: window, path, digest.
type FileRow = (i32, NaiveDate, String, Vec<u8>);

/// Every window of `d` in `scope` with its views.
pub async fn check(
    client: &Client,
    archive: &Archive,
    d: &Dataset,
    scope: &Scope,
) -> Result<Vec<WindowCheck>, ArchiveError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let result = read_views(client, d, scope).await;
    let end = client
        .batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await;
    let (mut windows, files) = result?;
    end?;
    for (site_id, day, path, sha256) in files {
        let w = windows
            .entry((site_id, day))
            .or_insert_with(|| WindowCheck::new(site_id, day));
        match read_file(archive, &path, &d.time_column, &sha256).await? {
            FileRead::Sum(sum) => w.files += sum,
            FileRead::Gone => w.missing_files += 1,
            FileRead::Bad => w.bad_files += 1,
        }
    }
    Ok(windows.into_values().collect())
}

async fn read_views(
    client: &Client,
    d: &Dataset,
    scope: &Scope,
) -> Result<(Windows, Vec<FileRow>), ArchiveError> {
    let params: [&(dyn ToSql + Sync); 4] = [&scope.site_id, &scope.from, &scope.to, &d.name];
    let mut windows = Windows::new();
    let time = quote(&d.time_column);
    let day_expr = format!("({time} AT TIME ZONE 'UTC')::date");
    let db = client
        .query(
            &format!(
                "SELECT {site}, {day_expr}, count(*), \
                   coalesce(sum((extract(epoch FROM {time}) * 1000000)::int8), 0)::text \
                 FROM {table} WHERE $4::text IS NOT NULL AND {} GROUP BY 1, 2",
                FILTER
                    .replace("site_id", &quote(SITE_ID_COLUMN))
                    .replace("{day}", &day_expr),
                site = quote(SITE_ID_COLUMN),
                table = quote(d.table()),
            ),
            &params,
        )
        .await?;
    for r in &db {
        let (site_id, day) = (r.get(0), r.get(1));
        windows
            .entry((site_id, day))
            .or_insert_with(|| WindowCheck::new(site_id, day))
            .database = Sum {
            rows: r.get(2),
            ts_sum: int(r.get(3)),
        };
    }
    let manifest = client
        .query(
            &format!(
                "SELECT site_id, day, count(*), sum(rows)::int8, sum(ts_sum)::text \
                 FROM dataset_archive_files WHERE dataset = $4 AND state = 'live' AND {} \
                 GROUP BY 1, 2",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?;
    for r in &manifest {
        let (site_id, day) = (r.get(0), r.get(1));
        let w = windows
            .entry((site_id, day))
            .or_insert_with(|| WindowCheck::new(site_id, day));
        w.file_count = r.get(2);
        w.manifest = Sum {
            rows: r.get(3),
            ts_sum: int(r.get(4)),
        };
    }
    let dirty = client
        .query(
            &format!(
                "SELECT site_id, day FROM dataset_archive_dirty WHERE dataset = $4 AND {}",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?;
    for r in &dirty {
        let (site_id, day) = (r.get(0), r.get(1));
        windows
            .entry((site_id, day))
            .or_insert_with(|| WindowCheck::new(site_id, day))
            .dirty = true;
    }
    let today: NaiveDate = client
        .query_one("SELECT (now() AT TIME ZONE 'UTC')::date", &[])
        .await?
        .get(0);
    let kept_from = today - chrono::Duration::days(i64::from(d.retention.days));
    for w in windows.values_mut() {
        w.open = w.day >= today;
        w.beyond_retention = w.day < kept_from;
    }
    let files = client
        .query(
            &format!(
                "SELECT site_id, day, path, sha256 FROM dataset_archive_files \
                 WHERE dataset = $4 AND state = 'live' AND {} ORDER BY site_id, day, path",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    Ok((windows, files))
}

enum FileRead {
    Sum(Sum),
    Gone,
    Bad,
}

/// Reads a file back: its digest, then its time column.
async fn read_file(
    archive: &Archive,
    path: &str,
    time_column: &str,
    sha256: &[u8],
) -> Result<FileRead, ArchiveError> {
    let bytes: Bytes = match archive.store.get(&Path::from(path)).await {
        Ok(got) => got.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(FileRead::Gone),
        Err(e) => return Err(e.into()),
    };
    if Sha256::digest(&bytes).as_slice() != sha256 {
        return Ok(FileRead::Bad);
    }
    Ok(tokio::task::block_in_place(|| time_sum(bytes, time_column))
        .map_or(FileRead::Bad, FileRead::Sum))
}

/// Rows and the sum of the time column of a Parquet file.
pub fn time_sum(bytes: Bytes, time_column: &str) -> Result<Sum, ArchiveError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let schema = builder.parquet_schema();
    let idx = schema
        .columns()
        .iter()
        .position(|c| c.name() == time_column)
        .ok_or_else(|| {
            ArchiveError::Arrow(arrow_schema::ArrowError::SchemaError(format!(
                "the file has no column {time_column:?}"
            )))
        })?;
    let mask = ProjectionMask::leaves(schema, [idx]);
    let mut sum = Sum::default();
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let ts = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| {
                ArchiveError::Arrow(arrow_schema::ArrowError::SchemaError(format!(
                    "column {time_column:?} is not a timestamp"
                )))
            })?;
        for i in 0..ts.len() {
            sum.rows += 1;
            if !ts.is_null(i) {
                sum.ts_sum += i128::from(ts.value(i));
            }
        }
    }
    Ok(sum)
}

/// `adit archive backfill --dataset`: marks every window of `d` in `scope`
/// that holds rows in PostgreSQL dirty (rows written while the dataset's
/// archive was off were never marked; a window whose files were lost is
/// written again), for the archive's next pass; returns the windows marked
/// (already dirty ones included).
pub async fn mark_windows(
    client: &Client,
    d: &Dataset,
    scope: &Scope,
) -> Result<u64, ArchiveError> {
    let params: [&(dyn ToSql + Sync); 4] = [&scope.site_id, &scope.from, &scope.to, &d.name];
    let day_expr = format!("({} AT TIME ZONE 'UTC')::date", quote(&d.time_column));
    Ok(client
        .execute(
            &format!(
                "INSERT INTO dataset_archive_dirty (dataset, site_id, day) \
                 SELECT $4::text, {site}, {day_expr} FROM {table} WHERE {} GROUP BY 2, 3 \
                 ON CONFLICT (dataset, site_id, day) DO UPDATE SET marked_at = now()",
                FILTER
                    .replace("site_id", &quote(SITE_ID_COLUMN))
                    .replace("{day}", &day_expr),
                site = quote(SITE_ID_COLUMN),
                table = quote(d.table()),
            ),
            &params,
        )
        .await?)
}

/// One line per live file of `dataset`: window, rows, bytes, path.
pub async fn list(
    client: &Client,
    dataset: &str,
    scope: &Scope,
) -> Result<Vec<String>, ArchiveError> {
    let params: [&(dyn ToSql + Sync); 4] = [&scope.site_id, &scope.from, &scope.to, &dataset];
    let rows = client
        .query(
            &format!(
                "SELECT site_id, day, rows, bytes, path FROM dataset_archive_files \
                 WHERE dataset = $4 AND state = 'live' AND {} ORDER BY site_id, day, path",
                FILTER.replace("{day}", "day")
            ),
            &params,
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "site={}\tdate={}\trows={}\tbytes={}\t{}",
                r.get::<_, i32>(0),
                r.get::<_, NaiveDate>(1),
                r.get::<_, i64>(2),
                r.get::<_, i64>(3),
                r.get::<_, &str>(4)
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(database: i64, archived: i64) -> WindowCheck {
        let sum = |rows| Sum {
            rows,
            ts_sum: i128::from(rows) * 7,
        };
        WindowCheck {
            database: sum(database),
            manifest: sum(archived),
            files: sum(archived),
            ..WindowCheck::new(1, NaiveDate::from_ymd_opt(2026, 1, 2).unwrap())
        }
    }

    #[test]
    fn a_window_is_ok_pending_missing_or_mismatched() {
        assert_eq!(window(10, 10).status(), Status::Exact);
        assert_eq!(window(10, 8).status(), Status::Missing);
        assert_eq!(window(10, 12).status(), Status::Mismatch);
        let mut dirty = window(11, 10);
        dirty.dirty = true;
        assert_eq!(dirty.status(), Status::Pending);
        let mut open = window(0, 0);
        open.database.rows = 3;
        open.open = true;
        assert_eq!(open.status(), Status::Pending);
        let mut gone = window(10, 10);
        gone.missing_files = 1;
        gone.dirty = true;
        assert_eq!(
            gone.status(),
            Status::Missing,
            "a lost file is a defect even if dirty"
        );
        let mut bad = window(10, 10);
        bad.bad_files = 1;
        assert_eq!(bad.status(), Status::Mismatch);
        let mut retired = window(0, 10);
        assert_eq!(
            retired.status(),
            Status::Mismatch,
            "rows deleted from PostgreSQL"
        );
        retired.beyond_retention = true;
        assert_eq!(
            retired.status(),
            Status::Exact,
            "retention dropped the day, the archive keeps it"
        );
        let mut sums = window(10, 10);
        sums.database.ts_sum += 1;
        assert_eq!(sums.status(), Status::Mismatch, "same count, other rows");
        assert!(Status::Missing.is_defect() && !Status::Pending.is_defect());
    }
}

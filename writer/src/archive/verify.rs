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

use crate::archive::sink::Checksum;
use crate::archive::{Archive, ArchiveError};

/// Which windows to look at.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub site_id: Option<i32>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
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
}

impl WindowCheck {
    /// Everything archived and all three views equal.
    pub fn exact(&self) -> bool {
        self.queued_rows == 0 && self.database == self.manifest && self.manifest == self.files
    }

    /// Still being archived; the files and the manifest agree so far.
    pub fn pending(&self) -> bool {
        self.queued_rows > 0
            && self.manifest == self.files
            && self.database.rows == self.manifest.rows + self.queued_rows
    }
}

fn int(text: &str) -> i128 {
    text.parse().unwrap_or_default()
}

const FILTER: &str = "($1::int4 IS NULL OR site_id = $1) AND ($2::date IS NULL OR {day} >= $2) \
                      AND ($3::date IS NULL OR {day} <= $3)";

pub async fn check(
    client: &Client,
    archive: &Archive,
    scope: &Scope,
) -> Result<Vec<WindowCheck>, ArchiveError> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
        [&scope.site_id, &scope.from, &scope.to];
    let mut windows: BTreeMap<(i32, NaiveDate), WindowCheck> = BTreeMap::new();
    fn entry(
        windows: &mut BTreeMap<(i32, NaiveDate), WindowCheck>,
        site_id: i32,
        day: NaiveDate,
    ) -> &mut WindowCheck {
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
                   coalesce(sum(accepted_shares), 0)::text \
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
        .await?;
    for r in &files {
        let sum = file_checksum(archive, r.get(2)).await?;
        let w = entry(&mut windows, r.get(0), r.get(1));
        w.files.rows += sum.rows;
        w.files.ts_sum += sum.ts_sum;
        w.files.shares_sum += sum.shares_sum;
    }
    Ok(windows.into_values().collect())
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

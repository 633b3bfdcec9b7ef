//! Dataset uploads in a flush: their partitions made sure of before the
//! transaction (cached, like telemetry's), then in it one binary COPY per
//! dataset — straight into the table for `append`, into the connection's
//! staging table plus one `INSERT … ON CONFLICT` for `upsert` — and the
//! archive marks of every (dataset, site, UTC day) the rows touched.
//!
//! The SQL and the COPY encoding come from the dataset crate; names come
//! from checked declarations, never from request text.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use adit_dataset::{copy as dcopy, ddl, partitions, ENSURE_PARTITION_SQL};
use adit_types::dataset::{Dataset, WriteMode};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::{Client, Transaction};

use crate::{Result, Upload};

/// Marks one dataset day for the archive (the hand-off with the dataset
/// archiver, which clears a mark once it has exported the day).
pub const MARK_DIRTY_SQL: &str = "INSERT INTO dataset_archive_dirty (dataset, site_id, day) \
     SELECT * FROM unnest($1::text[], $2::int4[], $3::date[]) \
     ON CONFLICT (dataset, site_id, day) DO UPDATE SET marked_at = now()";

/// The dataset whose batches also maintain `inventory_latest` and
/// `inventory_history`.
pub const INVENTORY_DATASET: &str = "inventory";
/// Applies the staged inventory snapshots to latest and history: per
/// client in time order, under a row lock on the client's latest row.
pub const INVENTORY_APPLY_SQL: &str = "SELECT adit_inventory_apply($1::text::regclass, $2)";

/// What a worker knows about its connection's dataset tables.
#[derive(Debug, Default)]
pub struct DatasetTables {
    /// Partitions known to exist: (table, start in Unix microseconds).
    partitions: HashSet<(String, i64)>,
    /// Staging tables created on this connection.
    staged: HashSet<String>,
}

impl DatasetTables {
    /// Creates the partitions the uploads' rows need and the staging
    /// tables of their upsert datasets, outside the flush transaction so
    /// no DDL lock is held across a COPY.
    pub async fn prepare(&mut self, client: &Client, uploads: &[&Upload]) -> Result<()> {
        for u in uploads {
            let Some(rows) = &u.dataset else { continue };
            let d = &rows.dataset;
            for p in partitions(d, &rows.batch) {
                let known = (d.table().to_string(), p.start_micros);
                if self.partitions.contains(&known) {
                    continue;
                }
                let at = DateTime::<Utc>::from_timestamp_micros(p.start_micros)
                    .expect("a partition start is in range");
                client
                    .execute(
                        ENSURE_PARTITION_SQL,
                        &[&d.table(), &d.partition.as_str(), &at],
                    )
                    .await?;
                self.partitions.insert(known);
            }
            if d.mode == WriteMode::Upsert && !self.staged.contains(d.table()) {
                client.batch_execute(&ddl::create_stage(d)).await?;
                self.staged.insert(d.table().to_string());
            }
        }
        Ok(())
    }

    /// Forgets everything (a new connection has no staging tables, and
    /// retention may have dropped partitions meanwhile).
    pub fn clear(&mut self) {
        self.partitions.clear();
        self.staged.clear();
    }
}

/// Writes the dataset rows of `uploads`, in the flush's transaction.
pub async fn write(tx: &Transaction<'_>, uploads: &[&Upload]) -> Result<()> {
    let mut by_dataset: BTreeMap<&str, Vec<&Upload>> = BTreeMap::new();
    for u in uploads {
        if let Some(name) = u.dataset_name() {
            by_dataset.entry(name).or_default().push(u);
        }
    }
    for group in by_dataset.values() {
        let d: &Arc<Dataset> = &group[0].dataset.as_ref().expect("grouped").dataset;
        let mut buf = BytesMut::new();
        let mut rows = 0u64;
        for u in group {
            let batch = &u.dataset.as_ref().expect("grouped").batch;
            if batch.num_rows() == 0 {
                continue;
            }
            if rows == 0 {
                dcopy::begin(&mut buf);
            }
            dcopy::encode_rows(&mut buf, d, u.site_id, batch);
            rows += batch.num_rows() as u64;
        }
        if rows == 0 {
            continue;
        }
        dcopy::end(&mut buf);
        match d.mode {
            WriteMode::Append => {
                let sql = ddl::copy_into(d, d.table());
                crate::copy::send(tx, &sql, buf, rows, "dataset table").await?;
            }
            WriteMode::Upsert => {
                let sql = ddl::copy_into(d, &ddl::stage_table(d));
                crate::copy::send(tx, &sql, buf, rows, "dataset staging table").await?;
                tx.execute(&ddl::upsert(d), &[]).await?;
                if d.name == INVENTORY_DATASET {
                    // Latest and history from the same staged rows, in the
                    // same transaction (see migrations/0015_inventory.sql).
                    tx.execute(
                        INVENTORY_APPLY_SQL,
                        &[&ddl::stage_table(d), &adit_dataset::check::STAGE_ROW_COLUMN],
                    )
                    .await?;
                }
            }
        }
    }
    let (names, sites, days) = archive_marks(uploads);
    if !names.is_empty() {
        tx.execute(MARK_DIRTY_SQL, &[&names, &sites, &days]).await?;
    }
    Ok(())
}

/// The (dataset, site, UTC day) of every archived dataset's rows, sorted
/// (so concurrent writers lock the marks in the same order), as the three
/// columns [`MARK_DIRTY_SQL`] takes.
pub fn archive_marks(uploads: &[&Upload]) -> (Vec<String>, Vec<i32>, Vec<NaiveDate>) {
    let mut marks: BTreeSet<(&str, i32, i32)> = BTreeSet::new();
    for u in uploads {
        let Some(rows) = &u.dataset else { continue };
        let d = &rows.dataset;
        if !d.archive || rows.batch.num_rows() == 0 {
            continue;
        }
        let at = d.column_index(&d.time_column).expect("checked on load");
        let times = rows
            .batch
            .column(at)
            .as_primitive::<TimestampMicrosecondType>();
        let mut last = None;
        for &t in times.values().iter() {
            let day = adit_types::day_of(t);
            if last != Some(day) {
                last = Some(day);
                marks.insert((d.name.as_str(), u.site_id, day));
            }
        }
    }
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for (name, site, day) in marks {
        out.0.push(name.to_string());
        out.1.push(site);
        out.2.push(
            NaiveDate::from_num_days_from_ce_opt(day + UNIX_EPOCH_DAYS_FROM_CE)
                .expect("day within chrono's range"),
        );
    }
    out
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

#[cfg(test)]
mod tests {
    use super::*;
    use adit_types::DatasetRows;
    use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    fn dataset(archive: bool) -> Arc<Dataset> {
        let text = format!(
            "name = \"m\"\ntime_column = \"ts\"\npartition = \"day\"\nretention = \"30d\"\n\
             archive = {archive}\n[[columns]]\nname = \"ts\"\ntype = \"timestamptz\"\n\
             required = true\n"
        );
        Arc::new(toml::from_str(&text).unwrap())
    }

    fn upload(site_id: i32, d: Arc<Dataset>, ts: &[i64]) -> Upload {
        let schema = Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("extra", DataType::Utf8, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![None::<&str>; ts.len()])),
        ];
        let batch = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
        Upload {
            site_id,
            dataset: Some(Box::new(DatasetRows { dataset: d, batch })),
            ..Upload::test_upload()
        }
    }

    #[test]
    fn marks_each_site_and_day_once_and_only_archived_datasets() {
        const DAY: i64 = adit_types::MICROS_PER_DAY;
        let a = upload(2, dataset(true), &[DAY + 5, DAY + 9, 2 * DAY, DAY + 1]);
        let b = upload(1, dataset(true), &[DAY]);
        let off = upload(3, dataset(false), &[DAY]);
        let telemetry = Upload::test_upload();
        let (names, sites, days) = archive_marks(&[&a, &b, &off, &telemetry]);
        assert_eq!(names, ["m", "m", "m"]);
        assert_eq!(sites, [1, 2, 2]);
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(days, [d("1970-01-02"), d("1970-01-02"), d("1970-01-03")]);
    }
}

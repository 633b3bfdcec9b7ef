//! The dataset archive: each declared dataset with `archive = true`, per
//! window (dataset, site, UTC day of its time column), exported from
//! PostgreSQL once the day is closed, as zstd Parquet sorted by the
//! declaration's sort columns at
//! `<root>/<dataset>/site_id=<s>/date=<YYYY-MM-DD>/<file>.parquet`.
//!
//! The writer marks a window dirty (`dataset_archive_dirty`) in the
//! transaction that writes its rows. A pass exports every dirty window whose
//! day ended more than the delay ago: the mark and the rows are read in one
//! snapshot, the new files are recorded 'writing' and uploaded, then one
//! transaction makes them live, retires the window's previous files and
//! clears the mark only if `marked_at` is unchanged (a row committed
//! meanwhile keeps the window dirty for the next pass); the old objects are
//! deleted after. So a window's live files always hold what PostgreSQL held
//! for the window at one moment — for an upsert dataset, each closed day as
//! PostgreSQL holds it, replaced whole when a row of the day changes.

pub mod read;
pub mod verify;

use std::time::{Duration, Instant};

use adit_dataset::{Catalog, Declared};
use chrono::{NaiveDate, Utc};
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, IsolationLevel};
use tracing::{debug, info, warn};

use crate::parquet::{ROW_GROUP_ROWS, ZSTD_LEVEL_COMPACTED};
use crate::{Archive, ArchiveError};

/// Dataset archive settings.
#[derive(Debug, Clone)]
pub struct DatasetArchiveConfig {
    /// A window is exported once its day ended this long ago (rows of a
    /// day still arriving late are archived with it, not one by one).
    pub delay: Duration,
    /// Rows per file: a larger window gets several files.
    pub max_file_rows: usize,
    /// How often the background task looks for dirty windows.
    pub every: Duration,
}

impl Default for DatasetArchiveConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(3600),
            max_file_rows: 1_000_000,
            every: Duration::from_secs(60),
        }
    }
}

/// `<prefix>/<dataset>/site_id=<s>/date=<YYYY-MM-DD>/<name>`
pub fn file_path(
    archive: &Archive,
    dataset: &str,
    site_id: i32,
    day: NaiveDate,
    name: &str,
) -> Path {
    let rel = format!(
        "{dataset}/site_id={site_id}/date={}/{name}",
        day.format("%Y-%m-%d")
    );
    if archive.prefix.as_ref().is_empty() {
        Path::from(rel)
    } else {
        Path::from(format!("{}/{rel}", archive.prefix))
    }
}

/// `<prefix>/<dataset>`: where a dataset's files live.
pub fn dataset_root(archive: &Archive, dataset: &str) -> Path {
    if archive.prefix.as_ref().is_empty() {
        Path::from(dataset)
    } else {
        Path::from(format!("{}/{dataset}", archive.prefix))
    }
}

/// The datasets of `catalog` that are archived.
pub fn archived(catalog: &Catalog) -> Vec<&Declared> {
    catalog
        .iter()
        .filter(|d| d.dataset().archive && d.name() != "miner_telemetry")
        .map(|d| d.as_ref())
        .collect()
}

/// zstd (the compacted files' level: written once per closed day, read
/// for long), page statistics, dictionaries.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL_COMPACTED).expect("valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(true)
        .build()
}

/// One window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Window {
    pub dataset: String,
    pub site_id: i32,
    pub day: NaiveDate,
}

/// A file uploaded and recorded as 'writing'.
#[derive(Debug)]
pub struct Staged {
    pub id: i64,
    pub path: Path,
    pub rows: i64,
}

/// Records a file as 'writing' (by this connection), then uploads it.
pub async fn stage(
    client: &Client,
    archive: &Archive,
    w: &Window,
    bytes: Vec<u8>,
    rows: i64,
    ts_sum: i128,
) -> Result<Staged, ArchiveError> {
    let name = format!(
        "{}-{:016x}.parquet",
        Utc::now().format("%Y%m%dT%H%M%S%3f"),
        rand::random::<u64>()
    );
    let path = file_path(archive, &w.dataset, w.site_id, w.day, &name);
    let id: i64 = client
        .query_one(
            "INSERT INTO dataset_archive_files (dataset, path, site_id, day, state, rows, bytes, \
               sha256, ts_sum) \
             VALUES ($1, $2, $3, $4, 'writing', $5, $6, $7, $8::text::numeric) RETURNING id",
            &[
                &w.dataset,
                &path.as_ref(),
                &w.site_id,
                &w.day,
                &rows,
                &(bytes.len() as i64),
                &Sha256::digest(&bytes).to_vec(),
                &ts_sum.to_string(),
            ],
        )
        .await?
        .get(0);
    if let Err(e) = archive.store.put(&path, bytes.into()).await {
        let _ = client
            .execute("DELETE FROM dataset_archive_files WHERE id = $1", &[&id])
            .await;
        return Err(e.into());
    }
    Ok(Staged { id, path, rows })
}

/// Removes staged files and their 'writing' rows.
async fn discard(client: &Client, archive: &Archive, staged: &[Staged]) {
    for s in staged {
        let _ = archive.store.delete(&s.path).await;
    }
    let ids: Vec<i64> = staged.iter().map(|s| s.id).collect();
    let _ = client
        .execute(
            "DELETE FROM dataset_archive_files WHERE id = ANY($1) AND state = 'writing'",
            &[&ids],
        )
        .await;
}

/// What exporting one window did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exported {
    /// The window's files now hold `rows` in `files` files; `clean` when its
    /// mark was cleared (false: rows arrived meanwhile, still dirty).
    Done {
        rows: i64,
        files: usize,
        clean: bool,
    },
    /// Another process is exporting it, or its mark is gone.
    Skipped,
}

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub windows: usize,
    pub rows: i64,
    pub files: usize,
    /// Windows left dirty because rows arrived while they were exported.
    pub still_dirty: usize,
}

/// Exports every dirty window of the archived datasets of `catalog` whose
/// day ended more than `cfg.delay` ago. `client` records files; a second
/// connection to `database_url` reads each window in one snapshot.
pub async fn pass(
    client: &mut Client,
    database_url: &str,
    archive: &Archive,
    catalog: &Catalog,
    cfg: &DatasetArchiveConfig,
) -> Result<PassReport, ArchiveError> {
    let datasets = archived(catalog);
    let names: Vec<&str> = datasets.iter().map(|d| d.name()).collect();
    let due = client
        .query(
            "SELECT dataset, site_id, day FROM dataset_archive_dirty \
             WHERE dataset = ANY($1) \
               AND (day + 1)::timestamp AT TIME ZONE 'UTC' <= now() - make_interval(secs => $2) \
             ORDER BY day, dataset, site_id",
            &[&names, &cfg.delay.as_secs_f64()],
        )
        .await?;
    let mut report = PassReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    let mut reader = adit_types::pg::connect(database_url).await?;
    for r in &due {
        let w = Window {
            dataset: r.get(0),
            site_id: r.get(1),
            day: r.get(2),
        };
        let d = catalog.get(&w.dataset).expect("listed from the catalog");
        let started = Instant::now();
        match export_window(client, &mut reader, archive, d, &w, cfg).await? {
            Exported::Done { rows, files, clean } => {
                info!(dataset = %w.dataset, site_id = w.site_id, day = %w.day, rows, files, clean,
                      elapsed_ms = started.elapsed().as_millis() as u64, "Archived a dataset window.");
                report.windows += 1;
                report.rows += rows;
                report.files += files;
                report.still_dirty += usize::from(!clean);
            }
            Exported::Skipped => {}
        }
    }
    Ok(report)
}

/// Exports one window (see the module's doc), serialised across processes
/// on an advisory lock of `client`'s session.
pub async fn export_window(
    client: &mut Client,
    reader: &mut Client,
    archive: &Archive,
    d: &Declared,
    w: &Window,
    cfg: &DatasetArchiveConfig,
) -> Result<Exported, ArchiveError> {
    let lock = format!("adit_dataset_archive:{}:{}:{}", w.dataset, w.site_id, w.day);
    let locked: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&lock],
        )
        .await?
        .get(0);
    if !locked {
        return Ok(Exported::Skipped);
    }
    let result = export_locked(client, reader, archive, d, w, cfg).await;
    let _ = client
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&lock],
        )
        .await;
    result
}

async fn export_locked(
    client: &mut Client,
    reader: &mut Client,
    archive: &Archive,
    d: &Declared,
    w: &Window,
    cfg: &DatasetArchiveConfig,
) -> Result<Exported, ArchiveError> {
    let tx = reader
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // The mark first, then the rows, in one snapshot: a row committed after
    // it changed marked_at too.
    let Some(mark) = tx
        .query_opt(
            "SELECT marked_at FROM dataset_archive_dirty WHERE dataset = $1 AND site_id = $2 AND day = $3",
            &[&w.dataset, &w.site_id, &w.day],
        )
        .await?
    else {
        return Ok(Exported::Skipped);
    };
    let marked_at: chrono::DateTime<Utc> = mark.get(0);
    let old: Vec<i64> = tx
        .query(
            "SELECT id FROM dataset_archive_files WHERE dataset = $1 AND site_id = $2 AND day = $3 \
               AND state = 'live'",
            &[&w.dataset, &w.site_id, &w.day],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut staged: Vec<Staged> = Vec::new();
    let read: Result<(), ArchiveError> = async {
        let rows = read::window_rows(tx.client(), d, w.site_id, w.day).await?;
        futures_util::pin_mut!(rows);
        let mut batcher = read::Batcher::new(d);
        let mut file: Option<(ArrowWriter<Vec<u8>>, i64, i128)> = None;
        loop {
            let row = rows.try_next().await?;
            if let Some(row) = &row {
                batcher.push(row)?;
            }
            let end = row.is_none();
            if batcher.rows() > 0 && (end || batcher.rows() >= ROW_GROUP_ROWS) {
                let n = batcher.rows() as i64;
                let sum = batcher.ts_sum;
                let batch = batcher.finish()?;
                let (writer, rows, ts_sum) = match &mut file {
                    Some(f) => f,
                    None => file.insert((
                        ArrowWriter::try_new(
                            Vec::new(),
                            d.schema().clone(),
                            Some(writer_properties()),
                        )?,
                        0,
                        0,
                    )),
                };
                tokio::task::block_in_place(|| writer.write(&batch))?;
                *rows += n;
                *ts_sum += sum;
            }
            let full = file
                .as_ref()
                .is_some_and(|f| f.1 as usize >= cfg.max_file_rows);
            if full || (end && file.is_some()) {
                let (writer, rows, ts_sum) = file.take().expect("open");
                let bytes = tokio::task::block_in_place(|| writer.into_inner())?;
                staged.push(stage(client, archive, w, bytes, rows, ts_sum).await?);
            }
            if end {
                return Ok(());
            }
        }
    }
    .await;
    drop(tx);
    if let Err(e) = read {
        discard(client, archive, &staged).await;
        return Err(e);
    }
    // PostgreSQL holds none of the window's rows any more (retention
    // dropped its partition before it was exported again): the archive
    // keeps the files it has.
    let old = if staged.is_empty() { Vec::new() } else { old };
    commit(client, archive, w, &staged, &old, marked_at).await
}

/// Makes `staged` live, retires `old` and clears the window's mark if it is
/// still `marked_at`, in one transaction; then deletes the old objects.
async fn commit(
    client: &mut Client,
    archive: &Archive,
    w: &Window,
    staged: &[Staged],
    old: &[i64],
    marked_at: chrono::DateTime<Utc>,
) -> Result<Exported, ArchiveError> {
    let ids: Vec<i64> = staged.iter().map(|s| s.id).collect();
    let tx = client.transaction().await?;
    let retired: Vec<String> = tx
        .query(
            "DELETE FROM dataset_archive_files WHERE id = ANY($1) AND state = 'live' RETURNING path",
            &[&old],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let made_live = tx
        .execute(
            "UPDATE dataset_archive_files SET state = 'live' WHERE id = ANY($1) AND state = 'writing'",
            &[&ids],
        )
        .await?;
    let failure = if retired.len() != old.len() {
        Some(ArchiveError::Replaced {
            site_id: w.site_id,
            day: w.day,
        })
    } else if made_live != ids.len() as u64 {
        Some(ArchiveError::StagedGone {
            site_id: w.site_id,
            day: w.day,
        })
    } else {
        None
    };
    if let Some(e) = failure {
        drop(tx);
        discard(client, archive, staged).await;
        return Err(e);
    }
    let cleared = tx
        .execute(
            "DELETE FROM dataset_archive_dirty WHERE dataset = $1 AND site_id = $2 AND day = $3 \
               AND marked_at = $4",
            &[&w.dataset, &w.site_id, &w.day, &marked_at],
        )
        .await?;
    tx.commit().await?;
    for path in retired {
        if let Err(e) = archive.store.delete(&Path::from(path.as_str())).await {
            warn!(%path, error = %e, "Could not delete a replaced dataset archive file; recovery will.");
        }
    }
    let rows = staged.iter().map(|s| s.rows).sum();
    debug!(dataset = %w.dataset, site_id = w.site_id, day = %w.day, rows, "Dataset window archived.");
    Ok(Exported::Done {
        rows,
        files: staged.len(),
        clean: cleared == 1,
    })
}

/// Deletes dataset files a crash left: 'writing' rows whose recording
/// backend is gone (with their objects), and objects under an archived
/// dataset's root that no manifest row names. Returns how many of each.
pub async fn recover(
    client: &Client,
    archive: &Archive,
    catalog: &Catalog,
) -> Result<(u64, u64), ArchiveError> {
    let interrupted = delete_interrupted(client, archive).await?;
    let mut orphans = 0;
    for d in archived(catalog) {
        // Listed before the manifest is read: an object listed was put
        // after its row was recorded, so the read names it.
        let listed: Vec<_> = archive
            .store
            .list(Some(&dataset_root(archive, d.name())))
            .try_collect()
            .await?;
        if listed.is_empty() {
            continue;
        }
        let known: std::collections::HashSet<String> = client
            .query(
                "SELECT path FROM dataset_archive_files WHERE dataset = $1",
                &[&d.name()],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for meta in listed {
            if !known.contains(meta.location.as_ref()) {
                archive.store.delete(&meta.location).await?;
                orphans += 1;
            }
        }
    }
    if interrupted + orphans > 0 {
        info!(
            interrupted,
            orphans, "Dataset archive recovery removed unrecorded files."
        );
    }
    Ok((interrupted, orphans))
}

/// 'writing' files whose recording backend is gone: a crash cut their
/// export short (a live exporter's backend is still there, however slow).
async fn delete_interrupted(client: &Client, archive: &Archive) -> Result<u64, ArchiveError> {
    let stale = client
        .query(
            "DELETE FROM dataset_archive_files f WHERE state = 'writing' AND NOT EXISTS ( \
               SELECT 1 FROM pg_stat_activity a WHERE a.pid = f.writer_pid \
                 AND (a.backend_start IS NULL OR a.backend_start <= f.created_at)) \
             RETURNING path",
            &[],
        )
        .await?;
    for row in &stale {
        let _ = archive
            .store
            .delete(&Path::from(row.get::<_, &str>(0)))
            .await;
    }
    Ok(stale.len() as u64)
}

/// The dataset archive's background task.
#[derive(Debug)]
pub struct DatasetArchiver {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl DatasetArchiver {
    /// Starts exporting closed windows of `catalog`'s archived datasets
    /// every `cfg.every`; `None` when no dataset is archived.
    pub fn spawn(
        database_url: String,
        archive: Archive,
        catalog: Catalog,
        cfg: DatasetArchiveConfig,
    ) -> Option<Self> {
        if archived(&catalog).is_empty() {
            return None;
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(database_url, archive, catalog, cfg, stopped));
        Some(Self { stop, task })
    }

    /// Stops after the window being exported, if any.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn run(
    database_url: String,
    archive: Archive,
    catalog: Catalog,
    cfg: DatasetArchiveConfig,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut client = crate::connect(&database_url).await;
    if let Err(e) = recover(&client, &archive, &catalog).await {
        warn!(error = %e, "Dataset archive recovery incomplete; will retry.");
    }
    let mut tick = tokio::time::interval(cfg.every);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {
                if client.is_closed() {
                    client = crate::connect(&database_url).await;
                }
                // Cut short by a crash of another exporter meanwhile.
                if let Err(e) = delete_interrupted(&client, &archive).await {
                    warn!(error = %e, "Dataset archive cleanup failed; will retry.");
                }
                let work = pass(&mut client, &database_url, &archive, &catalog, &cfg);
                tokio::select! {
                    _ = &mut stopped => break,
                    r = work => if let Err(e) = r {
                        warn!(error = %e, "Dataset archive pass failed; will retry.");
                    },
                }
            }
        }
    }
}

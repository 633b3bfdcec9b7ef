//! Keeping the archive exact: recovery at start (orphan objects, uploads a
//! crash interrupted, batches never archived), the periodic sweep of
//! batches the stream missed, and compaction of closed windows into few
//! large files (write new, record, then delete old).

use std::collections::HashMap;
use std::time::Duration;

use adit_types::Sample;
use chrono::NaiveDate;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use tokio_postgres::{Client, IsolationLevel};
use tracing::{info, warn};

use crate::sink::{self, Kind};
use crate::verify::{self, Scope};
use crate::{export, Archive, ArchiveConfig, ArchiveError, ArchiveStats};

type Window = (i32, NaiveDate);

/// Deletes objects with no manifest row and uploads a crash interrupted;
/// then archives every queued batch.
///
/// A 'writing' file can only become live through the connection that
/// recorded it (`sink::stage` and `sink::commit` share it), so it is stale
/// exactly when that connection's backend is gone — however long a live
/// one takes (a second node, `adit archive compact`). The manifest row
/// names the backend (`writer_pid`, see migrations/0007); rows recorded
/// before that column existed fall back to the age `cfg.stale_writing`.
pub async fn recover(
    client: &mut Client,
    archive: &Archive,
    cfg: &ArchiveConfig,
    stats: &ArchiveStats,
) -> Result<(), ArchiveError> {
    let stale = client
        .query(
            "DELETE FROM archive_files f WHERE state = 'writing' AND CASE \
               WHEN writer_pid IS NULL THEN created_at < now() - make_interval(secs => $1) \
               ELSE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = f.writer_pid \
                 AND (a.backend_start IS NULL OR a.backend_start <= f.created_at)) END \
             RETURNING path",
            &[&cfg.stale_writing.as_secs_f64()],
        )
        .await?;
    for row in &stale {
        let _ = archive
            .store
            .delete(&Path::from(row.get::<_, &str>(0)))
            .await;
    }
    let orphans = delete_orphans(client, archive).await?;
    if orphans > 0 || !stale.is_empty() {
        info!(
            orphans,
            interrupted = stale.len(),
            "Archive recovery removed unrecorded files."
        );
    }
    sweep(client, archive, cfg, stats, Duration::ZERO, &[]).await
}

/// Objects under the archive root that no manifest row names (every file
/// is recorded before it is uploaded, so these are crash leftovers). The
/// store is listed before the manifest is read: an object listed was put
/// after its row was recorded, so the manifest read next names it, while
/// one put after the listing is not looked at.
pub async fn delete_orphans(client: &Client, archive: &Archive) -> Result<u64, ArchiveError> {
    let listed: Vec<_> = archive
        .store
        .list(Some(&archive.table_root()))
        .try_collect()
        .await?;
    let known = sink::known_paths(client).await?;
    let mut deleted = 0;
    for meta in listed {
        if !known.contains(meta.location.as_ref()) {
            archive.store.delete(&meta.location).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Archives queued batches older than `age` that are not `held` in memory,
/// exporting their rows from PostgreSQL.
pub async fn sweep(
    client: &mut Client,
    archive: &Archive,
    cfg: &ArchiveConfig,
    stats: &ArchiveStats,
    age: Duration,
    held: &[i64],
) -> Result<(), ArchiveError> {
    let queued = client
        .query(
            "SELECT site_id, day, batch_id, rows FROM archive_queue \
             WHERE queued_at <= now() - make_interval(secs => $1) AND NOT (batch_id = ANY($2)) \
             ORDER BY site_id, day, batch_id",
            &[&age.as_secs_f64(), &held],
        )
        .await?;
    // Group by window, capping each group near max_file_rows.
    let mut groups: Vec<(Window, Vec<sink::Claim>)> = Vec::new();
    let mut rows_in_group = 0usize;
    for r in &queued {
        let window: Window = (r.get(0), r.get(1));
        let (batch_id, rows): (i64, i32) = (r.get(2), r.get(3));
        let claim = sink::Claim {
            batch_id,
            rows: i64::from(rows),
        };
        match groups.last_mut() {
            Some((w, claims))
                if *w == window && rows_in_group + rows as usize <= cfg.max_file_rows =>
            {
                claims.push(claim);
                rows_in_group += rows as usize;
            }
            _ => {
                groups.push((window, vec![claim]));
                rows_in_group = rows as usize;
            }
        }
    }
    for (window, tickets) in groups {
        let ids: Vec<i64> = tickets.iter().map(|c| c.batch_id).collect();
        let exported = export::batches(client, window.0, window.1, &ids).await?;
        let mut found: HashMap<i64, i64> = HashMap::new();
        for (id, _) in &exported {
            *found.entry(*id).or_default() += 1;
        }
        // A batch with no rows left (retention dropped its day): nothing
        // to archive.
        let gone: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains_key(id))
            .collect();
        if !gone.is_empty() {
            client
                .execute(
                    "DELETE FROM archive_queue WHERE site_id = $1 AND day = $2 AND batch_id = ANY($3)",
                    &[&window.0, &window.1, &gone],
                )
                .await?;
        }
        let (claims, odd): (Vec<sink::Claim>, Vec<sink::Claim>) = tickets
            .into_iter()
            .filter(|c| found.contains_key(&c.batch_id))
            .partition(|c| found.get(&c.batch_id) == Some(&c.rows));
        if !odd.is_empty() {
            warn!(site_id = window.0, day = %window.1, batches = ?odd,
                  "Queued batches hold other row counts in PostgreSQL than their tickets; left queued.");
        }
        if claims.is_empty() {
            continue;
        }
        let wanted: std::collections::HashSet<i64> = claims.iter().map(|c| c.batch_id).collect();
        let refs: Vec<&Sample> = exported
            .iter()
            .filter(|(id, _)| wanted.contains(id))
            .map(|(_, s)| s)
            .collect();
        match sink::write_part(client, archive, window, &refs, &claims).await {
            Ok(n) => {
                stats
                    .files_written
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                stats
                    .rows_archived
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                info!(site_id = window.0, day = %window.1, rows = n, batches = claims.len(), "Archived queued batches from PostgreSQL.");
            }
            // Archived meanwhile, or committed meanwhile with other counts:
            // the next sweep looks again.
            Err(ArchiveError::Claimed { .. } | ArchiveError::Incomplete { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Compacts every closed window (its day ended `compact_after` ago) that
/// has more than one file or any part file.
pub async fn compact_closed(
    client: &mut Client,
    archive: &Archive,
    cfg: &ArchiveConfig,
) -> Result<(), ArchiveError> {
    let windows = client
        .query(
            "SELECT site_id, day FROM archive_files WHERE state = 'live' \
               AND day + 1 <= (now() - make_interval(secs => $1))::date \
             GROUP BY site_id, day HAVING count(*) > 1 OR bool_or(kind = 'part') ORDER BY day, site_id",
            &[&cfg.compact_after.as_secs_f64()],
        )
        .await?;
    for w in windows {
        compact(client, archive, cfg, (w.get(0), w.get(1))).await?;
    }
    Ok(())
}

/// Rewrites a window's live files as few large sorted files: export from
/// PostgreSQL (one snapshot for the file list and the rows), stage the new
/// files, then record them and retire the old ones in one transaction.
/// Rows of batches still queued are left out: they go to their own part
/// file, so nothing is doubled even if the window is still open.
pub async fn compact(
    client: &mut Client,
    archive: &Archive,
    cfg: &ArchiveConfig,
    window: (i32, NaiveDate),
) -> Result<u64, ArchiveError> {
    let (site_id, day) = window;
    let mut reader = adit_types::pg::connect(&cfg.database_url).await?;
    // One compaction of a window at a time, across processes (a second
    // node, `adit archive compact` or `backfill`): two of a window with no
    // live files yet would each record a copy of its rows. The lock is the
    // reader connection's, so it ends with this function.
    reader
        .execute(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))",
            &[&format!("adit_archive_window:{site_id}:{day}")],
        )
        .await?;
    let tx = reader
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let old: Vec<i64> = tx
        .query(
            "SELECT id FROM archive_files WHERE site_id = $1 AND day = $2 AND state = 'live'",
            &[&site_id, &day],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut staged = Vec::new();
    let result: Result<(), ArchiveError> = async {
        let rows = export::window_rows(tx.client(), site_id, day).await?;
        futures_util::pin_mut!(rows);
        let mut chunk = Vec::new();
        loop {
            let row = rows.try_next().await?;
            if let Some(row) = &row {
                chunk.push(export::sample_from_row(row));
            }
            if !chunk.is_empty() && (row.is_none() || chunk.len() >= cfg.max_file_rows) {
                let refs: Vec<&Sample> = chunk.iter().collect();
                staged.push(sink::stage(client, archive, window, Kind::Compacted, &refs).await?);
                chunk.clear();
            }
            if row.is_none() {
                return Ok(());
            }
        }
    }
    .await;
    drop(tx);
    if let Err(e) = result {
        sink::discard(client, archive, &staged).await;
        return Err(e);
    }
    if staged.is_empty() && old.is_empty() {
        return Ok(0);
    }
    match sink::commit(client, archive, window, &staged, &[], &old).await {
        Ok(rows) => {
            info!(site_id, %day, files_before = old.len(), files_after = staged.len(), rows, "Compacted an archive window.");
            Ok(rows)
        }
        Err(e) => {
            warn!(site_id, %day, error = %e, "Compaction lost a race; will retry.");
            Err(e)
        }
    }
}

/// `adit archive backfill`: every window in `scope` where PostgreSQL holds
/// rows that are neither queued for the archive nor in a live file — rows
/// committed before the archive was enabled, or while it was off (they
/// carry no batch id and have no ticket) — is rewritten from PostgreSQL by
/// [`compact`]. Safe to repeat (a window whose rows are all archived is
/// left alone) and beside running archivers (compaction of a window is
/// serialised and atomic, and leaves out the rows still queued, which the
/// stream or the sweeper archives). Returns each window done with its rows.
pub async fn backfill(
    client: &mut Client,
    archive: &Archive,
    cfg: &ArchiveConfig,
    scope: &Scope,
) -> Result<Vec<(Window, u64)>, ArchiveError> {
    let windows = verify::counts(client, scope).await?;
    let mut done = Vec::new();
    for w in windows
        .iter()
        .filter(|w| w.database.rows > w.manifest.rows + w.queued_rows)
    {
        let window = (w.site_id, w.day);
        let rows = compact(client, archive, cfg, window).await?;
        info!(site_id = w.site_id, day = %w.day, rows, "Backfilled an archive window from PostgreSQL.");
        done.push((window, rows));
    }
    Ok(done)
}

//! Writing files and recording them. Two phases per file: `stage` records
//! the file as 'writing' and uploads it; `commit` makes a set of staged
//! files live in one transaction that also claims their batches from the
//! queue (and retires replaced files), or discards them if a claim fails.

use std::collections::HashSet;

use adit_types::Sample;
use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use object_store::ObjectStoreExt as _;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tracing::{debug, warn};

use crate::archive::{parquet, Archive, ArchiveError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Part,
    Compacted,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Part => "part",
            Kind::Compacted => "compacted",
        }
    }

    /// Parts are written while ingest runs, at DuckDB's own zstd level;
    /// compaction runs off the hot path and squeezes harder.
    pub fn zstd_level(self) -> i32 {
        match self {
            Kind::Part => parquet::ZSTD_LEVEL,
            Kind::Compacted => parquet::ZSTD_LEVEL_COMPACTED,
        }
    }
}

/// A file uploaded and recorded as 'writing'.
#[derive(Debug)]
pub struct Staged {
    pub id: i64,
    pub path: Path,
    pub rows: u64,
}

/// Checksum of key columns, as `archive verify` computes it everywhere.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub rows: i64,
    pub ts_sum: i128,
    pub shares_sum: i128,
}

impl Checksum {
    pub fn add(&mut self, ts_micros: i64, accepted_shares: Option<i64>) {
        self.rows += 1;
        self.ts_sum += i128::from(ts_micros);
        self.shares_sum += i128::from(accepted_shares.unwrap_or(0));
    }
}

/// Encodes `rows`, records the file as 'writing', uploads it.
pub async fn stage(
    client: &Client,
    archive: &Archive,
    (site_id, day): (i32, NaiveDate),
    kind: Kind,
    rows: &[&Sample],
) -> Result<Staged, ArchiveError> {
    let bytes = tokio::task::block_in_place(|| parquet::encode_at(rows, kind.zstd_level()))?;
    let mut sum = Checksum::default();
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for s in rows {
        sum.add(s.ts_micros, s.accepted_shares);
        min_ts = min_ts.min(s.ts_micros);
        max_ts = max_ts.max(s.ts_micros);
    }
    let name = format!(
        "{}-{}-{:016x}.parquet",
        kind.name(),
        Utc::now().format("%Y%m%dT%H%M%S%3f"),
        rand::random::<u64>()
    );
    let path = archive.file_path(site_id, day, &name);
    let ts = |m: i64| DateTime::from_timestamp_micros(m).expect("time in range");
    let id: i64 = client
        .query_one(
            "INSERT INTO archive_files (path, site_id, day, kind, state, rows, min_ts, max_ts, bytes, \
               sha256, ts_sum, shares_sum) \
             VALUES ($1, $2, $3, $4, 'writing', $5, $6, $7, $8, $9, $10::text::numeric, $11::text::numeric) \
             RETURNING id",
            &[
                &path.as_ref(),
                &site_id,
                &day,
                &kind.name(),
                &(rows.len() as i64),
                &ts(min_ts),
                &ts(max_ts),
                &(bytes.len() as i64),
                &Sha256::digest(&bytes).to_vec(),
                &sum.ts_sum.to_string(),
                &sum.shares_sum.to_string(),
            ],
        )
        .await?
        .get(0);
    if let Err(e) = archive.store.put(&path, bytes.into()).await {
        let _ = client
            .execute("DELETE FROM archive_files WHERE id = $1", &[&id])
            .await;
        return Err(e.into());
    }
    Ok(Staged {
        id,
        path,
        rows: rows.len() as u64,
    })
}

/// Makes `staged` live, claiming `claims` (batch ids queued for the window)
/// and retiring the live files `replaces`; on a failed claim every staged
/// file is discarded and the error says which batches are still queued.
pub async fn commit(
    client: &mut Client,
    archive: &Archive,
    (site_id, day): (i32, NaiveDate),
    staged: &[Staged],
    claims: &[i64],
    replaces: &[i64],
) -> Result<u64, ArchiveError> {
    let ids: Vec<i64> = staged.iter().map(|s| s.id).collect();
    let tx = client.transaction().await?;
    let claimed: Vec<i64> = if claims.is_empty() {
        Vec::new()
    } else {
        tx.query(
            "DELETE FROM archive_queue WHERE site_id = $1 AND day = $2 AND batch_id = ANY($3) \
             RETURNING batch_id",
            &[&site_id, &day, &claims],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let retired: Vec<String> = if replaces.is_empty() {
        Vec::new()
    } else {
        tx.query(
            "DELETE FROM archive_files WHERE id = ANY($1) AND state = 'live' RETURNING path",
            &[&replaces],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let failure = if claimed.len() != claims.len() {
        Some(ArchiveError::Claimed {
            still_queued: claimed,
        })
    } else if retired.len() != replaces.len() {
        Some(ArchiveError::Replaced { site_id, day })
    } else {
        None
    };
    if let Some(e) = failure {
        drop(tx);
        discard(client, archive, staged).await;
        return Err(e);
    }
    tx.execute(
        "UPDATE archive_files SET state = 'live' WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    tx.commit().await?;
    for path in retired {
        if let Err(e) = archive.store.delete(&Path::from(path.as_str())).await {
            warn!(%path, error = %e, "Could not delete a replaced archive file; recovery will.");
        }
    }
    let rows = staged.iter().map(|s| s.rows).sum();
    debug!(site_id, %day, files = staged.len(), rows, "Archived.");
    Ok(rows)
}

/// Removes staged files and their 'writing' rows.
pub async fn discard(client: &Client, archive: &Archive, staged: &[Staged]) {
    for s in staged {
        let _ = archive.store.delete(&s.path).await;
    }
    let ids: Vec<i64> = staged.iter().map(|s| s.id).collect();
    let _ = client
        .execute(
            "DELETE FROM archive_files WHERE id = ANY($1) AND state = 'writing'",
            &[&ids],
        )
        .await;
}

/// Stages `rows` as one part file and commits it with `claims`.
pub async fn write_part(
    client: &mut Client,
    archive: &Archive,
    window: (i32, NaiveDate),
    rows: &[&Sample],
    claims: &[i64],
) -> Result<u64, ArchiveError> {
    let staged = stage(client, archive, window, Kind::Part, rows).await?;
    commit(
        client,
        archive,
        window,
        std::slice::from_ref(&staged),
        claims,
        &[],
    )
    .await
}

/// Paths of every recorded file, any state.
pub async fn known_paths(client: &Client) -> Result<HashSet<String>, ArchiveError> {
    Ok(client
        .query("SELECT path FROM archive_files", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

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

use crate::{parquet, Archive, ArchiveError};

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

/// A batch a file claims, and how many of the window's rows of that batch
/// the file holds: the claim holds only if that is the ticket's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub batch_id: i64,
    pub rows: i64,
}

/// Why the tickets `claimed` (batch id, rows) do not redeem `claims`:
/// some batches were archived meanwhile (their tickets are gone), or the
/// file holds a different number of a batch's rows than were committed.
fn claim_failure(claims: &[Claim], claimed: &[(i64, i64)]) -> Option<ArchiveError> {
    if claimed.len() != claims.len() {
        return Some(ArchiveError::Claimed {
            still_queued: claimed.iter().map(|(id, _)| *id).collect(),
        });
    }
    let wrong: Vec<i64> = claimed
        .iter()
        .filter(|(id, rows)| !claims.iter().any(|c| c.batch_id == *id && c.rows == *rows))
        .map(|(id, _)| *id)
        .collect();
    (!wrong.is_empty()).then_some(ArchiveError::Incomplete { batches: wrong })
}

/// Makes `staged` live, claiming `claims` (batches queued for the window,
/// each with the rows the files hold of it) and retiring the live files
/// `replaces`. A claim holds only when the ticket is still queued and
/// counts exactly the rows the files hold; otherwise every staged file is
/// discarded, no ticket is taken, and the error says which batches to
/// leave out.
pub async fn commit(
    client: &mut Client,
    archive: &Archive,
    (site_id, day): (i32, NaiveDate),
    staged: &[Staged],
    claims: &[Claim],
    replaces: &[i64],
) -> Result<u64, ArchiveError> {
    let ids: Vec<i64> = staged.iter().map(|s| s.id).collect();
    let batch_ids: Vec<i64> = claims.iter().map(|c| c.batch_id).collect();
    let tx = client.transaction().await?;
    let claimed: Vec<(i64, i64)> = if claims.is_empty() {
        Vec::new()
    } else {
        tx.query(
            "DELETE FROM archive_queue WHERE site_id = $1 AND day = $2 AND batch_id = ANY($3) \
             RETURNING batch_id, rows::int8",
            &[&site_id, &day, &batch_ids],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
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
    let mut failure = claim_failure(claims, &claimed).or_else(|| {
        (retired.len() != replaces.len()).then_some(ArchiveError::Replaced { site_id, day })
    });
    if failure.is_none() {
        let made_live = tx
            .execute(
                "UPDATE archive_files SET state = 'live' WHERE id = ANY($1) AND state = 'writing'",
                &[&ids],
            )
            .await?;
        if made_live != ids.len() as u64 {
            failure = Some(ArchiveError::StagedGone { site_id, day });
        }
    }
    if let Some(e) = failure {
        drop(tx);
        discard(client, archive, staged).await;
        return Err(e);
    }
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
    claims: &[Claim],
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(batch_id: i64, rows: i64) -> Claim {
        Claim { batch_id, rows }
    }

    #[test]
    fn a_claim_holds_only_for_every_ticket_with_its_exact_rows() {
        let claims = [claim(1, 5), claim(2, 3)];
        assert!(claim_failure(&claims, &[(2, 3), (1, 5)]).is_none());
        assert!(claim_failure(&[], &[]).is_none());
        match claim_failure(&claims, &[(2, 3)]) {
            Some(ArchiveError::Claimed { still_queued }) => assert_eq!(still_queued, [2]),
            other => panic!("{other:?}"),
        }
        // The file holds 5 of batch 1's rows, the ticket counts 8.
        match claim_failure(&claims, &[(1, 8), (2, 3)]) {
            Some(ArchiveError::Incomplete { batches }) => assert_eq!(batches, [1]),
            other => panic!("{other:?}"),
        }
    }
}

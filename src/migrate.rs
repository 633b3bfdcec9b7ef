//! Applies `migrations/*.sql` in order, once each, recording the applied
//! versions and a checksum (an edited migration is refused, never re-run),
//! then the declared datasets' tables (`crate::datasets`). Concurrent
//! migrators (several `adit serve` starting together) serialise on an
//! advisory lock.

use adit_dataset::Catalog;
use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tracing::info;

/// Every migration, in order. New files are appended here.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    (
        "0002_rollups",
        include_str!("../migrations/0002_rollups.sql"),
    ),
    (
        "0003_archive",
        include_str!("../migrations/0003_archive.sql"),
    ),
    (
        "0004_key_rate_limits",
        include_str!("../migrations/0004_key_rate_limits.sql"),
    ),
    (
        "0005_control",
        include_str!("../migrations/0005_control.sql"),
    ),
    (
        "0006_body_digest",
        include_str!("../migrations/0006_body_digest.sql"),
    ),
    (
        "0007_archive_writer_pid",
        include_str!("../migrations/0007_archive_writer_pid.sql"),
    ),
    (
        "0008_rollup_failures_retention",
        include_str!("../migrations/0008_rollup_failures_retention.sql"),
    ),
    (
        "0009_key_prefix",
        include_str!("../migrations/0009_key_prefix.sql"),
    ),
    (
        "0010_agent_configs",
        include_str!("../migrations/0010_agent_configs.sql"),
    ),
    (
        "0011_datasets",
        include_str!("../migrations/0011_datasets.sql"),
    ),
    (
        "0012_dataset_uploads",
        include_str!("../migrations/0012_dataset_uploads.sql"),
    ),
    (
        "0013_dataset_archive",
        include_str!("../migrations/0013_dataset_archive.sql"),
    ),
    (
        "0014_partition_race",
        include_str!("../migrations/0014_partition_race.sql"),
    ),
    (
        "0015_inventory",
        include_str!("../migrations/0015_inventory.sql"),
    ),
    (
        "0016_alert_rules",
        include_str!("../migrations/0016_alert_rules.sql"),
    ),
];

/// Advisory lock key held while migrating ("adit" in ASCII).
const MIGRATION_LOCK: i64 = 0x6164_6974;

/// Applies the pending migrations and the shipped datasets' declarations;
/// returns the migration versions it applied.
pub async fn migrate(client: &mut Client) -> anyhow::Result<Vec<&'static str>> {
    let catalog = Catalog::shipped()?;
    Ok(migrate_with(client, &catalog).await?.0)
}

/// [`migrate`] with the datasets of `catalog` (the shipped ones and an
/// operator's own); returns the migration versions and what it did to
/// each dataset's table.
pub async fn migrate_with(
    client: &mut Client,
    catalog: &Catalog,
) -> anyhow::Result<(Vec<&'static str>, Vec<crate::datasets::Applied>)> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = async {
        let versions = apply_pending(client).await?;
        let datasets = crate::datasets::apply(client, catalog).await?;
        Ok((versions, datasets))
    }
    .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    result
}

async fn apply_pending(client: &mut Client) -> anyhow::Result<Vec<&'static str>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS adit_migrations (
                 version text PRIMARY KEY,
                 checksum bytea NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let checksum = Sha256::digest(sql.as_bytes()).to_vec();
        let row = client
            .query_opt(
                "SELECT checksum FROM adit_migrations WHERE version = $1",
                &[version],
            )
            .await?;
        if let Some(row) = row {
            let stored: Vec<u8> = row.get(0);
            if stored != checksum {
                bail!(
                    "migration {version} changed after it was applied; add a new migration instead"
                );
            }
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("applying migration {version}"))?;
        tx.execute(
            "INSERT INTO adit_migrations (version, checksum) VALUES ($1, $2)",
            &[version, &checksum],
        )
        .await?;
        tx.commit().await?;
        info!(version, "Applied migration.");
        applied.push(*version);
    }
    Ok(applied)
}

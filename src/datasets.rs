//! `adit migrate`'s second half: each declared dataset's table, created
//! from its declaration the first time, then kept in step with it — a new
//! nullable column added online, a change that would rewrite or lose data
//! refused with what to do instead. `dataset_declarations` records the
//! declaration applied (canonical JSON and its SHA-256), so an unchanged
//! declaration costs one lookup and `adit migrate` stays idempotent.
//!
//! Runs under the migration advisory lock (see `crate::migrate`).

use adit_dataset::{ddl, Catalog, Declared};
use adit_types::dataset::Dataset;
use adit_types::pg::describe;
use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;
use tracing::info;

/// How long an online change waits for the table's lock (a COPY in flight
/// holds it for one group commit) before giving up; `adit migrate` can
/// simply be run again.
const LOCK_TIMEOUT: &str = "5s";

/// What `adit migrate` did to one dataset's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Created from its declaration.
    Created { dataset: String },
    /// Brought in step with a changed declaration by these statements
    /// (none when only bounds, checks, retention or archiving changed).
    Changed {
        dataset: String,
        statements: Vec<String>,
    },
}

/// Applies every dataset of `catalog`; datasets recorded but not declared
/// in it (an operator's, when no directory is given) are left alone.
pub async fn apply(client: &mut Client, catalog: &Catalog) -> anyhow::Result<Vec<Applied>> {
    let mut out = Vec::new();
    for declared in catalog.iter() {
        if let Some(applied) = apply_one(client, declared)
            .await
            .with_context(|| format!("applying dataset {}", declared.name()))?
        {
            out.push(applied);
        }
    }
    Ok(out)
}

async fn apply_one(client: &mut Client, declared: &Declared) -> anyhow::Result<Option<Applied>> {
    let d = declared.dataset();
    let json = declared.canonical_json();
    let sha = Sha256::digest(json.as_bytes()).to_vec();
    let value: serde_json::Value = serde_json::from_str(&json)?;
    let tx = client.transaction().await?;
    let recorded = tx
        .query_opt(
            "SELECT declaration, sha256 FROM dataset_declarations WHERE dataset = $1 FOR UPDATE",
            &[&d.name],
        )
        .await?;
    let applied = match recorded {
        None => {
            let exists: bool = tx
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&ddl::quote(d.table())],
                )
                .await?
                .get(0);
            if exists {
                bail!(
                    "table {} already exists but adit did not create it for dataset {}; \
                     rename or drop that table, or declare the dataset with another table",
                    d.table(),
                    d.name
                );
            }
            for sql in ddl::create_table(d) {
                tx.batch_execute(&sql)
                    .await
                    .map_err(|e| anyhow::anyhow!("{sql}: {}", describe(&e)))?;
            }
            tx.execute(
                "INSERT INTO dataset_declarations (dataset, table_name, declaration, sha256) \
                 VALUES ($1, $2, $3, $4)",
                &[&d.name, &d.table(), &value, &sha],
            )
            .await?;
            Applied::Created {
                dataset: d.name.clone(),
            }
        }
        Some(row) if row.get::<_, Vec<u8>>(1) == sha => return Ok(None),
        Some(row) => {
            let old: Dataset =
                serde_json::from_value(row.get(0)).context("reading the recorded declaration")?;
            let statements = ddl::plan_change(&old, d)?;
            tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                .await?;
            for sql in &statements {
                tx.batch_execute(sql).await.map_err(|e| {
                    anyhow::anyhow!(
                        "{sql}: {} (run adit migrate again once the table is less busy)",
                        describe(&e)
                    )
                })?;
            }
            tx.execute(
                "UPDATE dataset_declarations SET declaration = $2, sha256 = $3, \
                 updated_at = now() WHERE dataset = $1",
                &[&d.name, &value, &sha],
            )
            .await?;
            Applied::Changed {
                dataset: d.name.clone(),
                statements,
            }
        }
    };
    tx.commit().await?;
    match &applied {
        Applied::Created { dataset } => info!(dataset, "Created dataset table."),
        Applied::Changed {
            dataset,
            statements,
        } => info!(
            dataset,
            changes = statements.len(),
            "Applied dataset declaration."
        ),
    }
    Ok(Some(applied))
}

//! `--verify` for a dataset: PostgreSQL must hold exactly the rows the
//! server acknowledged, for the run's sites and from the run's first row
//! time on.
//!
//! - append: each site gained as many rows as were acknowledged for it.
//! - upsert: each key acknowledged is stored once, with the values of the
//!   last version sent; no other key appeared. "Last" is exact where
//!   uploads did not overlap: a version is superseded by one whose upload
//!   was sent after its own was acknowledged. Versions whose uploads were
//!   in flight together may commit in either order, so either is right.
//!   Within one upload the last row of a key wins. The expected rows are
//!   decoded and COPYed (the dataset crate's decoder and encoder) into a
//!   temporary table and compared in SQL, column for column.
//!
//! An upload acknowledged with fewer rows than it carried leaves unknown
//! which rows went in: that site is a mismatch.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Instant;

use adit_dataset::{copy, ddl, decode, BodyFormat, Catalog, Declared, Limits};
use adit_types::dataset::{WriteMode, EXTRA_COLUMN, SITE_ID_COLUMN};
use anyhow::{bail, Context as _};
use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;
use tokio_postgres::Client;

use crate::runner::{Acked, AckedUpload, Target};

const BEFORE: &str = "adit_verify_before";
const EXPECTED: &str = "adit_verify_expected";

/// What the table held before the run, and how to compare after it.
pub struct Verifier {
    client: Client,
    declared: Arc<Declared>,
    sites: Vec<i32>,
    /// The run's earliest row time.
    since: chrono::DateTime<chrono::Utc>,
    /// Append: rows per site before the run.
    counts: HashMap<i32, i64>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("dataset", &self.declared.name())
            .field("sites", &self.sites)
            .finish()
    }
}

fn q(name: &str) -> String {
    ddl::quote(name)
}

impl Verifier {
    /// Takes the before-run snapshot of `dataset` for `sites` from `since`
    /// (Unix microseconds) on.
    pub async fn before(
        client: Client,
        dataset: &str,
        sites: Vec<i32>,
        since: i64,
    ) -> anyhow::Result<Self> {
        let declared = Catalog::shipped()?.get(dataset)?.clone();
        let since = chrono::DateTime::from_timestamp_micros(since).context("time out of range")?;
        let mut v = Self {
            client,
            declared,
            sites,
            since,
            counts: HashMap::new(),
        };
        match v.declared.dataset().mode {
            WriteMode::Append => v.counts = v.counts().await?,
            WriteMode::Upsert => {
                let (table, keys) = (q(v.table()), v.keys(""));
                v.client
                    .batch_execute(&format!(
                        "DROP TABLE IF EXISTS {BEFORE}; \
                         CREATE TEMP TABLE {BEFORE} AS SELECT {keys} FROM {table} WITH NO DATA"
                    ))
                    .await?;
                v.client
                    .execute(
                        &format!(
                            "INSERT INTO {BEFORE} SELECT {keys} FROM {table} \
                             WHERE {} = ANY($1) AND {} >= $2",
                            q(SITE_ID_COLUMN),
                            q(v.time())
                        ),
                        &[&v.sites, &v.since],
                    )
                    .await?;
            }
        }
        Ok(v)
    }

    fn table(&self) -> &str {
        self.declared.dataset().table()
    }

    fn time(&self) -> &str {
        &self.declared.dataset().time_column
    }

    /// `site_id` and the key columns, each prefixed with `alias`.
    fn keys(&self, alias: &str) -> String {
        std::iter::once(SITE_ID_COLUMN)
            .chain(self.declared.dataset().key.iter().map(String::as_str))
            .map(|c| format!("{alias}{}", q(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `a.k = b.k AND …` over `site_id` and the key.
    fn keys_equal(&self, a: &str, b: &str) -> String {
        std::iter::once(SITE_ID_COLUMN)
            .chain(self.declared.dataset().key.iter().map(String::as_str))
            .map(|c| format!("{a}.{0} = {b}.{0}", q(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    async fn counts(&self) -> anyhow::Result<HashMap<i32, i64>> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {0}, count(*) FROM {1} WHERE {0} = ANY($1) AND {2} >= $2 GROUP BY 1",
                    q(SITE_ID_COLUMN),
                    q(self.table()),
                    q(self.time())
                ),
                &[&self.sites, &self.since],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Compares the table with what was acknowledged; prints one line per
    /// site and returns whether all match.
    pub async fn after(
        &self,
        targets: &[Target],
        acked: &HashMap<i32, Acked>,
        log: &[AckedUpload],
    ) -> anyhow::Result<bool> {
        match self.declared.dataset().mode {
            WriteMode::Append => {
                let after = self.counts().await?;
                let gained: HashMap<i32, Acked> = self
                    .sites
                    .iter()
                    .map(|s| {
                        let rows = after.get(s).copied().unwrap_or(0)
                            - self.counts.get(s).copied().unwrap_or(0);
                        (
                            *s,
                            Acked {
                                rows,
                                accepted_sum: 0,
                            },
                        )
                    })
                    .collect();
                Ok(compare_counts(&self.sites, &gained, acked))
            }
            WriteMode::Upsert => self.after_upsert(targets, log).await,
        }
    }

    async fn after_upsert(&self, targets: &[Target], log: &[AckedUpload]) -> anyhow::Result<bool> {
        let d = self.declared.dataset();
        self.client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {EXPECTED}; CREATE TEMP TABLE {EXPECTED} (LIKE {})",
                q(d.table())
            ))
            .await?;
        let mut partial: HashMap<i32, u64> = HashMap::new();
        for (at, target) in targets.iter().enumerate() {
            let uploads: Vec<&AckedUpload> = log.iter().filter(|u| u.target == at).collect();
            let bodies = gunzip_bodies(target)?;
            for u in &uploads {
                if u.processed != target.bodies[u.body].rows {
                    *partial.entry(target.site_id).or_default() += 1;
                }
            }
            let rows = expected_rows(&self.declared, &bodies, &uploads)?;
            if rows.is_empty() {
                continue;
            }
            let mut expected =
                Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
            expected.push(b'[');
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    expected.push(b',');
                }
                expected.extend_from_slice(r.as_bytes());
            }
            expected.push(b']');
            self.copy_expected(target.site_id, &expected).await?;
        }
        self.client
            .batch_execute(&format!("ANALYZE {EXPECTED}; ANALYZE {BEFORE}"))
            .await?;
        let (table, exp) = (q(d.table()), EXPECTED);
        let per_site = |rows: Vec<tokio_postgres::Row>| -> HashMap<i32, i64> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let acked_keys = per_site(
            self.client
                .query(
                    &format!(
                        "SELECT site_id, count(*) FROM (SELECT DISTINCT {} FROM {exp}) e GROUP BY 1",
                        self.keys("")
                    ),
                    &[],
                )
                .await?,
        );
        let missing = per_site(
            self.client
                .query(
                    &format!(
                        "SELECT e.site_id, count(*) FROM (SELECT DISTINCT {} FROM {exp}) e \
                         WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {}) GROUP BY 1",
                        self.keys(""),
                        self.keys_equal("t", "e")
                    ),
                    &[],
                )
                .await?,
        );
        let columns: Vec<String> = d
            .columns
            .iter()
            .map(|c| q(&c.name))
            .chain(std::iter::once(q(EXTRA_COLUMN)))
            .collect();
        let row_of = |alias: &str| {
            let cols: Vec<String> = columns.iter().map(|c| format!("{alias}.{c}")).collect();
            format!("ROW({})", cols.join(", "))
        };
        let scope = format!(
            "t.{} = ANY($1) AND t.{} >= $2",
            q(SITE_ID_COLUMN),
            q(self.time())
        );
        let other_values = per_site(
            self.client
                .query(
                    &format!(
                        "SELECT t.site_id, count(*) FROM {table} t WHERE {scope} \
                         AND EXISTS (SELECT 1 FROM {exp} e WHERE {keq}) \
                         AND NOT EXISTS (SELECT 1 FROM {exp} e WHERE {keq} \
                             AND {} IS NOT DISTINCT FROM {}) GROUP BY 1",
                        row_of("t"),
                        row_of("e"),
                        keq = self.keys_equal("t", "e"),
                    ),
                    &[&self.sites, &self.since],
                )
                .await?,
        );
        let unexpected = per_site(
            self.client
                .query(
                    &format!(
                        "SELECT t.site_id, count(*) FROM {table} t WHERE {scope} \
                         AND NOT EXISTS (SELECT 1 FROM {exp} e WHERE {}) \
                         AND NOT EXISTS (SELECT 1 FROM {BEFORE} b WHERE {}) GROUP BY 1",
                        self.keys_equal("t", "e"),
                        self.keys_equal("t", "b"),
                    ),
                    &[&self.sites, &self.since],
                )
                .await?,
        );
        let mut all_ok = true;
        for site in &self.sites {
            let n = |m: &HashMap<i32, i64>| m.get(site).copied().unwrap_or(0);
            let partial = partial.get(site).copied().unwrap_or(0);
            let ok =
                n(&missing) == 0 && n(&other_values) == 0 && n(&unexpected) == 0 && partial == 0;
            all_ok &= ok;
            println!(
                "  verify site {site}: acked {} keys; stored: {} missing, {} not the last values \
                 sent, {} never acked{} {}",
                n(&acked_keys),
                n(&missing),
                n(&other_values),
                n(&unexpected),
                match partial {
                    0 => String::new(),
                    p => format!(", {p} uploads only partly accepted"),
                },
                if ok { "OK" } else { "MISMATCH" }
            );
        }
        Ok(all_ok)
    }

    /// COPYs `body` (rows of the dataset) for `site_id` into the expected
    /// table through the dataset crate's decoder and encoder.
    async fn copy_expected(&self, site_id: i32, body: &[u8]) -> anyhow::Result<()> {
        let d = &self.declared;
        let limits = Limits {
            max_rows: usize::MAX,
            ..Limits::default()
        };
        let now = chrono::Utc::now().timestamp_micros();
        let decoded = decode(d, body, BodyFormat::JsonArray, &limits, now)?;
        if let Some(e) = decoded.errors.first() {
            bail!(
                "{} expected rows do not decode (row {}, {}: {})",
                decoded.rejects.len(),
                e.index,
                e.field,
                e.reason
            );
        }
        let mut buf = BytesMut::new();
        copy::begin(&mut buf);
        copy::encode_batch(&mut buf, d, site_id, &decoded.batch);
        copy::end(&mut buf);
        let sink = self
            .client
            .copy_in::<_, Bytes>(&ddl::copy_into(d.dataset(), EXPECTED))
            .await?;
        futures_util::pin_mut!(sink);
        futures_util::SinkExt::send(&mut sink, buf.freeze()).await?;
        sink.finish().await?;
        Ok(())
    }
}

/// Append: each site's gained rows against its acknowledged rows; one line
/// per site.
pub fn compare_counts(
    sites: &[i32],
    gained: &HashMap<i32, Acked>,
    acked: &HashMap<i32, Acked>,
) -> bool {
    let mut all_ok = true;
    for site in sites {
        let got = gained.get(site).map_or(0, |a| a.rows);
        let want = acked.get(site).map_or(0, |a| a.rows);
        all_ok &= got == want;
        println!(
            "  verify site {site}: acked {want} rows, database gained {got} rows {}",
            if got == want { "OK" } else { "MISMATCH" }
        );
    }
    all_ok
}

/// Each body of `target`, decompressed.
fn gunzip_bodies(target: &Target) -> anyhow::Result<Vec<String>> {
    target
        .bodies
        .iter()
        .map(|b| {
            let mut out = String::with_capacity(b.raw_len as usize);
            flate2::read::GzDecoder::new(&b.gzip[..]).read_to_string(&mut out)?;
            Ok(out)
        })
        .collect()
}

/// The rows of a generated body: a JSON array's elements, or NDJSON lines.
fn body_rows(body: &str) -> anyhow::Result<Vec<&str>> {
    if body.trim_start().starts_with('[') {
        let rows: Vec<&RawValue> =
            serde_json::from_str(body).context("a generated body is not a JSON array")?;
        return Ok(rows.into_iter().map(RawValue::get).collect());
    }
    Ok(body.lines().filter(|l| !l.trim().is_empty()).collect())
}

/// One acknowledged version of a key.
struct Version<'a> {
    sent: Instant,
    acked: Instant,
    row: &'a str,
}

/// The rows the table may hold for the acknowledged `uploads` of one
/// target (its `bodies` decompressed): per key, every version not
/// superseded (another version's upload sent after this one's was acked),
/// each distinct row once.
pub fn expected_rows<'a>(
    d: &Declared,
    bodies: &'a [String],
    uploads: &[&AckedUpload],
) -> anyhow::Result<Vec<&'a str>> {
    let key_columns = &d.dataset().key;
    let parsed: Vec<Vec<&'a str>> = bodies
        .iter()
        .map(|b| body_rows(b))
        .collect::<anyhow::Result<_>>()?;
    let mut versions: HashMap<String, Vec<Version<'a>>> = HashMap::new();
    for u in uploads {
        // Within one upload the last row of a key wins.
        let mut last: HashMap<String, &'a str> = HashMap::new();
        for &row in &parsed[u.body] {
            let fields: HashMap<&str, &RawValue> =
                serde_json::from_str(row).context("a generated row is not an object")?;
            let mut key = String::new();
            for k in key_columns {
                key.push_str(fields.get(k.as_str()).map_or("null", |v| v.get()));
                key.push('\u{1}');
            }
            last.insert(key, row);
        }
        for (key, row) in last {
            versions.entry(key).or_default().push(Version {
                sent: u.sent,
                acked: u.acked,
                row,
            });
        }
    }
    let mut out = Vec::new();
    for vs in versions.values() {
        let latest_send = vs
            .iter()
            .map(|v| v.sent)
            .max()
            .expect("one version at least");
        let mut rows: Vec<&str> = vs
            .iter()
            .filter(|v| v.acked >= latest_send)
            .map(|v| v.row)
            .collect();
        rows.sort_unstable();
        rows.dedup();
        out.extend(rows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

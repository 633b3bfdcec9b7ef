//! The rows `adit load --dataset` sends, as a PostgreSQL binary COPY
//! stream for the dataset's table (`adit copy-file --dataset`, make
//! bench's raw baseline): each site's rows from the same seed and start,
//! an upload's worth per site in turn as the load sends them, through the
//! dataset crate's decoder and COPY encoder (`site_id`, the declared
//! columns, `extra`: the columns [`columns`] lists).

use std::io::Write;

use adit_dataset::{copy, ddl, decode, BodyFormat, Catalog, Declared, Limits};
use adit_types::dataset::WriteMode;
use anyhow::bail;
use bytes::BytesMut;

use super::Source;

/// What a COPY file holds.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dataset: String,
    pub sites: Vec<i32>,
    /// Rows of each site (`--rows` × `--bodies-per-site` of the load).
    pub rows_per_site: usize,
    /// Rows of one upload (`--rows` of the load).
    pub rows_per_upload: usize,
    pub seed: u64,
    /// The time the rows end before (Unix microseconds).
    pub now: i64,
}

fn declared(dataset: &str) -> anyhow::Result<std::sync::Arc<Declared>> {
    Ok(Catalog::shipped()?.get(dataset)?.clone())
}

/// The column list of the COPY (for psql's `\copy <table> (<list>)`).
pub fn columns(dataset: &str) -> anyhow::Result<String> {
    Ok(ddl::copy_columns(declared(dataset)?.dataset()))
}

/// Writes the plan's rows to `out` as one binary COPY stream; returns the
/// rows written.
pub fn write(plan: &Plan, out: &mut dyn Write) -> anyhow::Result<u64> {
    let d = declared(&plan.dataset)?;
    if plan.rows_per_upload == 0 {
        bail!("rows per upload must be positive");
    }
    let start = crate::dataset_start(&plan.dataset, plan.rows_per_site, plan.now)?;
    let mut sources: Vec<(i32, Source, usize)> = plan
        .sites
        .iter()
        .map(|&s| Ok((s, Source::new(&plan.dataset, s, plan.seed, start)?, 0)))
        .collect::<anyhow::Result<_>>()?;
    let limits = Limits {
        max_rows: usize::MAX,
        ..Limits::default()
    };
    let mut buf = BytesMut::with_capacity(4 << 20);
    copy::begin(&mut buf);
    let mut written = 0u64;
    loop {
        let mut any = false;
        for (site, source, done) in &mut sources {
            let n = plan.rows_per_upload.min(plan.rows_per_site - *done);
            if n == 0 {
                continue;
            }
            any = true;
            let json = source.json_array(n);
            let decoded = decode(&d, &json, BodyFormat::JsonArray, &limits, plan.now)?;
            if let Some(e) = decoded.errors.first() {
                bail!(
                    "generated {} row {} does not decode ({}: {})",
                    plan.dataset,
                    e.index,
                    e.field,
                    e.reason
                );
            }
            copy::encode_batch(&mut buf, &d, *site, &decoded.batch);
            out.write_all(&buf)?;
            buf.clear();
            *done += n;
            written += n as u64;
        }
        if !any {
            break;
        }
    }
    copy::end(&mut buf);
    out.write_all(&buf)?;
    out.flush()?;
    Ok(written)
}

/// A psql script that loads `file` (a COPY stream [`write`] made) the way
/// adit writes the dataset: straight into the table for an append
/// dataset; for an upsert dataset into the staging table and merged with
/// the same `INSERT … ON CONFLICT`, in one transaction.
pub fn psql_script(dataset: &str, file: &str) -> anyhow::Result<String> {
    let d = declared(dataset)?;
    let ds = d.dataset();
    let cols = ddl::copy_columns(ds);
    let file = file.replace('\'', "''");
    Ok(match ds.mode {
        WriteMode::Append => format!(
            "\\copy {} ({cols}) FROM '{file}' WITH (FORMAT binary)\n",
            ddl::quote(ds.table())
        ),
        WriteMode::Upsert => format!(
            "BEGIN;\n{};\n\\copy {} ({cols}) FROM '{file}' WITH (FORMAT binary)\n{};\nCOMMIT;\n",
            ddl::create_stage(ds),
            ddl::quote(&ddl::stage_table(ds)),
            ddl::upsert(ds)
        ),
    })
}

#[cfg(test)]
mod tests;

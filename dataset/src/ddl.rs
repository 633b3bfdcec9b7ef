//! The SQL a declaration stands for: its partitioned table and key index,
//! the COPY column list, the upsert's staging table and merge, and the
//! statements that move a table from one declaration to the next (only
//! the changes PostgreSQL makes without a rewrite; the rest is refused).
//!
//! Every name here comes from a checked declaration (safe identifiers,
//! quoted anyway), never from request text.

use adit_types::dataset::{Dataset, WriteMode, EXTRA_COLUMN, SITE_ID_COLUMN};

use crate::check::STAGE_ROW_COLUMN;
use crate::{Error, Result};

/// `"name"`: an identifier quoted (declared names are already safe; quoting
/// keeps words like `timestamp` plain column names).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_def(c: &adit_types::dataset::Column) -> String {
    let not_null = if c.required { " NOT NULL" } else { "" };
    format!("{} {}{not_null}", quote(&c.name), c.ty.sql())
}

/// The statements that create the dataset's table (partitioned by range
/// on its time column; partitions come later, on demand) and its key index.
pub fn create_table(d: &Dataset) -> Vec<String> {
    let table = quote(d.table());
    let mut cols = vec![format!("{} int4 NOT NULL", quote(SITE_ID_COLUMN))];
    cols.extend(d.columns.iter().map(column_def));
    cols.push(format!("{} jsonb", quote(EXTRA_COLUMN)));
    let mut out = vec![format!(
        "CREATE TABLE {table} (\n    {}\n) PARTITION BY RANGE ({})",
        cols.join(",\n    "),
        quote(&d.time_column)
    )];
    if let Some(index) = key_index(d) {
        out.push(index);
    }
    out
}

/// The key's index: unique (site, key) for an upsert dataset — the
/// conflict target of [`upsert`] — and a plain lookup index for an append
/// dataset with a key.
fn key_index(d: &Dataset) -> Option<String> {
    if d.key.is_empty() {
        return None;
    }
    let unique = if d.mode == WriteMode::Upsert {
        "UNIQUE "
    } else {
        ""
    };
    Some(format!(
        "CREATE {unique}INDEX {} ON {} ({})",
        quote(&format!("{}_key", d.table())),
        quote(d.table()),
        key_columns(d)
    ))
}

/// `site_id` and the key columns, quoted: the conflict target.
fn key_columns(d: &Dataset) -> String {
    std::iter::once(SITE_ID_COLUMN)
        .chain(d.key.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns a COPY of [`crate::copy::encode_batch`]'s tuples names:
/// `site_id`, the declared columns in order, `extra`.
pub fn copy_columns(d: &Dataset) -> String {
    std::iter::once(SITE_ID_COLUMN)
        .chain(d.columns.iter().map(|c| c.name.as_str()))
        .chain(std::iter::once(EXTRA_COLUMN))
        .map(quote)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `COPY <table> (<columns>) FROM STDIN (FORMAT binary)` for an append
/// dataset (an upsert dataset COPYs into [`stage_table`] instead).
pub fn copy_into(d: &Dataset, table: &str) -> String {
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        quote(table),
        copy_columns(d)
    )
}

/// The staging table an upsert batch is COPYed into, one per connection.
pub fn stage_table(d: &Dataset) -> String {
    format!("adit_stage_{}", d.table())
}

/// Creates [`stage_table`] on this connection if it is not there yet: a
/// temporary copy of the table's columns plus an arrival counter, emptied
/// at each COMMIT. After a declaration change, drop it
/// (`DROP TABLE IF EXISTS <stage>`) so it picks up new columns.
pub fn create_stage(d: &Dataset) -> String {
    format!(
        "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS, \
         {} bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DELETE ROWS",
        quote(&stage_table(d)),
        quote(d.table()),
        quote(STAGE_ROW_COLUMN)
    )
}

/// Merges the staged rows into the table in one statement: for rows of one
/// key in the batch the last one sent wins, and a row whose (site, key) is
/// stored replaces the stored row. Run after the COPY, in its transaction.
pub fn upsert(d: &Dataset) -> String {
    let cols = copy_columns(d);
    let keys = key_columns(d);
    let key_set: Vec<&str> = d.key.iter().map(String::as_str).collect();
    let updates: Vec<String> = d
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .filter(|c| !key_set.contains(c))
        .chain(std::iter::once(EXTRA_COLUMN))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
        .collect();
    format!(
        "INSERT INTO {table} ({cols}) \
         SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, {row} DESC \
         ON CONFLICT ({keys}) DO UPDATE SET {updates}",
        table = quote(d.table()),
        stage = quote(&stage_table(d)),
        row = quote(STAGE_ROW_COLUMN),
        updates = updates.join(", ")
    )
}

/// The statements that bring a table declared as `old` to `new` without a
/// rewrite (new nullable columns, a column no longer required), or the
/// change that cannot be made that way and what to do instead.
pub fn plan_change(old: &Dataset, new: &Dataset) -> Result<Vec<String>> {
    let unsafe_change = |what: String, fix: &str| Error::UnsafeChange {
        dataset: new.name.clone(),
        what,
        fix: fix.to_string(),
    };
    const NEW_DATASET: &str = "declare a new dataset (new name and table) and move to it: a \
                               table's name, time column, partitioning, key and write mode are \
                               fixed when it is created";
    let fixed = [
        ("table", old.table().to_string(), new.table().to_string()),
        (
            "time column",
            old.time_column.clone(),
            new.time_column.clone(),
        ),
        (
            "partition",
            old.partition.as_str().into(),
            new.partition.as_str().into(),
        ),
        ("key", old.key.join(", "), new.key.join(", ")),
        ("mode", format!("{:?}", old.mode), format!("{:?}", new.mode)),
    ];
    for (what, was, now) in fixed {
        if was != now {
            return Err(unsafe_change(
                format!("the {what} changed from [{was}] to [{now}]"),
                NEW_DATASET,
            ));
        }
    }
    let table = quote(new.table());
    let mut out = Vec::new();
    for c in &old.columns {
        let Some(n) = new.column(&c.name) else {
            return Err(unsafe_change(
                format!("column {:?} was removed from the declaration", c.name),
                "put it back (with required = false if rows no longer carry it): adit never \
                 drops a column and the data in it",
            ));
        };
        if n.ty != c.ty {
            return Err(unsafe_change(
                format!("column {:?} changed type from {} to {}", c.name, c.ty, n.ty),
                "keep the old type and add a column with a new name and the new type: \
                 changing a type rewrites the whole table",
            ));
        }
        if c.required && !n.required {
            out.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {} DROP NOT NULL",
                quote(&c.name)
            ));
        } else if !c.required && n.required {
            return Err(unsafe_change(
                format!("column {:?} became required", c.name),
                "keep it required = false: rows already stored may have no value for it",
            ));
        }
    }
    for n in &new.columns {
        if old.column(&n.name).is_some() {
            continue;
        }
        if n.required {
            return Err(unsafe_change(
                format!("new column {:?} is required", n.name),
                "add it with required = false: rows already stored have no value for it",
            ));
        }
        out.push(format!(
            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {}",
            column_def(n)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

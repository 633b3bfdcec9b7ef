//! The checks a declaration passes when it is loaded, each answered with
//! what is wrong in words an operator can act on.

use std::collections::HashSet;

use adit_types::dataset::{
    interval_micros, Check, ColumnType, Dataset, WriteMode, EXTRA_COLUMN, SITE_ID_COLUMN,
};

/// adit's own tables (and those planned beside the datasets): a dataset
/// may not take their names.
pub const RESERVED_TABLES: &[&str] = &[
    "active_alerts",
    "agent_command_logs",
    "agent_commands",
    "agent_configs",
    "agent_heartbeats",
    "alert_rules",
    "archive_files",
    "archive_queue",
    "collector_agents",
    "collector_keys",
    "dataset_declarations",
    "events",
    "idempotency_keys",
    "ingest_rejects",
    "miner_live",
    "miner_telemetry",
    "miner_telemetry_daily",
    "miner_telemetry_hourly",
    "rollup_dirty_days",
    "rollup_dirty_hours",
    "service_info",
    "site_telemetry_hourly",
    "upload_log",
];

/// Longest table name: its partitions add `_pYYYYMMDD` within PostgreSQL's
/// 63-byte identifiers.
pub const MAX_TABLE_NAME_LEN: usize = 53;
/// Longest column name (PostgreSQL's identifier limit).
pub const MAX_COLUMN_NAME_LEN: usize = 63;
/// A column the upsert's staging table adds; no declared column may use it.
pub const STAGE_ROW_COLUMN: &str = "adit_row";

/// Why a name cannot be a SQL identifier adit generates unquoted-safe:
/// lower-case ASCII letters, digits and `_`, not starting with a digit.
pub fn unsafe_identifier(name: &str, max_len: usize) -> Option<String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Some(format!(
            "{name:?} is not a safe SQL name: use lower-case letters, digits and _, \
             starting with a letter or _"
        ));
    }
    (name.len() > max_len).then(|| format!("{name:?} is longer than {max_len} characters"))
}

/// Why a table name is taken by adit itself (or looks like a partition).
fn reserved_table(name: &str) -> Option<String> {
    if RESERVED_TABLES.contains(&name) || name.starts_with("adit_") || name.starts_with("pg_") {
        return Some(format!(
            "{name:?} is one of adit's own tables; choose another name"
        ));
    }
    let partition_like = name
        .rsplit_once("_p")
        .is_some_and(|(_, tail)| tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()));
    partition_like.then(|| format!("{name:?} looks like a partition name (_pYYYYMMDD)"))
}

/// Checks a parsed declaration; the first problem found, in words.
pub fn check(d: &Dataset) -> Result<(), String> {
    if let Some(e) = unsafe_identifier(&d.name, MAX_TABLE_NAME_LEN) {
        return Err(format!("name: {e}"));
    }
    if let Some(e) = unsafe_identifier(d.table(), MAX_TABLE_NAME_LEN) {
        return Err(format!("table: {e}"));
    }
    if let Some(e) = reserved_table(d.table()) {
        return Err(format!("table: {e}"));
    }
    if d.columns.is_empty() {
        return Err("no columns declared".into());
    }
    let mut names = HashSet::new();
    for c in &d.columns {
        if let Some(e) = unsafe_identifier(&c.name, MAX_COLUMN_NAME_LEN) {
            return Err(format!("column {e}"));
        }
        if [SITE_ID_COLUMN, EXTRA_COLUMN, STAGE_ROW_COLUMN].contains(&c.name.as_str()) {
            return Err(format!(
                "column {:?}: adit adds this column to every dataset table; rename yours",
                c.name
            ));
        }
        if !names.insert(c.name.as_str()) {
            return Err(format!("column {:?} is declared twice", c.name));
        }
        check_bounds(c)?;
    }
    let time = d
        .column(&d.time_column)
        .ok_or_else(|| format!("time column {:?} is not declared", d.time_column))?;
    if time.ty != ColumnType::Timestamptz {
        return Err(format!(
            "time column {:?} is {}, not timestamptz",
            d.time_column, time.ty
        ));
    }
    if !time.required {
        return Err(format!(
            "time column {:?} must be required = true",
            d.time_column
        ));
    }
    check_key(d)?;
    for s in &d.sort {
        if d.column(s).is_none() {
            return Err(format!("sort column {s:?} is not declared"));
        }
    }
    d.checks.iter().try_for_each(|c| check_rule(d, c))
}

fn check_bounds(c: &adit_types::dataset::Column) -> Result<(), String> {
    let name = &c.name;
    if (c.min.is_some() || c.max.is_some()) && !c.ty.is_numeric() {
        return Err(format!(
            "column {name:?}: min/max apply to numbers, not {}",
            c.ty
        ));
    }
    for b in [c.min, c.max].into_iter().flatten() {
        if !b.is_finite() {
            return Err(format!("column {name:?}: bounds must be finite numbers"));
        }
    }
    if let (Some(lo), Some(hi)) = (c.min, c.max) {
        if lo > hi {
            return Err(format!("column {name:?}: min {lo} is above max {hi}"));
        }
    }
    if let Some(n) = c.max_length {
        let fits = matches!(
            c.ty,
            ColumnType::Text | ColumnType::TextArray | ColumnType::DoubleArray | ColumnType::Jsonb
        );
        if !fits {
            return Err(format!(
                "column {name:?}: max_length applies to text, arrays and jsonb, not {}",
                c.ty
            ));
        }
        if n == 0 {
            return Err(format!("column {name:?}: max_length must be at least 1"));
        }
    }
    if !c.allowed.is_empty() {
        if c.ty != ColumnType::Text {
            return Err(format!(
                "column {name:?}: allowed values apply to text, not {}",
                c.ty
            ));
        }
        if c.allowed.iter().any(|v| v.contains('\0')) {
            return Err(format!("column {name:?}: an allowed value contains NUL"));
        }
    }
    Ok(())
}

fn check_key(d: &Dataset) -> Result<(), String> {
    let mut seen = HashSet::new();
    for k in &d.key {
        let c = d
            .column(k)
            .ok_or_else(|| format!("key column {k:?} is not declared"))?;
        if !seen.insert(k.as_str()) {
            return Err(format!("key column {k:?} is named twice"));
        }
        if matches!(
            c.ty,
            ColumnType::TextArray | ColumnType::DoubleArray | ColumnType::Jsonb
        ) {
            return Err(format!("key column {k:?} is {}; a key holds scalars", c.ty));
        }
        if d.mode == WriteMode::Upsert && !c.required {
            return Err(format!(
                "key column {k:?} must be required = true for an upsert dataset \
                 (NULL never matches a stored key)"
            ));
        }
    }
    if d.mode == WriteMode::Upsert {
        if d.key.is_empty() {
            return Err("mode = \"upsert\" needs a key".into());
        }
        if !d.key.contains(&d.time_column) {
            return Err(format!(
                "an upsert key must include the time column {:?} (a unique index on a \
                 partitioned table holds its partition column)",
                d.time_column
            ));
        }
    }
    Ok(())
}

fn check_rule(d: &Dataset, rule: &Check) -> Result<(), String> {
    let scalar_number = |name: &str| -> Result<(), String> {
        let c = d
            .column(name)
            .ok_or_else(|| format!("check: column {name:?} is not declared"))?;
        match c.ty {
            ColumnType::Int
            | ColumnType::BigInt
            | ColumnType::Double
            | ColumnType::Numeric { .. } => Ok(()),
            other => Err(format!("check: column {name:?} is {other}, not a number")),
        }
    };
    match rule {
        Check::NotLess { column, than } | Check::NotGreater { column, than } => {
            scalar_number(column)?;
            if than.is_empty() {
                return Err(format!("check on {column:?}: `than` names no column"));
            }
            than.iter().try_for_each(|c| scalar_number(c))
        }
        Check::AlignedTo {
            column,
            interval_column,
        } => {
            let c = d
                .column(column)
                .ok_or_else(|| format!("check: column {column:?} is not declared"))?;
            if c.ty != ColumnType::Timestamptz {
                return Err(format!(
                    "check: aligned column {column:?} is not timestamptz"
                ));
            }
            let i = d
                .column(interval_column)
                .ok_or_else(|| format!("check: column {interval_column:?} is not declared"))?;
            if i.ty != ColumnType::Text {
                return Err(format!(
                    "check: interval column {interval_column:?} is not text"
                ));
            }
            match i.allowed.iter().find(|v| interval_micros(v).is_none()) {
                Some(v) => Err(format!(
                    "check: allowed value {v:?} of {interval_column:?} is not an interval \
                     (30s, 1m, 4h, 1d)"
                )),
                None => Ok(()),
            }
        }
    }
}

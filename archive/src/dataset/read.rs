//! A dataset window read back from PostgreSQL as Arrow record batches with
//! the declaration's schema ([`Declared::schema`]), in the declaration's
//! sort order.
//!
//! The rows come through one row stream (`query_raw`, rows decoded as they
//! arrive): `numeric` and `jsonb` as their text (a numeric's text is read
//! exactly into the batch's decimal), the rest in their binary forms. A
//! binary `COPY … TO STDOUT` of the same query is faster to read (1.74 s
//! against 2.75 s with the Arrow building, for a million metrics rows;
//! `measure_export_rows_per_s` in tests/dataset_archive.rs) but the whole
//! export took 4.4 s: decoding COPY's binary numerics and arrays by hand
//! would save at most a fifth of it.

use std::sync::Arc;

use adit_dataset::ddl::quote;
use adit_dataset::numeric::parse_decimal;
use adit_dataset::Declared;
use adit_types::dataset::{ColumnType, EXTRA_COLUMN, SITE_ID_COLUMN};
use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, FieldRef};
use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, RowStream};

use crate::export::day_bounds;
use crate::ArchiveError;

/// `SELECT <columns> FROM <table> WHERE <site and day> ORDER BY <sort>`:
/// the declared columns in order then `extra` (numeric and jsonb cast to
/// text), text sort columns compared byte by byte (as Parquet readers do).
pub fn select_window(d: &Declared) -> String {
    let ds = d.dataset();
    let mut cols: Vec<String> = ds
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Numeric { .. } | ColumnType::Jsonb => format!("{}::text", quote(&c.name)),
            _ => quote(&c.name),
        })
        .collect();
    cols.push(format!("{}::text", quote(EXTRA_COLUMN)));
    let order: Vec<String> = ds
        .sort_columns()
        .into_iter()
        .map(|name| match ds.column(name).map(|c| c.ty) {
            Some(ColumnType::Text) => format!("{} COLLATE \"C\"", quote(name)),
            _ => quote(name),
        })
        .collect();
    format!(
        "SELECT {} FROM {} WHERE {} = $1 AND {time} >= $2 AND {time} < $3 ORDER BY {}",
        cols.join(", "),
        quote(ds.table()),
        quote(SITE_ID_COLUMN),
        order.join(", "),
        time = quote(&ds.time_column),
    )
}

/// The window's rows as a stream (turn them into batches with [`Batcher`]).
pub async fn window_rows(
    client: &tokio_postgres::Client,
    d: &Declared,
    site_id: i32,
    day: NaiveDate,
) -> Result<RowStream, ArchiveError> {
    let (from, to) = day_bounds(day);
    let params: [&(dyn ToSql + Sync); 3] = [&site_id, &from, &to];
    Ok(client.query_raw(&select_window(d), params).await?)
}

/// One column being built.
enum Builder {
    Bool(BooleanBuilder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Numeric(Decimal128Builder, u8, u8),
    Time(TimestampMicrosecondBuilder),
    Text(StringBuilder),
    TextList(ListBuilder<StringBuilder>),
    DoubleList(ListBuilder<Float64Builder>),
}

fn list_field(f: &FieldRef) -> FieldRef {
    match f.data_type() {
        DataType::List(item) => item.clone(),
        _ => unreachable!("an array column's Arrow type is a list"),
    }
}

impl Builder {
    fn new(ty: ColumnType, field: &FieldRef) -> Self {
        match ty {
            ColumnType::Bool => Self::Bool(BooleanBuilder::new()),
            ColumnType::Int => Self::Int(Int32Builder::new()),
            ColumnType::BigInt => Self::BigInt(Int64Builder::new()),
            ColumnType::Double => Self::Double(Float64Builder::new()),
            ColumnType::Numeric { precision, scale } => Self::Numeric(
                Decimal128Builder::new()
                    .with_precision_and_scale(precision, scale as i8)
                    .expect("a checked declaration's precision and scale"),
                precision,
                scale,
            ),
            ColumnType::Timestamptz => {
                Self::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            ColumnType::Text | ColumnType::Jsonb => Self::Text(StringBuilder::new()),
            ColumnType::TextArray => {
                Self::TextList(ListBuilder::new(StringBuilder::new()).with_field(list_field(field)))
            }
            ColumnType::DoubleArray => Self::DoubleList(
                ListBuilder::new(Float64Builder::new()).with_field(list_field(field)),
            ),
        }
    }

    /// Appends column `i` of `row`; returns the time in µs for a timestamp.
    fn push(&mut self, row: &Row, i: usize) -> Result<Option<i64>, ArchiveError> {
        match self {
            Self::Bool(b) => b.append_option(row.try_get::<_, Option<bool>>(i)?),
            Self::Int(b) => b.append_option(row.try_get::<_, Option<i32>>(i)?),
            Self::BigInt(b) => b.append_option(row.try_get::<_, Option<i64>>(i)?),
            Self::Double(b) => b.append_option(row.try_get::<_, Option<f64>>(i)?),
            Self::Numeric(b, precision, scale) => match row.try_get::<_, Option<&str>>(i)? {
                Some(text) => {
                    b.append_value(parse_decimal(text, *precision, *scale).map_err(|reason| {
                        ArchiveError::Arrow(ArrowError::ParseError(format!(
                            "numeric {text:?} read back from PostgreSQL: {reason}"
                        )))
                    })?)
                }
                None => b.append_null(),
            },
            Self::Time(b) => {
                let t = row.try_get::<_, Option<DateTime<Utc>>>(i)?;
                let micros = t.map(|t| t.timestamp_micros());
                b.append_option(micros);
                return Ok(micros);
            }
            Self::Text(b) => b.append_option(row.try_get::<_, Option<&str>>(i)?),
            Self::TextList(b) => match row.try_get::<_, Option<Vec<&str>>>(i)? {
                Some(items) => {
                    for s in items {
                        b.values().append_value(s);
                    }
                    b.append(true);
                }
                None => b.append(false),
            },
            Self::DoubleList(b) => match row.try_get::<_, Option<Vec<f64>>>(i)? {
                Some(items) => {
                    b.values().append_slice(&items);
                    b.append(true);
                }
                None => b.append(false),
            },
        }
        Ok(None)
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::BigInt(b) => Arc::new(b.finish()),
            Self::Double(b) => Arc::new(b.finish()),
            Self::Numeric(b, ..) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
            Self::TextList(b) => Arc::new(b.finish()),
            Self::DoubleList(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows of [`window_rows`] into record batches with `d`'s schema, summing
/// the time column on the way.
pub struct Batcher<'a> {
    declared: &'a Declared,
    builders: Vec<Builder>,
    time_index: usize,
    rows: usize,
    /// Sum of the time column (µs since the Unix epoch) of the rows pushed
    /// since the last [`Batcher::finish`].
    pub ts_sum: i128,
}

impl std::fmt::Debug for Batcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("dataset", &self.declared.name())
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<'a> Batcher<'a> {
    pub fn new(d: &'a Declared) -> Self {
        let ds = d.dataset();
        let schema = d.schema();
        let mut builders: Vec<Builder> = ds
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| Builder::new(c.ty, &schema.fields()[i]))
            .collect();
        builders.push(Builder::Text(StringBuilder::new()));
        Self {
            declared: d,
            builders,
            time_index: ds
                .column_index(&ds.time_column)
                .expect("a checked time column"),
            rows: 0,
            ts_sum: 0,
        }
    }

    pub fn push(&mut self, row: &Row) -> Result<(), ArchiveError> {
        for (i, b) in self.builders.iter_mut().enumerate() {
            if let Some(t) = b.push(row, i)? {
                if i == self.time_index {
                    self.ts_sum += i128::from(t);
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows pushed so far as one batch (and a fresh start).
    pub fn finish(&mut self) -> Result<RecordBatch, ArchiveError> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        self.ts_sum = 0;
        Ok(RecordBatch::try_new(
            self.declared.schema().clone(),
            arrays,
        )?)
    }
}

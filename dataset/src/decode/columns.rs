//! One Arrow builder per declared column (plus `extra`): accepted rows are
//! appended column by column, and the batch is the builders finished.

use std::sync::Arc;

use adit_types::dataset::ColumnType;
use arrow_array::builder::{
    BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};

use super::value::Cell;
use crate::declared::list_item;
use crate::Result;

#[derive(Debug)]
pub(crate) enum Builder {
    Bool(BooleanBuilder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Numeric(Decimal128Builder),
    Time(TimestampMicrosecondBuilder),
    /// `text` and `jsonb` (JSON text).
    Text(StringBuilder),
    TextList(ListBuilder<StringBuilder>),
    DoubleList(ListBuilder<Float64Builder>),
}

impl Builder {
    pub(crate) fn new(ty: ColumnType, rows: usize) -> Self {
        match ty {
            ColumnType::Bool => Self::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Int => Self::Int(Int32Builder::with_capacity(rows)),
            ColumnType::BigInt => Self::BigInt(Int64Builder::with_capacity(rows)),
            ColumnType::Double => Self::Double(Float64Builder::with_capacity(rows)),
            ColumnType::Numeric { precision, scale } => Self::Numeric(
                Decimal128Builder::with_capacity(rows)
                    .with_precision_and_scale(precision, scale as i8)
                    .expect("precision 1-38 and scale ≤ precision are checked on load"),
            ),
            ColumnType::Timestamptz => {
                Self::Time(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
            ColumnType::Text | ColumnType::Jsonb => {
                Self::Text(StringBuilder::with_capacity(rows, rows * 16))
            }
            ColumnType::TextArray => Self::TextList(
                ListBuilder::with_capacity(StringBuilder::new(), rows)
                    .with_field(list_item(DataType::Utf8)),
            ),
            ColumnType::DoubleArray => Self::DoubleList(
                ListBuilder::with_capacity(Float64Builder::new(), rows)
                    .with_field(list_item(DataType::Float64)),
            ),
        }
    }

    /// Appends one checked value (its type matches the column's: the
    /// decoder made it for this column).
    pub(crate) fn push(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (Self::Bool(b), Cell::Bool(x)) => b.append_value(*x),
            (Self::Int(b), Cell::Int(x)) => b.append_value(*x as i32),
            (Self::BigInt(b), Cell::Int(x)) => b.append_value(*x),
            (Self::Double(b), Cell::Double(x)) => b.append_value(*x),
            (Self::Numeric(b), Cell::Numeric(x)) => b.append_value(*x),
            (Self::Time(b), Cell::Time(x)) => b.append_value(*x),
            (Self::Text(b), Cell::Text(x)) => b.append_value(x),
            (Self::Text(b), Cell::Json(x)) => b.append_value(x),
            (Self::TextList(b), Cell::TextList(xs)) => {
                for x in xs {
                    b.values().append_value(x);
                }
                b.append(true);
            }
            (Self::DoubleList(b), Cell::DoubleList(xs)) => {
                b.values().append_slice(xs);
                b.append(true);
            }
            (this, _) => this.push_null(),
        }
    }

    pub(crate) fn push_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int(b) => b.append_null(),
            Self::BigInt(b) => b.append_null(),
            Self::Double(b) => b.append_null(),
            Self::Numeric(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::Text(b) => b.append_null(),
            Self::TextList(b) => b.append(false),
            Self::DoubleList(b) => b.append(false),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::BigInt(b) => Arc::new(b.finish()),
            Self::Double(b) => Arc::new(b.finish()),
            Self::Numeric(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
            Self::TextList(b) => Arc::new(b.finish()),
            Self::DoubleList(b) => Arc::new(b.finish()),
        }
    }
}

/// The builders of one batch, in schema order (`extra` last).
#[derive(Debug)]
pub(crate) struct Columns {
    pub(crate) builders: Vec<Builder>,
    pub(crate) extra: StringBuilder,
}

impl Columns {
    pub(crate) fn new(types: impl Iterator<Item = ColumnType>, rows: usize) -> Self {
        Self {
            builders: types.map(|t| Builder::new(t, rows)).collect(),
            extra: StringBuilder::new(),
        }
    }

    pub(crate) fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        arrays.push(Arc::new(self.extra.finish()));
        Ok(RecordBatch::try_new(schema.clone(), arrays)?)
    }
}

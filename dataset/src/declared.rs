//! A checked declaration with what the engine derives from it once: the
//! Arrow schema of its batches and the column lookup the decoder uses.

use std::collections::HashMap;
use std::sync::Arc;

use adit_types::dataset::{ColumnType, Dataset, EXTRA_COLUMN};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Arrow's canonical extension name for JSON text, set on `jsonb` columns
/// (and `extra`) so Parquet readers know the strings are JSON.
pub const JSON_EXTENSION: &str = "arrow.json";
const EXTENSION_KEY: &str = "ARROW:extension:name";

/// One declared dataset, checked, ready to decode and encode batches.
#[derive(Debug)]
pub struct Declared {
    dataset: Dataset,
    pub(crate) shipped: bool,
    schema: SchemaRef,
    lookup: HashMap<String, usize>,
}

impl Declared {
    /// Wraps a declaration that [`crate::check::check`] accepted.
    pub(crate) fn new(dataset: Dataset, shipped: bool) -> Self {
        let schema = arrow_schema(&dataset);
        let lookup = dataset
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Self {
            dataset,
            shipped,
            schema,
            lookup,
        }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn name(&self) -> &str {
        &self.dataset.name
    }

    /// Whether it is one of the datasets shipped with adit.
    pub fn is_shipped(&self) -> bool {
        self.shipped
    }

    /// The schema of its record batches: the declared columns in order,
    /// then `extra` (JSON text). `site_id` is not in it: a batch belongs to
    /// one upload, whose key gives the site.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The declaration as `dataset_declarations` records it: compact JSON,
    /// fields in declaration-struct order (the same text for the same
    /// declaration, whatever its file's layout or comments).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(&self.dataset).expect("a declaration serialises")
    }

    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.lookup.get(name).copied()
    }
}

/// The Arrow type a column's values take.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Text | ColumnType::Jsonb => DataType::Utf8,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Numeric { precision, scale } => DataType::Decimal128(precision, scale as i8),
        ColumnType::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::TextArray => DataType::List(list_item(DataType::Utf8)),
        ColumnType::DoubleArray => DataType::List(list_item(DataType::Float64)),
    }
}

/// The item field of a list column: items are never null.
pub(crate) fn list_item(ty: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", ty, false))
}

fn json_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable).with_metadata(
        [(EXTENSION_KEY.to_string(), JSON_EXTENSION.to_string())]
            .into_iter()
            .collect::<HashMap<_, _>>(),
    )
}

fn arrow_schema(d: &Dataset) -> SchemaRef {
    let mut fields: Vec<Field> = d
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Jsonb => json_field(&c.name, !c.required),
            ty => Field::new(&c.name, arrow_type(ty), !c.required),
        })
        .collect();
    fields.push(json_field(EXTRA_COLUMN, true));
    Arc::new(Schema::new(fields))
}

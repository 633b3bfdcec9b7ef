//! Binary COPY encoding straight from a decoded batch's Arrow arrays into
//! one reused buffer: `site_id`, the declared columns in declaration order,
//! then `extra` — the list [`crate::ddl::copy_columns`] names.

use adit_types::dataset::{ColumnType, Dataset};
use adit_types::PG_EPOCH_OFFSET_MICROS;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{
    Array, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use bytes::{BufMut, BytesMut};

use crate::declared::Declared;
use crate::numeric::put_numeric;

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const OID_TEXT: u32 = 25;
const OID_FLOAT8: u32 = 701;
/// `jsonb`'s binary form: a version byte, then the text.
const JSONB_VERSION: u8 = 1;

/// Starts a binary COPY stream.
pub fn begin(buf: &mut BytesMut) {
    buf.put_slice(HEADER);
}

/// Ends a binary COPY stream.
pub fn end(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// A batch column, downcast once.
enum Col<'a> {
    Bool(&'a BooleanArray),
    Int(&'a Int32Array),
    BigInt(&'a Int64Array),
    Double(&'a Float64Array),
    Numeric(&'a Decimal128Array, u8),
    Time(&'a TimestampMicrosecondArray),
    Text(&'a StringArray),
    Json(&'a StringArray),
    TextList(&'a ListArray),
    DoubleList(&'a ListArray),
}

impl<'a> Col<'a> {
    fn new(ty: ColumnType, array: &'a dyn Array) -> Self {
        match ty {
            ColumnType::Bool => Self::Bool(array.as_boolean()),
            ColumnType::Int => Self::Int(array.as_primitive::<Int32Type>()),
            ColumnType::BigInt => Self::BigInt(array.as_primitive::<Int64Type>()),
            ColumnType::Double => Self::Double(array.as_primitive::<Float64Type>()),
            ColumnType::Numeric { scale, .. } => {
                Self::Numeric(array.as_primitive::<Decimal128Type>(), scale)
            }
            ColumnType::Timestamptz => Self::Time(array.as_primitive::<TimestampMicrosecondType>()),
            ColumnType::Text => Self::Text(array.as_string::<i32>()),
            ColumnType::Jsonb => Self::Json(array.as_string::<i32>()),
            ColumnType::TextArray => Self::TextList(array.as_list::<i32>()),
            ColumnType::DoubleArray => Self::DoubleList(array.as_list::<i32>()),
        }
    }

    fn put(&self, buf: &mut BytesMut, row: usize) {
        let array: &dyn Array = match self {
            Self::Bool(a) => *a,
            Self::Int(a) => *a,
            Self::BigInt(a) => *a,
            Self::Double(a) => *a,
            Self::Numeric(a, _) => *a,
            Self::Time(a) => *a,
            Self::Text(a) | Self::Json(a) => *a,
            Self::TextList(a) | Self::DoubleList(a) => *a,
        };
        if array.is_null(row) {
            buf.put_i32(-1);
            return;
        }
        match self {
            Self::Bool(a) => {
                buf.put_i32(1);
                buf.put_u8(u8::from(a.value(row)));
            }
            Self::Int(a) => {
                buf.put_i32(4);
                buf.put_i32(a.value(row));
            }
            Self::BigInt(a) => {
                buf.put_i32(8);
                buf.put_i64(a.value(row));
            }
            Self::Double(a) => {
                buf.put_i32(8);
                buf.put_f64(a.value(row));
            }
            Self::Numeric(a, scale) => put_numeric(buf, a.value(row), *scale),
            Self::Time(a) => {
                buf.put_i32(8);
                buf.put_i64(a.value(row) - PG_EPOCH_OFFSET_MICROS);
            }
            Self::Text(a) => {
                let s = a.value(row);
                buf.put_i32(s.len() as i32);
                buf.put_slice(s.as_bytes());
            }
            Self::Json(a) => jsonb(buf, a.value(row)),
            Self::TextList(list) => {
                let items = list.value(row);
                let items = items.as_string::<i32>();
                let bytes: usize = (0..items.len()).map(|k| 4 + items.value(k).len()).sum();
                array_header(buf, OID_TEXT, items.len(), bytes);
                for k in 0..items.len() {
                    let s = items.value(k);
                    buf.put_i32(s.len() as i32);
                    buf.put_slice(s.as_bytes());
                }
            }
            Self::DoubleList(list) => {
                let items = list.value(row);
                let items = items.as_primitive::<Float64Type>();
                array_header(buf, OID_FLOAT8, items.len(), items.len() * 12);
                for &x in items.values().iter() {
                    buf.put_i32(8);
                    buf.put_f64(x);
                }
            }
        }
    }
}

/// Appends every row of `batch` (a batch [`crate::decode()`] made for
/// `d`) with `site_id`, as binary COPY tuples.
pub fn encode_batch(buf: &mut BytesMut, d: &Declared, site_id: i32, batch: &RecordBatch) {
    encode_rows(buf, d.dataset(), site_id, batch);
}

/// [`encode_batch`] from the declaration alone (what the writer holds).
pub fn encode_rows(buf: &mut BytesMut, d: &Dataset, site_id: i32, batch: &RecordBatch) {
    let declared = &d.columns;
    let fields = (declared.len() + 2) as i16;
    let mut cols: Vec<Col<'_>> = declared
        .iter()
        .enumerate()
        .map(|(i, c)| Col::new(c.ty, batch.column(i).as_ref()))
        .collect();
    cols.push(Col::Json(batch.column(declared.len()).as_string::<i32>()));
    buf.reserve(batch.num_rows() * (8 + declared.len() * 12));
    for row in 0..batch.num_rows() {
        buf.put_i16(fields);
        buf.put_i32(4);
        buf.put_i32(site_id);
        for c in &cols {
            c.put(buf, row);
        }
    }
}

fn jsonb(buf: &mut BytesMut, text: &str) {
    buf.put_i32(text.len() as i32 + 1);
    buf.put_u8(JSONB_VERSION);
    buf.put_slice(text.as_bytes());
}

/// A one-dimensional array's length and header (no NULL items); `bytes`
/// is the size of the items that follow.
fn array_header(buf: &mut BytesMut, oid: u32, items: usize, bytes: usize) {
    if items == 0 {
        buf.put_i32(12);
        buf.put_i32(0); // no dimensions
        buf.put_i32(0); // no NULLs
        buf.put_u32(oid);
        return;
    }
    buf.put_i32((20 + bytes) as i32);
    buf.put_i32(1); // one dimension
    buf.put_i32(0); // no NULLs
    buf.put_u32(oid);
    buf.put_i32(items as i32);
    buf.put_i32(1); // lower bound
}

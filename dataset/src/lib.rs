//! adit's dataset engine: a declared dataset (a TOML file: columns, types,
//! bounds, time column, partitioning, retention, append or upsert by key)
//! drives one generic path for its rows.
//!
//! Declarations come from the files shipped in `datasets/` (compiled in)
//! and an operator's directory ([`Catalog`]); each is checked when loaded.
//! A decompressed upload body (JSON array or NDJSON) becomes a typed Arrow
//! [`RecordBatch`](arrow_array::RecordBatch) plus refused rows ([`decode()`]);
//! the batch is encoded for binary COPY ([`copy`]) into the table [`ddl`]
//! creates, partitioned as [`partition`] says. No HTTP and no database
//! here: the server, the writer and `adit migrate` run what this crate
//! builds.

pub mod catalog;
pub mod check;
pub mod copy;
pub mod ddl;
mod declared;
pub mod decode;
mod error;
pub mod numeric;
pub mod partition;

pub use catalog::{parse_declaration, Catalog, SHIPPED};
pub use declared::{arrow_type, Declared, JSON_EXTENSION};
pub use decode::{decode, BodyFormat, Decoded, Limits};
pub use error::{Error, Result};
pub use partition::{partitions, Partition, ENSURE_PARTITION_SQL};

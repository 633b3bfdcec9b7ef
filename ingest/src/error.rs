//! Why a whole body is refused. Row-level problems are not errors: they
//! become `RowError`s in the answer. The server maps each variant to its
//! HTTP status and machine code.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("body is not valid JSON: {reason}")]
    MalformedJson { reason: String },
    #[error("body must be a JSON array of samples")]
    NotAnArray,
    #[error("JSON nesting deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("the {encoding} body is corrupt or truncated: {reason}")]
    BadEncoding {
        encoding: &'static str,
        reason: String,
    },
    #[error("decompressed body larger than {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("batch of {rows} rows exceeds the limit of {limit} rows; split it")]
    TooManyRows { rows: usize, limit: usize },
    #[error("unsupported Content-Encoding {0:?}; use gzip, deflate, zstd or identity")]
    UnsupportedEncoding(String),
    /// A compressed body whose `Content-Encoding` does not say so.
    #[error(
        "the body is {encoding} data but Content-Encoding does not say so; add the header \
         Content-Encoding: {encoding}"
    )]
    MissingContentEncoding { encoding: &'static str },
}

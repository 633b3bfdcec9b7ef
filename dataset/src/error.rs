//! What the dataset engine refuses as a whole: a declaration that cannot be
//! used, a change `adit migrate` cannot make safely, an unknown dataset, a
//! body that is not rows at all. A row that breaks a rule is not an error:
//! it becomes that row's reject.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No dataset of that name is declared.
    #[error("no dataset named {name:?} is declared")]
    UnknownDataset { name: String },
    /// A declaration file that cannot be used as it is.
    #[error("{}: {reason}", source_name.display())]
    InvalidDeclaration {
        source_name: PathBuf,
        reason: String,
    },
    /// The operator's datasets directory cannot be read.
    #[error("cannot read the datasets directory {}: {reason}", dir.display())]
    DatasetsDir { dir: PathBuf, reason: String },
    /// A declaration changed in a way the table cannot follow online.
    #[error("dataset {dataset}: {what}; {fix}")]
    UnsafeChange {
        dataset: String,
        what: String,
        fix: String,
    },
    /// The body is not JSON (or not the shape the format says).
    #[error("body is not valid JSON: {reason}")]
    MalformedJson { reason: String },
    #[error("JSON nesting deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("batch of {rows} rows exceeds the limit of {limit} rows; split it")]
    TooManyRows { rows: usize, limit: usize },
    /// Arrow refused a batch built from checked values (a bug).
    #[error("cannot build the record batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl Error {
    /// The machine-readable code of the error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownDataset { .. } => "unknown_dataset",
            Self::InvalidDeclaration { .. } | Self::DatasetsDir { .. } => "invalid_declaration",
            Self::UnsafeChange { .. } => "unsafe_change",
            Self::MalformedJson { .. } | Self::TooDeep { .. } => "malformed_json",
            Self::TooManyRows { .. } => "payload_too_large",
            Self::Arrow(_) => "internal",
        }
    }

    pub(crate) fn invalid(source_name: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::InvalidDeclaration {
            source_name: source_name.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_contract_names() {
        let e = Error::UnknownDataset { name: "x".into() };
        assert_eq!(e.code(), "unknown_dataset");
        assert_eq!(e.to_string(), "no dataset named \"x\" is declared");
        let e = Error::invalid("datasets/x.toml", "key column \"y\" is not declared");
        assert_eq!(e.code(), "invalid_declaration");
        assert_eq!(
            e.to_string(),
            "datasets/x.toml: key column \"y\" is not declared"
        );
        let e = Error::UnsafeChange {
            dataset: "x".into(),
            what: "column a changed type".into(),
            fix: "add a new column".into(),
        };
        assert_eq!(e.code(), "unsafe_change");
    }
}

//! Control-plane failures. The server gives each its HTTP status and
//! machine code; [`ControlError::client_message`] and
//! [`ControlError::details`] are what the client reads.

use serde_json::Value;

pub type Result<T, E = ControlError> = std::result::Result<T, E>;

/// One problem with one field of a request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Detail {
    pub field: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("invalid request: {reason}")]
    BadRequest {
        reason: String,
        details: Vec<Detail>,
    },
    /// A value PostgreSQL would refuse to store (a NUL character in text
    /// or JSON): refused before any query, never a 503 to retry.
    #[error("{field}: {reason}")]
    Unstorable { field: String, reason: String },
    #[error("not found")]
    NotFound,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("forbidden: {reason}")]
    Forbidden { reason: String },
    #[error("{reason}")]
    Conflict { reason: String },
    /// A field of a collector configuration document that is unknown or
    /// out of range (`field` is its path, e.g. `config.retry_policy.max_retries`).
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// A collector configuration with this version exists already.
    #[error("configuration version {version:?} exists already; versions are never reused")]
    VersionExists { version: String },
    /// A configuration change its state does not allow (deprecate a
    /// draft, activate an active one).
    #[error("cannot {action} configuration {version:?}: it is {status}")]
    InvalidTransition {
        version: String,
        action: &'static str,
        status: String,
    },
    /// The database's own words (message and SQLSTATE) go to the log,
    /// never to the client (see [`ControlError::client_message`]).
    #[error("database unavailable: {reason}")]
    Database { reason: String },
}

impl ControlError {
    pub fn bad(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::BadRequest {
            reason: format!("{field}: {reason}"),
            details: vec![Detail {
                field: field.into(),
                reason,
            }],
        }
    }

    /// What the client reads: a database failure is not described to it.
    pub fn client_message(&self) -> String {
        match self {
            Self::Database { .. } => "database unavailable; retry later".into(),
            _ => self.to_string(),
        }
    }

    /// The `details` of the error envelope: the fields at fault.
    pub fn details(&self) -> Value {
        match self {
            Self::BadRequest { details, .. } => serde_json::to_value(details).unwrap_or_default(),
            Self::Unstorable { field, reason } | Self::InvalidField { field, reason } => {
                serde_json::json!([{ "field": field, "reason": reason }])
            }
            Self::NotFound
            | Self::MethodNotAllowed
            | Self::Forbidden { .. }
            | Self::Conflict { .. }
            | Self::VersionExists { .. }
            | Self::InvalidTransition { .. }
            | Self::Database { .. } => serde_json::json!([]),
        }
    }
}

impl From<tokio_postgres::Error> for ControlError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database {
            reason: adit_types::pg::describe(&e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ControlError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Database {
            reason: match &e {
                deadpool_postgres::PoolError::Backend(db) => adit_types::pg::describe(db),
                _ => e.to_string(),
            },
        }
    }
}

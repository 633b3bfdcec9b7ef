//! Control-plane failures, each with its HTTP status and machine code.

use serde_json::Value;

use crate::reply::Reply;

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
    /// The database's own words (message and SQLSTATE) go to the log,
    /// never to the client (see [`ControlError::into_reply`]).
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

    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest { .. } | Self::Unstorable { .. } => 400,
            Self::Forbidden { .. } => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict { .. } => 409,
            Self::Database { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "invalid_request",
            Self::Unstorable { .. } => "unstorable_value",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict { .. } => "conflict",
            Self::Database { .. } => "database_unavailable",
        }
    }

    /// What the client reads: a database failure is not described to it.
    fn client_message(&self) -> String {
        match self {
            Self::Database { .. } => "database unavailable; retry later".into(),
            _ => self.to_string(),
        }
    }

    pub fn into_reply(self) -> Reply {
        if let Self::Database { reason } = &self {
            tracing::error!(%reason, "Control-plane request failed.");
        } else {
            tracing::warn!(code = self.code(), error = %self, "Control-plane request refused.");
        }
        let details = match &self {
            Self::BadRequest { details, .. } => serde_json::to_value(details).unwrap_or_default(),
            Self::Unstorable { field, reason } => serde_json::json!([{
                "field": field, "reason": reason
            }]),
            _ => serde_json::json!([]),
        };
        Reply::envelope(
            self.status(),
            false,
            &[
                ("error", Value::String(self.client_message())),
                ("code", Value::String(self.code().into())),
                ("details", details),
            ],
        )
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

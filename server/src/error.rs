//! Every way a request can fail, from every stage, and the one place that
//! gives each its HTTP status and machine-readable code: [`Error::status`]
//! and [`Error::code`] are exhaustive matches (no catch-all arm), so a new
//! variant in any stage does not compile until it has both. Row-level
//! problems are not errors: they become `RowError`s in a 200 answer.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::Value;

use adit_control::ControlError;
use adit_dataset::Error as DatasetError;
use adit_ingest::Error as IngestError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, unknown or revoked credential; `reason` says which.
    #[error("Invalid API key: {reason}")]
    InvalidKey { reason: &'static str },
    /// A valid admin token where a collector key belongs.
    #[error(
        "an admin token was sent where a collector key belongs: send the site's collector \
         key (hsc_...) in X-Collector-Key; admin tokens go in Authorization: Bearer on the \
         admin endpoints"
    )]
    AdminTokenAsCollectorKey,
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("could not read the request body: {reason}")]
    BodyRead { reason: String },
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("unsupported Content-Type {0:?}; send Content-Type: application/json (or none)")]
    UnsupportedMediaType(String),
    #[error("Idempotency-Key must be 1-128 printable ASCII characters")]
    InvalidIdempotencyKey,
    #[error("Idempotency-Key already used with a different body")]
    IdempotencyConflict,
    #[error("too many requests for this key; retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("requests in flight hold the whole memory budget ({budget_kib} KiB); retry later")]
    Overloaded { budget_kib: usize },
    /// A connection past `--max-connections`: answered and closed by the
    /// listener before any request is read.
    #[error("too many open connections; retry later")]
    TooManyConnections,
    #[error("ingest queue is full ({capacity} uploads waiting); retry later")]
    QueueFull { capacity: usize },
    #[error("server is shutting down; retry later")]
    ShuttingDown,
    #[error("database unavailable; retry later")]
    DatabaseUnavailable { reason: String },
    /// Every pooled connection stayed busy for the pool wait timeout.
    #[error("all database connections are busy (waited {waited_ms} ms); retry later")]
    DatabaseBusy { waited_ms: u64 },
    #[error("not ready: {reason}")]
    NotReady { reason: String },
    #[error("internal error; the upload was not written")]
    Internal { reason: String },
    /// The ingest stage could not read the body.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The control plane refused or failed a request.
    #[error("{}", .0.client_message())]
    Control(#[from] ControlError),
    /// The dataset engine refused a dataset upload whole.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "1";

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidKey { .. } => StatusCode::UNAUTHORIZED,
            Self::AdminTokenAsCollectorKey => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyRead { .. } | Self::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::IdempotencyConflict => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QueueFull { .. }
            | Self::Overloaded { .. }
            | Self::TooManyConnections
            | Self::ShuttingDown
            | Self::DatabaseUnavailable { .. }
            | Self::DatabaseBusy { .. }
            | Self::NotReady { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Ingest(e) => match e {
                IngestError::MalformedJson { .. }
                | IngestError::NotAnArray
                | IngestError::TooDeep { .. }
                | IngestError::BadEncoding { .. } => StatusCode::BAD_REQUEST,
                IngestError::DecompressedTooLarge { .. } | IngestError::TooManyRows { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                IngestError::UnsupportedEncoding(_)
                | IngestError::MissingContentEncoding { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            },
            Self::Control(e) => match e {
                ControlError::BadRequest { .. }
                | ControlError::Unstorable { .. }
                | ControlError::InvalidField { .. } => StatusCode::BAD_REQUEST,
                ControlError::Forbidden { .. } => StatusCode::FORBIDDEN,
                ControlError::NotFound => StatusCode::NOT_FOUND,
                ControlError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                ControlError::Conflict { .. }
                | ControlError::VersionExists { .. }
                | ControlError::InvalidTransition { .. } => StatusCode::CONFLICT,
                ControlError::Database { .. } => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::Dataset(e) => match e {
                DatasetError::UnknownDataset { .. } => StatusCode::NOT_FOUND,
                DatasetError::MalformedJson { .. } | DatasetError::TooDeep { .. } => {
                    StatusCode::BAD_REQUEST
                }
                DatasetError::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                DatasetError::InvalidDeclaration { .. }
                | DatasetError::DatasetsDir { .. }
                | DatasetError::UnsafeChange { .. }
                | DatasetError::Arrow(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The machine-readable `code` of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidKey { .. } => "invalid_key",
            Self::AdminTokenAsCollectorKey => "admin_token_not_collector_key",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BodyRead { .. } => "bad_request",
            Self::BodyTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::QueueFull { .. } => "queue_full",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded { .. } | Self::TooManyConnections => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::DatabaseUnavailable { .. } => "database_unavailable",
            Self::DatabaseBusy { .. } => "database_busy",
            Self::NotReady { .. } => "not_ready",
            Self::Internal { .. } => "internal_error",
            Self::Ingest(e) => match e {
                IngestError::MalformedJson { .. }
                | IngestError::NotAnArray
                | IngestError::TooDeep { .. } => "malformed_json",
                IngestError::BadEncoding { .. } => "bad_encoding",
                IngestError::DecompressedTooLarge { .. } | IngestError::TooManyRows { .. } => {
                    "payload_too_large"
                }
                IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
                IngestError::MissingContentEncoding { .. } => "missing_content_encoding",
            },
            Self::Control(e) => match e {
                ControlError::BadRequest { .. } => "invalid_request",
                ControlError::Unstorable { .. } => "unstorable_value",
                ControlError::Forbidden { .. } => "forbidden",
                ControlError::NotFound => "not_found",
                ControlError::MethodNotAllowed => "method_not_allowed",
                ControlError::Conflict { .. } => "conflict",
                ControlError::InvalidField { .. } => "invalid_field",
                ControlError::VersionExists { .. } => "version_exists",
                ControlError::InvalidTransition { .. } => "invalid_transition",
                ControlError::Database { .. } => "database_unavailable",
            },
            Self::Dataset(e) => match e {
                DatasetError::UnknownDataset { .. } => "unknown_dataset",
                DatasetError::MalformedJson { .. } | DatasetError::TooDeep { .. } => {
                    "malformed_json"
                }
                DatasetError::TooManyRows { .. } => "payload_too_large",
                DatasetError::InvalidDeclaration { .. }
                | DatasetError::DatasetsDir { .. }
                | DatasetError::UnsafeChange { .. }
                | DatasetError::Arrow(_) => "internal_error",
            },
        }
    }

    /// The database's own words, for the log only.
    fn database_reason(&self) -> &str {
        match self {
            Self::DatabaseUnavailable { reason }
            | Self::Control(ControlError::Database { reason }) => reason,
            _ => "",
        }
    }

    /// The `details` member: the fields at fault, when a stage names them.
    fn details(&self) -> Value {
        match self {
            Self::Control(e) => e.details(),
            _ => Value::Array(Vec::new()),
        }
    }

    /// The error envelope (`{"success":false,"error":…,"code":…,"details":[…]}`),
    /// with `Retry-After` on 429 and 503.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if self.status().is_server_error() {
            let database = self.database_reason();
            tracing::error!(code = self.code(), error = %self, database, "Request failed.");
        } else {
            tracing::warn!(code = self.code(), error = %self, "Request refused.");
        }
        self.response()
    }

    /// [`Error::into_response`] without the log line (for answers sent
    /// in bulk, such as refused connections, which are counted instead).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut resp = json_response(self.status(), self.body());
        if let Some(v) = self.retry_after() {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
        resp
    }

    /// The error envelope.
    pub fn body(&self) -> String {
        let mut body = String::with_capacity(128);
        body.push_str(r#"{"success":false,"error":"#);
        adit_types::push_json_string(&mut body, &self.to_string());
        body.push_str(r#","code":""#);
        body.push_str(self.code());
        body.push_str(r#"","details":"#);
        body.push_str(&self.details().to_string());
        body.push('}');
        body
    }

    /// `Retry-After`: a rate limit's own wait, one second on every 503.
    pub fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Self::RateLimited { retry_after_s } => Some(HeaderValue::from(*retry_after_s)),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                Some(HeaderValue::from_static(RETRY_AFTER_SECS))
            }
            _ => None,
        }
    }
}

impl From<adit_writer::Error> for Error {
    fn from(e: adit_writer::Error) -> Self {
        use adit_writer::Error as W;
        match e {
            W::QueueFull { capacity } => Self::QueueFull { capacity },
            W::ShuttingDown => Self::ShuttingDown,
            W::Unavailable { .. } | W::Database(_) => Self::DatabaseUnavailable {
                reason: e.to_string(),
            },
            W::CopyCount { .. } | W::Refused { .. } => Self::Internal {
                reason: e.to_string(),
            },
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::DatabaseUnavailable {
            reason: adit_types::pg::describe(&e),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::DatabaseUnavailable {
            reason: match &e {
                deadpool_postgres::PoolError::Backend(db) => adit_types::pg::describe(db),
                _ => e.to_string(),
            },
        }
    }
}

/// A JSON response with the given status and body.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_unavailable_carries_retry_after() {
        let resp = Error::QueueFull { capacity: 4 }.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
        let resp = Error::InvalidKey { reason: "missing" }.into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().get(RETRY_AFTER).is_none());
    }
}

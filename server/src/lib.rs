//! adit's HTTP server: the only crate that knows HTTP.
//!
//! [`listen::run`] accepts connections (TLS, connection and header limits)
//! and hands each request to [`handle`], a plain function of a request and
//! the [`State`] (most tests call it in-process). Routing is in [`routes`]:
//! uploads ([`upload`]: telemetry, and the declared [`datasets`]) are authenticated by their collector key
//! ([`auth`]), read within limits ([`body`], [`limits`]), turned into a
//! typed upload by the ingest stage and answered once the writer has
//! committed them; control-plane requests ([`control`]) are authenticated
//! with the credential their endpoint takes and answered by
//! `adit_control`. Every failure of every stage becomes one [`Error`],
//! whose one exhaustive match gives its status and code. `/metrics`
//! ([`metrics`]) renders the counters each stage exposes.

pub mod auth;
pub mod body;
pub mod cert;
pub mod control;
pub mod datasets;
mod error;
mod inventory;
pub mod limits;
pub mod listen;
pub mod metrics;
mod routes;
pub mod upload;

use std::time::Duration;

use adit_ingest::validate::Rules;
use adit_writer::idempotency::InFlight;
use adit_writer::WriterHandle;

use crate::auth::KeyCache;
use crate::limits::{ByteBudget, Rate, RateLimiter};

pub use error::{json_response, Error, Result};
pub use listen::{run, tls_acceptor};
pub use routes::{handle, OPENAPI_JSON};

/// Request limits (row-level ones live in [`Rules`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Body size as received (compressed).
    pub max_body_bytes: usize,
    /// Body size after decompression.
    pub max_decompressed_bytes: usize,
    /// Time a client gets to send its request headers (and to finish the
    /// TLS handshake).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) read, in bytes.
    pub max_header_bytes: usize,
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// A kept-alive connection with no request in flight is closed after
    /// this long. The header read timeout also runs while a connection
    /// waits for its next request, so the shorter of the two applies.
    pub keep_alive_timeout: Duration,
    /// Time a client gets to send its whole body.
    pub body_read_timeout: Duration,
    /// How long an in-process graceful shutdown waits for open requests.
    pub shutdown_grace: Duration,
    /// Bytes uploads in flight may hold (compressed body plus twice the
    /// decompressed size); beyond it uploads get 503 at once.
    pub inflight_budget_bytes: usize,
    /// Default per-key upload rate (a key's own `uploads_per_s` wins).
    pub rate: Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 << 20,
            max_decompressed_bytes: adit_ingest::decode::DEFAULT_MAX_DECOMPRESSED_BYTES,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
            max_connections: 10_000,
            keep_alive_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            inflight_budget_bytes: 192 << 20,
            rate: Rate {
                per_s: 50.0,
                burst: 100.0,
            },
        }
    }
}

/// Everything a request needs.
#[derive(Debug)]
pub struct State {
    pub keys: KeyCache,
    /// Connections for lookups (keys, idempotency, readiness).
    pub pool: deadpool_postgres::Pool,
    pub writer: WriterHandle,
    pub limits: Limits,
    pub rules: Rules,
    pub inflight: InFlight,
    pub metrics: crate::metrics::Metrics,
    pub rate_limiter: RateLimiter,
    pub budget: ByteBudget,
    /// The archive's counters, when archiving.
    pub archive: Option<std::sync::Arc<adit_archive::ArchiveStats>>,
    /// Commands, heartbeats, live state, alerts and the read API.
    pub control: adit_control::Control,
    /// The declared datasets taking uploads at `/api/datasets/{name}/upload`.
    pub datasets: crate::datasets::Datasets,
}

/// The client's address, put in each request's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

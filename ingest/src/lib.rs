//! adit's front door.
//!
//! Data comes from edge collectors as HTTP uploads (gzip/deflate/zstd JSON
//! arrays of per-miner samples). The front door authenticates the
//! collector key ([`auth`]), reads and decompresses the body within limits
//! ([`decode`]), parses and validates rows into typed samples
//! ([`validate`]), and hands each upload to the writer's bounded queue.
//! It answers only after the writer reports the upload committed;
//! [`idempotency`] makes retries exactly-once.

pub mod auth;
pub mod decode;
mod error;
pub mod fuzzing;
pub mod idempotency;
pub mod json;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod server;
pub mod validate;

pub use error::{json_response, Error, Result};
pub use listen::{run, tls_acceptor};
pub use server::{handle, Limits, State};

//! Commands for miners, kept in `agent_commands`: admins create, cancel
//! and list them ([`admin`]); a site's collector fetches its pending ones
//! and reports results ([`collector`]); what a new command must be is in
//! [`validate`], and the clocks that requeue, expire and delete them in
//! [`expiry`].
//!
//! States: `pending → sent → completed | failed | expired | cancelled`. A
//! sent command with no result within its timeout goes back to pending up
//! to `max_retries` times (while it has not passed `expires_at`), then
//! expires. Every change is one row in `agent_command_logs`.

mod admin;
mod collector;
mod expiry;
mod validate;

pub use admin::{cancel, create, create_batch, history, MAX_BATCH};
pub use collector::{pending, result};
pub use expiry::{expire_history, sweep};
pub use validate::{check_params, NewCommand, COMMAND_TYPES, FREQUENCY_MHZ};

use crate::{ControlError, Result};

/// A JSON request body; what serde refuses is a 400 naming the body.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ControlError::bad("body", e.to_string()))
}

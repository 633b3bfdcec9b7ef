//! The edge collector: it runs on a farm's edge box, asks each miner on the
//! LAN for its state over the CGMiner API (TCP 4028), and turns the answers
//! into adit's upload samples.
//!
//! - [`cgminer`]: the client (one TCP request per command, timeouts,
//!   retries, size limit, a whitelist of commands, the firmware quirks);
//! - [`normalize`]: Antminer and Whatsminer answers → one [`Sample`];
//! - [`sample`]: the sample as `POST /api/collector/upload` takes it;
//! - [`cycle`]: the miner list, and one polling cycle over the whole farm;
//! - [`spool`]: the durable on-disk queue of upload batches;
//! - [`upload`]: batches to adit (split at the row limit, retries, drain);
//! - [`agent`]: the collector at run time (poll, upload, command and
//!   heartbeat loops; central configuration), started in process with
//!   [`agent::Agent::start`] or run to a shutdown signal with [`agent::run`];
//! - [`settings`]: local settings over central configuration over defaults;
//! - [`options`]: the binary's flags, environment variables and TOML file;
//! - [`metrics`]: the collector's own `/metrics`; [`host`]: the box's load;
//! - [`tls`]: HTTPS to adit (system roots, an optional CA file).
//!
//! Nothing here touches PostgreSQL, Arrow or Parquet: those are adit's.

pub mod agent;
pub mod cgminer;
pub mod cycle;
pub mod error;
pub mod host;
pub mod metrics;
pub mod normalize;
pub mod options;
mod poll;
pub mod sample;
pub mod settings;
pub mod spool;
pub mod tls;
pub mod upload;

pub use error::{Error, Result};
pub use sample::{Board, Sample};

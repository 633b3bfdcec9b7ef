//! Options of `adit load`.

use std::path::PathBuf;

/// Simulated edge collectors against a running adit.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Base URL of the adit to load (loopback only unless --allow-remote).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// PostgreSQL URL: for --create-sites, --verify and resolving --key sites.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Collector keys to upload with, one simulated site each (repeat the
    /// flag, or comma-separate them in ADIT_LOAD_KEYS).
    #[arg(
        long = "key",
        env = "ADIT_LOAD_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub keys: Vec<String>,
    /// Create this many site keys first (needs DATABASE_URL).
    #[arg(long)]
    pub create_sites: Option<usize>,
    /// First site id when creating keys.
    #[arg(long, default_value_t = 1000)]
    pub site_base: i32,
    /// Miners per simulated site = rows per upload (with --dataset: the
    /// dataset's rows per upload).
    #[arg(long, default_value_t = 1000)]
    pub rows: usize,
    /// Upload generated rows of this shipped dataset (metrics_aggregated,
    /// market_data, agent_analysis_results, strategy_executions) to
    /// `POST /api/datasets/{name}/upload` instead of miner telemetry. The
    /// rows of each site start far enough back that all its bodies end
    /// before now.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Seed of the generated dataset rows: the same seed, sites, --rows and
    /// --bodies-per-site give the same rows (as `adit copy-file --dataset`).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// With --dataset: send each body as NDJSON (one row per line,
    /// `Content-Type: application/x-ndjson`) instead of a JSON array.
    #[arg(long, requires = "dataset")]
    pub ndjson: bool,
    /// Closed model: uploads in flight at once (ignored with --rate).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Open model: start this many uploads per second, whatever the answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop starting uploads after this long.
    #[arg(long, default_value = "10s")]
    pub duration: humantime::Duration,
    /// Stop after this many uploads (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub requests: u64,
    /// Distinct pre-built bodies per site (collection rounds).
    #[arg(long, default_value_t = 4)]
    pub bodies_per_site: usize,
    /// Put a per-row `timestamp` in the samples, one collection interval
    /// apart per round (else the server stamps arrival time).
    #[arg(long)]
    pub timestamps: bool,
    /// Retries of an upload answered 503/429 or lost to the network; every
    /// attempt carries the same Idempotency-Key, so retries never duplicate.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Per-attempt timeout.
    #[arg(long, default_value = "30s")]
    pub timeout: humantime::Duration,
    /// After the run, check through PostgreSQL (DATABASE_URL) that exactly
    /// the acknowledged rows arrived (count and checksum per site; for an
    /// upsert dataset, each acknowledged key once with the last values
    /// sent); exit non-zero on any difference.
    #[arg(long)]
    pub verify: bool,
    /// Write one CSV line per upload to this file (`start_s,start_unix,latency_ms,status,retries`;
    /// start_s counts from the run's start): to see when the slow ones happened.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Write the final report as JSON to this file.
    #[arg(long)]
    pub json_report: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Open model: most uploads in flight before new ones are counted as
    /// not sent (keeps the generator's memory bounded).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
}

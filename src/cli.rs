//! The command line: `adit serve | migrate | keys | load`.
//! Every serve option also reads an `ADIT_…` environment variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::bytesize::ByteSize;
use crate::serve::ServeConfig;

#[derive(Debug, Parser)]
#[command(
    name = "adit",
    version,
    about = "Ingest service for mining-fleet telemetry: gzip JSON uploads in, \
             partitioned PostgreSQL out.",
    long_about = "adit receives batches of per-miner samples from edge collectors \
                  (POST /api/collector/upload), validates them and writes them to \
                  partitioned PostgreSQL tables with binary COPY, answering each \
                  upload only once its rows are committed.\n\n\
                  Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change the level."
)]
pub struct Cli {
    /// Log lines as text, or as one JSON object per line (for log shippers).
    #[arg(long, global = true, env = "ADIT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written to stderr: `text`, human-readable lines
/// (coloured on a terminal), or `json`, one JSON object per line
/// (timestamp, level, fields, target). The variants carry no doc comments:
/// clap would show them as per-value help and turn `--help` into its long
/// layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP ingest server.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and the declared datasets' tables,
    /// then exit.
    Migrate(MigrateArgs),
    /// Manage collector keys and admin tokens.
    Keys {
        #[command(flatten)]
        db: GroupDbArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Load-test a running adit with simulated edge collectors.
    Load(adit_load::LoadArgs),
    /// Watch a running adit: rows/s, uploads, latency, queue, archive,
    /// rollups and the busiest sites, refreshed every second (q quits).
    Top(crate::top::TopArgs),
    /// The Parquet archive: verify it against PostgreSQL, list, compact,
    /// backfill.
    Archive {
        #[command(flatten)]
        db: GroupDbArgs,
        #[command(flatten)]
        archive: ArchiveUrl,
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// Rollups: `adit rollup run [--from T --to T]` computes the hourly and
    /// daily aggregates now (a backfill when a range is given).
    Rollup {
        #[command(flatten)]
        db: GroupDbArgs,
        #[command(subcommand)]
        command: RollupCommand,
    },
    /// The configuration file: `adit config print` shows what `adit serve`
    /// would run with and where each value comes from.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Benchmarking: write simulated rows (miner telemetry, or a shipped
    /// dataset's with --dataset) as a binary COPY file and print the column
    /// list (used by `make bench` for the raw psql baseline).
    #[command(hide = true)]
    CopyFile(crate::benchcmd::CopyFileArgs),
    /// Benchmarking: `make bench`'s report (latest.json and its table) from
    /// the load runs' JSON reports, and the rates the runs take from one
    /// another (`rows-per-s`, `upload-rate`).
    #[command(hide = true)]
    BenchReport(crate::benchcmd::BenchReportArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// PostgreSQL connection URL (e.g. postgres://adit@127.0.0.1:54329/adit).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// A directory of dataset declarations (`<name>.toml`) to apply beside
    /// the shipped ones.
    #[arg(long, env = "ADIT_DATASETS_DIR")]
    pub datasets_dir: Option<std::path::PathBuf>,
}

/// The database of a command group (`adit keys`, `archive`, `rollup`),
/// given before or after the subcommand (`adit archive verify
/// --database-url …`).
#[derive(Debug, Args)]
pub struct GroupDbArgs {
    /// PostgreSQL connection URL (e.g. postgres://adit@127.0.0.1:54329/adit).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
}

impl GroupDbArgs {
    pub fn url(&self) -> anyhow::Result<&str> {
        self.database_url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no database: pass --database-url or set DATABASE_URL"))
    }
}

/// Where the archive is, given before or after the subcommand.
#[derive(Debug, Args)]
pub struct ArchiveUrl {
    /// The archive: file:///path or s3://bucket/prefix (S3 credentials,
    /// region and endpoint from the AWS_* variables).
    #[arg(long, env = "ADIT_ARCHIVE_URL", global = true)]
    archive_url: Option<String>,
}

impl ArchiveUrl {
    pub fn url(&self) -> anyhow::Result<&str> {
        self.archive_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no archive: pass --archive-url or set ADIT_ARCHIVE_URL")
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a collector key for a site (or an admin token with --admin);
    /// the key is printed alone on the last line of stdout.
    Create {
        /// Site the key writes for.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        site: Option<i32>,
        /// Create an admin token (used as `Authorization: Bearer …`).
        #[arg(long)]
        admin: bool,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys: one line per key, starting with its numeric id, with the
    /// key's first characters (`key=hsc_AbCdEfGh…`) to tell keys apart.
    List,
    /// Revoke a key by id, or by the key itself (hsc_… / hsa_…); servers
    /// refuse it within the key cache TTL.
    Revoke {
        /// The key's id (first column of `keys list`) or the key itself.
        #[arg(value_name = "ID|KEY")]
        id: crate::keys::KeyRef,
    },
    /// Set a key's upload rate limit in uploads per second (burst twice
    /// that); 0 removes the limit, --default returns to the server's.
    SetRate {
        id: i32,
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        uploads_per_s: Option<f32>,
        #[arg(long)]
        default: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective `adit serve` configuration as TOML, each value
    /// with its source (default, file:line, env VAR or flag); secrets masked.
    /// Takes the same --config, flags and environment as `adit serve`.
    Print(Box<ServeArgs>),
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Compare PostgreSQL, the manifest and the files per window (site, day).
    ///
    /// Row counts and a checksum of key columns. Each window is ok, pending
    /// (rows queued, not archived yet), predates-archive (rows written
    /// before the archive was enabled: see `backfill`), MISSING (rows
    /// neither queued nor in a file) or MISMATCH. Exits 1 if any window is
    /// MISSING or MISMATCH.
    Verify(WindowScope),
    /// List the live files per window.
    Ls(WindowScope),
    /// Rewrite one window's files as few large sorted files now.
    Compact {
        /// The window's site.
        #[arg(long)]
        site: i32,
        /// The window's day (YYYY-MM-DD, UTC).
        #[arg(long)]
        date: chrono::NaiveDate,
    },
    /// Archive the rows written before the archive was enabled, from PostgreSQL.
    ///
    /// Every window holding rows that are neither in a file nor queued
    /// (written before the archive was enabled, or while it was off) has
    /// its files rewritten whole from PostgreSQL. Safe to run again and
    /// beside running archivers. With --dataset: every window of the
    /// dataset holding rows is marked for the archive, which exports it
    /// again from PostgreSQL once its day has ended.
    Backfill(WindowScope),
}

/// Which archive windows to look at (all when no option is given).
#[derive(Debug, Clone, Args)]
pub struct WindowScope {
    /// Only this site's windows.
    #[arg(long)]
    pub site: Option<i32>,
    /// First day (YYYY-MM-DD, UTC), inclusive.
    #[arg(long)]
    pub from: Option<chrono::NaiveDate>,
    /// Last day (YYYY-MM-DD, UTC), inclusive.
    #[arg(long)]
    pub to: Option<chrono::NaiveDate>,
    /// A declared dataset's archive instead of miner telemetry's (`verify`
    /// and `ls`): windows are ok, pending (changed since exported, or the
    /// day not ended), MISSING or MISMATCH.
    #[arg(long)]
    pub dataset: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RollupCommand {
    /// Roll up every dirty closed hour; with --from/--to, first mark every
    /// hour with raw rows in [from, to) dirty (backfill).
    Run {
        /// Start of the backfill range (RFC 3339).
        #[arg(long, requires = "to")]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// End of the backfill range (RFC 3339); hours ending after it wait.
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        rollup: RollupArgs,
    },
}

/// Rollup and retention settings (shared by `serve` and `rollup run`).
#[derive(Debug, Clone, Args)]
pub struct RollupArgs {
    /// How long after an hour ends before it is rolled up.
    #[arg(long, env = "ADIT_ROLLUP_GRACE", default_value_t = dur(defaults().rollup.grace), help_heading = ROLLUPS)]
    pub rollup_grace: humantime::Duration,
    /// The collectors' collection interval (for uptime_pct).
    #[arg(long, env = "ADIT_COLLECTION_INTERVAL", default_value_t = dur(defaults().rollup.collection_interval), help_heading = ROLLUPS)]
    pub collection_interval: humantime::Duration,
    /// Days of raw telemetry kept (whole daily partitions are dropped).
    #[arg(long, env = "ADIT_RETENTION_TELEMETRY_DAYS", default_value_t = defaults().rollup.retention_of("miner_telemetry"), help_heading = ROLLUPS)]
    pub retention_telemetry_days: i32,
    /// Days of collector heartbeats kept.
    #[arg(long, env = "ADIT_RETENTION_HEARTBEAT_DAYS", default_value_t = defaults().rollup.retention_of("agent_heartbeats"), help_heading = ROLLUPS)]
    pub retention_heartbeat_days: i32,
    /// Days of upload log kept.
    #[arg(long, env = "ADIT_RETENTION_UPLOAD_LOG_DAYS", default_value_t = defaults().rollup.retention_of("upload_log"), help_heading = ROLLUPS)]
    pub retention_upload_log_days: i32,
    /// Days rejected rows (`ingest_rejects`) are kept.
    #[arg(long, env = "ADIT_RETENTION_REJECTS_DAYS", default_value_t = defaults().rollup.purge_of(adit_rollup::Purged::Rejects), help_heading = ROLLUPS)]
    pub retention_rejects_days: i32,
    /// Days a resolved event is kept after it was resolved.
    #[arg(long, env = "ADIT_RETENTION_RESOLVED_EVENTS_DAYS", default_value_t = defaults().rollup.purge_of(adit_rollup::Purged::ResolvedEvents), help_heading = ROLLUPS)]
    pub retention_resolved_events_days: i32,
    /// Days the live row (`miner_live`) of a miner that stopped reporting is kept.
    #[arg(long, env = "ADIT_RETENTION_MINER_LIVE_DAYS", default_value_t = defaults().rollup.purge_of(adit_rollup::Purged::MinerLive), help_heading = ROLLUPS)]
    pub retention_miner_live_days: i32,
}

impl RollupArgs {
    pub fn into_config(self) -> adit_rollup::RollupConfig {
        adit_rollup::RollupConfig {
            grace: self.rollup_grace.into(),
            collection_interval: self.collection_interval.into(),
            retention_days: vec![
                ("miner_telemetry", self.retention_telemetry_days),
                ("upload_log", self.retention_upload_log_days),
                ("agent_heartbeats", self.retention_heartbeat_days),
            ],
            purge_days: vec![
                (adit_rollup::Purged::Rejects, self.retention_rejects_days),
                (
                    adit_rollup::Purged::ResolvedEvents,
                    self.retention_resolved_events_days,
                ),
                (
                    adit_rollup::Purged::MinerLive,
                    self.retention_miner_live_days,
                ),
            ],
            ..Default::default()
        }
    }
}

/// `adit serve` options, grouped in `--help` by what they tune; `-h`
/// shows only [`SERVE_SHORT_HELP`].
#[derive(Debug, Args)]
#[command(
    after_help = "Every option also reads the environment variable shown beside it. \
                        Durations take units (500ms, 30s, 5min, 7days), byte sizes too \
                        (64KiB, 8MiB, 1GiB, or a plain number of bytes)."
)]
pub struct ServeArgs {
    /// Read options from this TOML file: keys are the option names with _
    /// for - (see adit.example.toml); flags and environment variables win
    /// over it.
    #[arg(long, env = "ADIT_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Every option's effective value and source, filled in by
    /// `crate::config` (`adit config print` shows it).
    #[arg(skip)]
    pub effective: crate::config::effective::Effective,
    #[command(flatten)]
    pub db: DbArgs,
    /// Do not apply migrations at start.
    #[arg(long, env = "ADIT_NO_MIGRATE")]
    pub no_migrate: bool,
    /// A directory of dataset declarations (`<name>.toml`) taken beside
    /// the shipped ones (and migrated at start unless --no-migrate).
    #[arg(long, env = "ADIT_DATASETS_DIR", value_name = "DIR")]
    pub datasets_dir: Option<std::path::PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "ADIT_LISTEN", default_value_t = defaults().listen, help_heading = NETWORK)]
    pub listen: SocketAddr,
    /// Open client connections at most; one more is answered 503 and closed.
    #[arg(long, env = "ADIT_MAX_CONNECTIONS", value_parser = at_least_one, default_value_t = defaults().limits.max_connections, help_heading = NETWORK)]
    pub max_connections: usize,
    /// Close a kept-alive connection after this long without a request.
    #[arg(long, env = "ADIT_KEEP_ALIVE_TIMEOUT", default_value_t = dur(defaults().limits.keep_alive_timeout), help_heading = NETWORK)]
    pub keep_alive_timeout: humantime::Duration,
    /// Time a client gets to send its request headers (and to finish the
    /// TLS handshake); slower ones are disconnected (slowloris).
    #[arg(long, env = "ADIT_HEADER_READ_TIMEOUT", default_value_t = dur(defaults().limits.header_read_timeout), help_heading = NETWORK)]
    pub header_read_timeout: humantime::Duration,
    /// Time a client gets to send its whole body (400 after it).
    #[arg(long, env = "ADIT_BODY_READ_TIMEOUT", default_value_t = dur(defaults().limits.body_read_timeout), help_heading = NETWORK)]
    pub body_read_timeout: humantime::Duration,
    /// Largest request head (request line plus headers); larger gets 431.
    #[arg(long, env = "ADIT_MAX_HEADER_BYTES", default_value_t = ByteSize(defaults().limits.max_header_bytes), help_heading = NETWORK)]
    pub max_header_bytes: ByteSize,
    /// How long SIGTERM waits for open requests before closing them.
    #[arg(long, env = "ADIT_SHUTDOWN_GRACE", default_value_t = dur(defaults().limits.shutdown_grace), help_heading = NETWORK)]
    pub shutdown_grace: humantime::Duration,

    /// Serve HTTPS with this PEM certificate chain (leaf first); needs
    /// --tls-key. Plain HTTP when unset (fine on loopback or behind a proxy).
    #[arg(long, env = "ADIT_TLS_CERT", requires = "tls_key", help_heading = TLS)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "ADIT_TLS_KEY", requires = "tls_cert", help_heading = TLS)]
    pub tls_key: Option<std::path::PathBuf>,

    /// Largest request body accepted, as sent (compressed).
    #[arg(long, env = "ADIT_MAX_BODY_BYTES", default_value_t = ByteSize(defaults().limits.max_body_bytes), help_heading = LIMITS)]
    pub max_body_bytes: ByteSize,
    /// Largest request body accepted after decompression.
    #[arg(long, env = "ADIT_MAX_DECOMPRESSED_BYTES", default_value_t = ByteSize(defaults().limits.max_decompressed_bytes), help_heading = LIMITS)]
    pub max_decompressed_bytes: ByteSize,
    /// Most rows in one upload; larger batches are refused whole (413).
    #[arg(long, env = "ADIT_MAX_ROWS_PER_UPLOAD", default_value_t = defaults().rules.max_rows, help_heading = LIMITS)]
    pub max_rows_per_upload: usize,
    /// Bytes that uploads in flight may hold (compressed body plus twice the
    /// decompressed size); beyond it uploads get 503 at once.
    #[arg(long, env = "ADIT_INFLIGHT_BUDGET_BYTES", default_value_t = ByteSize(defaults().limits.inflight_budget_bytes), help_heading = LIMITS)]
    pub inflight_budget_bytes: ByteSize,
    /// Default upload rate limit per key, uploads per second (burst twice
    /// that; 0: none). `adit keys set-rate` overrides it per key.
    #[arg(long, env = "ADIT_RATE_LIMIT_PER_KEY", value_parser = non_negative, default_value_t = defaults().limits.rate.per_s, help_heading = LIMITS)]
    pub rate_limit_per_key: f64,
    /// How long a key lookup is cached (revocations take effect within it).
    #[arg(long, env = "ADIT_KEY_CACHE_TTL", default_value_t = dur(defaults().key_cache_ttl), help_heading = LIMITS)]
    pub key_cache_ttl: humantime::Duration,
    /// Longest `miner_id`, in characters.
    #[arg(long, env = "ADIT_MAX_MINER_ID_CHARS", default_value_t = defaults().rules.miner_id_max_chars, help_heading = LIMITS)]
    pub max_miner_id_chars: usize,
    /// Longest string field, in characters (pool_url and error_message:
    /// --max-long-string-chars); a longer one rejects its row.
    #[arg(long, env = "ADIT_MAX_STRING_CHARS", default_value_t = defaults().rules.string_max_chars, help_heading = LIMITS)]
    pub max_string_chars: usize,
    /// Longest pool_url or error_message, in characters.
    #[arg(long, env = "ADIT_MAX_LONG_STRING_CHARS", default_value_t = defaults().rules.long_string_max_chars, help_heading = LIMITS)]
    pub max_long_string_chars: usize,
    /// Most items in temperature_chips.
    #[arg(long, env = "ADIT_MAX_TEMPERATURE_CHIPS", default_value_t = defaults().rules.max_temperature_chips, help_heading = LIMITS)]
    pub max_temperature_chips: usize,
    /// Most items in fan_speeds and in boards.
    #[arg(long, env = "ADIT_MAX_FANS_AND_BOARDS", default_value_t = defaults().rules.max_fans, help_heading = LIMITS)]
    pub max_fans_and_boards: usize,
    /// Oldest sample `timestamp` accepted, relative to the server clock.
    #[arg(long, env = "ADIT_LATENESS", default_value_t = dur(defaults().rules.lateness), help_heading = LIMITS)]
    pub lateness: humantime::Duration,
    /// How far in the future a sample `timestamp` may be.
    #[arg(long, env = "ADIT_MAX_FUTURE", default_value_t = dur(defaults().rules.max_future), help_heading = LIMITS)]
    pub max_future: humantime::Duration,

    /// Parallel writer connections (COPY streams).
    #[arg(long, env = "ADIT_WRITERS", value_parser = at_least_one, default_value_t = defaults().writer.workers, help_heading = WRITER)]
    pub writers: usize,
    /// Uploads that may wait for the writer before new ones get 503.
    #[arg(long, env = "ADIT_QUEUE_CAPACITY", value_parser = at_least_one, default_value_t = defaults().writer.queue_capacity, help_heading = WRITER)]
    pub queue_capacity: usize,
    /// Flush a batch once it holds this many rows.
    #[arg(long, env = "ADIT_BATCH_MAX_ROWS", value_parser = at_least_one, default_value_t = defaults().writer.batch.max_rows, help_heading = WRITER)]
    pub batch_max_rows: usize,
    /// Flush a batch after this long even if it is not full.
    #[arg(long, env = "ADIT_FLUSH_INTERVAL", default_value_t = dur(defaults().writer.batch.flush_interval), help_heading = WRITER)]
    pub flush_interval: humantime::Duration,
    /// Benchmarking only: acknowledge uploads without writing them.
    #[arg(long, env = "ADIT_DISCARD", hide = true)]
    pub discard: bool,

    /// Where the Parquet archive goes: file:///path or s3://bucket/prefix
    /// (S3 credentials, region and endpoint from the AWS_* variables). No
    /// archive when unset.
    #[arg(long, env = "ADIT_ARCHIVE_URL", help_heading = ARCHIVE)]
    pub archive_url: Option<String>,
    /// A committed row reaches a Parquet file at the latest this long after.
    #[arg(long, env = "ADIT_ARCHIVE_FLUSH_INTERVAL", value_parser = nonzero_duration, default_value_t = dur(defaults().archive_flush_interval), help_heading = ARCHIVE)]
    pub archive_flush_interval: humantime::Duration,
    /// Archive windows (site, day) are compacted this long after their day ends.
    #[arg(long, env = "ADIT_ARCHIVE_COMPACT_AFTER", default_value_t = dur(defaults().archive_compact_after), help_heading = ARCHIVE)]
    pub archive_compact_after: humantime::Duration,
    /// A dataset's archive window (site, day) is exported from PostgreSQL
    /// this long after its day ends (again whenever its rows change later).
    #[arg(long, env = "ADIT_ARCHIVE_DATASET_DELAY", default_value_t = dur(defaults().archive_dataset_delay), help_heading = ARCHIVE)]
    pub archive_dataset_delay: humantime::Duration,

    /// How often the rollup worker looks for closed hours (0s: never;
    /// another process or `adit rollup run` does it).
    #[arg(long, env = "ADIT_ROLLUP_INTERVAL", default_value_t = dur(defaults().rollup.interval), help_heading = ROLLUPS)]
    pub rollup_interval: humantime::Duration,
    #[command(flatten)]
    pub rollup: RollupArgs,

    /// How often the latest state per miner is written to miner_live
    /// (a miner costs at most one row write per interval).
    #[arg(long, env = "ADIT_LIVE_FLUSH_INTERVAL", default_value_t = dur(defaults().control.live_flush_interval), help_heading = CONTROL)]
    pub live_flush_interval: humantime::Duration,
    /// Do not track live state or raise telemetry events.
    #[arg(long, env = "ADIT_NO_LIVE", help_heading = CONTROL)]
    pub no_live: bool,
    /// Most miners one site tracks live; rows of more are stored but raise
    /// no live state or events (logged, and counted in /metrics).
    #[arg(long, env = "ADIT_LIVE_MAX_MINERS_PER_SITE", default_value_t = defaults().control.live_max_miners_per_site, help_heading = CONTROL)]
    pub live_max_miners_per_site: usize,
    /// A miner silent this long leaves the live state; its open telemetry
    /// events are resolved (resolved_by 'evicted').
    #[arg(long, env = "ADIT_LIVE_EVICT_AFTER", default_value_t = dur(defaults().control.live_evict_after), help_heading = CONTROL)]
    pub live_evict_after: humantime::Duration,
    /// How often command timeouts, expiry and collector silence are checked.
    #[arg(long, env = "ADIT_CONTROL_SWEEP_INTERVAL", default_value_t = dur(defaults().control.sweep_interval), help_heading = CONTROL)]
    pub control_sweep_interval: humantime::Duration,
    /// A collector's heartbeat interval when its heartbeat does not say;
    /// silent for 3 intervals raises agent_offline.
    #[arg(long, env = "ADIT_HEARTBEAT_INTERVAL", default_value_t = dur(defaults().control.heartbeat_interval), help_heading = CONTROL)]
    pub heartbeat_interval: humantime::Duration,
    /// high_temperature opens when temperature_max is above this (°C).
    #[arg(long, env = "ADIT_HIGH_TEMPERATURE_C", value_parser = finite, default_value_t = defaults().control.high_temperature_c, help_heading = CONTROL)]
    pub high_temperature_c: f64,
    /// hashrate_drop opens when hashrate_ghs is under this share of
    /// hashrate_expected_ghs.
    #[arg(long, env = "ADIT_HASHRATE_DROP_SHARE", value_parser = share, default_value_t = defaults().control.hashrate_drop_share, help_heading = CONTROL)]
    pub hashrate_drop_share: f64,
}

/// The `serve` options `adit serve -h` shows: what a first run needs.
pub const SERVE_SHORT_HELP: &[&str] = &[
    "config",
    "database_url",
    "listen",
    "tls_cert",
    "tls_key",
    "archive_url",
    "archive_flush_interval",
    "writers",
    "max_body_bytes",
    "rate_limit_per_key",
    "help",
];

/// `serve` as `-h` shows it: the first-run options and a pointer to the rest.
pub fn short_serve_help(serve: clap::Command) -> clap::Command {
    serve
        .mut_args(|a| {
            let keep = SERVE_SHORT_HELP.contains(&a.get_id().as_str());
            a.hide(!keep)
        })
        .after_help(
            "Run `adit serve --help` for all options, grouped: network, TLS, limits, \
             writer, archive, rollups and retention, control plane.",
        )
}

const NETWORK: &str = "Network";
const TLS: &str = "TLS";
const LIMITS: &str = "Limits";
const WRITER: &str = "Writer";
const ARCHIVE: &str = "Archive";
const ROLLUPS: &str = "Rollups and retention";
const CONTROL: &str = "Control plane";

/// The defaults `adit serve` shows and uses: the stage configs' own
/// (`Limits`, `Rules`, `WriterConfig`, `ControlConfig`, `RollupConfig` and
/// `ServeConfig` itself), so each default is written once.
fn defaults() -> ServeConfig {
    ServeConfig::new(String::new())
}

/// A count that must be at least 1 (0 writers or a queue of 0 would stall
/// every upload).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 is out of range: allowed is a whole number of at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: allowed is a whole number of at least 1")),
    }
}

/// A duration that must not be zero.
fn nonzero_duration(s: &str) -> Result<humantime::Duration, String> {
    let d: humantime::Duration = s.parse().map_err(|e| format!("{e}"))?;
    if d.is_zero() {
        return Err("0 is out of range: allowed is a duration above zero, such as 1s".into());
    }
    Ok(d)
}

/// A finite number.
fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(x) => Err(format!("{x} is out of range: allowed is a finite number")),
        Err(e) => Err(format!("{e}: allowed is a number")),
    }
}

/// A finite number of at least 0.
fn non_negative(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x >= 0.0 => Ok(x),
        x => Err(format!(
            "{x} is out of range: allowed is a number of at least 0"
        )),
    }
}

/// A share from 0 to 1.
fn share(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if (0.0..=1.0).contains(&x) => Ok(x),
        x => Err(format!(
            "{x} is out of range: allowed is a number from 0 to 1"
        )),
    }
}

/// A duration as clap shows and parses it (`5s`, `7days 1h`).
fn dur(d: std::time::Duration) -> humantime::Duration {
    d.into()
}

impl ServeArgs {
    pub fn into_config(self) -> ServeConfig {
        let mut c = ServeConfig::new(self.db.database_url);
        c.listen = self.listen;
        c.archive_url = self.archive_url;
        c.archive_flush_interval = self.archive_flush_interval.into();
        c.archive_compact_after = self.archive_compact_after.into();
        c.archive_dataset_delay = self.archive_dataset_delay.into();
        c.migrate = !self.no_migrate;
        c.datasets_dir = self.datasets_dir;
        c.writer.workers = self.writers;
        c.writer.queue_capacity = self.queue_capacity;
        c.writer.batch.max_rows = self.batch_max_rows;
        c.writer.batch.flush_interval = self.flush_interval.into();
        c.writer.discard = self.discard;
        c.limits.max_body_bytes = self.max_body_bytes.into();
        c.limits.max_decompressed_bytes = self.max_decompressed_bytes.into();
        c.rules.max_rows = self.max_rows_per_upload;
        c.rules.lateness = self.lateness.into();
        c.rules.max_future = self.max_future.into();
        c.key_cache_ttl = self.key_cache_ttl.into();
        c.tls = self.tls_cert.zip(self.tls_key);
        c.limits.max_connections = self.max_connections;
        c.limits.keep_alive_timeout = self.keep_alive_timeout.into();
        c.limits.header_read_timeout = self.header_read_timeout.into();
        c.limits.body_read_timeout = self.body_read_timeout.into();
        c.limits.max_header_bytes = self.max_header_bytes.into();
        c.limits.shutdown_grace = self.shutdown_grace.into();
        c.rules.miner_id_max_chars = self.max_miner_id_chars;
        c.rules.string_max_chars = self.max_string_chars;
        c.rules.long_string_max_chars = self.max_long_string_chars;
        c.rules.max_temperature_chips = self.max_temperature_chips;
        c.rules.max_fans = self.max_fans_and_boards;
        c.rules.max_boards = self.max_fans_and_boards;
        c.limits.inflight_budget_bytes = self.inflight_budget_bytes.into();
        c.limits.rate = adit_server::limits::Rate {
            per_s: self.rate_limit_per_key,
            burst: (2.0 * self.rate_limit_per_key).max(1.0),
        };
        c.control = adit_control::ControlConfig {
            live_flush_interval: self.live_flush_interval.into(),
            sweep_interval: self.control_sweep_interval.into(),
            heartbeat_interval: self.heartbeat_interval.into(),
            high_temperature_c: self.high_temperature_c,
            hashrate_drop_share: self.hashrate_drop_share,
            live_enabled: !self.no_live,
            live_max_miners_per_site: self.live_max_miners_per_site,
            live_evict_after: self.live_evict_after.into(),
        };
        c.rollup = self.rollup.into_config();
        c.rollup.interval = self.rollup_interval.into();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `adit serve` with no options runs on exactly the stage configs'
    /// defaults: each option's default comes from the field it sets, and
    /// `into_config` puts it back there.
    #[test]
    fn serve_without_options_is_the_stage_defaults() {
        let cli = Cli::try_parse_from(["adit", "serve", "--database-url", "postgres://x/y"])
            .expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        let got = args.into_config();
        let want = ServeConfig::new("postgres://x/y");
        let show = |c: &ServeConfig| {
            format!(
                "{} {:?} {:?} {:?} {:?} {:?} {} {} {:?} {} {} {} {:?}",
                c.listen,
                c.limits,
                c.rules,
                c.writer.batch,
                c.control,
                c.rollup,
                c.writer.workers,
                c.writer.queue_capacity,
                c.key_cache_ttl,
                c.archive_flush_interval.as_secs(),
                c.archive_compact_after.as_secs(),
                c.archive_dataset_delay.as_secs(),
                c.tls,
            )
        };
        assert_eq!(show(&got), show(&want));
        assert!(got.migrate && got.archive_url.is_none() && !got.writer.discard);
    }
}

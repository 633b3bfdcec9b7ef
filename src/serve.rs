//! `adit serve`: wires the database, the writer and the front door
//! together, and tears them down in order (stop accepting, let open
//! requests finish, drain the writer).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adit_archive::{Archive, ArchiveConfig, Archiver};
use adit_ingest::validate::Rules;
use adit_server::auth::KeyCache;
use adit_server::{Limits, State};
use adit_types::pg::DbErrorText;
use adit_writer::idempotency::InFlight;
use adit_writer::{partition, Writer, WriterConfig};
use anyhow::Context as _;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::db;

/// Everything `adit serve` needs; [`ServeConfig::test_config`] suits tests.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    pub archive_url: Option<String>,
    pub archive_flush_interval: Duration,
    pub archive_compact_after: Duration,
    /// A dataset's archive window (site, day) is exported this long after
    /// its day ends.
    pub archive_dataset_delay: Duration,
    /// Apply migrations at start (the declared datasets' tables too).
    pub migrate: bool,
    /// An operator's dataset declarations, beside the shipped ones.
    pub datasets_dir: Option<std::path::PathBuf>,
    pub writer: WriterConfig,
    pub limits: Limits,
    pub rules: Rules,
    pub key_cache_ttl: Duration,
    pub rollup: adit_rollup::RollupConfig,
    /// How often the partitions ahead and the idempotency store are tended.
    pub maintenance_interval: Duration,
    pub control: adit_control::ControlConfig,
    /// PEM certificate chain and private key: serve HTTPS when both are set.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Daily partitions kept ready around today.
const PARTITIONS_BACK_DAYS: i32 = 1;
const PARTITIONS_AHEAD_DAYS: i32 = 3;
/// Longest wait between attempts to reopen the maintenance connection.
const RECONNECT_MAX: Duration = Duration::from_secs(60);

impl ServeConfig {
    pub fn new(database_url: impl Into<String>) -> Self {
        let database_url = database_url.into();
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            writer: WriterConfig::new(database_url.clone()),
            database_url,
            archive_url: None,
            archive_flush_interval: Duration::from_secs(300),
            archive_compact_after: Duration::from_secs(7 * 86_400 + 3600),
            archive_dataset_delay: Duration::from_secs(3600),
            migrate: true,
            datasets_dir: None,
            limits: Limits::default(),
            rules: Rules::default(),
            key_cache_ttl: Duration::from_secs(2),
            rollup: adit_rollup::RollupConfig::default(),
            maintenance_interval: Duration::from_secs(600),
            tls: None,
            control: adit_control::ControlConfig::default(),
        }
    }

    pub fn test_config(database_url: impl Into<String>) -> Self {
        let database_url = database_url.into();
        Self {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            writer: WriterConfig::test_config(database_url.clone()),
            key_cache_ttl: Duration::from_millis(200),
            control: adit_control::ControlConfig {
                live_flush_interval: Duration::from_millis(100),
                sweep_interval: Duration::from_millis(200),
                ..Default::default()
            },
            limits: Limits {
                rate: adit_server::limits::Rate {
                    per_s: 0.0,
                    burst: 0.0,
                },
                ..Limits::default()
            },
            ..Self::new(database_url)
        }
    }
}

/// Binds `config.listen` and serves until ctrl-c or SIGTERM.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    run(listener, config, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(adit_server::tls_acceptor(cert, key).with_context(|| {
            format!(
                "cannot use --tls-cert {} / --tls-key {}",
                cert.display(),
                key.display()
            )
        })?),
        None => None,
    };
    match adit_server::listen::raise_fd_limit() {
        Ok(n) if (n as usize) < config.limits.max_connections + 256 => warn!(
            open_files = n,
            max_connections = config.limits.max_connections,
            "The open-file limit is below --max-connections; raise it (ulimit -n)."
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "Cannot read the open-file limit."),
    }
    let catalog = adit_dataset::Catalog::load(config.datasets_dir.as_deref())?;
    let mut client = db::connect(&config.database_url).await?;
    if config.migrate {
        let (_, datasets) = crate::migrate::migrate_with(&mut client, &catalog).await?;
        for d in datasets {
            match d {
                crate::datasets::Applied::Created { dataset } => {
                    info!(dataset, "Created a dataset's table.")
                }
                crate::datasets::Applied::Changed {
                    dataset,
                    statements,
                } => info!(
                    dataset,
                    statements = statements.len(),
                    "Applied a dataset's new declaration."
                ),
            }
        }
    }
    let today = adit_types::day_of(chrono::Utc::now().timestamp_micros());
    partition::ensure_ahead(&client, today, PARTITIONS_BACK_DAYS, PARTITIONS_AHEAD_DAYS).await?;
    let archiver = match &config.archive_url {
        Some(url) => {
            let archive = Archive::from_url(url)?;
            let mut cfg = ArchiveConfig::new(url.clone(), config.database_url.clone());
            cfg.flush_interval = config.archive_flush_interval;
            cfg.compact_after = config.archive_compact_after;
            cfg.dataset.delay = config.archive_dataset_delay;
            cfg.datasets = Some(catalog.clone());
            info!(archive_url = %url, flush_interval = ?cfg.flush_interval, "Archiving to Parquet.");
            Some(Archiver::spawn(cfg, archive))
        }
        None => None,
    };
    let mut writer_config = config.writer.clone();
    writer_config.archive = archiver.as_ref().map(|a| a.handle.clone());
    let datasets: Vec<adit_types::dataset::Dataset> =
        catalog.iter().map(|d| d.dataset().clone()).collect();
    ensure_dataset_partitions(&client, &datasets, chrono::Utc::now()).await;
    let maintenance = tokio::spawn(maintain(
        config.database_url.clone(),
        config.maintenance_interval,
        client,
        datasets.clone(),
    ));
    let metrics = adit_server::metrics::Metrics::default();
    if let Some(not_after) = config
        .tls
        .as_ref()
        .and_then(|(c, _)| adit_server::cert::leaf_not_after(c))
    {
        metrics
            .tls_not_after_s
            .store(not_after.max(0) as u64, Ordering::Relaxed);
    }
    let rollups = (!config.rollup.interval.is_zero()).then(|| {
        let gauges = RollupGauges {
            lag_s: metrics.rollup_lag_s.clone(),
            failed: metrics.rollup_failed.clone(),
            failing: metrics.rollup_failing.clone(),
        };
        tokio::spawn(roll_up(
            config.database_url.clone(),
            config.rollup.clone(),
            gauges,
            datasets,
        ))
    });

    let pool = db::pool(&config.database_url, 16)?;
    let control = adit_control::Control::new(pool.clone(), config.control.clone());
    if let Ok(d) = catalog.get(adit_control::alerts::DATASET) {
        control
            .alerts
            .set_metrics(adit_control::alerts::numeric_columns(d.dataset()));
    }
    let mut observers = adit_types::Observers::default();
    if config.control.live_enabled {
        observers.0.push(control.live.clone());
    }
    // Alert rules: loaded now (the sweep reloads them), judged on each
    // committed metrics_aggregated batch, their changes written by a task.
    if let Ok(client) = pool.get().await {
        if let Err(e) = control.alerts.reload(&client).await {
            warn!(error = %e, "Cannot load alert rules; the sweep will retry.");
        }
    }
    observers.0.push(control.alerts.clone());
    let alert_writer = tokio::spawn(control.alerts.clone().run(pool.clone()));
    writer_config.on_commit = Some(Arc::new(observers));
    let sweeper = tokio::spawn(adit_control::sweep::run(
        control.clone(),
        config.database_url.clone(),
    ));
    let writer = Writer::spawn(writer_config);
    let state = Arc::new(State {
        keys: KeyCache::new(pool.clone(), config.key_cache_ttl),
        pool,
        writer: writer.handle.clone(),
        limits: config.limits.clone(),
        rules: config.rules.clone(),
        inflight: InFlight::default(),
        metrics,
        archive: archiver.as_ref().map(|a| a.handle.stats.clone()),
        rate_limiter: Default::default(),
        budget: adit_server::limits::ByteBudget::new(config.limits.inflight_budget_bytes),
        control: control.clone(),
        datasets: adit_server::datasets::Datasets::new(&catalog),
    });
    info!(
        listen = %listener.local_addr()?,
        writers = config.writer.workers,
        discard = config.writer.discard,
        tls = tls.is_some(),
        max_connections = config.limits.max_connections,
        "adit is serving."
    );
    adit_server::run(listener, state, tls, shutdown).await;
    info!("Draining the writer.");
    writer.shutdown().await;
    if let Some(archiver) = archiver {
        info!("Flushing the archive.");
        archiver.shutdown().await;
    }
    // The last live state and events (the sweeper may be mid-flush).
    sweeper.abort();
    if let Ok(client) = db::connect(&config.database_url).await {
        if let Err(e) = control.live.flush(&client).await {
            warn!(error = %e, "Could not write the last live state.");
        }
    }
    alert_writer.abort();
    maintenance.abort();
    if let Some(r) = rollups {
        r.abort();
    }
    info!("adit stopped.");
    Ok(())
}

/// Keeps partitions ready ahead of time and forgets idempotency keys older
/// than a day, every `interval`, on its own connection; a lost connection
/// (PostgreSQL restarted, the backend terminated) is reopened, with a
/// backoff from 1 s to [`RECONNECT_MAX`] while the database stays away.
async fn maintain(
    url: String,
    interval: Duration,
    client: tokio_postgres::Client,
    datasets: Vec<adit_types::dataset::Dataset>,
) {
    let mut client = Some(client);
    let mut attempt: u32 = 0;
    loop {
        let wait = if attempt == 0 {
            interval
        } else {
            reconnect_delay(attempt).min(interval)
        };
        tokio::time::sleep(wait).await;
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            match db::connect(&url).await {
                Ok(c) => {
                    info!(attempt, "Maintenance connection reopened.");
                    client = Some(c);
                }
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    warn!(
                        error = format!("{e:#}"),
                        attempt, "Maintenance cannot connect; will retry."
                    );
                    continue;
                }
            }
        }
        let Some(c) = client.as_ref() else { continue };
        tend(c, &datasets).await;
        attempt = if c.is_closed() {
            attempt.saturating_add(1)
        } else {
            0
        };
    }
}

/// The wait before reconnect attempt `attempt` (1, 2, 4 … s, capped).
fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(16)).min(RECONNECT_MAX)
}

/// One round of maintenance; failures are logged and tried next round.
async fn tend(client: &tokio_postgres::Client, datasets: &[adit_types::dataset::Dataset]) {
    let today = adit_types::day_of(chrono::Utc::now().timestamp_micros());
    if let Err(e) =
        partition::ensure_ahead(client, today, PARTITIONS_BACK_DAYS, PARTITIONS_AHEAD_DAYS).await
    {
        warn!(error = %e, "Could not create partitions ahead.");
    }
    ensure_dataset_partitions(client, datasets, chrono::Utc::now()).await;
    match adit_writer::idempotency::purge(client).await {
        Ok(n) if n > 0 => info!(removed = n, "Forgot expired idempotency keys."),
        Ok(_) => {}
        Err(e) => warn!(error = %DbErrorText(&e), "Could not expire idempotency keys."),
    }
}

/// Creates each declared dataset's partition holding `now` and the next
/// one, so writers rarely create one on demand; a failure (a table not
/// migrated yet) is logged and tried next round.
async fn ensure_dataset_partitions(
    client: &tokio_postgres::Client,
    datasets: &[adit_types::dataset::Dataset],
    now: chrono::DateTime<chrono::Utc>,
) {
    for d in datasets {
        let Some(this) = adit_dataset::Partition::of(d.partition, now.timestamp_micros()) else {
            continue;
        };
        for start in [this.start_micros, this.end_micros] {
            let at = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(start)
                .expect("a partition start is in range");
            let made = client
                .execute(
                    adit_dataset::ENSURE_PARTITION_SQL,
                    &[&d.table(), &d.partition.as_str(), &at],
                )
                .await;
            if let Err(e) = made {
                warn!(dataset = %d.name, error = %DbErrorText(&e), "Could not create a dataset partition ahead.");
                break;
            }
        }
    }
}

/// Where the rollup worker reports to `/metrics`.
#[derive(Debug)]
struct RollupGauges {
    lag_s: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    failing: Arc<AtomicU64>,
}

/// The rollup worker and retention (of the declared `datasets` too), on a
/// schedule, on their own connection (reopened after failures).
async fn roll_up(
    url: String,
    cfg: adit_rollup::RollupConfig,
    gauges: RollupGauges,
    datasets: Vec<adit_types::dataset::Dataset>,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut last_retention: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(cfg.interval).await;
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = db::connect(&url)
                .await
                .map_err(|e| warn!(error = format!("{e:#}"), "Rollup cannot connect."))
                .ok();
        }
        let Some(c) = client.as_mut() else { continue };
        let now = chrono::Utc::now();
        let cutoff = now - chrono::Duration::from_std(cfg.grace).unwrap_or_default();
        match adit_rollup::schedule::run_once(c, &cfg, cutoff, now).await {
            Ok(stats) => {
                gauges.lag_s.store(stats.lag.as_secs(), Ordering::Relaxed);
                gauges.failed.fetch_add(stats.failed, Ordering::Relaxed);
                gauges.failing.store(stats.failing, Ordering::Relaxed);
                if stats.lag > cfg.interval * 2 {
                    warn!(
                        lag_s = stats.lag.as_secs(),
                        failing = stats.failing,
                        "Rollups are lagging."
                    );
                }
            }
            Err(e) => warn!(error = %e, "Rollup run failed; will retry."),
        }
        if last_retention.is_none_or(|t| t.elapsed() >= cfg.retention_interval) {
            last_retention = Some(std::time::Instant::now());
            retain(c, &cfg, &datasets, now).await;
        }
    }
}

/// Drops expired partitions (telemetry's and every declared dataset's)
/// and purges expired rows; failures are logged and retried at the next
/// pass.
pub async fn retain(
    client: &tokio_postgres::Client,
    cfg: &adit_rollup::RollupConfig,
    datasets: &[adit_types::dataset::Dataset],
    now: chrono::DateTime<chrono::Utc>,
) {
    for (table, days) in &cfg.retention_days {
        if let Err(e) =
            adit_rollup::retention::drop_expired(client, table, *days, now.date_naive()).await
        {
            warn!(table, error = %e, "Retention failed; will retry.");
        }
    }
    for d in datasets {
        if let Err(e) = adit_rollup::retention::drop_expired_dataset(client, d, now).await {
            warn!(dataset = %d.name, error = %e, "Dataset retention failed; will retry.");
        }
    }
    match adit_control::inventory::expire(client, now).await {
        Ok(0) => {}
        Ok(n) => info!(deleted = n, "Deleted inventory history past retention."),
        Err(e) => warn!(error = %e, "Inventory history retention failed; will retry."),
    }
    for (what, days) in &cfg.purge_days {
        let purged = adit_rollup::retention::purge(
            client,
            *what,
            *days,
            now,
            cfg.purge_batch_rows,
            cfg.purge_max_batches,
        )
        .await;
        if let Err(e) = purged {
            warn!(table = what.table(), error = %e, "Purge failed; will retry.");
        }
    }
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    info!("Shutdown requested.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_from_a_second_to_a_minute() {
        assert_eq!(reconnect_delay(1), Duration::from_secs(1));
        assert_eq!(reconnect_delay(2), Duration::from_secs(2));
        assert_eq!(reconnect_delay(6), Duration::from_secs(32));
        assert_eq!(reconnect_delay(7), RECONNECT_MAX);
        assert_eq!(reconnect_delay(u32::MAX), RECONNECT_MAX);
    }
}

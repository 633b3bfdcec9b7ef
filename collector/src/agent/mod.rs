//! The collector at run time: four loops over one spool and one set of
//! settings, until shutdown.
//!
//! - polling: every `interval`, one cycle over the farm ([`crate::cycle`]),
//!   its samples pushed durably into the spool as one batch (split above
//!   the row limit), then the uploader woken;
//! - uploading: sends the spool oldest first, continuously; on failure it
//!   waits (`Retry-After`, else the backoff) and tries the same batch again;
//! - commands: every `command_interval`, fetches pending commands from adit,
//!   runs them on the miners and reports each result
//!   ([`commands`]); not at all while remote control is off;
//! - heartbeats: every `heartbeat_interval`, the box's load and the farm's
//!   figures; an answer naming another configuration version than the one
//!   applied makes the collector fetch and apply it.
//!
//! Central configuration is fetched at start (a failure is logged and the
//! collector runs on its own settings) and applied without a restart; the
//! operator's local settings win ([`crate::settings`]). A changed interval
//! takes effect at the next wait. On shutdown polling stops at once, an
//! upload under way is finished, and the rest stays in the spool.

pub(crate) mod adit;
pub mod commands;
mod loops;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::settings::{merge, Central, Local, Settings};
use crate::spool::Spool;
use crate::upload::Uploader;

/// The path of the collector's central configuration.
pub const CONFIG_PATH: &str = "/api/collector/config";
/// How long the start waits for the central configuration by default.
pub const START_CONFIG_WAIT: Duration = Duration::from_secs(10);
/// The collector's version, as its heartbeats report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a collector needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// adit's base URL, e.g. `http://adit.example:8080`.
    pub adit_url: String,
    /// The site's collector key.
    pub key: String,
    /// The miners to poll, in list order.
    pub miners: Vec<SocketAddr>,
    pub spool_dir: PathBuf,
    /// Where `/metrics` is served; None: not served. Port 0 picks one
    /// ([`Agent::metrics_addr`] tells which).
    pub metrics_listen: Option<SocketAddr>,
    /// The built-in defaults of the tunable settings.
    pub defaults: Settings,
    /// What the operator set on the box: wins over central configuration.
    pub local: Local,
    /// Miners polled at once.
    pub concurrency: usize,
    /// Time one request to adit gets (uploads, commands, heartbeats, config).
    pub http_timeout: Duration,
    /// Commands run at once (each miner's commands one after another).
    pub command_concurrency: usize,
    /// How long the start waits for the central configuration before the
    /// loops begin on local settings and defaults.
    pub start_config_wait: Duration,
    /// A PEM file of certificate authorities to trust for an `https://`
    /// adit, beside the system's.
    pub ca_file: Option<PathBuf>,
}

impl AgentConfig {
    /// A collector with the production defaults.
    pub fn new(adit_url: &str, key: &str, miners: Vec<SocketAddr>, spool_dir: PathBuf) -> Self {
        Self {
            adit_url: adit_url.to_string(),
            key: key.to_string(),
            miners,
            spool_dir,
            metrics_listen: None,
            defaults: Settings::default(),
            local: Local::default(),
            concurrency: crate::cycle::DEFAULT_CONCURRENCY,
            http_timeout: crate::upload::DEFAULT_TIMEOUT,
            command_concurrency: 32,
            start_config_wait: START_CONFIG_WAIT,
            ca_file: None,
        }
    }

    /// Quick defaults for tests on loopback: 1 s intervals, short timeouts
    /// and backoff, `/metrics` on a free port.
    pub fn test_config(
        adit_url: &str,
        key: &str,
        miners: Vec<SocketAddr>,
        spool_dir: PathBuf,
    ) -> Self {
        Self {
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            defaults: Settings {
                interval: Duration::from_secs(1),
                heartbeat_interval: Duration::from_secs(1),
                command_interval: Duration::from_millis(500),
                cgminer_timeout: Duration::from_millis(500),
                cgminer_retries: 1,
                upload_backoff: vec![Duration::from_millis(100), Duration::from_millis(500)],
                ..Settings::default()
            },
            http_timeout: Duration::from_secs(10),
            start_config_wait: Duration::from_secs(1),
            ..Self::new(adit_url, key, miners, spool_dir)
        }
    }

    /// The settings in force before any central configuration.
    pub fn settings(&self) -> Settings {
        merge(&self.defaults, &self.local, &Central::default()).settings
    }
}

/// What the loops share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: AgentConfig,
    pub(crate) adit: adit::Adit,
    pub(crate) uploader: Uploader,
    pub(crate) spool: Arc<Mutex<Spool>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: watch::Sender<Settings>,
    /// The central configuration version applied (None: none).
    pub(crate) applied: Mutex<Option<String>>,
    pub(crate) wake_upload: Notify,
    pub(crate) last_cycle: Mutex<LastCycle>,
    /// The last upload attempt failed and batches wait.
    pub(crate) upload_failing: AtomicBool,
    /// The last cycle could not be written to the spool.
    pub(crate) spool_failing: AtomicBool,
    pub(crate) started: Instant,
}

/// The figures of the last cycle, for heartbeats.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastCycle {
    pub(crate) online: usize,
    pub(crate) total: usize,
    /// Miners whose sample carries an error.
    pub(crate) with_errors: usize,
}

impl Shared {
    pub(crate) fn applied_version(&self) -> Option<String> {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fetches the central configuration and applies it.
    pub(crate) async fn fetch_config(&self) -> Result<()> {
        let answer = match self.adit.ok(Method::GET, CONFIG_PATH, None).await {
            Ok(a) => a,
            Err(e) => {
                self.metrics
                    .config_fetches_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
        };
        let central = Central::from_answer(&answer).map_err(|reason| Error::Adit {
            request: format!("GET {CONFIG_PATH}"),
            reason,
        })?;
        self.apply(&central);
        Ok(())
    }

    /// Applies `central` over the defaults, under the local settings.
    pub(crate) fn apply(&self, central: &Central) {
        let merged = merge(&self.cfg.defaults, &self.cfg.local, central);
        let version = central.version.as_deref().unwrap_or("none");
        if !merged.kept_local.is_empty() {
            info!(
                version,
                keys = %merged.kept_local.join(", "),
                "Central settings ignored: set locally on this box."
            );
        }
        for refused in &merged.refused {
            warn!(version, %refused, "Central setting ignored.");
        }
        let s = merged.settings;
        info!(
            version,
            interval_s = s.interval.as_secs_f64(),
            heartbeat_interval_s = s.heartbeat_interval.as_secs_f64(),
            command_interval_s = s.command_interval.as_secs_f64(),
            remote_control = s.remote_control,
            "Applied the central configuration."
        );
        self.settings.send_replace(s);
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = central.version.clone();
        self.metrics.set_config_version(central.version.clone());
    }
}

/// A running collector.
#[derive(Debug)]
pub struct Agent {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    metrics_addr: Option<SocketAddr>,
}

impl Agent {
    /// Opens the spool, binds `/metrics`, fetches the central configuration
    /// (a failure is logged; the collector runs on its own settings) and
    /// starts the loops.
    pub async fn start(cfg: AgentConfig) -> Result<Agent> {
        let settings = cfg.settings();
        let tls = crate::tls::client_config(cfg.ca_file.as_deref())?;
        let dir = cfg.spool_dir.clone();
        let cap = settings.spool_max_bytes;
        let spool = tokio::task::spawn_blocking(move || Spool::open(dir, cap))
            .await
            .map_err(|e| Error::Spool {
                path: cfg.spool_dir.clone(),
                action: "open",
                reason: e.to_string(),
            })??;
        let metrics = Arc::new(Metrics::default());
        metrics.observe_spool(&spool);
        if !spool.is_empty() {
            info!(
                batches = spool.len(),
                bytes = spool.queued_bytes(),
                "Spool holds batches from before: sending them first."
            );
        }
        let listener = match cfg.metrics_listen {
            Some(addr) => Some(crate::metrics::bind(addr).await?),
            None => None,
        };
        let metrics_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let (settings_tx, _) = watch::channel(settings);
        let shared = Arc::new(Shared {
            adit: adit::Adit::new(&cfg.adit_url, &cfg.key, cfg.http_timeout, tls.clone()),
            uploader: Uploader::with_tls(&cfg.adit_url, &cfg.key, cfg.http_timeout, tls),
            spool: Arc::new(Mutex::new(spool)),
            metrics: metrics.clone(),
            settings: settings_tx,
            applied: Mutex::new(None),
            wake_upload: Notify::new(),
            last_cycle: Mutex::new(LastCycle {
                total: cfg.miners.len(),
                ..LastCycle::default()
            }),
            upload_failing: AtomicBool::new(false),
            spool_failing: AtomicBool::new(false),
            started: Instant::now(),
            cfg,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        if let Some(listener) = listener {
            if let Some(addr) = metrics_addr {
                info!(%addr, "Serving /metrics.");
            }
            tasks.spawn(crate::metrics::serve(listener, metrics, stopped.clone()));
        }
        // Bounded, so an adit that does not answer delays polling little.
        match tokio::time::timeout(shared.cfg.start_config_wait, shared.fetch_config()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "No central configuration at start: running on local settings and defaults.");
            }
            Err(_) => {
                shared
                    .metrics
                    .config_fetches_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                warn!(
                    wait_ms = shared.cfg.start_config_wait.as_millis() as u64,
                    "No central configuration at start (no answer): running on local settings and defaults."
                );
            }
        }
        tasks.spawn(loops::upload_loop(shared.clone(), stopped.clone()));
        tasks.spawn(loops::poll_loop(shared.clone(), stopped.clone()));
        tasks.spawn(loops::commands_loop(shared.clone(), stopped.clone()));
        tasks.spawn(loops::heartbeat_loop(shared.clone(), stopped));
        info!(
            miners = shared.cfg.miners.len(),
            adit = %shared.cfg.adit_url,
            version = VERSION,
            "Collector started."
        );
        Ok(Agent {
            shared,
            stop,
            tasks,
            metrics_addr,
        })
    }

    /// The collector's counters (what `/metrics` shows).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The settings in force now.
    pub fn settings(&self) -> Settings {
        self.shared.settings.borrow().clone()
    }

    /// The central configuration version applied, if any.
    pub fn config_version(&self) -> Option<String> {
        self.shared.applied_version()
    }

    /// Stops: polling at once, the upload under way finished, commands
    /// under way given a few seconds; returns when every loop has ended.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        info!("Collector stopped.");
    }
}

/// Resolves once `stop` says true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs a collector until `shutdown` resolves (the binary passes SIGTERM
/// and SIGINT), then stops it as [`Agent::stop`] does.
pub async fn run(cfg: AgentConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    // A stop asked for while the start still waits (for adit's
    // configuration) ends it there: nothing is polled or spooled yet.
    let agent = tokio::select! {
        agent = Agent::start(cfg) => agent?,
        () = &mut shutdown => {
            info!("Stopped while starting.");
            return Ok(());
        }
    };
    shutdown.await;
    info!("Shutting down: polling stops, the upload under way finishes, the spool keeps the rest.");
    agent.stop().await;
    Ok(())
}

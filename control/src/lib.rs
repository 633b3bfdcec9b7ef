//! adit's control plane and dashboard read side: commands for miners,
//! collector heartbeats, the latest state per miner, events (alerts) and
//! ingest statistics, under `/api/collector/`.
//!
//! The front door authenticates a request and hands it here as a
//! [`Request`] with its [`Principal`]; [`Control::handle`] routes it and
//! answers a [`Reply`]. Admins create, cancel and list commands and
//! collectors fetch them and report results ([`commands`]); collectors send
//! heartbeats ([`heartbeat`]); telemetry feeds the latest state per miner
//! and the events derived from it ([`live`], [`events`]) through the
//! writer's commit hook, never on the COPY path; admins read live state,
//! summaries, alerts and ingest statistics ([`read`]) and acknowledge or
//! resolve alerts ([`events`]). Admins publish versioned collector
//! configurations and collectors fetch theirs ([`configs`]). [`sweep`] runs
//! the clocks: command timeouts and expiry, collector silence, the
//! live-state flush.

pub mod alerts;
pub mod commands;
pub mod configs;
mod error;
pub mod events;
pub mod heartbeat;
pub mod inventory;
pub mod keys;
pub mod live;
pub mod query;
pub mod read;
mod reply;
mod rfc3339;
mod storable;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

pub use error::{ControlError, Detail, Result};
pub use reply::Reply;

/// Who is asking: resolved by the front door from the request's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A collector key: acts for its one site only.
    Collector { key_id: i32, site_id: i32 },
    /// An admin token (`Authorization: Bearer …`).
    Admin { key_id: i32 },
}

impl Principal {
    fn actor(&self) -> String {
        match self {
            Self::Collector { key_id, .. } => format!("collector:{key_id}"),
            Self::Admin { key_id } => format!("admin:{key_id}"),
        }
    }

    fn collector(&self) -> Result<(i32, i32)> {
        match *self {
            Self::Collector { key_id, site_id } => Ok((key_id, site_id)),
            Self::Admin { .. } => Err(ControlError::Forbidden {
                reason: "this endpoint takes a collector key (X-Collector-Key)".into(),
            }),
        }
    }

    fn admin(&self) -> Result<i32> {
        match *self {
            Self::Admin { key_id } => Ok(key_id),
            Self::Collector { .. } => Err(ControlError::Forbidden {
                reason: "this endpoint takes an admin token (Authorization: Bearer)".into(),
            }),
        }
    }
}

/// Method of a control-plane request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
    Put,
    Other,
}

/// A control-plane request as the front door read it.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: Method,
    /// The path after `/api/collector/`, e.g. `commands/12/result`.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// The client's address as the server saw it.
    pub peer_ip: Option<std::net::IpAddr>,
}

/// Settings of the control plane (each a flag of `adit serve`).
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// How often the in-memory latest state per miner is written out.
    pub live_flush_interval: Duration,
    /// How often command timeouts, expiry and collector silence are checked.
    pub sweep_interval: Duration,
    /// A collector's heartbeat interval when it does not say (seconds);
    /// silent for 3 intervals means offline.
    pub heartbeat_interval: Duration,
    /// `high_temperature` opens above this `temperature_max` (°C).
    pub high_temperature_c: f64,
    /// `hashrate_drop` opens below this share of `hashrate_expected_ghs`.
    pub hashrate_drop_share: f64,
    /// Track live state and telemetry events at all.
    pub live_enabled: bool,
    /// Most miners a site tracks live; rows of more are stored but raise
    /// no live state or events (a warning and a counter say so).
    pub live_max_miners_per_site: usize,
    /// A miner that sends nothing this long leaves the live state (its
    /// open telemetry events resolved by `evicted`).
    pub live_evict_after: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            live_flush_interval: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(30),
            high_temperature_c: 85.0,
            hashrate_drop_share: 0.7,
            live_enabled: true,
            live_max_miners_per_site: 100_000,
            live_evict_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// The control plane: its database pool, settings and live state.
#[derive(Debug, Clone)]
pub struct Control {
    pub pool: deadpool_postgres::Pool,
    pub config: Arc<ControlConfig>,
    pub live: Arc<live::LiveState>,
    /// Service alert rules judged on committed `metrics_aggregated` rows.
    pub alerts: Arc<alerts::AlertEngine>,
    /// The day whose heartbeat partition is known to exist (per control
    /// plane, not per process: a process may serve several databases).
    heartbeat_day: Arc<std::sync::atomic::AtomicI32>,
}

/// Every route: method and path template (the OpenAPI document describes
/// exactly these; a test checks it).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/collector/commands/pending"),
    ("POST", "/api/collector/commands/{id}/result"),
    ("POST", "/api/collector/commands"),
    ("POST", "/api/collector/commands/batch"),
    ("DELETE", "/api/collector/commands/{id}"),
    ("GET", "/api/collector/commands/history"),
    ("POST", "/api/collector/heartbeat"),
    ("GET", "/api/collector/live/{site_id}"),
    ("GET", "/api/collector/summary/{site_id}"),
    ("GET", "/api/collector/alerts"),
    ("POST", "/api/collector/alerts/{id}/acknowledge"),
    ("POST", "/api/collector/alerts/{id}/resolve"),
    ("GET", "/api/collector/stats"),
    ("POST", "/api/collector/configs"),
    ("GET", "/api/collector/configs"),
    ("GET", "/api/collector/configs/{version}"),
    ("POST", "/api/collector/configs/{version}/activate"),
    ("POST", "/api/collector/configs/{version}/deprecate"),
    ("GET", "/api/collector/agents"),
    ("GET", "/api/collector/config"),
    ("GET", "/api/alert-rules"),
    ("POST", "/api/alert-rules"),
    ("GET", "/api/alert-rules/{id}"),
    ("PUT", "/api/alert-rules/{id}"),
    ("DELETE", "/api/alert-rules/{id}"),
    ("GET", "/api/services"),
    ("GET", "/api/services/{name}/metrics"),
    ("GET", "/api/alerts/active"),
    ("GET", "/api/alerts/stats"),
];

impl Control {
    pub fn new(pool: deadpool_postgres::Pool, config: ControlConfig) -> Self {
        let live = Arc::new(live::LiveState::new(&config));
        Self {
            pool,
            config: Arc::new(config),
            live,
            alerts: Arc::new(alerts::AlertEngine::new()),
            heartbeat_day: Arc::new(std::sync::atomic::AtomicI32::new(i32::MIN)),
        }
    }

    /// True when `path` (after `/api/collector/`) is one of ours.
    pub fn owns(path: &str) -> bool {
        let first = path.split('/').next().unwrap_or("");
        matches!(
            first,
            "commands"
                | "heartbeat"
                | "live"
                | "summary"
                | "alerts"
                | "stats"
                | "configs"
                | "config"
                | "agents"
        )
    }

    /// Answers one authenticated request: a 200 body, or the error the
    /// server turns into its status and error envelope.
    pub async fn handle(&self, req: Request<'_>, who: Principal) -> Result<Reply> {
        self.route(&req, who).await
    }

    /// Answers one authenticated request of the alert API (`/api/alert-rules`,
    /// `/api/services`, `/api/alerts/active|stats`; `req.path` after `/api/`).
    pub async fn handle_alerts(&self, req: Request<'_>, who: Principal) -> Result<Reply> {
        alerts::api::handle(self, &req, who).await
    }

    async fn route(&self, req: &Request<'_>, who: Principal) -> Result<Reply> {
        use Method::{Delete, Get, Post};
        let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
        let q = query::Query::parse(req.query)?;
        match (req.method, segments.as_slice()) {
            (Get, ["commands", "pending"]) => commands::pending(self, who, &q).await,
            (Get, ["commands", "history"]) => commands::history(self, who, &q).await,
            (Post, ["commands", "batch"]) => commands::create_batch(self, who, req.body).await,
            (Post, ["commands"]) => commands::create(self, who, req.body).await,
            (Post, ["commands", id, "result"]) => {
                commands::result(self, who, parse_id(id)?, req.body).await
            }
            (Delete, ["commands", id]) => commands::cancel(self, who, parse_id(id)?).await,
            (Post, ["heartbeat"]) => heartbeat::record(self, who, req.body, req.peer_ip).await,
            (Get, ["live", site]) => read::live(self, who, parse_site(site)?, &q).await,
            (Get, ["summary", site]) => read::summary(self, who, parse_site(site)?).await,
            (Get, ["alerts"]) => read::alerts(self, who, &q).await,
            (Post, ["alerts", id, action @ ("acknowledge" | "resolve")]) => {
                events::admin_action(self, who, parse_id(id)?, action).await
            }
            (Get, ["stats"]) => read::stats(self, who, &q).await,
            (Post, ["configs"]) => configs::create(self, who, req.body).await,
            (Get, ["configs"]) => configs::list(self, who, &q).await,
            (Get, ["configs", version]) => configs::show(self, who, version).await,
            (Post, ["configs", version, "activate"]) => configs::activate(self, who, version).await,
            (Post, ["configs", version, "deprecate"]) => {
                configs::deprecate(self, who, version).await
            }
            (Get, ["agents"]) => configs::agents(self, who, &q).await,
            (Get, ["config"]) => configs::collector_config(self, who).await,
            (
                _,
                ["commands" | "heartbeat" | "live" | "summary" | "alerts" | "stats" | "configs"
                | "config" | "agents", ..],
            ) => Err(ControlError::MethodNotAllowed),
            _ => Err(ControlError::NotFound),
        }
    }
}

fn parse_id(s: &str) -> Result<i64> {
    s.parse().map_err(|_| ControlError::NotFound)
}

fn parse_site(s: &str) -> Result<i32> {
    s.parse().map_err(|_| ControlError::NotFound)
}

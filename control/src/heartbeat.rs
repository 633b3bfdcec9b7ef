//! Collector heartbeats: stored as sent in `agent_heartbeats`, a
//! daily-partitioned table (7-day retention), and the collector's row in
//! `collector_agents` updated (last seen, version, config version, IP). The
//! answer carries the collector's effective configuration version, so a
//! collector running another one knows to fetch it. A collector silent
//! for 3 intervals is marked offline with an `agent_offline` event
//! ([`sweep_silent`]); its next heartbeat resolves it.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::events::{self, EventType};
use crate::rfc3339::ts;
use crate::{Control, ControlError, Principal, Reply, Result};

/// A heartbeat body: every field optional; fields adit does not know are
/// kept in `extra_data`.
#[derive(Debug, Default, Deserialize)]
pub struct Heartbeat {
    pub status: Option<String>,
    pub cpu_usage: Option<f32>,
    pub memory_usage: Option<f32>,
    pub disk_usage: Option<f32>,
    pub uptime: Option<i64>,
    pub version: Option<String>,
    pub ip_address: Option<String>,
    pub miners_online: Option<i32>,
    pub miners_total: Option<i32>,
    pub errors_count: Option<i32>,
    pub extra_data: Option<Value>,
    /// Seconds until the next heartbeat (default: the server's setting).
    pub heartbeat_interval: Option<i32>,
    /// The central configuration version the collector runs (absent: it
    /// runs none).
    pub config_version: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

fn check(h: &Heartbeat) -> Result<()> {
    if let Some(s) = &h.status {
        if !["online", "degraded", "error"].contains(&s.as_str()) {
            return Err(ControlError::bad(
                "status",
                "must be online, degraded or error",
            ));
        }
    }
    for (name, v) in [
        ("cpu_usage", h.cpu_usage),
        ("memory_usage", h.memory_usage),
        ("disk_usage", h.disk_usage),
    ] {
        if v.is_some_and(|v| !(0.0..=100.0).contains(&v)) {
            return Err(ControlError::bad(name, "must be 0-100 (%)"));
        }
    }
    for (name, v) in [
        ("uptime", h.uptime),
        ("miners_online", h.miners_online.map(i64::from)),
        ("miners_total", h.miners_total.map(i64::from)),
        ("errors_count", h.errors_count.map(i64::from)),
    ] {
        if v.is_some_and(|v| v < 0) {
            return Err(ControlError::bad(name, "must not be negative"));
        }
    }
    if h.version.as_ref().is_some_and(|v| v.len() > 64) {
        return Err(ControlError::bad("version", "longer than 64 bytes"));
    }
    if h.config_version
        .as_ref()
        .is_some_and(|v| v.chars().count() > crate::configs::MAX_VERSION_CHARS)
    {
        return Err(ControlError::bad(
            "config_version",
            format!(
                "longer than {} characters",
                crate::configs::MAX_VERSION_CHARS
            ),
        ));
    }
    if let Some(ip) = &h.ip_address {
        if ip.parse::<IpAddr>().is_err() {
            return Err(ControlError::bad("ip_address", "not an IP address"));
        }
    }
    if h.extra_data.as_ref().is_some_and(|v| !v.is_object()) {
        return Err(ControlError::bad("extra_data", "must be an object"));
    }
    if h.heartbeat_interval
        .is_some_and(|i| !(1..=3600).contains(&i))
    {
        return Err(ControlError::bad("heartbeat_interval", "must be 1-3600 s"));
    }
    Ok(())
}

/// `POST /api/collector/heartbeat` (collector key): stores the heartbeat,
/// marks the collector online (resolving its `agent_offline` event) and
/// answers the server's time, the heartbeat interval to keep, the number
/// of commands waiting for the site and the collector's effective
/// configuration version (null: none).
pub async fn record(
    ctl: &Control,
    who: Principal,
    body: &[u8],
    peer: Option<IpAddr>,
) -> Result<Reply> {
    let (key_id, site) = who.collector()?;
    let h = read_heartbeat(body)?;
    let ip = h.ip_address.clone().or(peer.map(|p| p.to_string()));
    let interval = h
        .heartbeat_interval
        .unwrap_or(ctl.config.heartbeat_interval.as_secs() as i32);
    let client = ctl.pool.get().await?;
    ensure_today_partition(ctl, &client).await?;
    let status = h.status.as_deref().unwrap_or("online");
    store(&client, key_id, site, status, &h, &ip).await?;
    mark_online(&client, key_id, site, status, &h, &ip, interval).await?;
    let (pending, config_version) = pending_and_config(&client, site, key_id).await?;
    Ok(Reply::data(json!({
        "received": true,
        "server_time": ts(chrono::Utc::now()),
        "heartbeat_interval": interval,
        "pending_commands": pending,
        "config_version": config_version,
    })))
}

/// The body as a checked [`Heartbeat`] (an empty body is one with no
/// fields), its unknown fields folded into `extra_data` (a field sent in
/// `extra_data` wins), nothing PostgreSQL would refuse to store.
fn read_heartbeat(body: &[u8]) -> Result<Heartbeat> {
    let mut h: Heartbeat = if body.iter().all(u8::is_ascii_whitespace) {
        Heartbeat::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ControlError::bad("body", e.to_string()))?
    };
    check(&h)?;
    if !h.other.is_empty() {
        let mut extra = match h.extra_data.take() {
            Some(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        for (k, v) in std::mem::take(&mut h.other) {
            extra.entry(k).or_insert(v);
        }
        h.extra_data = Some(Value::Object(extra));
    }
    if let Some(v) = &h.version {
        crate::storable::text("version", v)?;
    }
    if let Some(v) = &h.config_version {
        crate::storable::text("config_version", v)?;
    }
    if let Some(extra) = &h.extra_data {
        crate::storable::json("extra_data", extra)?;
    }
    Ok(h)
}

/// Makes today's `agent_heartbeats` partition, once a day per control
/// plane.
async fn ensure_today_partition(ctl: &Control, client: &Client) -> Result<()> {
    let today = adit_types::day_of(chrono::Utc::now().timestamp_micros());
    if ctl.heartbeat_day.load(Ordering::Relaxed) == today {
        return Ok(());
    }
    let day = chrono::DateTime::from_timestamp(i64::from(today) * 86_400, 0)
        .unwrap_or_default()
        .date_naive();
    client
        .execute(
            "SELECT adit_ensure_day_partition('agent_heartbeats', $1)",
            &[&day],
        )
        .await?;
    ctl.heartbeat_day.store(today, Ordering::Relaxed);
    Ok(())
}

/// One row in `agent_heartbeats`, as sent.
async fn store(
    client: &Client,
    key_id: i32,
    site: i32,
    status: &str,
    h: &Heartbeat,
    ip: &Option<String>,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO agent_heartbeats (ts, key_id, site_id, status, cpu_usage, memory_usage, \
               disk_usage, uptime, ip_address, version, miners_online, miners_total, errors_count, \
               extra_data, config_version) \
             VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &key_id,
                &site,
                &status,
                &h.cpu_usage,
                &h.memory_usage,
                &h.disk_usage,
                &h.uptime,
                ip,
                &h.version,
                &h.miners_online,
                &h.miners_total,
                &h.errors_count,
                &h.extra_data,
                &h.config_version,
            ],
        )
        .await?;
    Ok(())
}

/// The collector's row in `collector_agents` says online, seen now (with
/// its interval, IP, version, miner counts and the config version it runs:
/// none when the heartbeat names none), and its `agent_offline`
/// event, if one is open, is resolved.
async fn mark_online(
    client: &Client,
    key_id: i32,
    site: i32,
    status: &str,
    h: &Heartbeat,
    ip: &Option<String>,
    interval: i32,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO collector_agents (key_id, site_id, status, heartbeat_interval_s, \
               last_seen_at, last_ip, version, last_status, miners_online, miners_total, \
               config_version) \
             VALUES ($1, $2, 'online', $3, now(), $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (key_id) DO UPDATE SET site_id = EXCLUDED.site_id, status = 'online', \
               heartbeat_interval_s = EXCLUDED.heartbeat_interval_s, last_seen_at = now(), \
               last_ip = EXCLUDED.last_ip, version = coalesce(EXCLUDED.version, collector_agents.version), \
               last_status = EXCLUDED.last_status, miners_online = EXCLUDED.miners_online, \
               miners_total = EXCLUDED.miners_total, config_version = EXCLUDED.config_version",
            &[
                &key_id,
                &site,
                &interval,
                ip,
                &h.version,
                &status,
                &h.miners_online,
                &h.miners_total,
                &h.config_version,
            ],
        )
        .await?;
    let subject = format!("collector:{key_id}");
    let back = events::resolve(client, site, &subject, EventType::AgentOffline, "auto").await?;
    if back {
        tracing::info!(key_id, site_id = site, "Collector is back online.");
    }
    Ok(())
}

/// Commands of the site waiting to be fetched (pending, not expired), and
/// the collector's effective configuration version, in one round trip.
async fn pending_and_config(
    client: &Client,
    site: i32,
    key_id: i32,
) -> Result<(i64, Option<String>)> {
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM agent_commands WHERE site_id = $1 \
                   AND status = 'pending' AND expires_at > now()), ({})",
                crate::configs::collectors::effective_sql("e.version", "$2::int4")
            ),
            &[&site, &key_id],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Marks collectors silent for 3 intervals offline and opens their
/// `agent_offline` events; returns how many went offline.
pub async fn sweep_silent(client: &Client) -> Result<usize> {
    let rows = client
        .query(
            "UPDATE collector_agents SET status = 'offline' \
             WHERE status = 'online' \
               AND last_seen_at < now() - make_interval(secs => 3 * heartbeat_interval_s) \
             RETURNING key_id, site_id, last_seen_at",
            &[],
        )
        .await?;
    for r in &rows {
        let (key_id, site): (i32, i32) = (r.get(0), r.get(1));
        let seen: chrono::DateTime<chrono::Utc> = r.get(2);
        tracing::warn!(
            key_id,
            site_id = site,
            "Collector went silent; marked offline."
        );
        events::open(
            client,
            site,
            &format!("collector:{key_id}"),
            EventType::AgentOffline,
            &format!(
                "collector {key_id} has sent no heartbeat since {}",
                ts(seen)
            ),
            Some(json!({"key_id": key_id})),
        )
        .await?;
    }
    Ok(rows.len())
}

//! Events (alerts): at most one unresolved event per (site, subject, type),
//! opened when a condition starts and resolved automatically when it clears
//! (or by an admin). Subjects are miner ids, or `collector:<key id>` for
//! `agent_offline`.

use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::{Control, ControlError, Principal, Reply, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    MinerOffline,
    HighTemperature,
    HashrateDrop,
    CommandFailed,
    AgentOffline,
}

impl EventType {
    pub const TELEMETRY: [EventType; 3] = [
        EventType::MinerOffline,
        EventType::HighTemperature,
        EventType::HashrateDrop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::MinerOffline => "miner_offline",
            Self::HighTemperature => "high_temperature",
            Self::HashrateDrop => "hashrate_drop",
            Self::CommandFailed => "command_failed",
            Self::AgentOffline => "agent_offline",
        }
    }

    /// Severities as seed 000 lists them.
    pub fn severity(self) -> &'static str {
        match self {
            Self::MinerOffline | Self::HashrateDrop | Self::CommandFailed => "error",
            Self::HighTemperature | Self::AgentOffline => "warning",
        }
    }
}

/// Opens an event unless one is already unresolved; true if opened.
pub async fn open(
    client: &Client,
    site: i32,
    subject: &str,
    ty: EventType,
    message: &str,
    details: Option<Value>,
) -> Result<bool> {
    let n = client
        .execute(
            "INSERT INTO events (site_id, subject, event_type, severity, message, details) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (site_id, subject, event_type) WHERE status <> 'resolved' DO NOTHING",
            &[
                &site,
                &subject,
                &ty.name(),
                &ty.severity(),
                &message,
                &details,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Resolves the unresolved event of (site, subject, type), if any.
pub async fn resolve(
    client: &Client,
    site: i32,
    subject: &str,
    ty: EventType,
    by: &str,
) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE events SET status = 'resolved', resolved_at = now(), resolved_by = $4 \
             WHERE site_id = $1 AND subject = $2 AND event_type = $3 AND status <> 'resolved'",
            &[&site, &subject, &ty.name(), &by],
        )
        .await?;
    Ok(n == 1)
}

/// Opens and resolves telemetry events in two statements: `opens` as
/// (site, subject, type, message), `resolves` as (site, subject, type).
pub async fn apply(
    client: &Client,
    opens: &[(i32, String, EventType, String)],
    resolves: &[(i32, String, EventType)],
) -> Result<()> {
    if !opens.is_empty() {
        let sites: Vec<i32> = opens.iter().map(|o| o.0).collect();
        let subjects: Vec<&str> = opens.iter().map(|o| o.1.as_str()).collect();
        let types: Vec<&str> = opens.iter().map(|o| o.2.name()).collect();
        let sev: Vec<&str> = opens.iter().map(|o| o.2.severity()).collect();
        let msgs: Vec<&str> = opens.iter().map(|o| o.3.as_str()).collect();
        client
            .execute(
                "INSERT INTO events (site_id, subject, event_type, severity, message) \
                 SELECT * FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 ON CONFLICT (site_id, subject, event_type) WHERE status <> 'resolved' DO NOTHING",
                &[&sites, &subjects, &types, &sev, &msgs],
            )
            .await?;
    }
    if !resolves.is_empty() {
        let sites: Vec<i32> = resolves.iter().map(|o| o.0).collect();
        let subjects: Vec<&str> = resolves.iter().map(|o| o.1.as_str()).collect();
        let types: Vec<&str> = resolves.iter().map(|o| o.2.name()).collect();
        client
            .execute(
                "UPDATE events e SET status = 'resolved', resolved_at = now(), resolved_by = 'auto' \
                 FROM unnest($1::int4[], $2::text[], $3::text[]) AS r(site_id, subject, event_type) \
                 WHERE e.site_id = r.site_id AND e.subject = r.subject \
                   AND e.event_type = r.event_type AND e.status <> 'resolved'",
                &[&sites, &subjects, &types],
            )
            .await?;
    }
    Ok(())
}

/// `POST /api/collector/alerts/{id}/acknowledge|resolve` (admin).
pub async fn admin_action(ctl: &Control, who: Principal, id: i64, action: &str) -> Result<Reply> {
    who.admin()?;
    let client = ctl.pool.get().await?;
    let sql = if action == "acknowledge" {
        "UPDATE events SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2 \
         WHERE id = $1 AND status = 'open' RETURNING *"
    } else {
        "UPDATE events SET status = 'resolved', resolved_at = now(), resolved_by = $2 \
         WHERE id = $1 AND status <> 'resolved' RETURNING *"
    };
    if let Some(row) = client.query_opt(sql, &[&id, &who.actor()]).await? {
        return Ok(Reply::data(event_json(&row)));
    }
    let status: Option<String> = client
        .query_opt("SELECT status FROM events WHERE id = $1", &[&id])
        .await?
        .map(|r| r.get(0));
    match status {
        None => Err(ControlError::NotFound),
        Some(s) => Err(ControlError::Conflict {
            reason: format!("event {id} is {s}"),
        }),
    }
}

/// An event as the alerts endpoint shows it.
pub fn event_json(r: &tokio_postgres::Row) -> Value {
    use crate::commands::ts;
    let opt = |c: &str| {
        r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(c)
            .map_or(Value::Null, |t| Value::String(ts(t)))
    };
    json!({
        "id": r.get::<_, i64>("id"),
        "site_id": r.get::<_, i32>("site_id"),
        "subject": r.get::<_, String>("subject"),
        "event_type": r.get::<_, String>("event_type"),
        "severity": r.get::<_, String>("severity"),
        "status": r.get::<_, String>("status"),
        "message": r.get::<_, String>("message"),
        "details": r.get::<_, Option<Value>>("details"),
        "opened_at": ts(r.get("opened_at")),
        "acknowledged_at": opt("acknowledged_at"),
        "acknowledged_by": r.get::<_, Option<String>>("acknowledged_by"),
        "resolved_at": opt("resolved_at"),
        "resolved_by": r.get::<_, Option<String>>("resolved_by"),
    })
}

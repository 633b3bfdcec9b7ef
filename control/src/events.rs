//! Events (alerts): at most one unresolved event per (site, subject, type),
//! opened when a condition starts and resolved automatically when it clears
//! (or by an admin). Subjects are miner ids, or `collector:<key id>` for
//! `agent_offline`.

use std::collections::HashMap;

use adit_types::Text;
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::rfc3339::{opt_ts, ts};
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

    /// How serious an event of this type is: a miner offline or far
    /// under its hashrate, or a command that failed, is an `error`; a hot
    /// miner or a silent collector a `warning`.
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

/// Who resolved a telemetry event automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// The condition cleared.
    Auto,
    /// The miner was silent for the eviction time and left the live state.
    Evicted,
}

impl Resolver {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Evicted => "evicted",
        }
    }
}

/// The net change to one (site, miner, type) event since the last flush.
/// Opens and resolves of one key alternate; in order they collapse to: a
/// resolve of the event open before, an open, a resolve of that open.
#[derive(Debug, Clone, Default)]
struct Change {
    resolve_first: Option<Resolver>,
    open: Option<String>,
    resolve_last: Option<Resolver>,
}

/// Telemetry event changes waiting for the next flush, kept in the order
/// they happened per key: a condition that flips several times between
/// two flushes ends as its last state says.
#[derive(Debug, Default)]
pub struct Changes(HashMap<(i32, Text, EventType), Change, ahash::RandomState>);

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The condition started: open its event (with the latest message).
    pub fn open(&mut self, site: i32, subject: &Text, ty: EventType, message: String) {
        let c = self.0.entry((site, subject.clone(), ty)).or_default();
        c.open = Some(message);
        // An open, resolve, open in between leaves the first open open.
        c.resolve_last = None;
    }

    /// The condition cleared: resolve its event.
    pub fn resolve(&mut self, site: i32, subject: &Text, ty: EventType, by: Resolver) {
        let c = self.0.entry((site, subject.clone(), ty)).or_default();
        if c.open.is_some() {
            c.resolve_last = Some(by);
        } else {
            c.resolve_first = Some(by);
        }
    }

    /// These changes followed by `later` (failed changes put back ahead of
    /// the ones that came since).
    pub fn then(mut self, later: Changes) -> Changes {
        for ((site, subject, ty), c) in later.0 {
            if let Some(by) = c.resolve_first {
                self.resolve(site, &subject, ty, by);
            }
            if let Some(msg) = c.open {
                self.open(site, &subject, ty, msg);
            }
            if let Some(by) = c.resolve_last {
                self.resolve(site, &subject, ty, by);
            }
        }
        self
    }

    /// Applies the changes in three statements: the resolves of events
    /// open before, the opens, the resolves of those opens.
    pub async fn apply(&self, client: &Client) -> Result<()> {
        let first: Vec<_> = self
            .0
            .iter()
            .filter_map(|(k, c)| c.resolve_first.map(|by| (k, by)))
            .collect();
        resolve_all(client, &first).await?;
        let opens: Vec<_> = self
            .0
            .iter()
            .filter_map(|(k, c)| c.open.as_deref().map(|m| (k, m)))
            .collect();
        if !opens.is_empty() {
            let sites: Vec<i32> = opens.iter().map(|o| o.0 .0).collect();
            let subjects: Vec<&str> = opens.iter().map(|o| o.0 .1.as_str()).collect();
            let types: Vec<&str> = opens.iter().map(|o| o.0 .2.name()).collect();
            let sev: Vec<&str> = opens.iter().map(|o| o.0 .2.severity()).collect();
            let msgs: Vec<&str> = opens.iter().map(|o| o.1).collect();
            client
                .execute(
                    "INSERT INTO events (site_id, subject, event_type, severity, message) \
                     SELECT * FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                     ON CONFLICT (site_id, subject, event_type) WHERE status <> 'resolved' DO NOTHING",
                    &[&sites, &subjects, &types, &sev, &msgs],
                )
                .await?;
        }
        let last: Vec<_> = self
            .0
            .iter()
            .filter_map(|(k, c)| c.resolve_last.map(|by| (k, by)))
            .collect();
        resolve_all(client, &last).await
    }
}

/// Resolves the unresolved events of the given keys.
async fn resolve_all(client: &Client, keys: &[(&(i32, Text, EventType), Resolver)]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let sites: Vec<i32> = keys.iter().map(|k| k.0 .0).collect();
    let subjects: Vec<&str> = keys.iter().map(|k| k.0 .1.as_str()).collect();
    let types: Vec<&str> = keys.iter().map(|k| k.0 .2.name()).collect();
    let by: Vec<&str> = keys.iter().map(|k| k.1.name()).collect();
    client
        .execute(
            "UPDATE events e SET status = 'resolved', resolved_at = now(), resolved_by = r.by \
             FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[]) \
               AS r(site_id, subject, event_type, by) \
             WHERE e.site_id = r.site_id AND e.subject = r.subject \
               AND e.event_type = r.event_type AND e.status <> 'resolved'",
            &[&sites, &subjects, &types, &by],
        )
        .await?;
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
    let opt = |c: &str| opt_ts(r.get(c));
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

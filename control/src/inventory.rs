//! Host inventory, read side and retention: the newest snapshot per client
//! of a site and each client's change history (admin token only), and the
//! history's retention. The rows are written by the writer with each
//! upload of the `inventory` dataset (migrations/0015_inventory.sql).
//!
//! Served at `/api/inventory/…` rather than under `/api/collector/`, so
//! the front door routes these paths here itself.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::query::{page, Filter, Query};
use crate::rfc3339::ts;
use crate::{Control, ControlError, Principal, Reply, Result};

/// The inventory routes (the OpenAPI document describes them).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/inventory/{site_id}"),
    ("GET", "/api/inventory/{site_id}/{client_id}/history"),
];

/// The change types a history row has.
pub const CHANGE_TYPES: &[&str] = &[
    "hardware_change",
    "network_change",
    "os_change",
    "periodic_snapshot",
];

/// Change rows older than this are deleted; periodic snapshots stay.
pub const CHANGE_RETENTION_DAYS: i32 = 90;
/// Periodic snapshots older than this are kept only for the first month of
/// each quarter (January, April, July, October).
pub const SNAPSHOT_RETENTION_DAYS: i32 = 365;

/// An inventory request the front door routed here: `/api/inventory/` and
/// what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Latest { site: i32 },
    History { site: i32, client: &'a str },
}

impl<'a> Route<'a> {
    /// The route of `path` (the part after `/api/inventory/`), or `None`.
    pub fn parse(path: &'a str) -> Option<Result<Self>> {
        let segments: Vec<&str> = path.split('/').collect();
        let site = |s: &str| {
            s.parse::<i32>()
                .map_err(|_| ControlError::bad("site_id", format!("{s:?} is not a site id")))
        };
        match segments.as_slice() {
            [s] if !s.is_empty() => Some(site(s).map(|site| Self::Latest { site })),
            [s, c, "history"] if !c.is_empty() => {
                Some(site(s).map(|site| Self::History { site, client: c }))
            }
            _ => None,
        }
    }
}

/// Answers an inventory GET.
pub async fn handle(ctl: &Control, who: Principal, route: Route<'_>, q: &Query) -> Result<Reply> {
    who.admin()?;
    match route {
        Route::Latest { site } => latest(ctl, site, q).await,
        Route::History { site, client } => history(ctl, site, client, q).await,
    }
}

/// `GET /api/inventory/{site_id}`: the newest snapshot of each client,
/// filters `os` (exact) and `hostname` (a prefix), paginated by client id.
async fn latest(ctl: &Control, site: i32, q: &Query) -> Result<Reply> {
    let mut f = Filter::default();
    f.push("site_id = ", site);
    if let Some(os) = q.get("os") {
        f.push("os = ", os.to_string());
    }
    if let Some(prefix) = q.get("hostname") {
        f.push_around("hostname LIKE ", like_prefix(prefix), "");
    }
    let p = q.page()?;
    let client = ctl.pool.get().await?;
    let (total, rows) = page(
        &client,
        "to_jsonb(l) - 'site_id' - 'collected_at' - 'updated_at' AS row, collected_at, updated_at",
        "inventory_latest l",
        &f,
        "client_id",
        p,
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v: Value = r.get("row");
            v["collected_at"] = Value::String(ts(r.get("collected_at")));
            v["updated_at"] = Value::String(ts(r.get("updated_at")));
            v
        })
        .collect();
    Ok(Reply::data(json!({
        "site_id": site, "items": items, "page": p.page, "per_page": p.per_page, "total": total
    })))
}

/// `GET /api/inventory/{site_id}/{client_id}/history`: the client's
/// history rows, newest first, filter `change_type`, paginated. 404 for a
/// client the site has never reported.
async fn history(ctl: &Control, site: i32, client_id: &str, q: &Query) -> Result<Reply> {
    let mut f = Filter::default();
    f.push("site_id = ", site);
    f.push("client_id = ", client_id.to_string());
    if let Some(kind) = q.get("change_type") {
        if !CHANGE_TYPES.contains(&kind) {
            return Err(ControlError::bad(
                "change_type",
                format!("{kind:?}: use one of {}", CHANGE_TYPES.join(", ")),
            ));
        }
        f.push("change_type = ", kind.to_string());
    }
    let p = q.page()?;
    let client = ctl.pool.get().await?;
    let known: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM inventory_latest WHERE site_id = $1 AND client_id = $2) \
             OR EXISTS (SELECT 1 FROM inventory_history WHERE site_id = $1 AND client_id = $2)",
            &[&site, &client_id],
        )
        .await?
        .get(0);
    if !known {
        return Err(ControlError::NotFound);
    }
    let (total, rows) = page(
        &client,
        "to_jsonb(h) - 'site_id' - 'collected_at' - 'created_at' AS row, collected_at, created_at",
        "inventory_history h",
        &f,
        "collected_at DESC, id DESC",
        p,
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v: Value = r.get("row");
            v["collected_at"] = Value::String(ts(r.get("collected_at")));
            v["created_at"] = Value::String(ts(r.get("created_at")));
            v
        })
        .collect();
    Ok(Reply::data(json!({
        "site_id": site, "client_id": client_id, "items": items,
        "page": p.page, "per_page": p.per_page, "total": total
    })))
}

/// A LIKE pattern matching strings that start with `prefix` (its `%`, `_`
/// and `\` taken literally).
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for ch in prefix.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// The history's retention at `now`: change rows older than
/// [`CHANGE_RETENTION_DAYS`] are deleted (periodic snapshots stay), and
/// periodic snapshots older than [`SNAPSHOT_RETENTION_DAYS`] are kept
/// only in the first month of a quarter. `inventory_latest` is never aged
/// out. Answers the rows deleted.
pub async fn expire(client: &Client, now: DateTime<Utc>) -> Result<u64> {
    let changes = client
        .execute(
            "DELETE FROM inventory_history \
             WHERE collected_at < $1::timestamptz - make_interval(days => $2::int4) \
               AND change_type <> 'periodic_snapshot'",
            &[&now, &CHANGE_RETENTION_DAYS],
        )
        .await?;
    let snapshots = client
        .execute(
            "DELETE FROM inventory_history \
             WHERE collected_at < $1::timestamptz - make_interval(days => $2::int4) \
               AND change_type = 'periodic_snapshot' \
               AND extract(month FROM collected_at AT TIME ZONE 'UTC') NOT IN (1, 4, 7, 10)",
            &[&now, &SNAPSHOT_RETENTION_DAYS],
        )
        .await?;
    Ok(changes + snapshots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_prefixes() {
        assert_eq!(
            Route::parse("7").unwrap().unwrap(),
            Route::Latest { site: 7 }
        );
        assert_eq!(
            Route::parse("7/c-1/history").unwrap().unwrap(),
            Route::History {
                site: 7,
                client: "c-1"
            }
        );
        assert!(Route::parse("x").unwrap().is_err());
        assert!(Route::parse("").is_none());
        assert!(Route::parse("7/c-1").is_none());
        assert!(Route::parse("7//history").is_none());
        assert_eq!(like_prefix("web_0%"), "web\\_0\\%%");
    }
}

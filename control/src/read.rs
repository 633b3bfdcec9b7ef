//! The dashboard read side, admin token only: live state per miner, site
//! summaries, alerts and ingest statistics.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::events::event_json;
use crate::query::{page, Filter};
use crate::rfc3339::ts;
use crate::{Control, ControlError, Principal, Reply, Result};

/// Every request's query string is parsed into one (the router does it
/// before it knows the endpoint).
use crate::query::Query;

/// `GET /api/collector/live/{site_id}`: the latest sample per miner,
/// filters `status` (online|offline), `model`, paginated by miner id.
pub async fn live(ctl: &Control, who: Principal, site: i32, q: &Query) -> Result<Reply> {
    who.admin()?;
    let mut f = Filter::default();
    f.push("site_id = ", site);
    match q.get("status") {
        None => {}
        Some("online") => f.raw("online IS TRUE"),
        Some("offline") => f.raw("online IS NOT TRUE"),
        Some(other) => {
            return Err(ControlError::bad(
                "status",
                format!("{other:?}: use online or offline"),
            ))
        }
    }
    if let Some(m) = q.get("model") {
        f.push("model = ", m.to_string());
    }
    let p = q.page()?;
    let client = ctl.pool.get().await?;
    let (total, rows) = page(
        &client,
        "to_jsonb(l) - 'site_id' - 'ts' - 'updated_at' AS row, ts, updated_at",
        "miner_live l",
        &f,
        "miner_id",
        p,
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v: Value = r.get("row");
            v["timestamp"] = Value::String(ts(r.get("ts")));
            v["updated_at"] = Value::String(ts(r.get("updated_at")));
            v
        })
        .collect();
    Ok(Reply::data(json!({
        "site_id": site, "items": items, "page": p.page, "per_page": p.per_page, "total": total
    })))
}

/// `GET /api/collector/summary/{site_id}`: miners total/online/offline,
/// total hashrate, average temperature, power, efficiency, open alerts by
/// severity.
pub async fn summary(ctl: &Control, who: Principal, site: i32) -> Result<Reply> {
    who.admin()?;
    let client = ctl.pool.get().await?;
    let r = client
        .query_one(
            "SELECT count(*) AS total, \
                    count(*) FILTER (WHERE online IS TRUE) AS online, \
                    coalesce(sum(hashrate_ghs) FILTER (WHERE online IS TRUE), 0)::float8 AS hashrate, \
                    avg(temperature_avg) FILTER (WHERE online IS TRUE)::float8 AS temp_avg, \
                    max(temperature_max) FILTER (WHERE online IS TRUE)::float8 AS temp_max, \
                    coalesce(sum(power_consumption) FILTER (WHERE online IS TRUE), 0)::float8 AS power, \
                    sum(power_consumption) FILTER (WHERE online IS TRUE \
                        AND hashrate_ghs IS NOT NULL)::float8 AS both_power, \
                    sum(hashrate_ghs) FILTER (WHERE online IS TRUE \
                        AND power_consumption IS NOT NULL)::float8 AS both_hashrate, \
                    max(ts) AS latest \
             FROM miner_live WHERE site_id = $1",
            &[&site],
        )
        .await?;
    let (total, online): (i64, i64) = (r.get("total"), r.get("online"));
    let hashrate: f64 = r.get("hashrate");
    let power: f64 = r.get("power");
    let efficiency = match (
        r.get::<_, Option<f64>>("both_power"),
        r.get::<_, Option<f64>>("both_hashrate"),
    ) {
        (Some(p), Some(h)) if h > 0.0 => Some(p / (h / 1000.0)),
        _ => None,
    };
    let by_sev = open_alerts_by_severity(&client, site).await?;
    let latest: Option<DateTime<Utc>> = r.get("latest");
    Ok(Reply::data(json!({
        "site_id": site,
        "miners_total": total,
        "miners_online": online,
        "miners_offline": total - online,
        "total_hashrate_ghs": hashrate,
        "avg_temperature": r.get::<_, Option<f64>>("temp_avg"),
        "max_temperature": r.get::<_, Option<f64>>("temp_max"),
        "total_power_w": power,
        // J/TH: watts per terahash per second, over the miners that report
        // both (a miner without power would otherwise make it look better).
        "efficiency_j_per_th": efficiency,
        "open_alerts": by_sev,
        "latest_sample_at": latest.map(ts),
    })))
}

/// The site's unresolved events counted by severity, every severity
/// present (zero when none).
async fn open_alerts_by_severity(client: &Client, site: i32) -> Result<Value> {
    let alerts = client
        .query(
            "SELECT severity, count(*) FROM events WHERE site_id = $1 AND status <> 'resolved' \
             GROUP BY severity",
            &[&site],
        )
        .await?;
    let mut by_sev = json!({"critical": 0, "error": 0, "warning": 0, "info": 0});
    for a in &alerts {
        by_sev[a.get::<_, String>(0)] = json!(a.get::<_, i64>(1));
    }
    Ok(by_sev)
}

/// `GET /api/collector/alerts`: unresolved events by default; filters
/// `site_id`, `event_type`, `severity`, `status` (open, acknowledged,
/// resolved, all), paginated, newest first.
pub async fn alerts(ctl: &Control, who: Principal, q: &Query) -> Result<Reply> {
    who.admin()?;
    let f = alerts_filter(q)?;
    let p = q.page()?;
    let client = ctl.pool.get().await?;
    let (total, rows) = page(&client, "*", "events", &f, "opened_at DESC, id DESC", p).await?;
    let items: Vec<Value> = rows.iter().map(event_json).collect();
    Ok(Reply::data(json!({
        "items": items, "page": p.page, "per_page": p.per_page, "total": total
    })))
}

/// The alerts' filters as a WHERE clause (unresolved events when no
/// status is asked for); an unknown type, severity or status is refused.
fn alerts_filter(q: &Query) -> Result<Filter> {
    let mut f = Filter::default();
    if let Some(site) = q.site("site_id")? {
        f.push("site_id = ", site);
    }
    if let Some(t) = q.get("event_type").or(q.get("type")) {
        const TYPES: [&str; 5] = [
            "miner_offline",
            "high_temperature",
            "hashrate_drop",
            "command_failed",
            "agent_offline",
        ];
        if !TYPES.contains(&t) {
            return Err(ControlError::bad(
                "event_type",
                format!("{t:?} is not one of {}", TYPES.join(", ")),
            ));
        }
        f.push("event_type = ", t.to_string());
    }
    if let Some(s) = q.get("severity") {
        if !["info", "warning", "error", "critical"].contains(&s) {
            return Err(ControlError::bad(
                "severity",
                "use info, warning, error or critical",
            ));
        }
        f.push("severity = ", s.to_string());
    }
    match q.get("status") {
        None => f.raw("status <> 'resolved'"),
        Some("all") => {}
        Some(s @ ("open" | "acknowledged" | "resolved")) => f.push("status = ", s.to_string()),
        Some(other) => {
            return Err(ControlError::bad(
                "status",
                format!("{other:?}: use open, acknowledged, resolved or all"),
            ))
        }
    }
    Ok(f)
}

/// `GET /api/collector/stats`: ingest statistics per site over the last
/// `hours` (default 24, from the upload log): uploads, rows, rejects,
/// bytes, last upload, processing time.
pub async fn stats(ctl: &Control, who: Principal, q: &Query) -> Result<Reply> {
    who.admin()?;
    let hours = q.int("hours")?.unwrap_or(24);
    if !(1..=24 * 7).contains(&hours) {
        return Err(ControlError::bad(
            "hours",
            "must be 1-168 (the upload log keeps 7 days)",
        ));
    }
    let mut f = Filter::default();
    f.push_around(
        "created_at >= now() - make_interval(hours => ",
        hours as i32,
        ")",
    );
    if let Some(site) = q.site("site_id")? {
        f.push("site_id = ", site);
    }
    let clause = f.sql();
    let client = ctl.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT site_id, count(*) AS uploads, sum(processed)::int8 AS rows, \
                        sum(rejected)::int8 AS rejected, sum(bytes_in)::int8 AS bytes_in, \
                        sum(bytes_raw)::int8 AS bytes_raw, max(created_at) AS last_upload, \
                        avg(processing_time_ms)::float8 AS avg_ms, \
                        percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_time_ms)::float8 AS p95_ms, \
                        max(processing_time_ms) AS max_ms \
                 FROM upload_log {clause} GROUP BY site_id ORDER BY site_id"
            ),
            &f.params(),
        )
        .await?;
    let sites: Vec<Value> = rows
        .iter()
        .map(|r| {
            let rows: i64 = r.get("rows");
            let rejected: i64 = r.get("rejected");
            json!({
                "site_id": r.get::<_, i32>("site_id"),
                "uploads": r.get::<_, i64>("uploads"),
                "rows_accepted": rows,
                "rows_rejected": rejected,
                "reject_rate": if rows + rejected > 0 { rejected as f64 / (rows + rejected) as f64 } else { 0.0 },
                "bytes_compressed": r.get::<_, i64>("bytes_in"),
                "bytes_raw": r.get::<_, i64>("bytes_raw"),
                "last_upload_at": ts(r.get("last_upload")),
                "processing_ms_avg": r.get::<_, f64>("avg_ms"),
                "processing_ms_p95": r.get::<_, f64>("p95_ms"),
                "processing_ms_max": r.get::<_, i32>("max_ms"),
            })
        })
        .collect();
    Ok(Reply::data(json!({"hours": hours, "sites": sites})))
}

//! The admin API of service alert rules: rule CRUD under `/api/alert-rules`,
//! services and their metrics under `/api/services`, alerts under
//! `/api/alerts`. Paths arrive without their `/api/` prefix.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Operator, Severity, STALE_AFTER_SECS};
use crate::query::Query;
use crate::{Control, ControlError, Principal, Reply, Request, Result};

/// True when `path` (after `/api/`) is one of ours.
pub fn owns(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or("");
    matches!(first, "alert-rules" | "services") || path == "alerts/active" || path == "alerts/stats"
}

/// Answers one admin request of the alert API.
pub async fn handle(ctl: &Control, req: &Request<'_>, who: Principal) -> Result<Reply> {
    use crate::Method::{Delete, Get, Post, Put};
    who.admin()?;
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
    let q = Query::parse(req.query)?;
    match (req.method, segments.as_slice()) {
        (Get, ["alert-rules"]) => list(ctl).await,
        (Post, ["alert-rules"]) => create(ctl, req.body).await,
        (Get, ["alert-rules", id]) => show(ctl, parse_id(id)?).await,
        (Put, ["alert-rules", id]) => update(ctl, parse_id(id)?, req.body).await,
        (Delete, ["alert-rules", id]) => delete(ctl, parse_id(id)?).await,
        (Get, ["services"]) => services(ctl).await,
        (Get, ["services", name, "metrics"]) => service_metrics(ctl, name, &q).await,
        (Get, ["alerts", "active"]) => active(ctl).await,
        (Get, ["alerts", "stats"]) => stats(ctl, &q).await,
        _ => Err(ControlError::MethodNotAllowed),
    }
}

fn parse_id(s: &str) -> Result<i64> {
    s.parse().map_err(|_| ControlError::NotFound)
}

/// A rule as created or replaced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    name: String,
    #[serde(default)]
    service_name: Option<String>,
    metric: String,
    operator: String,
    threshold: f64,
    severity: String,
    /// Seconds the condition must hold.
    #[serde(default, rename = "for")]
    for_seconds: Option<i64>,
    #[serde(default)]
    enabled: Option<bool>,
}

struct Checked {
    name: String,
    service_name: Option<String>,
    metric: String,
    operator: Operator,
    threshold: f64,
    severity: Severity,
    for_seconds: i64,
    enabled: bool,
}

fn check(ctl: &Control, body: &[u8]) -> Result<Checked> {
    let b: RuleBody =
        serde_json::from_slice(body).map_err(|e| ControlError::bad("body", e.to_string()))?;
    let name = b.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ControlError::bad("name", "1 to 200 characters"));
    }
    crate::storable::text("name", &name)?;
    if let Some(s) = &b.service_name {
        crate::storable::text("service_name", s)?;
    }
    let metrics = ctl.alerts.metrics();
    if !metrics.contains(&b.metric) {
        return Err(ControlError::bad(
            "metric",
            format!(
                "unknown metric {:?}; use one of {}",
                b.metric,
                metrics.join(", ")
            ),
        ));
    }
    let operator = Operator::parse(&b.operator).ok_or_else(|| {
        ControlError::bad(
            "operator",
            format!(
                "unknown operator {:?}; use one of {}",
                b.operator,
                Operator::ALL.join(", ")
            ),
        )
    })?;
    let severity = Severity::parse(&b.severity).ok_or_else(|| {
        ControlError::bad(
            "severity",
            format!(
                "unknown severity {:?}; use one of {}",
                b.severity,
                Severity::ALL.join(", ")
            ),
        )
    })?;
    if !b.threshold.is_finite() {
        return Err(ControlError::bad("threshold", "a finite number"));
    }
    let for_seconds = b.for_seconds.unwrap_or(0);
    if !(0..=30 * 86_400).contains(&for_seconds) {
        return Err(ControlError::bad("for", "0 to 2592000 seconds"));
    }
    Ok(Checked {
        name,
        service_name: b.service_name.filter(|s| !s.is_empty()),
        metric: b.metric,
        operator,
        threshold: b.threshold,
        severity,
        for_seconds,
        enabled: b.enabled.unwrap_or(true),
    })
}

const RULE_COLUMNS: &str =
    "json_build_object('id', id, 'name', name, 'service_name', service_name, \
     'metric', metric, 'operator', operator, 'threshold', threshold, 'severity', severity, \
     'for', for_seconds, 'enabled', enabled, 'created_at', created_at, 'updated_at', updated_at)";

async fn list(ctl: &Control) -> Result<Reply> {
    let client = ctl.pool.get().await?;
    let row = client
        .query_one(
            &format!(
                "SELECT coalesce(json_agg({RULE_COLUMNS} ORDER BY id), '[]') FROM alert_rules"
            ),
            &[],
        )
        .await?;
    let rules: Value = row.get(0);
    Ok(Reply::data(rules))
}

async fn show(ctl: &Control, id: i64) -> Result<Reply> {
    let client = ctl.pool.get().await?;
    let row = client
        .query_opt(
            &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"),
            &[&id],
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    Ok(Reply::data(row.get(0)))
}

async fn create(ctl: &Control, body: &[u8]) -> Result<Reply> {
    let c = check(ctl, body)?;
    let client = ctl.pool.get().await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO alert_rules (name, service_name, metric, operator, threshold, \
                 severity, for_seconds, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 RETURNING {RULE_COLUMNS}"
            ),
            &[
                &c.name,
                &c.service_name,
                &c.metric,
                &c.operator.as_str(),
                &c.threshold,
                &c.severity.as_str(),
                &c.for_seconds,
                &c.enabled,
            ],
        )
        .await?;
    ctl.alerts.reload(&client).await?;
    Ok(Reply::data(row.get(0)))
}

/// Replaces a rule. Its open alerts are resolved now: they were opened
/// under the old definition, and the next rows judge the new one afresh.
async fn update(ctl: &Control, id: i64, body: &[u8]) -> Result<Reply> {
    let c = check(ctl, body)?;
    let mut client = ctl.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE alert_rules SET name = $2, service_name = $3, metric = $4, operator = $5, \
                 threshold = $6, severity = $7, for_seconds = $8, enabled = $9, updated_at = now() \
                 WHERE id = $1 RETURNING {RULE_COLUMNS}"
            ),
            &[
                &id,
                &c.name,
                &c.service_name,
                &c.metric,
                &c.operator.as_str(),
                &c.threshold,
                &c.severity.as_str(),
                &c.for_seconds,
                &c.enabled,
            ],
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    tx.execute(
        "UPDATE active_alerts SET resolved_at = now() WHERE rule_id = $1 AND resolved_at IS NULL",
        &[&id],
    )
    .await?;
    tx.commit().await?;
    ctl.alerts.reload(&client).await?;
    Ok(Reply::data(row.get(0)))
}

async fn delete(ctl: &Control, id: i64) -> Result<Reply> {
    let client = ctl.pool.get().await?;
    let n = client
        .execute("DELETE FROM alert_rules WHERE id = $1", &[&id])
        .await?;
    if n == 0 {
        return Err(ControlError::NotFound);
    }
    ctl.alerts.reload(&client).await?;
    Ok(Reply::data(json!({"id": id, "deleted": true})))
}

async fn services(ctl: &Control) -> Result<Reply> {
    let client = ctl.pool.get().await?;
    let row = client
        .query_one(
            "SELECT coalesce(json_agg(json_build_object( \
               'service_name', s.service_name, 'last_seen', s.last_seen, \
               'status', CASE WHEN s.last_seen >= now() - make_interval(secs => $1::float8) \
                              THEN 'active' ELSE 'stale' END, \
               'endpoints', s.endpoints, 'latest', s.latest, \
               'open_alerts', (SELECT count(*) FROM active_alerts a \
                               WHERE a.service_name = s.service_name AND a.resolved_at IS NULL)) \
             ORDER BY s.service_name), '[]') FROM service_info s",
            &[&(STALE_AFTER_SECS as f64)],
        )
        .await?;
    Ok(Reply::data(row.get(0)))
}

async fn service_metrics(ctl: &Control, name: &str, q: &Query) -> Result<Reply> {
    crate::storable::text("name", name)?;
    let bucket = match q.get("bucket").unwrap_or("5m") {
        "1m" => 60.0,
        "5m" => 300.0,
        "1h" => 3600.0,
        other => {
            return Err(ControlError::bad(
                "bucket",
                format!("unknown bucket {other:?}; use one of 1m, 5m, 1h"),
            ))
        }
    };
    let to = q.time("to")?.unwrap_or_else(chrono::Utc::now);
    let from = q.time("from")?.unwrap_or(to - chrono::Duration::hours(1));
    if from >= to || to - from > chrono::Duration::days(31) {
        return Err(ControlError::bad(
            "from",
            "from before to, at most 31 days apart",
        ));
    }
    let client = ctl.pool.get().await?;
    let row = client
        .query_one(
            "SELECT coalesce(json_agg(b ORDER BY b.bucket, b.api_endpoint), '[]') FROM ( \
               SELECT to_timestamp(floor(extract(epoch FROM timestamp)::float8 / $4::float8) * $4::float8) AS bucket, \
                 api_endpoint, count(*) AS rows, \
                 avg(qps) AS avg_qps, max(qps) AS max_qps, \
                 avg(avg_latency_ms) AS avg_latency_ms, max(avg_latency_ms) AS max_avg_latency_ms, \
                 avg(p95_latency_ms) AS avg_p95_latency_ms, max(p95_latency_ms) AS max_p95_latency_ms, \
                 avg(p99_latency_ms) AS avg_p99_latency_ms, max(p99_latency_ms) AS max_p99_latency_ms, \
                 avg(error_rate) AS avg_error_rate, max(error_rate) AS max_error_rate, \
                 sum(total_requests) AS total_requests \
               FROM metrics_aggregated \
               WHERE service_name = $1 AND timestamp >= $2 AND timestamp < $3 \
               GROUP BY 1, 2) b",
            &[&name, &from, &to, &bucket],
        )
        .await?;
    Ok(Reply::data(json!({
        "service_name": name,
        "from": from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "to": to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "bucket": q.get("bucket").unwrap_or("5m"),
        "series": row.get::<_, Value>(0),
    })))
}

async fn active(ctl: &Control) -> Result<Reply> {
    let client = ctl.pool.get().await?;
    let row = client
        .query_one(
            "SELECT coalesce(json_agg(json_build_object('id', a.id, 'rule_id', a.rule_id, \
               'rule_name', r.name, 'service_name', a.service_name, 'api_endpoint', a.api_endpoint, \
               'metric', r.metric, 'current_value', a.current_value, 'threshold', a.threshold, \
               'severity', a.severity, 'message', a.message, 'started_at', a.started_at) \
             ORDER BY a.started_at DESC, a.id DESC), '[]') \
             FROM active_alerts a JOIN alert_rules r ON r.id = a.rule_id \
             WHERE a.resolved_at IS NULL",
            &[],
        )
        .await?;
    Ok(Reply::data(row.get(0)))
}

async fn stats(ctl: &Control, q: &Query) -> Result<Reply> {
    let hours = q.int("hours")?.unwrap_or(24);
    if !(1..=24 * 7).contains(&hours) {
        return Err(ControlError::bad("hours", "1 to 168"));
    }
    let client = ctl.pool.get().await?;
    let row = client
        .query_one(
            "WITH w AS (SELECT a.*, r.name FROM active_alerts a JOIN alert_rules r ON r.id = a.rule_id \
                        WHERE a.started_at >= now() - make_interval(hours => $1::int4)) \
             SELECT json_build_object( \
               'hours', $1::int4, \
               'total', (SELECT count(*) FROM w), \
               'open', (SELECT count(*) FROM w WHERE resolved_at IS NULL), \
               'by_severity', (SELECT coalesce(json_object_agg(severity, n), '{}') \
                               FROM (SELECT severity, count(*) n FROM w GROUP BY 1) s), \
               'by_rule', (SELECT coalesce(json_agg(json_build_object('rule_id', rule_id, 'name', name, \
                               'count', n) ORDER BY n DESC, rule_id), '[]') \
                           FROM (SELECT rule_id, name, count(*) n FROM w GROUP BY 1, 2) s))",
            &[&(hours as i32)],
        )
        .await?;
    Ok(Reply::data(row.get(0)))
}

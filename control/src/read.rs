//! The dashboard read side (seed 002 §9), admin token only: live state per
//! miner, site summaries, alerts and ingest statistics.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;

use crate::commands::ts;
use crate::events::event_json;
use crate::{Control, ControlError, Principal, Reply, Result};

/// A URL query string, percent-decoded.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let pairs = q
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        Self(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ControlError::bad(key, format!("{v:?} is not an integer")))
            })
            .transpose()
    }

    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>> {
        self.get(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| ControlError::bad(key, format!("{v:?} is not an RFC 3339 time")))
            })
            .transpose()
    }

    /// `page` (from 1) and `per_page` (1-500, default 50).
    pub fn page(&self) -> Result<(i64, i64)> {
        let page = self.int("page")?.unwrap_or(1);
        let per_page = self.int("per_page")?.unwrap_or(50);
        if page < 1 {
            return Err(ControlError::bad("page", "starts at 1"));
        }
        if !(1..=500).contains(&per_page) {
            return Err(ControlError::bad("per_page", "must be 1-500"));
        }
        Ok((page, per_page))
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A WHERE clause built from optional filters, with numbered parameters.
#[derive(Default)]
pub struct Filter {
    clauses: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.clauses).finish()
    }
}

impl Filter {
    /// Adds `<left> $n` (e.g. `"site_id = "`) with its value.
    pub fn push(&mut self, left: &str, value: impl ToSql + Sync + Send + 'static) {
        self.push_around(left, value, "");
    }

    /// Adds `<left> $n <right>`.
    pub fn push_around(
        &mut self,
        left: &str,
        value: impl ToSql + Sync + Send + 'static,
        right: &str,
    ) {
        self.values.push(Box::new(value));
        self.clauses
            .push(format!("{left}${}{right}", self.values.len()));
    }

    /// A clause with no parameter.
    pub fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_string());
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// One page of `SELECT <select> FROM <from> <filter> ORDER BY <order>`
/// and the count of all matching rows.
pub(crate) async fn page(
    client: &tokio_postgres::Client,
    select: &str,
    from: &str,
    f: &Filter,
    order: &str,
    (page, per_page): (i64, i64),
) -> Result<(i64, Vec<tokio_postgres::Row>)> {
    let (filter, params) = (f.sql(), f.params());
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM {from} {filter}"), &params)
        .await?
        .get(0);
    let offset = (page - 1) * per_page;
    let rows = client
        .query(
            &format!(
                "SELECT {select} FROM {from} {filter} ORDER BY {order} \
                 LIMIT {per_page} OFFSET {offset}"
            ),
            &params,
        )
        .await?;
    Ok((total, rows))
}

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
    let (page, per_page) = q.page()?;
    let client = ctl.pool.get().await?;
    let (total, rows) = self::page(
        &client,
        "to_jsonb(l) - 'site_id' - 'ts' - 'updated_at' AS row, ts, updated_at",
        "miner_live l",
        &f,
        "miner_id",
        (page, per_page),
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
        "site_id": site, "items": items, "page": page, "per_page": per_page, "total": total
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
                    max(ts) AS latest \
             FROM miner_live WHERE site_id = $1",
            &[&site],
        )
        .await?;
    let (total, online): (i64, i64) = (r.get("total"), r.get("online"));
    let hashrate: f64 = r.get("hashrate");
    let power: f64 = r.get("power");
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
        // J/TH: watts per terahash per second.
        "efficiency_j_per_th": (hashrate > 0.0).then(|| power / (hashrate / 1000.0)),
        "open_alerts": by_sev,
        "latest_sample_at": latest.map(ts),
    })))
}

/// `GET /api/collector/alerts`: unresolved events by default; filters
/// `site_id`, `event_type`, `severity`, `status` (open, acknowledged,
/// resolved, all), paginated, newest first.
pub async fn alerts(ctl: &Control, who: Principal, q: &Query) -> Result<Reply> {
    who.admin()?;
    let mut f = Filter::default();
    if let Some(site) = q.int("site_id")? {
        f.push("site_id = ", site as i32);
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
    let (page, per_page) = q.page()?;
    let client = ctl.pool.get().await?;
    let (total, rows) = self::page(
        &client,
        "*",
        "events",
        &f,
        "opened_at DESC, id DESC",
        (page, per_page),
    )
    .await?;
    let items: Vec<Value> = rows.iter().map(event_json).collect();
    Ok(Reply::data(json!({
        "items": items, "page": page, "per_page": per_page, "total": total
    })))
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
    if let Some(site) = q.int("site_id")? {
        f.push("site_id = ", site as i32);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some("miner_id=a%2Fb+c&page=2&empty=&x=%zz"));
        assert_eq!(q.get("miner_id"), Some("a/b c"));
        assert_eq!(q.int("page").unwrap(), Some(2));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.get("x"), Some("%zz"));
        assert!(Query::parse(Some("page=x")).int("page").is_err());
        assert!(Query::parse(Some("per_page=501")).page().is_err());
    }
}

//! The dashboard read side (seed 002 §9), admin token only: live state per
//! miner, site summaries, alerts and ingest statistics.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;

use crate::commands::ts;
use crate::events::event_json;
use crate::{Control, ControlError, Principal, Reply, Result};

/// A URL query string, decoded as HTML forms are (`form_urlencoded`: `+`
/// is a space, a `%` not followed by two hex digits stays as it is).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `q`; a NUL character in a name or value is refused (it
    /// would reach a `text` filter, which PostgreSQL refuses).
    pub fn parse(q: Option<&str>) -> Result<Self> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, v) in &pairs {
            crate::storable::text("query", k)?;
            crate::storable::text(k, v)?;
        }
        Ok(Self(pairs))
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

    /// A site id: a 32-bit integer (a larger one is refused, never wrapped).
    pub fn site(&self, key: &str) -> Result<Option<i32>> {
        self.int(key)?
            .map(|v| {
                i32::try_from(v).map_err(|_| {
                    ControlError::bad(key, format!("{v} is outside the site id range"))
                })
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

    /// `page` (from 1) and `per_page` (1-500, default 50), as the page and
    /// the row offset it starts at.
    pub fn page(&self) -> Result<Page> {
        let page = self.int("page")?.unwrap_or(1);
        let per_page = self.int("per_page")?.unwrap_or(50);
        if page < 1 {
            return Err(ControlError::bad("page", "starts at 1"));
        }
        if !(1..=500).contains(&per_page) {
            return Err(ControlError::bad("per_page", "must be 1-500"));
        }
        let offset = (page - 1).checked_mul(per_page).ok_or_else(|| {
            ControlError::bad(
                "page",
                format!("{page} is too large for per_page {per_page}"),
            )
        })?;
        Ok(Page {
            page,
            per_page,
            offset,
        })
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
    /// Rows before it: `(page - 1) * per_page`, known not to overflow.
    pub offset: i64,
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
    p: Page,
) -> Result<(i64, Vec<tokio_postgres::Row>)> {
    let (filter, params) = (f.sql(), f.params());
    let total: i64 = client
        .query_one(&format!("SELECT count(*) FROM {from} {filter}"), &params)
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT {select} FROM {from} {filter} ORDER BY {order} \
                 LIMIT {} OFFSET {}",
                p.per_page, p.offset
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
    let p = q.page()?;
    let client = ctl.pool.get().await?;
    let (total, rows) = self::page(
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
        // J/TH: watts per terahash per second, over the miners that report
        // both (a miner without power would otherwise make it look better).
        "efficiency_j_per_th": efficiency,
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
    let p = q.page()?;
    let client = ctl.pool.get().await?;
    let (total, rows) =
        self::page(&client, "*", "events", &f, "opened_at DESC, id DESC", p).await?;
    let items: Vec<Value> = rows.iter().map(event_json).collect();
    Ok(Reply::data(json!({
        "items": items, "page": p.page, "per_page": p.per_page, "total": total
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse(Some("miner_id=a%2Fb+c&page=2&empty=&x=%zz")).unwrap();
        assert_eq!(q.get("miner_id"), Some("a/b c"));
        assert_eq!(q.int("page").unwrap(), Some(2));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.get("x"), Some("%zz"));
        let parse = |s| Query::parse(Some(s)).unwrap();
        assert!(parse("page=x").int("page").is_err());
        assert!(parse("per_page=501").page().is_err());
        // A sign is not a hex digit (`%+f` was byte 0x0f).
        assert_eq!(parse("m=%+f").get("m"), Some("% f"));
        assert_eq!(parse("m=%-1").get("m"), Some("%-1"));
        // A NUL would reach a text filter.
        assert!(matches!(
            Query::parse(Some("miner_id=a%00")),
            Err(ControlError::Unstorable { .. })
        ));
    }

    #[test]
    fn pages_and_site_ids_never_wrap() {
        let parse = |s| Query::parse(Some(s)).unwrap();
        assert_eq!(
            parse("page=3&per_page=10").page().unwrap(),
            Page {
                page: 3,
                per_page: 10,
                offset: 20
            }
        );
        assert!(parse("page=9223372036854775807&per_page=500")
            .page()
            .is_err());
        assert!(parse("page=18446744073709551617").page().is_err());
        assert_eq!(parse("site_id=7").site("site_id").unwrap(), Some(7));
        assert!(parse("site_id=4294967297").site("site_id").is_err());
        assert!(parse("site_id=-2147483649").site("site_id").is_err());
    }
}

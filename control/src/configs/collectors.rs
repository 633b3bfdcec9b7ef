//! Configurations as collectors see them: the effective configuration of
//! a collector key ([`collector_config`], and the version the heartbeat
//! answer carries), and which collector runs which version ([`agents`]).

use serde_json::{json, Value};

use crate::query::Query;
use crate::rfc3339::{opt_ts, ts};
use crate::{Control, Principal, Reply, Result};

/// `SELECT <cols>` of the effective configuration of the collector key
/// `key` (an SQL expression): the most recently activated active config
/// listing it, else the most recently activated active `all` config; no
/// row when there is none. Columns are read from `agent_configs e`.
pub(crate) fn effective_sql(cols: &str, key: &str) -> String {
    format!(
        "SELECT {cols} FROM agent_configs e \
         WHERE e.status = 'active' AND (e.applies_to = 'all' OR e.agent_ids @> ARRAY[{key}]::int4[]) \
         ORDER BY e.applies_to = 'specific' DESC, e.activated_at DESC, e.id DESC LIMIT 1"
    )
}

/// `GET /api/collector/config` (collector key): its effective
/// configuration, `{"version","config","activated_at"}`, all null when
/// none is active (the collector keeps its built-in defaults).
pub async fn collector_config(ctl: &Control, who: Principal) -> Result<Reply> {
    let (key_id, _) = who.collector()?;
    let client = ctl.pool.get().await?;
    let row = client
        .query_opt(
            &effective_sql("e.version, e.config_data, e.activated_at", "$1::int4"),
            &[&key_id],
        )
        .await?;
    let data = match row {
        Some(r) => json!({
            "version": r.get::<_, String>(0),
            "config": r.get::<_, Value>(1),
            "activated_at": opt_ts(r.get(2)),
        }),
        None => json!({"version": null, "config": null, "activated_at": null}),
    };
    Ok(Reply::data(data))
}

/// `GET /api/collector/agents` (admin): every collector that has sent a
/// heartbeat (`?site_id=` keeps one site), by key id, with the version it
/// says it runs, the one it should run, and whether they are the same.
pub async fn agents(ctl: &Control, who: Principal, q: &Query) -> Result<Reply> {
    who.admin()?;
    let site = q.site("site_id")?;
    let client = ctl.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT a.key_id, k.name, a.site_id, a.status, a.last_seen_at, a.version, \
                   a.config_version, ({}) AS expected \
                 FROM collector_agents a LEFT JOIN collector_keys k ON k.id = a.key_id \
                 WHERE $1::int4 IS NULL OR a.site_id = $1 ORDER BY a.key_id",
                effective_sql("e.version", "a.key_id")
            ),
            &[&site],
        )
        .await?;
    let agents: Vec<Value> = rows
        .iter()
        .map(|r| {
            let running: Option<String> = r.get("config_version");
            let expected: Option<String> = r.get("expected");
            json!({
                "key_id": r.get::<_, i32>("key_id"),
                "name": r.get::<_, Option<String>>("name"),
                "site_id": r.get::<_, i32>("site_id"),
                "status": r.get::<_, String>("status"),
                "last_seen_at": ts(r.get("last_seen_at")),
                "version": r.get::<_, Option<String>>("version"),
                "config_current": running == expected,
                "config_version": running,
                "expected_config_version": expected,
            })
        })
        .collect();
    Ok(Reply::data(json!({ "agents": agents })))
}

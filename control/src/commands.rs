//! Commands for miners (seed 002 §3.2-3.4, seed 000 `agent_commands`):
//! admins create, cancel and list them; a site's collector fetches its
//! pending ones (atomically marked `sent`, `FOR UPDATE SKIP LOCKED`, so two
//! pollers never get the same command) and reports results. States:
//! `pending → sent → completed | failed | expired | cancelled`; a sent
//! command with no result within its timeout goes back to pending up to
//! `max_retries` times, then expires ([`sweep`]). Every change is one row
//! in `agent_command_logs`.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_postgres::Row;

use crate::error::Detail;
use crate::events::{self, EventType};
use crate::query::{self, Filter, Query};
use crate::rfc3339::{opt_ts, ts};
use crate::{Control, ControlError, Principal, Reply, Result};

/// The command types collectors understand.
pub const COMMAND_TYPES: [&str; 7] = [
    "enable",
    "disable",
    "restart",
    "reboot",
    "set_pool",
    "set_fan",
    "set_frequency",
];
/// `set_frequency` bounds, MHz.
pub const FREQUENCY_MHZ: (f64, f64) = (100.0, 2000.0);
/// Most commands in one batch.
pub const MAX_BATCH: usize = 1000;
/// Longest `ttl_minutes` (7 days).
const MAX_TTL_MINUTES: f64 = 7.0 * 24.0 * 60.0;

/// `POST /api/collector/commands`, as the seed defines it (with `command`
/// and `params` accepted for `command_type` and `parameters`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCommand {
    pub miner_id: String,
    pub site_id: i32,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(alias = "command")]
    pub command_type: String,
    #[serde(default, alias = "params")]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub ttl_minutes: Option<f64>,
    /// Seconds a sent command may go without a result (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// Times a timed-out command is sent again (default 3).
    #[serde(default)]
    pub max_retries: Option<i64>,
}

/// A [`NewCommand`] that passed validation.
#[derive(Debug, Clone)]
struct Valid {
    site_id: i32,
    miner_id: String,
    ip_address: Option<String>,
    command: &'static str,
    params: Value,
    priority: i16,
    ttl_s: f64,
    timeout_s: i32,
    max_retries: i32,
}

/// Checks a command and its parameters; every problem is listed.
fn validate(c: NewCommand, prefix: &str) -> std::result::Result<Valid, Vec<Detail>> {
    let mut errs = Vec::new();
    let mut bad = |field: &str, reason: String| {
        errs.push(Detail {
            field: format!("{prefix}{field}"),
            reason,
        })
    };
    let miner_chars = c.miner_id.chars().count();
    if !(1..=64).contains(&miner_chars) || c.miner_id.chars().any(char::is_control) {
        bad(
            "miner_id",
            "must be 1-64 characters without control characters".into(),
        );
    }
    if let Some(ip) = &c.ip_address {
        if ip.parse::<std::net::IpAddr>().is_err() {
            bad("ip_address", format!("{ip:?} is not an IP address"));
        }
    }
    let command = COMMAND_TYPES
        .iter()
        .find(|t| **t == c.command_type)
        .copied();
    if command.is_none() {
        bad(
            "command_type",
            format!(
                "{:?} is not one of {}",
                c.command_type,
                COMMAND_TYPES.join(", ")
            ),
        );
    }
    let params = match c.parameters {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            bad("parameters", "must be an object".into());
            Map::new()
        }
    };
    if let Some(command) = command {
        for (field, reason) in check_params(command, &params) {
            bad(&format!("parameters.{field}"), reason);
        }
    }
    let priority = c.priority.unwrap_or(5);
    if !(0..=9).contains(&priority) {
        bad("priority", format!("{priority} is outside 0..=9"));
    }
    let ttl = c.ttl_minutes.unwrap_or(30.0);
    if !(ttl > 0.0 && ttl <= MAX_TTL_MINUTES) {
        bad(
            "ttl_minutes",
            format!("{ttl} is outside (0, {MAX_TTL_MINUTES}]"),
        );
    }
    let timeout = c.timeout_seconds.unwrap_or(300);
    if !(1..=86_400).contains(&timeout) {
        bad("timeout_seconds", format!("{timeout} is outside 1..=86400"));
    }
    let retries = c.max_retries.unwrap_or(3);
    if !(0..=10).contains(&retries) {
        bad("max_retries", format!("{retries} is outside 0..=10"));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Valid {
        site_id: c.site_id,
        miner_id: c.miner_id,
        ip_address: c.ip_address,
        command: command.unwrap_or_default(),
        params: Value::Object(params),
        priority: priority as i16,
        ttl_s: ttl * 60.0,
        timeout_s: timeout as i32,
        max_retries: retries as i32,
    })
}

/// The parameter rules of each command type: (field, reason) per problem.
pub fn check_params(command: &str, p: &Map<String, Value>) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let allowed: &[&str] = match command {
        "set_pool" => &["pool_url", "worker", "password"],
        "set_fan" => &["speed"],
        "set_frequency" => &["frequency_mhz"],
        "reboot" | "restart" => &["delay_seconds"],
        _ => &[],
    };
    for k in p.keys() {
        if !allowed.contains(&k.as_str()) {
            errs.push((k.clone(), format!("not a parameter of {command}")));
        }
    }
    let text =
        |k: &str, max: usize, required: bool, errs: &mut Vec<(String, String)>| match p.get(k) {
            None if required => errs.push((k.into(), "required".into())),
            None => {}
            Some(Value::String(s))
                if !s.is_empty() && s.chars().count() <= max && s.chars().any(char::is_control) =>
            {
                errs.push((k.into(), "contains control characters".into()));
            }
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => {}
            Some(_) => errs.push((k.into(), format!("must be a string of 1-{max} characters"))),
        };
    match command {
        "set_pool" => {
            text("pool_url", 1024, true, &mut errs);
            text("worker", 256, true, &mut errs);
            text("password", 256, false, &mut errs);
            if let Some(Value::String(url)) = p.get("pool_url") {
                let scheme_ok = url
                    .split_once("://")
                    .is_some_and(|(s, rest)| s.starts_with("stratum") && !rest.is_empty());
                if !scheme_ok {
                    errs.push((
                        "pool_url".into(),
                        "must look like stratum+tcp://host:port".into(),
                    ));
                }
            }
        }
        "set_fan" => match p.get("speed") {
            Some(Value::String(s)) if s == "auto" => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (0.0..=100.0).contains(&v)) => {}
            None => errs.push(("speed".into(), "required (0-100 %, or \"auto\")".into())),
            Some(_) => errs.push(("speed".into(), "must be 0-100 (%) or \"auto\"".into())),
        },
        "set_frequency" => match p.get("frequency_mhz").and_then(Value::as_f64) {
            Some(f) if (FREQUENCY_MHZ.0..=FREQUENCY_MHZ.1).contains(&f) => {}
            _ => errs.push((
                "frequency_mhz".into(),
                format!(
                    "required, {}-{} MHz",
                    FREQUENCY_MHZ.0 as i64, FREQUENCY_MHZ.1 as i64
                ),
            )),
        },
        "reboot" | "restart" => {
            if let Some(v) = p.get("delay_seconds") {
                if v.as_u64().is_none_or(|d| d > 3600) {
                    errs.push(("delay_seconds".into(), "must be 0-3600".into()));
                }
            }
        }
        _ => {}
    }
    errs
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ControlError::bad("body", e.to_string()))
}

/// The columns [`command_json`] reads.
const COLUMNS: &str = "id, site_id, miner_id, ip_address, command, params, priority, status, \
    created_at, expires_at, sent_at, finished_at, retry_count, max_retries, timeout_s, \
    result_code, result_message";

/// A command as admins see it.
fn command_json(r: &Row) -> Value {
    json!({
        "command_id": r.get::<_, i64>("id"),
        "site_id": r.get::<_, i32>("site_id"),
        "miner_id": r.get::<_, String>("miner_id"),
        "ip_address": r.get::<_, Option<String>>("ip_address"),
        "command": r.get::<_, String>("command"),
        "params": r.get::<_, Value>("params"),
        "priority": r.get::<_, i16>("priority"),
        "status": r.get::<_, String>("status"),
        "created_at": ts(r.get("created_at")),
        "expires_at": ts(r.get("expires_at")),
        "sent_at": opt_ts(r.get("sent_at")),
        "finished_at": opt_ts(r.get("finished_at")),
        "retry_count": r.get::<_, i32>("retry_count"),
        "max_retries": r.get::<_, i32>("max_retries"),
        "timeout_seconds": r.get::<_, i32>("timeout_s"),
        "result_code": r.get::<_, Option<i32>>("result_code"),
        "result_message": r.get::<_, Option<String>>("result_message"),
    })
}

/// Inserts validated commands and their `created` log rows in one statement.
async fn insert(ctl: &Control, who: Principal, cmds: &[Valid]) -> Result<Vec<Value>> {
    let admin = who.admin()?;
    let col = |f: fn(&Valid) -> String| cmds.iter().map(f).collect::<Vec<_>>();
    let sites: Vec<i32> = cmds.iter().map(|c| c.site_id).collect();
    let miners = col(|c| c.miner_id.clone());
    let ips: Vec<Option<String>> = cmds.iter().map(|c| c.ip_address.clone()).collect();
    let types = col(|c| c.command.to_string());
    let params = col(|c| c.params.to_string());
    let prios: Vec<i16> = cmds.iter().map(|c| c.priority).collect();
    let ttls: Vec<f64> = cmds.iter().map(|c| c.ttl_s).collect();
    let timeouts: Vec<i32> = cmds.iter().map(|c| c.timeout_s).collect();
    let retries: Vec<i32> = cmds.iter().map(|c| c.max_retries).collect();
    let sql = format!(
        "WITH new AS ( \
           INSERT INTO agent_commands (site_id, miner_id, ip_address, command, params, priority, \
                                       created_by, expires_at, timeout_s, max_retries) \
           SELECT s, m, ip, c, p::jsonb, pr, $7, now() + make_interval(secs => ttl), t, mr \
           FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], \
                       $8::float8[], $9::int4[], $10::int4[]) \
                AS u(s, m, ip, c, p, pr, ttl, t, mr) \
           RETURNING {COLUMNS}), \
         logged AS ( \
           INSERT INTO agent_command_logs (command_id, event, new_status, actor) \
           SELECT id, 'created', 'pending', $11 FROM new) \
         SELECT {COLUMNS} FROM new ORDER BY id"
    );
    let client = ctl.pool.get().await?;
    let rows = client
        .query(
            &sql,
            &[
                &sites,
                &miners,
                &ips,
                &types,
                &params,
                &prios,
                &admin,
                &ttls,
                &timeouts,
                &retries,
                &who.actor(),
            ],
        )
        .await?;
    Ok(rows.iter().map(command_json).collect())
}

/// `POST /api/collector/commands` (admin).
pub async fn create(ctl: &Control, who: Principal, body: &[u8]) -> Result<Reply> {
    who.admin()?;
    let c: NewCommand = parse_body(body)?;
    let valid = validate(c, "").map_err(|details| ControlError::BadRequest {
        reason: "the command is not valid".into(),
        details,
    })?;
    let mut created = insert(ctl, who, &[valid]).await?;
    Ok(Reply::data(created.pop().unwrap_or_default()))
}

/// `POST /api/collector/commands/batch` (admin): `{"commands": [...]}`,
/// all or nothing.
pub async fn create_batch(ctl: &Control, who: Principal, body: &[u8]) -> Result<Reply> {
    who.admin()?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        commands: Vec<NewCommand>,
    }
    let batch: Batch = parse_body(body)?;
    if batch.commands.is_empty() || batch.commands.len() > MAX_BATCH {
        return Err(ControlError::bad(
            "commands",
            format!("must hold 1-{MAX_BATCH} commands"),
        ));
    }
    let mut valid = Vec::with_capacity(batch.commands.len());
    let mut details = Vec::new();
    for (i, c) in batch.commands.into_iter().enumerate() {
        match validate(c, &format!("commands[{i}].")) {
            Ok(v) => valid.push(v),
            Err(d) => details.extend(d),
        }
    }
    if !details.is_empty() {
        return Err(ControlError::BadRequest {
            reason: format!(
                "{} problems in the batch; nothing was created",
                details.len()
            ),
            details,
        });
    }
    let created = insert(ctl, who, &valid).await?;
    Ok(Reply::data(
        json!({"count": created.len(), "commands": created}),
    ))
}

/// `GET /api/collector/commands/pending` (collector key): the site's
/// pending, unexpired commands by priority then age, marked `sent`. The
/// seed's exact shape.
pub async fn pending(ctl: &Control, who: Principal, q: &Query) -> Result<Reply> {
    let (_key, site) = who.collector()?;
    let limit = q.int("limit")?.unwrap_or(50).clamp(1, 500);
    let client = ctl.pool.get().await?;
    let rows = client
        .query(
            "WITH picked AS ( \
               SELECT id, status FROM agent_commands \
               WHERE site_id = $1 AND status = 'pending' AND expires_at > now() \
               ORDER BY priority DESC, created_at, id \
               LIMIT $2 FOR UPDATE SKIP LOCKED), \
             sent AS ( \
               UPDATE agent_commands c SET status = 'sent', sent_at = now(), updated_at = now() \
               FROM picked WHERE c.id = picked.id \
               RETURNING c.id, c.miner_id, c.ip_address, c.command, c.params, c.priority, \
                         c.expires_at, c.created_at), \
             logged AS ( \
               INSERT INTO agent_command_logs (command_id, event, old_status, new_status, actor) \
               SELECT id, 'sent', 'pending', 'sent', $3 FROM sent) \
             SELECT * FROM sent ORDER BY priority DESC, created_at, id",
            &[&site, &limit, &who.actor()],
        )
        .await?;
    let commands: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "command_id": r.get::<_, i64>("id"),
                "miner_id": r.get::<_, String>("miner_id"),
                "ip_address": r.get::<_, Option<String>>("ip_address"),
                "command": r.get::<_, String>("command"),
                "params": r.get::<_, Value>("params"),
                "priority": r.get::<_, i16>("priority"),
                "expires_at": ts(r.get("expires_at")),
            })
        })
        .collect();
    Ok(Reply::envelope(
        200,
        true,
        &[
            ("count", json!(commands.len())),
            ("commands", Value::Array(commands)),
        ],
    ))
}

/// `POST /api/collector/commands/{id}/result` (collector key, own site
/// only): `{"status": "completed"|"failed", "result_code", "result_message"}`.
pub async fn result(ctl: &Control, who: Principal, id: i64, body: &[u8]) -> Result<Reply> {
    let (_key, site) = who.collector()?;
    #[derive(Deserialize)]
    struct Outcome {
        status: String,
        #[serde(default)]
        result_code: Option<i32>,
        #[serde(default)]
        result_message: Option<String>,
    }
    let o: Outcome = parse_body(body)?;
    if o.status != "completed" && o.status != "failed" {
        return Err(ControlError::bad(
            "status",
            "must be \"completed\" or \"failed\"",
        ));
    }
    if o.result_message.as_ref().is_some_and(|m| m.len() > 4096) {
        return Err(ControlError::bad(
            "result_message",
            "longer than 4096 bytes",
        ));
    }
    if let Some(m) = &o.result_message {
        crate::storable::text("result_message", m)?;
    }
    let client = ctl.pool.get().await?;
    let row = client
        .query_opt(
            "WITH cur AS ( \
               SELECT id, status, miner_id, command FROM agent_commands \
               WHERE id = $1 AND site_id = $2 FOR UPDATE), \
             upd AS ( \
               UPDATE agent_commands c SET status = $3, result_code = $4, result_message = $5, \
                      finished_at = now(), updated_at = now() \
               FROM cur WHERE c.id = cur.id AND cur.status IN ('sent', 'pending') \
               RETURNING c.id), \
             logged AS ( \
               INSERT INTO agent_command_logs (command_id, event, old_status, new_status, actor, message) \
               SELECT cur.id, $3, cur.status, $3, $6, $5 FROM cur JOIN upd USING (id)) \
             SELECT cur.status, cur.miner_id, cur.command, EXISTS (SELECT 1 FROM upd) AS done FROM cur",
            &[&id, &site, &o.status, &o.result_code, &o.result_message, &who.actor()],
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    let (old, miner, command, done): (String, String, String, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if !done {
        return Err(ControlError::Conflict {
            reason: format!(
                "command {id} is {old}; only a sent (or timed-out, requeued) command takes a result"
            ),
        });
    }
    if o.status == "failed" {
        let msg = format!(
            "{command} failed: {}",
            o.result_message.as_deref().unwrap_or("no message")
        );
        events::open(
            &client,
            site,
            &miner,
            EventType::CommandFailed,
            &msg,
            Some(json!({"command_id": id, "result_code": o.result_code})),
        )
        .await?;
    } else {
        events::resolve(&client, site, &miner, EventType::CommandFailed, "auto").await?;
    }
    Ok(Reply::envelope(
        200,
        true,
        &[("message", json!("Result reported successfully"))],
    ))
}

/// `DELETE /api/collector/commands/{id}` (admin): a pending or sent
/// command becomes `cancelled`.
pub async fn cancel(ctl: &Control, who: Principal, id: i64) -> Result<Reply> {
    who.admin()?;
    let client = ctl.pool.get().await?;
    let row = client
        .query_opt(
            "WITH cur AS (SELECT id, status FROM agent_commands WHERE id = $1 FOR UPDATE), \
                 upd AS ( \
                   UPDATE agent_commands c SET status = 'cancelled', finished_at = now(), \
                          updated_at = now() \
                   FROM cur WHERE c.id = cur.id AND cur.status IN ('pending', 'sent') \
                   RETURNING c.*), \
                 logged AS ( \
                   INSERT INTO agent_command_logs (command_id, event, old_status, new_status, actor) \
                   SELECT cur.id, 'cancelled', cur.status, 'cancelled', $2 FROM cur JOIN upd USING (id)) \
                 SELECT cur.status AS old_status, upd.* FROM cur LEFT JOIN upd USING (id)",
            &[&id, &who.actor()],
        )
        .await?
        .ok_or(ControlError::NotFound)?;
    if row.get::<_, Option<String>>("status").is_none() {
        let old: String = row.get("old_status");
        return Err(ControlError::Conflict {
            reason: format!("command {id} is already {old}"),
        });
    }
    Ok(Reply::data(command_json(&row)))
}

/// `GET /api/collector/commands/history` (admin): filters `site_id`,
/// `miner_id`, `status`, `from`, `to` (RFC 3339), `page`, `per_page`;
/// newest first, with each command's log.
pub async fn history(ctl: &Control, who: Principal, q: &Query) -> Result<Reply> {
    who.admin()?;
    let mut filter = Filter::default();
    if let Some(site) = q.site("site_id")? {
        filter.push("site_id = ", site);
    }
    if let Some(m) = q.get("miner_id") {
        filter.push("miner_id = ", m.to_string());
    }
    if let Some(s) = q.get("status") {
        const STATES: [&str; 6] = [
            "pending",
            "sent",
            "completed",
            "failed",
            "expired",
            "cancelled",
        ];
        if !STATES.contains(&s) {
            return Err(ControlError::bad(
                "status",
                format!("{s:?} is not one of {}", STATES.join(", ")),
            ));
        }
        filter.push("status = ", s.to_string());
    }
    if let Some(from) = q.time("from")? {
        filter.push("created_at >= ", from);
    }
    if let Some(to) = q.time("to")? {
        filter.push("created_at < ", to);
    }
    let p = q.page()?;
    let client = ctl.pool.get().await?;
    let select = format!(
        "{COLUMNS}, (SELECT coalesce(jsonb_agg(jsonb_build_object( \
           'at', to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"'), \
           'event', l.event, 'old_status', l.old_status, 'new_status', l.new_status, \
           'actor', l.actor, 'message', l.message) ORDER BY l.at, l.id), '[]') \
           FROM agent_command_logs l WHERE l.command_id = c.id) AS log"
    );
    let (total, rows) = query::page(
        &client,
        &select,
        "agent_commands c",
        &filter,
        "created_at DESC, id DESC",
        p,
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = command_json(r);
            v["log"] = r.get("log");
            v
        })
        .collect();
    Ok(Reply::data(
        json!({"items": items, "page": p.page, "per_page": p.per_page, "total": total}),
    ))
}

/// Sent commands past their timeout go back to pending (or expire after
/// `max_retries`); pending ones past `expires_at` expire. Returns
/// (requeued, expired).
pub async fn sweep(client: &tokio_postgres::Client) -> Result<(u64, u64)> {
    let row = client
        .query_one(
            "WITH late AS ( \
               SELECT id FROM agent_commands \
               WHERE status = 'sent' AND sent_at < now() - make_interval(secs => timeout_s) \
               FOR UPDATE SKIP LOCKED), \
             upd AS ( \
               UPDATE agent_commands c SET \
                 status = CASE WHEN c.retry_count < c.max_retries AND c.expires_at > now() \
                               THEN 'pending' ELSE 'expired' END, \
                 retry_count = c.retry_count + \
                   CASE WHEN c.retry_count < c.max_retries AND c.expires_at > now() THEN 1 ELSE 0 END, \
                 finished_at = CASE WHEN c.retry_count < c.max_retries AND c.expires_at > now() \
                                    THEN NULL ELSE now() END, \
                 updated_at = now() \
               FROM late WHERE c.id = late.id RETURNING c.id, c.status), \
             stale AS ( \
               UPDATE agent_commands SET status = 'expired', finished_at = now(), updated_at = now() \
               WHERE status = 'pending' AND expires_at <= now() RETURNING id), \
             logged AS ( \
               INSERT INTO agent_command_logs (command_id, event, old_status, new_status, actor, message) \
               SELECT id, CASE status WHEN 'pending' THEN 'requeued' ELSE 'expired' END, 'sent', \
                      status, 'system', 'no result within the timeout' FROM upd \
               UNION ALL \
               SELECT id, 'expired', 'pending', 'expired', 'system', 'not fetched before expires_at' \
               FROM stale) \
             SELECT (SELECT count(*) FROM upd WHERE status = 'pending'), \
                    (SELECT count(*) FROM upd WHERE status = 'expired') + (SELECT count(*) FROM stale)",
            &[],
        )
        .await?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

/// Finished commands older than `days` are deleted (their log with them).
pub async fn expire_history(client: &tokio_postgres::Client, days: i32) -> Result<u64> {
    Ok(client
        .execute(
            "DELETE FROM agent_commands WHERE status IN ('completed', 'failed', 'expired', 'cancelled') \
             AND finished_at < now() - make_interval(days => $1)",
            &[&days],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parameters_are_checked_per_type() {
        let ok = |c: &str, p: Value| check_params(c, &params(p)).is_empty();
        assert!(ok("restart", json!({})));
        assert!(ok("reboot", json!({"delay_seconds": 30})));
        assert!(!ok("enable", json!({"x": 1})));
        assert!(ok(
            "set_pool",
            json!({"pool_url": "stratum+tcp://pool.example:3333", "worker": "w1"})
        ));
        assert!(!ok(
            "set_pool",
            json!({"pool_url": "http://x", "worker": "w1"})
        ));
        assert!(!ok("set_pool", json!({"pool_url": "stratum+tcp://p:1"})));
        assert!(ok("set_fan", json!({"speed": 80})));
        assert!(ok("set_fan", json!({"speed": "auto"})));
        assert!(!ok("set_fan", json!({"speed": 101})));
        assert!(!ok("set_fan", json!({"speed": "max"})));
        assert!(ok("set_frequency", json!({"frequency_mhz": 650})));
        assert!(!ok("set_frequency", json!({"frequency_mhz": 5})));
        assert!(!ok("set_frequency", json!({})));
    }

    #[test]
    fn a_command_lists_every_problem() {
        let c: NewCommand = serde_json::from_value(json!({
            "miner_id": "", "site_id": 1, "command_type": "explode",
            "priority": 12, "ttl_minutes": 0, "ip_address": "nope"
        }))
        .unwrap();
        let errs = validate(c, "").unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "miner_id",
                "ip_address",
                "command_type",
                "priority",
                "ttl_minutes"
            ]
        );
    }
}

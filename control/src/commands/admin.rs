//! The admin side of commands: create one or a batch (all or nothing),
//! cancel one, and list them with their logs.

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Row;

use super::parse_body;
use super::validate::{validate, NewCommand, Valid};
use crate::query::{self, Filter, Query};
use crate::rfc3339::{opt_ts, ts};
use crate::{Control, ControlError, Principal, Reply, Result};

/// Most commands in one batch.
pub const MAX_BATCH: usize = 1000;

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
    let valid = validate_batch(batch.commands)?;
    let created = insert(ctl, who, &valid).await?;
    Ok(Reply::data(
        json!({"count": created.len(), "commands": created}),
    ))
}

/// Every command of a batch validated, or every problem of the batch
/// (fields named `commands[i].…`) and nothing created.
fn validate_batch(commands: Vec<NewCommand>) -> Result<Vec<Valid>> {
    if commands.is_empty() || commands.len() > MAX_BATCH {
        return Err(ControlError::bad(
            "commands",
            format!("must hold 1-{MAX_BATCH} commands"),
        ));
    }
    let mut valid = Vec::with_capacity(commands.len());
    let mut details = Vec::new();
    for (i, c) in commands.into_iter().enumerate() {
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
    Ok(valid)
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
    let filter = history_filter(q)?;
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

/// The history's filters as a WHERE clause; an unknown status is refused.
fn history_filter(q: &Query) -> Result<Filter> {
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
    Ok(filter)
}

//! The collector side of commands: a site's collector fetches its pending
//! commands (each handed out once) and reports what came of each.

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Client;

use super::parse_body;
use crate::events::{self, EventType};
use crate::query::Query;
use crate::rfc3339::ts;
use crate::{Control, ControlError, Principal, Reply, Result};

/// Longest `result_message`, in bytes.
const MAX_RESULT_MESSAGE_BYTES: usize = 4096;

/// `GET /api/collector/commands/pending` (collector key): the site's
/// pending, unexpired commands by priority then age (at most `limit`,
/// 1-500, default 50), marked `sent` as they are handed out. Two pollers
/// of one site never get the same command (`FOR UPDATE SKIP LOCKED`). The
/// answer has no `data` member: `{"success": true, "count": n, "commands":
/// [...]}`, the shape collectors read.
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
    Ok(Reply::envelope(&[
        ("count", json!(commands.len())),
        ("commands", Value::Array(commands)),
    ]))
}

/// What a collector reports of one command.
#[derive(Debug, Deserialize)]
struct Outcome {
    status: String,
    #[serde(default)]
    result_code: Option<i32>,
    #[serde(default)]
    result_message: Option<String>,
}

/// `POST /api/collector/commands/{id}/result` (collector key, own site
/// only): `{"status": "completed"|"failed", "result_code", "result_message"}`.
/// A failure opens the miner's `command_failed` event; a success resolves it.
pub async fn result(ctl: &Control, who: Principal, id: i64, body: &[u8]) -> Result<Reply> {
    let (_key, site) = who.collector()?;
    let o = read_outcome(body)?;
    let client = ctl.pool.get().await?;
    let (miner, command) = finish_command(&client, who, site, id, &o).await?;
    follow_event(&client, site, id, &miner, &command, &o).await?;
    Ok(Reply::envelope(&[(
        "message",
        json!("Result reported successfully"),
    )]))
}

/// The body of a result, checked: a status of `completed` or `failed`, a
/// message PostgreSQL can store of at most 4096 bytes.
fn read_outcome(body: &[u8]) -> Result<Outcome> {
    let o: Outcome = parse_body(body)?;
    if o.status != "completed" && o.status != "failed" {
        return Err(ControlError::bad(
            "status",
            "must be \"completed\" or \"failed\"",
        ));
    }
    if o.result_message
        .as_ref()
        .is_some_and(|m| m.len() > MAX_RESULT_MESSAGE_BYTES)
    {
        return Err(ControlError::bad(
            "result_message",
            "longer than 4096 bytes",
        ));
    }
    if let Some(m) = &o.result_message {
        crate::storable::text("result_message", m)?;
    }
    Ok(o)
}

/// Records the outcome on the site's command `id` and logs it, in one
/// statement; answers the command's miner and type. A command of another
/// site is not found; one that is no longer sent or pending is a conflict.
async fn finish_command(
    client: &Client,
    who: Principal,
    site: i32,
    id: i64,
    o: &Outcome,
) -> Result<(String, String)> {
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
    Ok((miner, command))
}

/// A failed command opens its miner's `command_failed` event (unless one
/// is open); a completed one resolves it.
async fn follow_event(
    client: &Client,
    site: i32,
    id: i64,
    miner: &str,
    command: &str,
    o: &Outcome,
) -> Result<()> {
    if o.status == "failed" {
        let msg = format!(
            "{command} failed: {}",
            o.result_message.as_deref().unwrap_or("no message")
        );
        events::open(
            client,
            site,
            miner,
            EventType::CommandFailed,
            &msg,
            Some(json!({"command_id": id, "result_code": o.result_code})),
        )
        .await?;
    } else {
        events::resolve(client, site, miner, EventType::CommandFailed, "auto").await?;
    }
    Ok(())
}

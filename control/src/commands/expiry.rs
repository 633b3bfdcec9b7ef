//! The clocks of commands, run by [`crate::sweep`]: a sent command with no
//! result within its timeout goes back to pending, up to `max_retries`
//! times and while it has not passed `expires_at`, else it expires; a
//! pending one past `expires_at` expires; finished ones are deleted after
//! their retention.

use tokio_postgres::Client;

use crate::Result;

/// Sent commands past their timeout go back to pending (or expire, once
/// requeued `max_retries` times or past `expires_at`); pending ones past
/// `expires_at` expire. Each change is logged (`requeued`, `expired`).
/// Returns (requeued, expired).
pub async fn sweep(client: &Client) -> Result<(u64, u64)> {
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
pub async fn expire_history(client: &Client, days: i32) -> Result<u64> {
    Ok(client
        .execute(
            "DELETE FROM agent_commands WHERE status IN ('completed', 'failed', 'expired', 'cancelled') \
             AND finished_at < now() - make_interval(days => $1)",
            &[&days],
        )
        .await?)
}

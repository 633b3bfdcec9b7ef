//! The control plane's clocks, on one connection of their own: the live
//! state flush (every `live_flush_interval`); command timeouts and expiry
//! plus collector silence (every `sweep_interval`, in a tick whose flush
//! did not fail); and, hourly, the deletion of finished commands past
//! their retention and of alerts resolved 7 days ago. Alert rules are
//! reloaded every sweep, so another node's rule changes apply here too.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::{debug, info, warn};

use crate::Control;

/// How often finished commands older than their retention are deleted.
const HISTORY_INTERVAL: Duration = Duration::from_secs(3600);
/// Days a finished command is kept.
pub const COMMAND_RETENTION_DAYS: i32 = 30;

/// Runs until the task is aborted; reconnects after failures.
pub async fn run(ctl: Control, database_url: String) {
    let mut client: Option<Client> = None;
    let mut last_sweep = Instant::now() - ctl.config.sweep_interval;
    let mut last_history: Option<Instant> = None;
    let mut loaded = false;
    loop {
        tokio::time::sleep(
            ctl.config
                .live_flush_interval
                .min(ctl.config.sweep_interval),
        )
        .await;
        if client.as_ref().is_none_or(Client::is_closed) {
            client = connect(&database_url).await;
        }
        let Some(c) = client.as_ref() else { continue };
        if !loaded {
            match ctl.live.load_open_events(c).await {
                Ok(n) => {
                    loaded = true;
                    debug!(open = n, "Loaded unresolved telemetry events.");
                }
                Err(e) => warn!(error = %e, "Cannot load open events; will retry."),
            }
        }
        match ctl.live.flush(c).await {
            Ok(0) => {}
            Ok(n) => debug!(miners = n, "Flushed live state."),
            Err(_) => continue,
        }
        if last_sweep.elapsed() < ctl.config.sweep_interval {
            continue;
        }
        last_sweep = Instant::now();
        match crate::commands::sweep(c).await {
            Ok((0, 0)) => {}
            Ok((requeued, expired)) => info!(requeued, expired, "Command timeouts swept."),
            Err(e) => warn!(error = %e, "Command sweep failed; will retry."),
        }
        // Rules another node changed take effect here (this node's own
        // changes reload at once).
        if let Err(e) = ctl.alerts.reload(c).await {
            warn!(error = %e, "Cannot reload alert rules; will retry.");
        }
        if let Err(e) = crate::heartbeat::sweep_silent(c).await {
            warn!(error = %e, "Collector silence sweep failed; will retry.");
        }
        if last_history.is_none_or(|t| t.elapsed() >= HISTORY_INTERVAL) {
            last_history = Some(Instant::now());
            match crate::commands::expire_history(c, COMMAND_RETENTION_DAYS).await {
                Ok(0) => {}
                Ok(n) => info!(deleted = n, "Deleted finished commands past retention."),
                Err(e) => warn!(error = %e, "Command retention failed; will retry."),
            }
            match crate::alerts::retain(c).await {
                Ok(0) => {}
                Ok(n) => info!(deleted = n, "Deleted resolved alerts past retention."),
                Err(e) => warn!(error = %e, "Alert retention failed; will retry."),
            }
        }
    }
}

async fn connect(url: &str) -> Option<Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| warn!(error = %e, "Control-plane sweep cannot connect."))
        .ok()?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "Sweep connection ended.");
        }
    });
    Some(client)
}

//! The collector's four loops (see the module above for what each does).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::commands::{self, Command, Outcome as CommandOutcome};
use super::{Shared, VERSION};
use crate::cgminer::{self, Client};
use crate::cycle::{self, CycleConfig, DEFAULT_DEADLINE};
use crate::host;
use crate::settings::Settings;
use crate::upload::{spool_samples, Backoff, Outcome, DEFAULT_MAX_ROWS};

/// Commands under way get this long to finish at shutdown.
const COMMAND_GRACE: Duration = Duration::from_secs(5);
/// Tries to report one command's result.
const RESULT_TRIES: u32 = 3;

/// Waits until `started` + the interval `pick` reads from the settings,
/// recomputed when the settings change; false when the collector stops.
async fn wait_next(
    started: Instant,
    pick: fn(&Settings) -> Duration,
    settings: &mut watch::Receiver<Settings>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        let next = started + pick(&settings.borrow_and_update());
        tokio::select! {
            () = tokio::time::sleep_until(next) => return true,
            changed = settings.changed() => if changed.is_err() { return false },
            () = crate::agent::stopped(stop) => return false,
        }
    }
}

/// Time one miner gets in a cycle: twice the request timeout (at least the
/// default deadline), never more than three quarters of the interval.
fn deadline_for(s: &Settings) -> Duration {
    (s.cgminer_timeout * 2)
        .max(DEFAULT_DEADLINE)
        .min(s.interval.mul_f64(0.75))
        .max(s.cgminer_timeout)
}

fn client_for(s: &Settings) -> Client {
    Client::new(cgminer::Config {
        connect_timeout: s.cgminer_timeout,
        request_timeout: s.cgminer_timeout,
        attempts: s.cgminer_retries + 1,
        ..cgminer::Config::default()
    })
}

pub(super) async fn poll_loop(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut settings = sh.settings.subscribe();
    loop {
        let started = Instant::now();
        let s = settings.borrow_and_update().clone();
        let config = CycleConfig {
            concurrency: sh.cfg.concurrency,
            deadline: deadline_for(&s),
        };
        let client = client_for(&s);
        let cycle = tokio::select! {
            c = cycle::run(&client, &sh.cfg.miners, &config) => c,
            () = crate::agent::stopped(&mut stop) => break,
        };
        let m = &sh.metrics;
        m.cycles.fetch_add(1, Ordering::Relaxed);
        m.last_cycle_us
            .store(cycle.elapsed.as_micros() as u64, Ordering::Relaxed);
        m.miners_polled
            .store(cycle.samples.len() as u64, Ordering::Relaxed);
        m.miners_online
            .store(cycle.online as u64, Ordering::Relaxed);
        m.miners_offline
            .store(cycle.offline as u64, Ordering::Relaxed);
        m.poll_errors(&cycle.errors);
        *sh.last_cycle.lock().unwrap_or_else(|e| e.into_inner()) = super::LastCycle {
            online: cycle.online,
            total: cycle.samples.len(),
            with_errors: cycle
                .samples
                .iter()
                .filter(|s| s.error_message.is_some())
                .count(),
        };
        // Durable before it counts; not cancelled by shutdown once begun.
        let (spool, metrics) = (sh.spool.clone(), sh.metrics.clone());
        let samples = cycle.samples;
        let pushed = tokio::task::spawn_blocking(move || {
            let mut spool = spool.lock().unwrap_or_else(|e| e.into_inner());
            let result = (|| {
                spool.set_max_bytes(s.spool_max_bytes)?;
                if let Some(age) = s.spool_max_age {
                    spool.expire(age)?;
                }
                spool_samples(&mut spool, &samples, DEFAULT_MAX_ROWS)
            })();
            metrics.observe_spool(&spool);
            result
        })
        .await;
        match pushed {
            Ok(Ok(keys)) => {
                sh.spool_failing.store(false, Ordering::Relaxed);
                tracing::debug!(batches = keys.len(), "Cycle spooled.");
                sh.wake_upload.notify_one();
            }
            Ok(Err(e)) => {
                sh.spool_failing.store(true, Ordering::Relaxed);
                sh.metrics.spool_push_errors.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, code = e.code(), "Cycle not spooled: its samples are lost.");
            }
            Err(e) => {
                sh.spool_failing.store(true, Ordering::Relaxed);
                sh.metrics.spool_push_errors.fetch_add(1, Ordering::Relaxed);
                error!(error = %e, "Spool task failed: the cycle's samples are lost.");
            }
        }
        if !wait_next(started, |s| s.interval, &mut settings, &mut stop).await {
            break;
        }
    }
}

/// Waits after a failed upload: the schedule of the settings when there
/// is one, else exponential backoff.
struct UploadWait {
    failures: usize,
    exponential: Backoff,
}

impl UploadWait {
    fn next(&mut self, s: &Settings) -> Duration {
        let n = self.failures;
        self.failures += 1;
        match s.upload_backoff.as_slice() {
            [] => self.exponential.next_wait(),
            steps => steps[n.min(steps.len() - 1)],
        }
    }

    fn reset(&mut self) {
        self.failures = 0;
        self.exponential.reset();
    }
}

pub(super) async fn upload_loop(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut wait = UploadWait {
        failures: 0,
        exponential: Backoff::default(),
    };
    while !*stop.borrow() {
        let spool = sh.spool.clone();
        let peeked = tokio::task::spawn_blocking(move || {
            spool.lock().unwrap_or_else(|e| e.into_inner()).peek_entry()
        })
        .await;
        let (id, batch) = match peeked {
            Ok(Ok(Some(entry))) => entry,
            Ok(Ok(None)) => {
                sh.upload_failing.store(false, Ordering::Relaxed);
                tokio::select! {
                    () = sh.wake_upload.notified() => {}
                    () = crate::agent::stopped(&mut stop) => break,
                }
                continue;
            }
            Ok(Err(e)) => {
                error!(error = %e, "Spool not readable: uploads wait.");
                sleep_or_stop(Duration::from_secs(5), &mut stop).await;
                continue;
            }
            Err(e) => {
                error!(error = %e, "Spool task failed.");
                sleep_or_stop(Duration::from_secs(5), &mut stop).await;
                continue;
            }
        };
        // The send under way is finished even when shutdown comes meanwhile.
        let outcome = sh.uploader.send(&batch).await;
        let (label, remove, rejected) = match &outcome {
            Outcome::Sent => ("sent", true, false),
            Outcome::Rejected { status, body } => {
                error!(key = %batch.key, rows = batch.rows, status, answer = %body, "Upload rejected for good: batch dropped.");
                ("rejected", true, true)
            }
            Outcome::Unauthorized { body } => {
                error!(key = %batch.key, answer = %body, "adit refuses the collector key (401): batches kept until it is fixed.");
                ("unauthorized", false, false)
            }
            Outcome::Busy {
                status,
                retry_after,
            } => {
                warn!(key = %batch.key, status, ?retry_after, "adit busy: upload retried later.");
                ("busy", false, false)
            }
            Outcome::Network { reason } => {
                warn!(key = %batch.key, %reason, "adit not reached: upload retried later.");
                ("network", false, false)
            }
        };
        sh.metrics.upload(label);
        if remove {
            let spool = sh.spool.clone();
            let metrics = sh.metrics.clone();
            let removed = tokio::task::spawn_blocking(move || {
                let mut spool = spool.lock().unwrap_or_else(|e| e.into_inner());
                let r = spool.remove(id, rejected);
                metrics.observe_spool(&spool);
                r
            })
            .await;
            if let Ok(Err(e)) = removed {
                error!(error = %e, "Sent batch not removed from the spool: it will be sent again under its key.");
            }
            wait.reset();
            continue;
        }
        sh.upload_failing.store(true, Ordering::Relaxed);
        let pause = match outcome {
            Outcome::Busy {
                retry_after: Some(after),
                ..
            } => after,
            _ => wait.next(&sh.settings.borrow()),
        };
        if !sleep_or_stop(pause, &mut stop).await {
            break;
        }
    }
}

/// Sleeps `pause`; false when the collector stops first.
async fn sleep_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => true,
        () = crate::agent::stopped(stop) => false,
    }
}

pub(super) async fn commands_loop(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut settings = sh.settings.subscribe();
    let slots = Arc::new(Semaphore::new(sh.cfg.command_concurrency.max(1)));
    let locks: Arc<HashMap<SocketAddr, tokio::sync::Mutex<()>>> = Arc::new(
        sh.cfg
            .miners
            .iter()
            .map(|m| (*m, tokio::sync::Mutex::new(())))
            .collect(),
    );
    let mut tasks = JoinSet::new();
    loop {
        let started = Instant::now();
        let s = settings.borrow_and_update().clone();
        while tasks.try_join_next().is_some() {}
        if s.remote_control {
            let fetched = tokio::select! {
                f = sh.adit.ok(Method::GET, "/api/collector/commands/pending", None) => f,
                () = crate::agent::stopped(&mut stop) => break,
            };
            match fetched {
                Ok(answer) => {
                    let fetched = commands::parse_pending(&answer);
                    if !fetched.is_empty() {
                        info!(commands = fetched.len(), "Fetched commands.");
                    }
                    for (target, group) in group_by_miner(&sh, fetched) {
                        let (sh, slots, locks) = (sh.clone(), slots.clone(), locks.clone());
                        let client = client_for(&s);
                        tasks.spawn(async move {
                            run_group(&sh, &client, target, group, &slots, &locks).await;
                        });
                    }
                }
                Err(e) => warn!(error = %e, "Pending commands not fetched."),
            }
        }
        if !wait_next(started, |s| s.command_interval, &mut settings, &mut stop).await {
            break;
        }
    }
    let grace = tokio::time::sleep(COMMAND_GRACE);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            () = &mut grace => {
                warn!(left = tasks.len(), "Commands still under way at shutdown abandoned: adit sends them again after their timeout.");
                tasks.abort_all();
                break;
            }
        }
    }
}

/// Commands by their miner, in adit's order; a command whose miner is not
/// on the list keeps its error as the target.
fn group_by_miner(
    sh: &Shared,
    fetched: Vec<Command>,
) -> Vec<(Result<SocketAddr, String>, Vec<Command>)> {
    let mut groups: Vec<(Result<SocketAddr, String>, Vec<Command>)> = Vec::new();
    for cmd in fetched {
        let target = commands::resolve(&cmd, &sh.cfg.miners);
        match groups
            .iter_mut()
            .find(|(t, _)| t.is_ok() && t.as_ref().ok() == target.as_ref().ok())
        {
            Some((_, g)) => g.push(cmd),
            None => groups.push((target, vec![cmd])),
        }
    }
    groups
}

async fn run_group(
    sh: &Shared,
    client: &Client,
    target: Result<SocketAddr, String>,
    group: Vec<Command>,
    slots: &Semaphore,
    locks: &HashMap<SocketAddr, tokio::sync::Mutex<()>>,
) {
    let Ok(_slot) = slots.acquire().await else {
        return;
    };
    let _miner = match &target {
        Ok(addr) => match locks.get(addr) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        },
        Err(_) => None,
    };
    for cmd in group {
        let outcome = match &target {
            Ok(addr) => commands::execute(client, *addr, &cmd).await,
            Err(reason) => CommandOutcome {
                completed: false,
                code: None,
                message: format!("{}: {reason}; nothing was sent", cmd.command),
            },
        };
        if outcome.completed {
            info!(command_id = cmd.id, command = %cmd.command, miner = %cmd.miner_id, result = %outcome.message, "Command completed.");
        } else {
            warn!(command_id = cmd.id, command = %cmd.command, miner = %cmd.miner_id, result = %outcome.message, "Command failed.");
        }
        report(sh, &cmd, &outcome).await;
    }
}

/// Posts a command's result, a few tries on network errors.
async fn report(sh: &Shared, cmd: &Command, outcome: &CommandOutcome) {
    let path = format!("/api/collector/commands/{}/result", cmd.id);
    let body = outcome.body();
    for attempt in 1..=RESULT_TRIES {
        match sh.adit.post(&path, &body).await {
            Ok((status, _)) if status.is_success() => {
                sh.metrics.command(if outcome.completed {
                    "completed"
                } else {
                    "failed"
                });
                return;
            }
            Ok((status, answer)) => {
                warn!(command_id = cmd.id, status = status.as_u16(), answer = %super::adit::brief(&answer), "Command result refused by adit.");
                break;
            }
            Err(e) if attempt < RESULT_TRIES => {
                warn!(command_id = cmd.id, error = %e, attempt, "Command result not delivered; trying again.");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            Err(e) => {
                warn!(command_id = cmd.id, error = %e, "Command result not delivered: adit sends the command again after its timeout.")
            }
        }
    }
    sh.metrics.command("report_failed");
}

pub(super) async fn heartbeat_loop(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut settings = sh.settings.subscribe();
    let mut cpu_before = host::cpu_times();
    loop {
        let started = Instant::now();
        let body = heartbeat_body(&sh, &settings.borrow_and_update(), &mut cpu_before);
        // Shutdown does not wait for a heartbeat's answer.
        let answered = tokio::select! {
            a = sh.adit.ok(Method::POST, "/api/collector/heartbeat", Some(&body)) => a,
            () = crate::agent::stopped(&mut stop) => break,
        };
        match answered {
            Ok(answer) => {
                sh.metrics.heartbeats_ok.fetch_add(1, Ordering::Relaxed);
                let data = answer.get("data").unwrap_or(&answer);
                // An adit without central configuration leaves the key out.
                if let Some(v) = data.get("config_version") {
                    let wanted = v.as_str().map(str::to_string);
                    let applied = sh.applied_version();
                    if wanted != applied {
                        info!(
                            ?wanted,
                            ?applied,
                            "adit names another configuration version: fetching it."
                        );
                        if let Err(e) = sh.fetch_config().await {
                            warn!(error = %e, "Central configuration not fetched; keeping the one in force.");
                        }
                    }
                }
            }
            Err(e) => {
                sh.metrics.heartbeats_failed.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "Heartbeat not delivered.");
            }
        }
        if !wait_next(started, |s| s.heartbeat_interval, &mut settings, &mut stop).await {
            break;
        }
    }
}

/// The heartbeat: the seed's fields, the spool's figures in `extra_data`.
fn heartbeat_body(sh: &Shared, s: &Settings, cpu_before: &mut Option<host::CpuTimes>) -> Value {
    let cpu_now = host::cpu_times();
    let cpu = match (*cpu_before, cpu_now) {
        (Some(a), Some(b)) => host::cpu_percent(a, b),
        _ => None,
    };
    *cpu_before = cpu_now;
    let last = sh
        .last_cycle
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let m = &sh.metrics;
    let r = Ordering::Relaxed;
    let status = if sh.spool_failing.load(r) {
        "error"
    } else if sh.upload_failing.load(r) {
        "degraded"
    } else {
        "online"
    };
    let mut body = json!({
        "status": status,
        "uptime": sh.started.elapsed().as_secs(),
        "version": VERSION,
        "miners_total": last.total,
        "heartbeat_interval": s.heartbeat_interval.as_secs().clamp(1, 3600),
        "extra_data": {
            "spool_batches": m.spool_batches.load(r),
            "spool_bytes": m.spool_bytes.load(r),
            "spool_dropped_batches": m.spool_dropped.load(r),
            "spool_rejected_batches": m.spool_rejected.load(r),
            "spool_damaged_batches": m.spool_damaged.load(r),
            "cycles": m.cycles.load(r),
            "last_cycle_ms": m.last_cycle_us.load(r) / 1000,
            "uploads_sent": m.uploads_of("sent"),
            "remote_control": s.remote_control,
        },
    });
    let fields = [
        ("cpu_usage", cpu),
        ("memory_usage", host::memory_percent()),
        ("disk_usage", host::disk_percent(&sh.cfg.spool_dir)),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            body[name] = json!(v);
        }
    }
    // Before the first cycle nothing is known of the miners but their number.
    if m.cycles.load(r) > 0 {
        body["miners_online"] = json!(last.online);
        body["errors_count"] = json!(last.with_errors);
    }
    if let Some(v) = sh.applied_version() {
        body["config_version"] = json!(v);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miner_gets_a_deadline_inside_the_interval() {
        let s = Settings::default();
        assert_eq!(deadline_for(&s), DEFAULT_DEADLINE);
        let quick = Settings {
            interval: Duration::from_secs(1),
            cgminer_timeout: Duration::from_millis(500),
            ..Settings::default()
        };
        assert_eq!(deadline_for(&quick), Duration::from_millis(750));
        let slow = Settings {
            cgminer_timeout: Duration::from_secs(30),
            ..Settings::default()
        };
        assert_eq!(deadline_for(&slow), Duration::from_secs(45));
    }

    #[tokio::test]
    async fn a_changed_interval_takes_effect_at_the_next_wait() {
        let (tx, mut settings) = watch::channel(Settings {
            interval: Duration::from_secs(600),
            ..Settings::default()
        });
        let (stop_tx, mut stop) = watch::channel(false);
        let started = Instant::now();
        let waiting = tokio::spawn(async move {
            let go_on = wait_next(started, |s| s.interval, &mut settings, &mut stop).await;
            (go_on, settings, stop)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        tx.send_modify(|s| s.interval = Duration::from_millis(100));
        // The wait ends on the new interval, not ten minutes on.
        let (go_on, mut settings, mut stop) =
            tokio::time::timeout(Duration::from_secs(30), waiting)
                .await
                .expect("the wait follows the new interval")
                .unwrap();
        assert!(go_on);
        assert!(started.elapsed() >= Duration::from_millis(100));
        // Shutdown ends a wait.
        tx.send_modify(|s| s.interval = Duration::from_secs(600));
        stop_tx.send(true).unwrap();
        assert!(!wait_next(Instant::now(), |s| s.interval, &mut settings, &mut stop).await);
    }

    #[test]
    fn upload_waits_follow_the_schedule_and_its_last_step_repeats() {
        let mut w = UploadWait {
            failures: 0,
            exponential: Backoff::default(),
        };
        let s = Settings {
            upload_backoff: [1, 5, 30].map(Duration::from_secs).to_vec(),
            ..Settings::default()
        };
        let got: Vec<u64> = (0..5).map(|_| w.next(&s).as_secs()).collect();
        assert_eq!(got, [1, 5, 30, 30, 30]);
        w.reset();
        assert_eq!(w.next(&s), Duration::from_secs(1));
        let exp = Settings::default();
        assert!(w.next(&exp) <= Duration::from_secs(1));
    }
}

//! The whole path, with real processes on loopback: simulated miners
//! (`adit-minersim`) → the edge collector (`adit-collector`) → adit
//! (`adit serve`) → PostgreSQL, and commands and configuration back.
//!
//! - one row per miner per cycle with the simulator's values, the dead and
//!   stuck miners offline;
//! - adit stopped for two cycles, then started: every cycle arrives exactly
//!   once from the spool;
//! - the collector SIGKILLed while it has a backlog, then restarted: nothing
//!   lost, nothing doubled;
//! - a `restart` and a `set_pool` created in adit reach the miners, and their
//!   results come back;
//! - a configuration published in adit with a new interval is picked up by
//!   the running collector and shows in its heartbeats.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A binary of this workspace, built beside `adit` (cargo test builds a
/// package's binaries for its integration tests; `make test` runs them all).
fn workspace_bin(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_adit")).parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p {name}` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// Farms of simulated miners take fixed ports below the ephemeral range, so
/// a dead miner's port is never handed to some outgoing connection; each
/// farm of this file gets its own range.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

fn farm_ports(count: u16) -> u16 {
    let base = 12_000 + (std::process::id() % 40) as u16 * 500;
    base + NEXT_PORT.fetch_add(count, Ordering::SeqCst)
}

/// One simulated miner as the simulator listed it.
#[derive(Debug, Clone)]
struct SimMiner {
    index: usize,
    addr: SocketAddr,
    mode: String,
}

/// An `adit-minersim` process; killed on drop.
struct Sim {
    child: Child,
    miners: Vec<SimMiner>,
}

impl Sim {
    fn start(count: u16, seed: u64, args: &[&str]) -> Sim {
        let base = farm_ports(count);
        let mut child = Command::new(workspace_bin("adit-minersim"))
            .args([
                "--count",
                &count.to_string(),
                "--base-port",
                &base.to_string(),
            ])
            .args(["--seed", &seed.to_string(), "--list"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let head = lines
            .next()
            .expect("adit-minersim prints its farm")
            .unwrap();
        assert!(head.starts_with("adit-minersim: "), "{head}");
        let miners = (0..count)
            .map(|_| {
                let line = lines.next().unwrap().unwrap();
                let f: Vec<&str> = line.split_whitespace().collect();
                SimMiner {
                    index: f[1].parse().unwrap(),
                    addr: f[2].parse().unwrap(),
                    mode: f[3].to_string(),
                }
            })
            .collect();
        Sim { child, miners }
    }

    fn miners_arg(&self) -> String {
        self.miners
            .iter()
            .map(|m| m.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn by_id(&self) -> HashMap<String, SimMiner> {
        self.miners
            .iter()
            .map(|m| (m.addr.to_string(), m.clone()))
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh spool directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(std::env::temp_dir().join(format!("adit-e2e-{tag}-{}-{nanos}", std::process::id())))
    }

    /// Batches waiting in the spool (its files).
    fn batches(&self) -> usize {
        std::fs::read_dir(&self.0)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "batch"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An `adit-collector` process; killed on drop.
struct Collector {
    child: Child,
    metrics: SocketAddr,
}

impl Collector {
    fn start(adit: SocketAddr, key: &str, sim: &Sim, spool: &Path, args: &[&str]) -> Collector {
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(workspace_bin("adit-collector"))
            .args(["--adit-url", &format!("http://{adit}")])
            .args(["--key", key])
            .args(["--miners", &sim.miners_arg()])
            .args(["--spool-dir", spool.to_str().unwrap()])
            .args(["--metrics-listen", &metrics.to_string()])
            .args(args)
            // Outages are what these tests make: their warnings are expected.
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Collector { child, metrics }
    }

    /// The value of one metric on the collector's `/metrics` (the sum over
    /// its label sets), None while it does not answer.
    async fn metric(&self, name: &str) -> Option<f64> {
        let (status, _, body) = get(self.metrics, "/metrics").await.ok()?;
        if !status.is_success() {
            return None;
        }
        let text = body;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM and wait: the collector exits 0.
    fn stop(mut self) {
        self.signal("-TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(30));
        assert!(
            status.success(),
            "the collector exits 0 on SIGTERM: {status:?}"
        );
    }

    /// SIGKILL and wait.
    fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `limit` for `check` to give Some.
async fn within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rows per sample time (the cycle's start, as the collector measured it).
async fn rows_per_cycle(db: &tokio_postgres::Client) -> BTreeMap<i64, i64> {
    db.query(
        "SELECT extract(epoch FROM ts)::int8, count(*) FROM miner_telemetry GROUP BY 1 ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// An admin token in the database behind a spawned adit.
async fn admin_of(db: &tokio_postgres::Client) -> String {
    adit_control::keys::create_key(db, None, Some("admin"))
        .await
        .unwrap()
        .1
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// `adit serve` again on the same port and database, healthy.
async fn restart_adit(s: &mut Spawned) {
    s.child = spawn_adit(&s.db_url, s.port, &[], &[]);
    wait_healthy(s.port).await;
}

/// SIGTERM to adit and wait for it to exit.
fn stop_adit(s: &mut Spawned) {
    let ok = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    wait_exit(&mut s.child, Duration::from_secs(60));
}

/// Every cycle time in the table has exactly `miners` rows (no cycle
/// doubled or cut), and consecutive cycles are at most `max_gap` seconds
/// apart (no cycle lost).
fn assert_whole_cycles(cycles: &BTreeMap<i64, i64>, miners: i64, max_gap: i64) {
    for (ts, n) in cycles {
        assert_eq!(
            *n, miners,
            "cycle at {ts}: {n} rows for {miners} miners ({cycles:?})"
        );
    }
    let times: Vec<i64> = cycles.keys().copied().collect();
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] <= max_gap,
            "a cycle is missing between {} and {} ({times:?})",
            w[0],
            w[1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_miners_land_one_row_each_per_cycle_with_the_simulators_values() {
    const MINERS: u16 = 200;
    const SEED: u64 = 7;
    let mut adit = spawn_with_key("e2e_collector_200", 21, &[], &[]).await;
    // Quirky, slow, hanging, dead and malformed miners among normal ones.
    let sim = Sim::start(
        MINERS,
        SEED,
        &[
            "--quirk-share",
            "0.25",
            "--dead-share",
            "0.05",
            "--hang-share",
            "0.03",
            "--slow-share",
            "0.05",
            "--malformed-share",
            "0.03",
            "--slow-delay",
            "300ms",
        ],
    );
    let by_mode = |mode: &str| sim.miners.iter().filter(|m| m.mode == mode).count();
    for mode in ["Dead", "Hang", "Slow", "Malformed", "Normal"] {
        assert!(by_mode(mode) > 0, "the farm has {mode} miners");
    }
    let spool = Dir::new("200");
    let collector = Collector::start(
        adit.addr,
        &adit.key,
        &sim,
        &spool.0,
        &[
            "--interval",
            "4s",
            "--cgminer-timeout",
            "1s",
            "--heartbeat-interval",
            "2s",
        ],
    );
    // Two whole cycles in adit.
    let db = &adit.db;
    let cycles = within(
        Duration::from_secs(90),
        "two cycles of 200 rows",
        || async {
            let c = rows_per_cycle(db).await;
            (c.values().filter(|n| **n == i64::from(MINERS)).count() >= 2).then_some(c)
        },
    )
    .await;
    collector.stop();
    let cycles_seen = rows_per_cycle(db).await;
    assert_whole_cycles(&cycles_seen, i64::from(MINERS), 8);
    let first = *cycles.keys().next().unwrap();

    // Each miner's row of the first cycle against what the simulator serves.
    let nominals = adit_minersim::miner::nominals(usize::from(MINERS), SEED).unwrap();
    let by_id = sim.by_id();
    let rows = db
        .query(
            "SELECT miner_id, online, hashrate_ghs, pool_url, error_message, site_id \
             FROM miner_telemetry WHERE ts = to_timestamp($1::int8)",
            &[&first],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), usize::from(MINERS));
    for row in &rows {
        let id: String = row.get(0);
        let m = &by_id[&id];
        let online: bool = row.get(1);
        assert_eq!(row.get::<_, i32>(5), 21);
        match m.mode.as_str() {
            "Dead" | "Hang" | "Malformed" => {
                assert!(!online, "{id} ({}) is offline", m.mode);
                let why: Option<String> = row.get(4);
                assert!(why.is_some_and(|w| !w.is_empty()), "{id}: offline says why");
            }
            _ => {
                assert!(online, "{id} ({}) is online", m.mode);
                let nominal = &nominals[m.index];
                let got: f64 = row.get(2);
                assert!(
                    (got - nominal.hashrate_ghs).abs() <= nominal.hashrate_ghs * 1e-6,
                    "{id}: hashrate {got} != {}",
                    nominal.hashrate_ghs
                );
                assert_eq!(row.get::<_, String>(3), nominal.pool_url, "{id}");
            }
        }
    }
    // Heartbeats: the collector's row in adit says how many answered.
    let row = db
        .query_one(
            "SELECT miners_total, miners_online FROM collector_agents",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(i32::from(MINERS)));
    let online = rows.iter().filter(|r| r.get::<_, bool>(1)).count() as i32;
    assert_eq!(row.get::<_, Option<i32>>(1), Some(online));
    stop_adit(&mut adit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adit_stopped_for_two_cycles_then_started_gets_every_cycle_once_from_the_spool() {
    const MINERS: u16 = 20;
    let mut adit = spawn_with_key("e2e_collector_outage", 22, &[], &[]).await;
    let sim = Sim::start(MINERS, 1, &["--mode", "normal"]);
    let spool = Dir::new("outage");
    let collector = Collector::start(
        adit.addr,
        &adit.key,
        &sim,
        &spool.0,
        &["--interval", "2s", "--heartbeat-interval", "1s"],
    );
    let db_url = adit.db_url.clone();
    let first = within(Duration::from_secs(30), "a first cycle in adit", || async {
        let db = connect(&db_url).await;
        let c = rows_per_cycle(&db).await;
        c.keys().next().copied()
    })
    .await;
    // adit goes away; the collector spools at least two cycles.
    stop_adit(&mut adit);
    let down_at = chrono::Utc::now().timestamp();
    let c = &collector;
    within(
        Duration::from_secs(30),
        "two cycles spooled",
        || async move {
            c.metric("adit_collector_spool_batches")
                .await
                .filter(|n| *n >= 2.0)
        },
    )
    .await;
    assert!(spool.batches() >= 2, "the batches are files in the spool");
    let up_at = chrono::Utc::now().timestamp();
    restart_adit(&mut adit).await;
    let db = connect(&adit.db_url).await;
    within(
        Duration::from_secs(60),
        "the spool drained",
        || async move {
            let empty = c.metric("adit_collector_spool_batches").await == Some(0.0);
            empty.then_some(())
        },
    )
    .await;
    let sent_during_outage = rows_per_cycle(&db)
        .await
        .keys()
        .filter(|t| **t >= down_at && **t <= up_at)
        .count();
    collector.stop();
    let cycles = rows_per_cycle(&db).await;
    assert!(cycles.keys().next() == Some(&first));
    assert!(
        sent_during_outage >= 2,
        "the cycles measured while adit was down arrived ({cycles:?})"
    );
    // Exactly once: every cycle whole, none missing, and one upload per batch.
    assert_whole_cycles(&cycles, i64::from(MINERS), 3);
    let uploads = count(&db, "SELECT count(*) FROM upload_log").await;
    assert_eq!(uploads, cycles.len() as i64, "one upload per cycle");
    stop_adit(&mut adit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_with_a_backlog_loses_and_doubles_nothing() {
    const MINERS: u16 = 15;
    let mut adit = spawn_with_key("e2e_collector_kill", 23, &[], &[]).await;
    let sim = Sim::start(MINERS, 2, &["--mode", "normal"]);
    let spool = Dir::new("kill");
    // adit is down while the collector spools three cycles; then SIGKILL.
    stop_adit(&mut adit);
    let first = Collector::start(adit.addr, &adit.key, &sim, &spool.0, &["--interval", "1s"]);
    let c = &first;
    within(
        Duration::from_secs(30),
        "three cycles spooled",
        || async move {
            c.metric("adit_collector_spool_batches")
                .await
                .filter(|n| *n >= 3.0)
        },
    )
    .await;
    first.kill();
    let killed_at = chrono::Utc::now().timestamp();
    let spooled = spool.batches();
    assert!(spooled >= 3, "{spooled} batches survive kill -9");

    // adit back; a new collector on the same spool, killed again while it
    // drains (possibly mid-upload), then a third one finishes. Each starts
    // in a later second than the last one's cycles, so a cycle's time names
    // one collector run's batch.
    restart_adit(&mut adit).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = Collector::start(adit.addr, &adit.key, &sim, &spool.0, &["--interval", "1s"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.kill();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = Collector::start(adit.addr, &adit.key, &sim, &spool.0, &["--interval", "1s"]);
    let t = &third;
    within(Duration::from_secs(60), "the spool drained", || async move {
        (t.metric("adit_collector_spool_batches").await == Some(0.0)).then_some(())
    })
    .await;
    third.stop();
    let db = connect(&adit.db_url).await;
    let cycles = rows_per_cycle(&db).await;
    let before_kill = cycles.keys().filter(|t| **t <= killed_at).count();
    assert!(
        before_kill >= spooled,
        "every cycle spooled before kill -9 arrived: {before_kill} of {spooled} ({cycles:?})"
    );
    for (ts, n) in &cycles {
        assert_eq!(*n, i64::from(MINERS), "cycle at {ts} written once, whole");
    }
    // One upload written per batch key: a batch re-sent after a kill was
    // answered from its Idempotency-Key, not written again.
    let keys = count(
        &db,
        "SELECT count(DISTINCT idempotency_key) FROM upload_log",
    )
    .await;
    let uploads = count(&db, "SELECT count(*) FROM upload_log").await;
    assert_eq!(keys, uploads, "a batch key written twice");
    assert_eq!(uploads, cycles.len() as i64, "one upload per cycle");
    stop_adit(&mut adit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_set_pool_created_in_adit_reach_the_miners_and_report_back() {
    const MINERS: u16 = 6;
    let mut adit = spawn_with_key("e2e_collector_commands", 24, &[], &[]).await;
    let admin = admin_of(&adit.db).await;
    let sim = Sim::start(MINERS, 3, &["--mode", "normal"]);
    let spool = Dir::new("commands");
    let collector = Collector::start(
        adit.addr,
        &adit.key,
        &sim,
        &spool.0,
        &["--interval", "2s", "--command-interval", "1s"],
    );
    let (restarted, repooled) = (
        sim.miners[0].addr.to_string(),
        sim.miners[1].addr.to_string(),
    );
    let db = &adit.db;
    // Uptime before: the simulator's miners have been up for hours.
    let uptime_of = |id: String| async move {
        let row = db
            .query_opt(
                "SELECT uptime_seconds FROM miner_telemetry WHERE miner_id = $1 \
                 ORDER BY ts DESC LIMIT 1",
                &[&id],
            )
            .await
            .unwrap()?;
        row.get::<_, Option<i64>>(0)
    };
    let before = within(Duration::from_secs(30), "a first row", || {
        uptime_of(restarted.clone())
    })
    .await;
    assert!(before > 3600, "uptime {before}");

    let new_pool = "stratum+tcp://pool.e2e.example:3333";
    let mut ids = Vec::new();
    for body in [
        json!({"miner_id": restarted, "site_id": 24, "ip_address": "127.0.0.1", "command_type": "restart"}),
        json!({"miner_id": repooled, "site_id": 24, "ip_address": "127.0.0.1", "command_type": "set_pool",
               "parameters": {"pool_url": new_pool, "worker": "e2e.worker", "password": "x"}}),
    ] {
        ids.push(create_command(adit.addr, &admin, body).await);
    }
    // Both results come back completed.
    for id in &ids {
        let (status, message) = within(Duration::from_secs(30), "the result", || async move {
            let row = db
                .query_one(
                    "SELECT status, coalesce(result_message, '') FROM agent_commands WHERE id = $1",
                    &[id],
                )
                .await
                .unwrap();
            let status: String = row.get(0);
            ["completed", "failed"]
                .contains(&status.as_str())
                .then(|| (status, row.get::<_, String>(1)))
        })
        .await;
        assert_eq!(status, "completed", "command {id}: {message}");
    }
    // And the miners changed: the next cycles say so through adit.
    within(
        Duration::from_secs(30),
        "the restarted miner's uptime reset",
        || async {
            uptime_of(restarted.clone())
                .await
                .filter(|u| *u < before / 2)
        },
    )
    .await;
    within(
        Duration::from_secs(30),
        "the new pool in the telemetry",
        || async {
            let row = db
            .query_opt(
                "SELECT pool_url FROM miner_telemetry WHERE miner_id = $1 ORDER BY ts DESC LIMIT 1",
                &[&repooled],
            )
            .await
            .unwrap()?;
            (row.get::<_, Option<String>>(0).as_deref() == Some(new_pool)).then_some(())
        },
    )
    .await;
    collector.stop();
    stop_adit(&mut adit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_published_in_adit_changes_a_running_collectors_interval() {
    const MINERS: u16 = 3;
    let mut adit = spawn_with_key("e2e_collector_config", 25, &[], &[]).await;
    let admin = admin_of(&adit.db).await;
    let sim = Sim::start(MINERS, 4, &["--mode", "normal"]);
    let spool = Dir::new("config");
    // No --interval: the default (60 s) until adit says otherwise.
    let collector = Collector::start(
        adit.addr,
        &adit.key,
        &sim,
        &spool.0,
        &["--heartbeat-interval", "1s"],
    );
    let db = &adit.db;
    within(Duration::from_secs(30), "the first cycle", || async {
        (rows_per_cycle(db).await.len() == 1).then_some(())
    })
    .await;
    for (path, body) in [
        (
            "/api/collector/configs",
            json!({"version": "v2", "config": {"collection_interval": 10}}),
        ),
        ("/api/collector/configs/v2/activate", Value::Null),
    ] {
        admin_ok(adit.addr, &admin, "POST", path, body).await;
    }
    // Its heartbeats report v2, and adit shows it current.
    within(
        Duration::from_secs(30),
        "a heartbeat reporting v2",
        || async {
            let n = count(
                db,
                "SELECT count(*) FROM agent_heartbeats WHERE config_version = 'v2'",
            )
            .await;
            (n > 0).then_some(())
        },
    )
    .await;
    let v = admin_ok(
        adit.addr,
        &admin,
        "GET",
        "/api/collector/agents",
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["agents"][0]["config_version"], "v2", "{v}");
    assert_eq!(v["data"]["agents"][0]["config_current"], true, "{v}");
    // Cycles now come every 10 s, not every 60.
    let cycles = within(Duration::from_secs(40), "two more cycles", || async {
        let c = rows_per_cycle(db).await;
        (c.len() >= 3).then_some(c)
    })
    .await;
    let times: Vec<i64> = cycles.keys().copied().collect();
    let gap = times[2] - times[1];
    assert!((9..=12).contains(&gap), "cycles {gap} s apart: {times:?}");
    let c = &collector;
    assert_eq!(c.metric("adit_collector_config_info").await, Some(1.0));
    collector.stop();
    stop_adit(&mut adit);
}

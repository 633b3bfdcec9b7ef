//! The collector's runtime in process against a real adit (real PostgreSQL)
//! and simulated miners on loopback: a cycle lands one row per miner with
//! the simulator's values (dead miners offline), heartbeats show in adit,
//! commands created through adit's admin API reach the miners and their
//! results come back, remote control off fetches nothing, and cycles
//! spooled while adit is down arrive exactly once when it is back.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adit_collector::agent::{Agent, AgentConfig, VERSION};
use adit_collector::settings::Local;
use adit_minersim::{Farm, Mode, Shape};
use common::*;
use hyper::StatusCode;
use serde_json::{json, Value};

/// A fresh spool directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(std::env::temp_dir().join(format!(
            "adit-collector-runtime-{tag}-{}-{nanos}",
            std::process::id()
        )))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn farm(count: usize, mode: Mode) -> Farm {
    Farm::start(adit_minersim::Config {
        mode: Some(mode),
        ..adit_minersim::Config::test_config(count)
    })
    .await
    .unwrap()
}

/// The value of the first line of the collector's `/metrics` starting with `line_start`.
async fn metric(addr: SocketAddr, line_start: &str) -> Option<f64> {
    let (status, _, body) = get(addr, "/metrics").await.ok()?;
    assert_eq!(status, StatusCode::OK);
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_lands_one_row_per_miner_with_the_simulators_values_and_heartbeats_show() {
    let srv = TestServer::start("collector_runtime_cycle").await;
    let key = srv.key(7).await;
    let live = farm(12, Mode::Normal).await;
    let dead = farm(2, Mode::Dead).await;
    let mut miners = live.addrs();
    miners.extend(dead.addrs());
    let dir = Dir::new("cycle");
    let mut cfg = AgentConfig::test_config(
        &format!("http://{}", srv.addr),
        &key,
        miners.clone(),
        dir.0.clone(),
    );
    // One cycle in this test: the next is a minute away.
    cfg.defaults.interval = Duration::from_secs(60);
    let agent = Agent::start(cfg).await.unwrap();
    let metrics = agent.metrics_addr().unwrap();

    eventually("one row per miner", || async {
        (srv.count("SELECT count(*) FROM miner_telemetry").await == 14).then_some(())
    })
    .await;
    let rows = srv
        .db
        .query(
            "SELECT miner_id, online, hashrate_ghs, model, pool_url, ip_address, \
                    extract(epoch FROM ts)::int8, site_id, error_message \
             FROM miner_telemetry ORDER BY miner_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 14);
    let ts: Vec<i64> = rows.iter().map(|r| r.get(6)).collect();
    assert!(
        ts.iter().all(|t| *t == ts[0]),
        "one cycle, one timestamp: {ts:?}"
    );
    for m in live.miners() {
        let row = rows
            .iter()
            .find(|r| r.get::<_, String>(0) == m.addr.to_string())
            .unwrap_or_else(|| panic!("no row for {}", m.addr));
        let snap = live.snapshot(m.index).unwrap();
        assert!(row.get::<_, bool>(1), "{} online", m.addr);
        let got: f64 = row.get(2);
        let want = snap.nominal.hashrate_ghs;
        assert!((got - want).abs() <= want * 1e-9, "{got} != {want}");
        // The simulator answers no `devdetails`, where a Whatsminer's model
        // comes from: only Antminers' is compared.
        if m.shape == Shape::Antminer {
            assert_eq!(row.get::<_, Option<String>>(3), Some(snap.nominal.model));
        }
        assert_eq!(row.get::<_, String>(4), snap.active_pool_url);
        assert_eq!(row.get::<_, String>(5), "127.0.0.1");
        assert_eq!(row.get::<_, i32>(7), 7);
    }
    for addr in dead.addrs() {
        let row = rows
            .iter()
            .find(|r| r.get::<_, String>(0) == addr.to_string())
            .unwrap();
        assert!(!row.get::<_, bool>(1), "a dead miner is offline");
        let why: String = row.get(8);
        assert!(why.contains("refused"), "{why}");
    }

    // Heartbeats: stored as sent, and the collector's row in adit.
    let (online, total, version, disk) = eventually("a heartbeat after the cycle", || async {
        let row = srv
            .db
            .query_opt(
                "SELECT miners_online, miners_total, version, disk_usage, extra_data \
                 FROM agent_heartbeats ORDER BY ts DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap()?;
        let total: Option<i32> = row.get(1);
        let online: Option<i32> = row.get(0);
        (online == Some(12)).then(|| {
            let extra: Value = row.get(4);
            assert!(extra["spool_batches"].is_u64(), "{extra}");
            (
                online,
                total,
                row.get::<_, Option<String>>(2),
                row.get::<_, Option<f32>>(3),
            )
        })
    })
    .await;
    assert_eq!((online, total), (Some(12), Some(14)));
    assert_eq!(version.as_deref(), Some(VERSION));
    assert!(disk.is_some_and(|d| (0.0..=100.0).contains(&d)), "{disk:?}");
    let agent_row = srv
        .db
        .query_one(
            "SELECT status, version, miners_online, miners_total, site_id FROM collector_agents",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(agent_row.get::<_, String>(0), "online");
    assert_eq!(
        agent_row.get::<_, Option<String>>(1).as_deref(),
        Some(VERSION)
    );
    assert_eq!(agent_row.get::<_, Option<i32>>(2), Some(12));
    assert_eq!(agent_row.get::<_, Option<i32>>(3), Some(14));
    assert_eq!(agent_row.get::<_, i32>(4), 7);

    // The collector's own metrics say the same.
    assert_eq!(
        metric(metrics, "adit_collector_cycles_total ").await,
        Some(1.0)
    );
    assert_eq!(
        metric(metrics, "adit_collector_miners_online ").await,
        Some(12.0)
    );
    assert_eq!(
        metric(metrics, "adit_collector_miners_offline ").await,
        Some(2.0)
    );
    assert_eq!(
        metric(metrics, "adit_collector_uploads_total{outcome=\"sent\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric(
            metrics,
            "adit_collector_poll_errors_total{code=\"refused\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        metric(metrics, "adit_collector_spool_batches ").await,
        Some(0.0)
    );
    assert!(metric(metrics, "adit_collector_heartbeats_total{outcome=\"ok\"}").await >= Some(1.0));

    agent.stop().await;
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 14);
    live.shutdown().await;
    dead.shutdown().await;
    srv.stop().await;
}

/// The command's final status and result message, once it has one.
async fn finished(srv: &TestServer, id: i64) -> (String, String) {
    eventually(&format!("command {id} finished"), || async {
        let row = srv
            .db
            .query_one(
                "SELECT status, coalesce(result_message, '') FROM agent_commands WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        let status: String = row.get(0);
        (status == "completed" || status == "failed").then(|| (status, row.get(1)))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_from_adit_reach_the_miners_and_their_results_come_back() {
    let srv = TestServer::start("collector_runtime_commands").await;
    let key = srv.key(3).await;
    let admin = admin_token(&srv).await;
    let farm = farm(16, Mode::Normal).await;
    let ants: Vec<_> = farm
        .miners()
        .iter()
        .filter(|m| m.shape == Shape::Antminer)
        .collect();
    let whatsminer = farm
        .miners()
        .iter()
        .find(|m| m.shape == Shape::Whatsminer)
        .expect("the farm has a Whatsminer");
    assert!(ants.len() >= 4, "{} Antminers", ants.len());
    let dir = Dir::new("commands");
    let cfg = AgentConfig::test_config(
        &format!("http://{}", srv.addr),
        &key,
        farm.addrs(),
        dir.0.clone(),
    );
    let agent = Agent::start(cfg).await.unwrap();

    let on = |m: &adit_minersim::MinerInfo, command: &str, params: Value| json!({"miner_id": m.addr.to_string(), "site_id": 3, "command_type": command, "parameters": params});
    let pool = "stratum+tcp://new-pool.example:3333";
    let restart = create_command(srv.addr, &admin, on(ants[0], "restart", json!({}))).await;
    let set_pool = create_command(
        srv.addr,
        &admin,
        on(
            ants[1],
            "set_pool",
            json!({"pool_url": pool, "worker": "farm7.rig2"}),
        ),
    )
    .await;
    let fan = create_command(
        srv.addr,
        &admin,
        on(ants[2], "set_fan", json!({"speed": 70})),
    )
    .await;
    let no_fan = create_command(
        srv.addr,
        &admin,
        on(whatsminer, "set_fan", json!({"speed": 70})),
    )
    .await;
    let disable = create_command(srv.addr, &admin, on(ants[3], "disable", json!({}))).await;
    let reboot = create_command(srv.addr, &admin, on(ants[3], "reboot", json!({}))).await;
    // A miner this collector does not poll is not touched.
    let stranger = create_command(
        srv.addr,
        &admin,
        json!({"miner_id": "127.0.0.1:1", "site_id": 3, "command_type": "restart"}),
    )
    .await;

    let (status, msg) = finished(&srv, restart).await;
    assert_eq!(status, "completed", "{msg}");
    assert_eq!(
        farm.snapshot(ants[0].index).unwrap().restarts,
        1,
        "uptime reset"
    );

    let (status, msg) = finished(&srv, set_pool).await;
    assert_eq!(status, "completed", "{msg}");
    assert!(msg.contains("switched"), "{msg}");
    assert_eq!(farm.snapshot(ants[1].index).unwrap().active_pool_url, pool);

    let (status, msg) = finished(&srv, fan).await;
    assert_eq!(status, "completed", "{msg}");
    assert_eq!(farm.snapshot(ants[2].index).unwrap().fan_pct, Some(70));

    let (status, msg) = finished(&srv, no_fan).await;
    assert_eq!(status, "failed");
    assert!(
        msg.contains("Whatsminer") && msg.contains("nothing was sent"),
        "{msg}"
    );
    assert_eq!(farm.snapshot(whatsminer.index).unwrap().fan_pct, None);

    // One miner's commands run in adit's order: disable, then the reboot
    // (a restart, which re-enables hashing on the simulator).
    let (status, msg) = finished(&srv, disable).await;
    assert_eq!(status, "completed", "{msg}");
    let (status, msg) = finished(&srv, reboot).await;
    assert_eq!(status, "completed", "{msg}");
    assert!(msg.contains("restart of the mining process"), "{msg}");
    let snap = farm.snapshot(ants[3].index).unwrap();
    assert_eq!((snap.restarts, snap.enabled), (1, true));

    let (status, msg) = finished(&srv, stranger).await;
    assert_eq!(status, "failed");
    assert!(msg.contains("not on this collector's miner list"), "{msg}");

    // adit opened command_failed events for the failures; the logs say who.
    let failed_events = srv
        .count("SELECT count(*) FROM events WHERE event_type = 'command_failed'")
        .await;
    assert_eq!(failed_events, 2);
    let m = agent.metrics();
    eventually("results counted", || async {
        (m.commands_of("completed") == 5 && m.commands_of("failed") == 2).then_some(())
    })
    .await;
    agent.stop().await;
    farm.shutdown().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_miner_makes_its_command_fail_with_the_reason() {
    let srv = TestServer::start("collector_runtime_dead_cmd").await;
    let key = srv.key(4).await;
    let admin = admin_token(&srv).await;
    let dead = farm(1, Mode::Dead).await;
    let dir = Dir::new("deadcmd");
    let cfg = AgentConfig::test_config(
        &format!("http://{}", srv.addr),
        &key,
        dead.addrs(),
        dir.0.clone(),
    );
    let agent = Agent::start(cfg).await.unwrap();
    let id = create_command(
        srv.addr,
        &admin,
        json!({"miner_id": dead.addrs()[0].to_string(), "site_id": 4, "command_type": "restart"}),
    )
    .await;
    let (status, msg) = finished(&srv, id).await;
    assert_eq!(status, "failed");
    assert!(
        msg.contains("did not answer") && msg.contains("refused"),
        "{msg}"
    );
    agent.stop().await;
    dead.shutdown().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_remote_control_off_no_command_is_fetched() {
    let srv = TestServer::start("collector_runtime_no_remote").await;
    let key = srv.key(5).await;
    let admin = admin_token(&srv).await;
    let farm = farm(2, Mode::Normal).await;
    let dir = Dir::new("noremote");
    let mut cfg = AgentConfig::test_config(
        &format!("http://{}", srv.addr),
        &key,
        farm.addrs(),
        dir.0.clone(),
    );
    cfg.local = Local {
        remote_control: Some(false),
        ..Local::default()
    };
    let agent = Agent::start(cfg).await.unwrap();
    let id = create_command(
        srv.addr,
        &admin,
        json!({"miner_id": farm.addrs()[0].to_string(), "site_id": 5, "command_type": "restart"}),
    )
    .await;
    // Three heartbeats later (commands are fetched twice as often), the
    // command is still waiting and the miner untouched.
    eventually("three heartbeats", || async {
        (srv.count("SELECT count(*) FROM agent_heartbeats").await >= 4).then_some(())
    })
    .await;
    let status: String = srv
        .db
        .query_one("SELECT status FROM agent_commands WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "pending");
    assert_eq!(farm.snapshot(0).unwrap().restarts, 0);
    agent.stop().await;
    farm.shutdown().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycles_spooled_while_adit_is_down_arrive_exactly_once() {
    // adit runs once to create its tables and the key, then goes down.
    let mut first = spawn_with_key("collector_runtime_outage", 9, &[], &[]).await;
    let port = first.port;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let farm = farm(5, Mode::Normal).await;
    let dir = Dir::new("outage");
    let cfg = AgentConfig::test_config(
        &format!("http://127.0.0.1:{port}"),
        &first.key,
        farm.addrs(),
        dir.0.clone(),
    );
    let agent = Agent::start(cfg).await.unwrap();
    let m = agent.metrics();
    // Two 1 s cycles; a loaded CI machine once needed more than the usual
    // 15 s wait here, so this one waits up to 60 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while m.spool_batches.load(std::sync::atomic::Ordering::Relaxed) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "two cycles not spooled in 60 s: {} cycles run, {} spool pushes failed",
            m.cycles.load(std::sync::atomic::Ordering::Relaxed),
            m.spool_push_errors
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(m.uploads_of("sent"), 0);
    assert!(m.uploads_of("network") >= 1);

    let mut second = spawn_adit(&first.db_url, port, &[], &[]);
    wait_healthy(port).await;
    let db = connect(&first.db_url).await;
    // Every cycle, whole and once: 5 rows per distinct timestamp, as many
    // batches in upload_log as timestamps.
    eventually("the spool drained", || async {
        (m.spool_batches.load(std::sync::atomic::Ordering::Relaxed) == 0
            && m.uploads_of("sent") >= 2)
            .then_some(())
    })
    .await;
    agent.stop().await;
    let sent = m.uploads_of("sent") as i64;
    eventually("every sent cycle written", || async {
        let n: i64 = db
            .query_one("SELECT count(DISTINCT ts) FROM miner_telemetry", &[])
            .await
            .unwrap()
            .get(0);
        (n == sent).then_some(())
    })
    .await;
    let per_ts = db
        .query(
            "SELECT ts, count(*), count(DISTINCT miner_id) FROM miner_telemetry GROUP BY ts ORDER BY ts",
            &[],
        )
        .await
        .unwrap();
    assert!(per_ts.len() >= 2, "{} cycles", per_ts.len());
    for r in &per_ts {
        assert_eq!((r.get::<_, i64>(1), r.get::<_, i64>(2)), (5, 5));
    }
    assert_eq!(per_ts.len() as i64, sent);
    let logged: i64 = db
        .query_one("SELECT count(*) FROM upload_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, sent);
    second.kill().unwrap();
    second.wait().unwrap();
    farm.shutdown().await;
}

/// A self-signed certificate for `localhost`: (cert PEM, key PEM) files.
fn self_signed(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key_pair.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_collector_trusts_its_ca_file_and_nothing_else() {
    let certs = Dir::new("tls-certs");
    let (cert, key_file) = self_signed(&certs.0);
    let srv = TestServer::start_with("collector_runtime_tls", |c| {
        c.tls = Some((cert.clone(), key_file.clone()));
    })
    .await;
    let key = srv.key(8).await;
    let farm = farm(3, Mode::Normal).await;
    let url = format!("https://localhost:{}", srv.addr.port());

    // Without the CA: the certificate is not trusted, the cycle stays spooled.
    let dir = Dir::new("tls-untrusted");
    let mut cfg = AgentConfig::test_config(&url, &key, farm.addrs(), dir.0.clone());
    cfg.defaults.interval = Duration::from_secs(60);
    let agent = Agent::start(cfg).await.unwrap();
    let m = agent.metrics();
    eventually("an upload refused by TLS", || async {
        (m.uploads_of("network") >= 1).then_some(())
    })
    .await;
    agent.stop().await;
    assert_eq!(m.uploads_of("sent"), 0);
    assert_eq!(
        m.spool_batches.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 0);

    // With the CA file: the spooled cycle and the next arrive over HTTPS,
    // heartbeats too.
    let mut cfg = AgentConfig::test_config(&url, &key, farm.addrs(), dir.0.clone());
    cfg.defaults.interval = Duration::from_secs(60);
    cfg.ca_file = Some(cert.clone());
    let agent = Agent::start(cfg).await.unwrap();
    eventually("two cycles over https", || async {
        (srv.count("SELECT count(*) FROM miner_telemetry WHERE site_id = 8")
            .await
            == 6)
            .then_some(())
    })
    .await;
    eventually("a heartbeat over https", || async {
        (srv.count("SELECT count(*) FROM agent_heartbeats WHERE site_id = 8")
            .await
            >= 1)
            .then_some(())
    })
    .await;
    agent.stop().await;
    farm.shutdown().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_published_in_adit_is_applied_reported_and_withdrawn() {
    let srv = TestServer::start("collector_runtime_central").await;
    let key = srv.key(6).await;
    let admin = admin_token(&srv).await;
    let farm = farm(2, Mode::Normal).await;
    let dir = Dir::new("central");
    let mut cfg = AgentConfig::test_config(
        &format!("http://{}", srv.addr),
        &key,
        farm.addrs(),
        dir.0.clone(),
    );
    // The operator set the interval on the box: it stays whatever adit says.
    cfg.local = Local {
        interval: Some(Duration::from_secs(2)),
        ..Local::default()
    };
    let defaults = cfg.settings();
    let agent = Agent::start(cfg).await.unwrap();
    // Nothing is active in adit: the collector runs on its own settings.
    assert_eq!(agent.config_version(), None);
    assert_eq!(agent.settings(), defaults);

    // An admin publishes v1 for every collector; the next heartbeat answer
    // names it and the collector fetches and applies it, no restart.
    admin_ok(
        srv.addr,
        &admin,
        "POST",
        "/api/collector/configs",
        json!({"version": "v1", "applies_to": "all", "config": {
            "collection_interval": 120, "command_interval": 3600, "cgminer_api_timeout": 2,
            "buffer_config": {"max_buffer_size": 64, "max_buffer_hours": 2},
            "features": {"enable_remote_control": false}}}),
    )
    .await;
    admin_ok(
        srv.addr,
        &admin,
        "POST",
        "/api/collector/configs/v1/activate",
        Value::Null,
    )
    .await;
    let a = &agent;
    eventually("v1 applied", || async move {
        (a.config_version().as_deref() == Some("v1")).then_some(())
    })
    .await;
    let s = agent.settings();
    assert_eq!(s.interval, Duration::from_secs(2), "the local value wins");
    assert_eq!(s.command_interval, Duration::from_secs(3600));
    assert_eq!(s.cgminer_timeout, Duration::from_secs(2));
    assert_eq!(s.spool_max_bytes, 64 << 20);
    assert_eq!(s.spool_max_age, Some(Duration::from_secs(7200)));
    assert!(!s.remote_control);
    assert_eq!(
        s.heartbeat_interval, defaults.heartbeat_interval,
        "not in v1"
    );

    // adit shows the collector running v1, from its heartbeats.
    eventually("adit shows v1 running", || async {
        let v = admin_ok(
            srv.addr,
            &admin,
            "GET",
            "/api/collector/agents",
            Value::Null,
        )
        .await;
        let a = &v["data"]["agents"][0];
        (a["config_version"] == "v1" && a["config_current"] == true).then_some(())
    })
    .await;
    let v = admin_ok(
        srv.addr,
        &admin,
        "GET",
        "/api/collector/configs/v1",
        Value::Null,
    )
    .await;
    assert_eq!(
        v["data"]["collectors_running"],
        json!([agent_key_id(&srv).await])
    );

    // Remote control is off: a command created now stays pending.
    let id = create_command(
        srv.addr,
        &admin,
        json!({"miner_id": farm.addrs()[0].to_string(), "site_id": 6, "command_type": "restart"}),
    )
    .await;
    let beats = srv.count("SELECT count(*) FROM agent_heartbeats").await;
    eventually("three more heartbeats", || async {
        (srv.count("SELECT count(*) FROM agent_heartbeats").await >= beats + 3).then_some(())
    })
    .await;
    let status: String = srv
        .db
        .query_one("SELECT status FROM agent_commands WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        status, "pending",
        "no command fetched while remote control is off"
    );

    // v1 deprecated with nothing after it: back to the defaults, the command
    // is fetched and run, and heartbeats carry no version.
    admin_ok(
        srv.addr,
        &admin,
        "POST",
        "/api/collector/configs/v1/deprecate",
        Value::Null,
    )
    .await;
    eventually("v1 withdrawn", || async move {
        a.config_version().is_none().then_some(())
    })
    .await;
    let s = agent.settings();
    assert_eq!(s.command_interval, defaults.command_interval);
    assert!(s.remote_control);
    assert_eq!(s.interval, Duration::from_secs(2));
    assert_eq!(finished(&srv, id).await.0, "completed");
    eventually("a heartbeat without a version", || async {
        let row = srv
            .db
            .query_one(
                "SELECT config_version FROM agent_heartbeats ORDER BY ts DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, Option<String>>(0).is_none().then_some(())
    })
    .await;
    agent.stop().await;
    farm.shutdown().await;
    srv.stop().await;
}

/// The id of the one collector key in the server's database.
async fn agent_key_id(srv: &TestServer) -> i32 {
    srv.db
        .query_one(
            "SELECT id FROM collector_keys WHERE site_id IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

//! Central configuration as the collector sees it, against a small
//! loopback server that answers the collector-key endpoints exactly as the
//! configuration contract defines them (adit's own side is built
//! separately; the end-to-end test against a real adit goes in
//! tests/collector_runtime.rs once it lands): a version named by a
//! heartbeat answer is fetched and applied without a restart, local
//! settings win, the applied version is reported in heartbeats, remote
//! control off stops command fetches, and a withdrawn configuration brings
//! the defaults back.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adit_collector::agent::{Agent, AgentConfig};
use adit_collector::settings::Local;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

#[derive(Debug, Default)]
struct State {
    version: Option<String>,
    config: Value,
    heartbeats: Vec<Value>,
    config_fetches: usize,
    pending_fetches: usize,
}

/// Answers `GET /api/collector/config`, `POST /api/collector/heartbeat`
/// (its answer naming the effective version), pending commands (none)
/// and uploads (200), in adit's envelopes.
async fn contract_server(state: Arc<Mutex<State>>) -> SocketAddr {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let state = state.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut s = state.lock().unwrap();
                        let answer = match path.as_str() {
                            "/api/collector/config" => {
                                s.config_fetches += 1;
                                let config = if s.version.is_some() {
                                    s.config.clone()
                                } else {
                                    Value::Null
                                };
                                json!({"success": true, "data": {"version": s.version, "config": config, "activated_at": null}})
                            }
                            "/api/collector/heartbeat" => {
                                s.heartbeats.push(serde_json::from_slice(&body).unwrap());
                                json!({"success": true, "data": {"received": true, "heartbeat_interval": 1,
                                       "pending_commands": 0, "config_version": s.version}})
                            }
                            "/api/collector/commands/pending" => {
                                s.pending_fetches += 1;
                                json!({"success": true, "count": 0, "commands": []})
                            }
                            _ => json!({"success": true}),
                        };
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(answer.to_string()),
                        )))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_named_by_a_heartbeat_is_fetched_applied_and_reported() {
    let state = Arc::new(Mutex::new(State::default()));
    let adit = contract_server(state.clone()).await;
    let farm = adit_minersim::Farm::start(adit_minersim::Config::test_config(2))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("adit-collector-central-{}", std::process::id()));
    let mut cfg = AgentConfig::test_config(
        &format!("http://{adit}"),
        "k",
        farm.addrs(),
        PathBuf::from(&dir),
    );
    // The operator set the interval on the box: it stays whatever adit says.
    cfg.local = Local {
        interval: Some(Duration::from_secs(2)),
        ..Local::default()
    };
    let defaults = cfg.settings();
    let agent = Agent::start(cfg).await.unwrap();
    // Fetched at start: nothing active, the collector runs on its settings.
    assert_eq!(state.lock().unwrap().config_fetches, 1);
    assert_eq!(agent.config_version(), None);
    until("command fetches", || {
        state.lock().unwrap().pending_fetches >= 1
    })
    .await;

    // An admin activates v1: the next heartbeat answer names it.
    {
        let mut s = state.lock().unwrap();
        s.version = Some("v1".into());
        s.config = json!({
            "version": "v1",
            "collection_interval": 120, "command_interval": 3600, "cgminer_api_timeout": 2,
            "buffer_config": {"max_buffer_size": 64, "max_buffer_hours": 2},
            "features": {"enable_remote_control": false}
        });
    }
    until("v1 applied", || {
        agent.config_version().as_deref() == Some("v1")
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
        "not in v1: unchanged"
    );
    // Heartbeats now say which version runs; remote control is off.
    until("a heartbeat reporting v1", || {
        state
            .lock()
            .unwrap()
            .heartbeats
            .iter()
            .any(|h| h["config_version"] == "v1")
    })
    .await;
    let fetched = state.lock().unwrap().pending_fetches;
    let beats = state.lock().unwrap().heartbeats.len();
    until("three more heartbeats", || {
        state.lock().unwrap().heartbeats.len() >= beats + 3
    })
    .await;
    assert_eq!(
        state.lock().unwrap().pending_fetches,
        fetched,
        "no command fetched"
    );
    assert!(agent
        .metrics()
        .render()
        .contains("adit_collector_config_info{version=\"v1\"} 1"));

    // v1 deprecated with nothing after it: back to the defaults.
    state.lock().unwrap().version = None;
    until("v1 withdrawn", || agent.config_version().is_none()).await;
    let s = agent.settings();
    assert_eq!(s.command_interval, defaults.command_interval);
    assert!(s.remote_control);
    assert_eq!(s.interval, Duration::from_secs(2));
    until("command fetches again", || {
        state.lock().unwrap().pending_fetches > fetched
    })
    .await;
    until("a heartbeat without a version", || {
        state
            .lock()
            .unwrap()
            .heartbeats
            .last()
            .is_some_and(|h| h.get("config_version").is_none())
    })
    .await;
    assert_eq!(state.lock().unwrap().config_fetches, 3);

    agent.stop().await;
    farm.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_adit_at_start_is_logged_and_the_collector_runs_on_its_settings() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let farm = adit_minersim::Farm::start(adit_minersim::Config::test_config(1))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "adit-collector-central-none-{}",
        std::process::id()
    ));
    let cfg = AgentConfig::test_config(&url, "k", farm.addrs(), dir.clone());
    let defaults = cfg.settings();
    let agent = Agent::start(cfg).await.unwrap();
    assert_eq!(agent.config_version(), None);
    assert_eq!(agent.settings(), defaults);
    let m = agent.metrics();
    until("a cycle spooled", || {
        m.spool_batches.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
    assert!(m
        .render()
        .contains("adit_collector_config_fetch_errors_total 1"));
    agent.stop().await;
    farm.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adit_that_does_not_answer_at_start_delays_polling_only_a_bounded_wait() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let farm = adit_minersim::Farm::start(adit_minersim::Config::test_config(1))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "adit-collector-central-silent-{}",
        std::process::id()
    ));
    let mut cfg = AgentConfig::test_config(&url, "k", farm.addrs(), dir.clone());
    cfg.http_timeout = Duration::from_secs(600);
    cfg.start_config_wait = Duration::from_millis(200);
    let agent = tokio::time::timeout(Duration::from_secs(60), Agent::start(cfg))
        .await
        .expect("start does not wait for the configuration's 600 s request timeout")
        .unwrap();
    assert_eq!(agent.config_version(), None);
    let m = agent.metrics();
    until("a cycle spooled", || {
        m.spool_batches.load(std::sync::atomic::Ordering::Relaxed) >= 1
    })
    .await;
    assert!(m
        .render()
        .contains("adit_collector_config_fetch_errors_total 1"));
    held.abort();
    agent.stop().await;
    farm.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

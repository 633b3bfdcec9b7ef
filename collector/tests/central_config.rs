//! The central configuration fetch at start when adit is not there: with
//! nothing listening, or a server that accepts and never answers, the
//! collector logs it, counts it and polls on its own settings after a
//! bounded wait. (Against a real adit, a published configuration is applied
//! and reported: tests/collector_runtime.rs.)

use std::time::{Duration, Instant};

use adit_collector::agent::{Agent, AgentConfig};

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

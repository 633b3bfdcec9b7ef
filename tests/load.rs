//! The load generator against a real adit and PostgreSQL: both models
//! verify clean, and a server that dies mid-run is reported honestly.

mod common;

use std::time::Duration;

use clap::Parser;
use common::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: adit_load::LoadArgs,
}

fn args(srv_addr: std::net::SocketAddr, db_url: &str, extra: &[&str]) -> adit_load::LoadArgs {
    let url = format!("http://{srv_addr}");
    let mut argv = vec![
        "load",
        "--url",
        &url,
        "--database-url",
        db_url,
        "--quiet",
        "--rows",
        "200",
    ];
    argv.extend_from_slice(extra);
    Cli::parse_from(argv).load
}

async fn sites(srv: &TestServer, ids: &[i32]) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for &site in ids {
        out.push((site, srv.key(site).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_open_models_verify_clean() {
    let srv = TestServer::start("load").await;
    let closed = args(
        srv.addr,
        &srv.db_url,
        &["--concurrency", "4", "--duration", "2s", "--verify"],
    );
    let report = adit_load::run_load(&closed, sites(&srv, &[11, 12, 13]).await)
        .await
        .unwrap();
    assert_eq!(report.verified, Some(true), "{report:?}");
    assert!(
        report.uploads_ok > 0 && report.uploads_failed == 0,
        "{report:?}"
    );
    assert_eq!(report.rows_acked, report.uploads_ok * 200);
    assert!(report.latency_ms_p50 > 0.0 && report.latency_ms_p99 >= report.latency_ms_p50);
    assert_eq!(report.status_counts.get("200"), Some(&report.uploads_ok));

    // Open model on the same sites: the verification counts only this run.
    let trace = std::env::temp_dir().join(format!("adit-trace-{}.csv", std::process::id()));
    let open = args(
        srv.addr,
        &srv.db_url,
        &[
            "--rate",
            "20",
            "--duration",
            "2s",
            "--verify",
            "--timestamps",
            "--trace",
            trace.to_str().unwrap(),
        ],
    );
    let report = adit_load::run_load(&open, sites(&srv, &[14, 15]).await)
        .await
        .unwrap();
    // --trace: one line per upload, in start order, 50 ms apart at 20/s.
    let csv = std::fs::read_to_string(&trace).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("start_s,start_unix,latency_ms,status,retries")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len() as u64, report.uploads_ok, "{csv}");
    for (i, r) in rows.iter().enumerate() {
        assert!(
            (r[0] - i as f64 * 0.05).abs() < 1e-3,
            "start of upload {i}: {csv}"
        );
        assert!(r[2] > 0.0 && r[3] == 200.0 && r[4] == 0.0, "{csv}");
    }
    let _ = std::fs::remove_file(&trace);
    assert_eq!(report.verified, Some(true), "{report:?}");
    assert!(report.model.starts_with("open"));
    // 20 uploads/s for 2 s: about 40 started, all answered.
    assert!((30..=41).contains(&report.uploads_ok), "{report:?}");
    let total: i64 = srv
        .count("SELECT count(*) FROM miner_telemetry WHERE site_id IN (14, 15)")
        .await;
    assert_eq!(total as u64, report.rows_acked);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_mid_run_shows_as_failures_not_successes() {
    let srv = TestServer::start("loadstop").await;
    let db_url = srv.db_url.clone();
    let keys = sites(&srv, &[21, 22]).await;
    let a = args(
        srv.addr,
        &db_url,
        &[
            "--concurrency",
            "4",
            "--duration",
            "4s",
            "--retries",
            "1",
            "--timeout",
            "2s",
            "--verify",
        ],
    );
    let load = tokio::spawn(async move { adit_load::run_load(&a, keys).await });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    srv.stop().await;
    let report = tokio::time::timeout(Duration::from_secs(30), load)
        .await
        .expect("the generator does not hang")
        .unwrap()
        .unwrap();
    assert!(report.uploads_ok > 0, "{report:?}");
    assert!(
        report.uploads_failed > 0,
        "failures after the stop are counted: {report:?}"
    );
    assert_eq!(
        report.uploads_ok + report.uploads_failed,
        report.status_counts.values().sum::<u64>()
    );
    assert!(report.status_counts.get("200") == Some(&report.uploads_ok));
    // Everything acknowledged before the stop is in PostgreSQL, exactly once.
    assert_eq!(report.verified, Some(true), "{report:?}");
}

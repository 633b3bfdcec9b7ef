//! The load generator against a real adit and PostgreSQL: both models
//! verify clean, and a server that dies mid-run is reported honestly.

mod common;

use std::time::Duration;

use bytes::Bytes;
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

/// `adit copy-file` (make bench's raw baseline) writes the rows a load run
/// sends, in the order collectors send them: rounds of the same sites'
/// miners, each round a second later, each part holding its own sites.
/// psql's COPY of the old file (a new site per upload) only ever appended
/// at the btree's right edge, which no load run does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_file_holds_rounds_of_the_same_fleet() {
    let database = TestDb::new("copyfile").await;
    let mut db = connect(database.url()).await;
    adit::migrate::migrate(&mut db).await.unwrap();
    let dir = std::env::temp_dir().join(format!("adit-copyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("rows.copy");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
        .args(["copy-file", "--rows", "14", "--miners", "3", "--sites", "2"])
        .args(["--parts", "2", "--site-base", "70", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let columns = String::from_utf8(run.stdout).unwrap();
    let part: String = db
        .query_one(
            "SELECT adit_ensure_day_partition('miner_telemetry', (now() AT TIME ZONE 'UTC')::date)::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for (i, site) in [(0, 70), (1, 71)] {
        db.batch_execute(&format!("TRUNCATE {part}")).await.unwrap();
        let data = std::fs::read(format!("{}.{i}", out.display())).unwrap();
        let sink = db
            .copy_in::<_, Bytes>(&format!(
                "COPY {part} ({}) FROM STDIN (FORMAT binary)",
                columns.trim()
            ))
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        futures_util::SinkExt::send(&mut sink, Bytes::from(data))
            .await
            .unwrap();
        assert_eq!(sink.finish().await.unwrap(), 7);
        // In file order: miners 0, 1, 2 of round 0, then of round 1, …;
        // one second between rounds; only this part's site.
        let rows = db
            .query(
                &format!(
                    "SELECT site_id, miner_id, extract(epoch FROM ts)::float8 FROM {part} ORDER BY ctid"
                ),
                &[],
            )
            .await
            .unwrap();
        let t0: f64 = rows[0].get(2);
        for (n, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<_, i32>(0), site);
            assert_eq!(row.get::<_, String>(1), format!("S{site}-M{:05}", n % 3));
            assert_eq!(row.get::<_, f64>(2) - t0, (n / 3) as f64);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `adit bench-report` (make bench's table and latest.json) reads the JSON
/// reports a real load run writes, and its rate subcommands read them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_report_reads_real_load_reports() {
    let srv = TestServer::start("benchreport").await;
    let closed = args(
        srv.addr,
        &srv.db_url,
        &["--concurrency", "2", "--duration", "1s", "--verify"],
    );
    let report = adit_load::run_load(&closed, sites(&srv, &[21]).await)
        .await
        .unwrap();
    srv.stop().await;
    let dir = std::env::temp_dir().join(format!("adit-benchreport-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for run in ["e2e", "half", "frontdoor", "overload"] {
        let json = serde_json::to_vec_pretty(&report).unwrap();
        std::fs::write(dir.join(format!("{run}.json")), json).unwrap();
    }
    std::fs::write(dir.join("criterion.json"), "{}").unwrap();
    let adit = |args: &[&str]| {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{args:?}: {stderr}");
        String::from_utf8(run.stdout).unwrap()
    };
    let dir_s = dir.to_str().unwrap();
    let table = adit(&[
        "bench-report",
        "--dir",
        dir_s,
        "--raw-1",
        "1000",
        "--raw-2",
        "2000",
        "--rss",
        "10.5",
        "--over-rss",
        "20.5",
        "--cpu-ticks",
        "150",
    ]);
    assert!(table.contains("adit end to end (rows/s)"), "{table}");
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("latest.json")).unwrap()).unwrap();
    assert_eq!(latest["raw_copy_rows_per_s"], 2000);
    assert_eq!(
        latest["e2e_rows_per_s"],
        report.rows_per_s.round_ties_even() as i64
    );
    assert_eq!(latest["e2e_verified"], true);
    assert_eq!(latest["peak_rss_mib"], 20.5);
    // serde_json's default float parsing may be one ULP off the written value.
    let half_rate = latest["half_max_rate_uploads_per_s"].as_f64().unwrap();
    assert!(
        (half_rate - report.uploads_per_s).abs() <= 1e-9 * report.uploads_per_s,
        "{half_rate} vs {}",
        report.uploads_per_s
    );
    let e2e = dir.join("e2e.json");
    let half: f64 = adit(&[
        "bench-report",
        "upload-rate",
        "--report",
        e2e.to_str().unwrap(),
        "--times",
        "0.5",
    ])
    .trim()
    .parse()
    .unwrap();
    assert!((half - report.uploads_per_s / 2.0).abs() <= 0.005, "{half}");
    let rate = adit(&[
        "bench-report",
        "rows-per-s",
        "--rows",
        "1000",
        "--from",
        "1.5",
        "--to",
        "3.5",
    ]);
    assert_eq!(rate.trim(), "500");
    std::fs::remove_dir_all(&dir).unwrap();
}

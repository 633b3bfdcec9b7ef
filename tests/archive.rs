//! The Parquet archive holds exactly the committed rows: read back by an
//! independent reader (pyarrow), after kill -9, with the store down for a
//! while, after compaction, and on an S3-compatible server on loopback.

mod common;

use std::time::{Duration, Instant};

use adit_archive::verify::{self, Scope, WindowCheck};
use adit_archive::{maintain, Archive, ArchiveConfig};
use common::*;
use serde_json::{json, Value};

/// Rows for `site` in two whole past days (noon of the day before
/// yesterday and of yesterday, ± 50 minutes): two daily windows whatever
/// the time of day the test runs at.
fn rows_for(site: i32, n: usize, tag: &str) -> Vec<String> {
    let midnight = chrono::Utc::now().timestamp().div_euclid(86_400) * 86_400;
    let (noon_a, noon_b) = (midnight - 2 * 86_400 + 43_200, midnight - 86_400 + 43_200);
    (0..n)
        .map(|i| {
            let spread = i as i64 % 3000;
            let ts = if i % 2 == 0 { noon_a - spread } else { noon_b - spread };
            let extra = if i % 5 == 0 { r#","vendor_note":"fan swap""# } else { "" };
            format!(
                r#"{{"miner_id":"{tag}{site}-{}","timestamp":{ts},"online":{},"hashrate_ghs":{}.5,
                   "accepted_shares":{i},"temperature_chips":[60.5,{}.5],"fan_speeds":[5000,{}],
                   "boards":[{{"id":0,"hashrate":100.5,"temp":61.5,"chips_ok":76,"chips_total":76}},
                             {{"id":1,"hashrate":{}.5,"temp":62.5,"chips_ok":75,"chips_total":76}}]{extra}}}"#,
                i % 500,
                i % 17 != 0,
                90_000 + i % 1000,
                60 + i % 20,
                5000 + i % 300,
                100 + i % 50,
            )
        })
        .collect()
}

async fn check(db: &tokio_postgres::Client, url: &str) -> Vec<WindowCheck> {
    let archive = Archive::from_url(url).unwrap();
    verify::check(db, &archive, &Scope::default())
        .await
        .unwrap()
}

fn assert_exact(windows: &[WindowCheck], what: &str) {
    assert!(!windows.is_empty(), "{what}: no windows");
    for w in windows {
        assert!(w.exact(), "{what}: window not exact: {w:?}");
    }
}

fn temp_archive(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("adit-{name}-{}", rand::random::<u32>()));
    let url = format!("file://{}", dir.display());
    (dir, url)
}

const PYARROW_DUMP: &str = r#"
import json, sys
import pyarrow.dataset as ds, pyarrow.compute as pc, pyarrow as pa
t = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
ts = pc.cast(t["ts"], pa.int64()).to_pylist()
cols = {c: t[c].to_pylist() for c in ["site_id", "miner_id", "hashrate_ghs", "accepted_shares",
                                       "temperature_chips", "fan_speeds", "boards", "extra", "online"]}
for i in range(t.num_rows):
    b = cols["boards"][i] or []
    print(json.dumps([int(cols["site_id"][i]), cols["miner_id"][i], ts[i], cols["hashrate_ghs"][i],
                      cols["accepted_shares"][i], cols["temperature_chips"][i], cols["fan_speeds"][i],
                      [[x["id"], x["hashrate"], x["temp"], x["chips_ok"], x["chips_total"]] for x in b],
                      json.loads(cols["extra"][i]) if cols["extra"][i] else None, cols["online"][i]]))
"#;

/// The same projection of every row, straight from PostgreSQL.
async fn database_rows(db: &tokio_postgres::Client) -> Vec<Value> {
    let rows = db
        .query(
            "SELECT site_id, miner_id, (extract(epoch FROM ts) * 1000000)::int8, hashrate_ghs,
                    accepted_shares, temperature_chips, fan_speeds, board_ids, board_hashrate,
                    board_temp, board_chips_ok, board_chips_total, extra::text, online
             FROM miner_telemetry",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let hashrate: Vec<Option<f32>> = r.get(8);
            let ids: Option<Vec<Option<i16>>> = r.get(7);
            let temp: Vec<Option<f32>> = r.get(9);
            let ok: Vec<Option<i16>> = r.get(10);
            let total: Vec<Option<i16>> = r.get(11);
            let boards: Vec<Value> = (0..hashrate.len())
                .map(|i| {
                    let id = ids.as_ref().map_or(Some(i as i16), |v| v[i]);
                    json!([
                        id,
                        hashrate[i].map(f64::from),
                        temp[i].map(f64::from),
                        ok[i],
                        total[i]
                    ])
                })
                .collect();
            let chips: Option<Vec<f32>> = r.get(5);
            let extra: Option<String> = r.get(12);
            json!([
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, i64>(2),
                r.get::<_, Option<f64>>(3),
                r.get::<_, Option<i64>>(4),
                chips.map(|c| c.into_iter().map(f64::from).collect::<Vec<_>>()),
                r.get::<_, Option<Vec<i32>>>(6),
                boards,
                extra.map(|e| serde_json::from_str::<Value>(&e).unwrap()),
                r.get::<_, Option<bool>>(13),
            ])
        })
        .collect()
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_rows_read_back_equal_with_pyarrow() {
    let (dir, url) = temp_archive("readback");
    let srv = TestServer::start_with("archive", |c| {
        c.archive_url = Some(url.clone());
        c.archive_flush_interval = Duration::from_secs(1);
    })
    .await;
    for site in [41, 42, 43] {
        let key = srv.key(site).await;
        upload_rows(srv.addr, &key, &rows_for(site, 68_000, "m"), 10_000).await;
    }
    archive_drained(&srv.db).await;
    let windows = check(&srv.db, &url).await;
    assert_eq!(windows.len(), 6, "3 sites x 2 days: {windows:?}");
    assert_exact(&windows, "after load");
    assert_eq!(windows.iter().map(|w| w.files.rows).sum::<i64>(), 204_000);

    let dumped = python(PYARROW_DUMP, &[dir.to_str().unwrap()]);
    let from_parquet: Vec<Value> = dumped
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(from_parquet.len(), 204_000);
    let from_parquet = sorted(from_parquet);
    let from_db = sorted(database_rows(&srv.db).await);
    for (a, b) in from_parquet.iter().zip(&from_db) {
        assert_eq!(a, b, "pyarrow row vs PostgreSQL row");
    }
    srv.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A server archiving to a fresh directory, after `rounds` uploads of
/// `rows` rows for `site`, each archived as its own part files.
async fn server_with_part_files(
    name: &str,
    site: i32,
    rounds: usize,
    rows: usize,
) -> (TestServer, std::path::PathBuf, String) {
    let (dir, url) = temp_archive(name);
    let srv = TestServer::start_with(name, |c| {
        c.archive_url = Some(url.clone());
        c.archive_flush_interval = Duration::from_millis(200);
    })
    .await;
    let key = srv.key(site).await;
    for round in 0..rounds {
        upload_rows(
            srv.addr,
            &key,
            &rows_for(site, rows, &format!("r{round}-")),
            10_000,
        )
        .await;
        archive_drained(&srv.db).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (srv, dir, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_a_window_into_one_file_atomically() {
    let (srv, dir, url) = server_with_part_files("compact", 51, 4, 2_000).await;
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let before: i64 = srv
        .db
        .query_one(
            "SELECT count(*) FROM archive_files WHERE site_id = 51 AND day = $1",
            &[&day],
        )
        .await
        .unwrap()
        .get(0);
    assert!(before >= 4, "several part files first: {before}");
    let archive = Archive::from_url(&url).unwrap();
    let cfg = ArchiveConfig::new(url.clone(), srv.db_url.clone());
    let mut client = connect(&srv.db_url).await;
    let rows = maintain::compact(&mut client, &archive, &cfg, (51, day))
        .await
        .unwrap();
    assert_eq!(rows, 4_000);
    let files: Vec<(String, String)> = srv
        .db
        .query(
            "SELECT kind, path FROM archive_files WHERE site_id = 51 AND day = $1",
            &[&day],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].0, "compacted");
    let on_disk = std::fs::read_dir(dir.join(format!("miner_telemetry/site_id=51/date={day}")))
        .unwrap()
        .count();
    assert_eq!(on_disk, 1, "old part files are deleted");
    assert_exact(&check(&srv.db, &url).await, "after compaction");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_delays_the_archive_but_not_ingest() {
    let (dir, url) = temp_archive("down");
    std::fs::create_dir_all(&dir).unwrap();
    let srv = TestServer::start_with("storedown", |c| {
        c.archive_url = Some(url.clone());
        c.archive_flush_interval = Duration::from_millis(300);
    })
    .await;
    // The table directory is a plain file: every upload to the store fails.
    let blocker = dir.join("miner_telemetry");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let key = srv.key(61).await;
    upload_rows(srv.addr, &key, &rows_for(61, 3_000, "d"), 10_000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued: i64 = srv
        .db
        .query_one("SELECT count(*) FROM archive_queue", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        queued > 0,
        "nothing can be archived while the store is down"
    );
    assert_eq!(
        srv.count("SELECT count(*) FROM miner_telemetry").await,
        3_000,
        "ingest went on"
    );
    std::fs::remove_file(&blocker).unwrap();
    archive_drained(&srv.db).await;
    assert_exact(&check(&srv.db, &url).await, "after the store came back");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_archiving_then_restart_leaves_an_exact_archive() {
    let (dir, url) = temp_archive("kill");
    let args = [
        "--archive-url",
        url.as_str(),
        "--archive-flush-interval",
        "700ms",
    ];
    let Spawned {
        mut child,
        db_url,
        db,
        key,
        port,
        addr,
        ..
    } = spawn_with_key("archkill", 71, &args, &[]).await;
    let started = Instant::now();
    let mut round = 0;
    // Upload until some files exist, then kill mid-stream.
    while started.elapsed() < Duration::from_secs(20) {
        upload_rows(
            addr,
            &key,
            &rows_for(71, 1_500, &format!("k{round}-")),
            10_000,
        )
        .await;
        round += 1;
        let live: i64 = db
            .query_one(
                "SELECT count(*) FROM archive_files WHERE state = 'live'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if live >= 2 && round >= 4 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let queued: i64 = db
        .query_one("SELECT count(*) FROM archive_queue", &[])
        .await
        .unwrap()
        .get(0);
    let mut child = spawn_adit(&db_url, port, &args, &[]);
    wait_healthy(port).await;
    archive_drained(&db).await;
    let windows = check(&db, &url).await;
    assert_exact(
        &windows,
        &format!("after kill -9 with {queued} batches queued"),
    );
    let files: i64 = windows.iter().map(|w| w.files.rows).sum();
    assert_eq!(files, round * 1_500, "every acknowledged row archived once");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_on_an_s3_compatible_server_verifies() {
    let s3_port = free_port();
    let mut moto = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &s3_port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto server starts (make setup installs moto[server])");
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let mut made = false;
    for _ in 0..100 {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
                 aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='adit-test')",
                &endpoint,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            made = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(made, "bucket created on the loopback S3 server");
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let url = "s3://adit-test/fleet";
    let args = ["--archive-url", url, "--archive-flush-interval", "500ms"];
    let Spawned {
        mut child,
        db_url,
        db,
        key,
        addr,
        ..
    } = spawn_with_key("archs3", 81, &args, &env).await;
    upload_rows(addr, &key, &rows_for(81, 20_000, "s"), 10_000).await;
    archive_drained(&db).await;
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
        .args(["archive", "--archive-url", url, "verify"])
        .env("DATABASE_URL", &db_url)
        .envs(env)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "verify: {report} {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(report.contains("2 window(s): 2 exact"), "{report}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = moto.kill();
    let _ = moto.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_cut_short_by_a_crash_is_undone_at_recovery() {
    let (srv, dir, url) = server_with_part_files("cutshort", 91, 2, 1_000).await;
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let window_dir = dir.join(format!("miner_telemetry/site_id=91/date={day}"));
    let files_before = std::fs::read_dir(&window_dir).unwrap().count();
    // The state a crash leaves mid-compaction: the merged file uploaded and
    // recorded as 'writing', the old files still live.
    let archive = Archive::from_url(&url).unwrap();
    let client = connect(&srv.db_url).await;
    let rows = adit_archive::export::window_rows(&client, 91, day)
        .await
        .unwrap();
    let rows: Vec<tokio_postgres::Row> =
        futures_util::TryStreamExt::try_collect(rows).await.unwrap();
    let samples: Vec<_> = rows
        .iter()
        .map(adit_archive::export::sample_from_row)
        .collect();
    let refs: Vec<_> = samples.iter().collect();
    let kind = adit_archive::sink::Kind::Compacted;
    adit_archive::sink::stage(&client, &archive, (91, day), kind, &refs)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_dir(&window_dir).unwrap().count(),
        files_before + 1
    );
    // The crash: the connection that recorded the file is gone.
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv
        .count(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "backend {pid} did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_exact(
        &check(&srv.db, &url).await,
        "a 'writing' file is not part of the archive",
    );

    let mut cfg = ArchiveConfig::new(url.clone(), srv.db_url.clone());
    cfg.stale_writing = Duration::ZERO;
    let mut client = connect(&srv.db_url).await;
    let stats = adit_archive::ArchiveStats::default();
    maintain::recover(&mut client, &archive, &cfg, &stats)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_dir(&window_dir).unwrap().count(),
        files_before,
        "the half-done merge is gone"
    );
    let writing: i64 = srv
        .db
        .query_one(
            "SELECT count(*) FROM archive_files WHERE state = 'writing'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(writing, 0);
    assert_exact(&check(&srv.db, &url).await, "after recovery");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

//! `adit load --dataset` over real HTTP on loopback and a real PostgreSQL.
//! Against a real adit (`POST /api/datasets/{name}/upload`): the report and
//! `--verify` for append and upsert datasets, the closed and open models,
//! JSON and NDJSON bodies. Against a faulty stand-in for that endpoint (it
//! writes each body through the dataset crate as the writer does, then
//! doubles, loses or keeps stale rows on purpose): `--verify` catches each
//! fault. And `adit copy-file --dataset` loads with psql.

mod common;

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use adit_dataset::{copy, ddl, decode, partitions, BodyFormat, Catalog, Limits};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};

/// How the stand-in writes what it acknowledges.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Writes {
    Faithfully,
    /// Every body twice (append).
    Twice,
    /// Acknowledges one upload in five without writing it.
    DropsSome,
    /// Keeps the first version of a key (upsert `DO NOTHING`).
    KeepsFirst,
}

#[derive(Debug, Default)]
struct Seen {
    requests: usize,
    content_types: Vec<String>,
    idempotency_keys: Vec<String>,
    bad: Vec<String>,
}

struct StandIn {
    db_url: String,
    writes: Writes,
    seen: Mutex<Seen>,
    partitions: tokio::sync::Mutex<()>,
}

async fn serve_stand_in(stand_in: Arc<StandIn>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let s = stand_in.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let s = s.clone();
                    async move { Ok::<_, std::convert::Infallible>(s.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

impl StandIn {
    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let answer = |status: StatusCode, body: String| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        let path = req.uri().path().to_string();
        let name = path
            .strip_prefix("/api/datasets/")
            .and_then(|p| p.strip_suffix("/upload"))
            .unwrap_or("")
            .to_string();
        let catalog = Catalog::shipped().unwrap();
        let Ok(d) = catalog.get(&name) else {
            return answer(
                StatusCode::NOT_FOUND,
                r#"{"success":false,"error":{"code":"unknown_dataset"}}"#.into(),
            );
        };
        let header = |h: &str| {
            req.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let site: i32 = match header("x-collector-key")
            .and_then(|k| k.strip_prefix("test-key-").and_then(|s| s.parse().ok()))
        {
            Some(s) => s,
            None => return answer(StatusCode::UNAUTHORIZED, "{}".into()),
        };
        let upload_no = {
            let mut seen = self.seen.lock().unwrap();
            seen.requests += 1;
            if header("content-encoding").as_deref() != Some("gzip") {
                seen.bad.push("not gzip".into());
            }
            seen.content_types.extend(header("content-type"));
            match header("idempotency-key") {
                Some(k) => seen.idempotency_keys.push(k),
                None => seen.bad.push("no Idempotency-Key".into()),
            }
            seen.requests
        };
        let format = BodyFormat::from_content_type(header("content-type").as_deref());
        let gz = req.into_body().collect().await.unwrap().to_bytes();
        let mut body = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut body)
            .unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        let decoded = decode(d, &body, format, &Limits::default(), now).unwrap();
        let rows = decoded.batch.num_rows();
        let times = match self.writes {
            Writes::Twice => 2,
            Writes::DropsSome if upload_no % 5 == 0 => 0,
            _ => 1,
        };
        let mut db = connect(&self.db_url).await;
        let ds = d.dataset();
        {
            // One at a time, each committed at once: adit_ensure_dataset_partition
            // called from two open transactions for the same new partition can
            // fail with 42P07 (relation already exists).
            let _one = self.partitions.lock().await;
            for p in partitions(ds, &decoded.batch) {
                let at = chrono::DateTime::from_timestamp_micros(p.start_micros).unwrap();
                db.query_one(
                    adit_dataset::ENSURE_PARTITION_SQL,
                    &[&ds.table(), &ds.partition.as_str(), &at],
                )
                .await
                .unwrap();
            }
        }
        let tx = db.transaction().await.unwrap();
        let upsert = ds.mode == adit_types::dataset::WriteMode::Upsert;
        if upsert {
            tx.batch_execute(&ddl::create_stage(ds)).await.unwrap();
        }
        for _ in 0..times {
            let mut buf = BytesMut::new();
            copy::begin(&mut buf);
            copy::encode_batch(&mut buf, d, site, &decoded.batch);
            copy::end(&mut buf);
            let into = if upsert {
                ddl::stage_table(ds)
            } else {
                ds.table().to_string()
            };
            let sink = tx
                .copy_in::<_, Bytes>(&ddl::copy_into(ds, &into))
                .await
                .unwrap();
            futures_util::pin_mut!(sink);
            futures_util::SinkExt::send(&mut sink, buf.freeze())
                .await
                .unwrap();
            sink.finish().await.unwrap();
            if upsert {
                let mut sql = ddl::upsert(ds);
                if self.writes == Writes::KeepsFirst {
                    let at = sql.find(" DO UPDATE").unwrap();
                    sql.truncate(at);
                    sql.push_str(" DO NOTHING");
                }
                tx.batch_execute(&sql).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
        answer(
            StatusCode::OK,
            format!(
                r#"{{"success":true,"data":{{"processed":{rows},"rejected":{},"processing_time_ms":1,"errors":[]}}}}"#,
                decoded.rejects.len()
            ),
        )
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    load: adit_load::LoadArgs,
}

async fn setup(name: &str, writes: Writes) -> (TestDb, Arc<StandIn>, SocketAddr) {
    let db = TestDb::new(name).await;
    let mut client = connect(db.url()).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    let stand_in = Arc::new(StandIn {
        db_url: db.url().to_string(),
        writes,
        seen: Mutex::default(),
        partitions: tokio::sync::Mutex::default(),
    });
    let addr = serve_stand_in(stand_in.clone()).await;
    (db, stand_in, addr)
}

fn args(addr: SocketAddr, db_url: &str, extra: &[&str]) -> adit_load::LoadArgs {
    let url = format!("http://{addr}");
    let mut argv = vec!["load", "--url", &url, "--database-url", db_url, "--quiet"];
    argv.extend_from_slice(extra);
    Cli::parse_from(argv).load
}

fn sites(ids: &[i32]) -> Vec<(i32, String)> {
    ids.iter().map(|&s| (s, format!("test-key-{s}"))).collect()
}

/// A real adit and a collector key for each site.
async fn real_adit(name: &str, site_ids: &[i32]) -> (TestServer, Vec<(i32, String)>) {
    let srv = TestServer::start(name).await;
    let mut keys = Vec::new();
    for &site in site_ids {
        keys.push((site, srv.key(site).await));
    }
    (srv, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_dataset_load_verifies_the_acked_rows_per_site() {
    let (srv, keys) = real_adit("load_ds_append", &[31, 32, 33]).await;
    let run = args(
        srv.addr,
        &srv.db_url,
        &[
            "--dataset",
            "metrics_aggregated",
            "--rows",
            "200",
            "--bodies-per-site",
            "3",
            "--requests",
            "12",
            "--concurrency",
            "3",
            "--verify",
        ],
    );
    let report = adit_load::run_load(&run, keys[..2].to_vec()).await.unwrap();
    assert_eq!(report.verified, Some(true), "{report:?}");
    assert_eq!(report.dataset.as_deref(), Some("metrics_aggregated"));
    assert_eq!((report.uploads_ok, report.rows_acked), (12, 2400));
    assert_eq!(
        srv.count("SELECT count(*) FROM metrics_aggregated WHERE site_id = 31")
            .await,
        1200
    );
    // One upload logged per request, each with its own Idempotency-Key.
    assert_eq!(
        srv.count(
            "SELECT count(DISTINCT idempotency_key) FROM upload_log \
             WHERE dataset = 'metrics_aggregated'"
        )
        .await,
        12
    );
    // The JSON report names the dataset.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["dataset"], "metrics_aggregated");

    // The open model, on another site.
    let open = args(
        srv.addr,
        &srv.db_url,
        &[
            "--dataset",
            "agent_analysis_results",
            "--rows",
            "150",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--verify",
        ],
    );
    let report = adit_load::run_load(&open, keys[2..].to_vec())
        .await
        .unwrap();
    assert!(report.model.starts_with("open"), "{report:?}");
    assert_eq!(report.verified, Some(true), "{report:?}");
    assert!(report.uploads_ok >= 10, "{report:?}");
    assert_eq!(
        srv.count("SELECT count(*) FROM agent_analysis_results WHERE site_id = 33")
            .await,
        report.rows_acked as i64
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_verify_catches_doubled_and_lost_rows() {
    for (name, writes) in [
        ("load_ds_twice", Writes::Twice),
        ("load_ds_drops", Writes::DropsSome),
    ] {
        let (_db, _stand_in, addr) = setup(name, writes).await;
        let run = args(
            addr,
            _db.url(),
            &[
                "--dataset",
                "strategy_executions",
                "--rows",
                "100",
                "--requests",
                "10",
                "--concurrency",
                "2",
                "--verify",
            ],
        );
        let report = adit_load::run_load(&run, sites(&[41])).await.unwrap();
        assert_eq!(report.uploads_ok, 10);
        assert_eq!(report.verified, Some(false), "{name}: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_dataset_load_keeps_each_acked_bar_once_with_its_last_values() {
    let (srv, keys) = real_adit("load_ds_upsert", &[51, 52, 54]).await;
    // 8 bodies of 300 bars per site, each sent twice (16 uploads a site):
    // corrected bars replace their first versions, re-sent bodies replace
    // bars with the same values.
    let run = args(
        srv.addr,
        &srv.db_url,
        &[
            "--dataset",
            "market_data",
            "--rows",
            "300",
            "--bodies-per-site",
            "8",
            "--requests",
            "32",
            "--concurrency",
            "2",
            "--verify",
        ],
    );
    let report = adit_load::run_load(&run, keys[..2].to_vec()).await.unwrap();
    assert_eq!(report.verified, Some(true), "{report:?}");
    assert_eq!(report.rows_acked, 32 * 300);
    let stored = srv
        .count("SELECT count(*) FROM market_data WHERE site_id = 51")
        .await;
    assert!(
        stored < 8 * 300 && stored > 8 * 300 * 9 / 10,
        "{stored}: one row per bar, corrected bars once"
    );

    // A table that kept the first versions of corrected bars is caught.
    let (db, _stand_in, addr) = setup("load_ds_stale", Writes::KeepsFirst).await;
    let run = args(
        addr,
        db.url(),
        &[
            "--dataset",
            "market_data",
            "--rows",
            "300",
            "--bodies-per-site",
            "8",
            "--requests",
            "8",
            "--concurrency",
            "1",
            "--verify",
        ],
    );
    let report = adit_load::run_load(&run, sites(&[53])).await.unwrap();
    assert_eq!(report.verified, Some(false), "{report:?}");
    // The same as NDJSON bodies, to the real adit.
    let run = args(
        srv.addr,
        &srv.db_url,
        &[
            "--dataset",
            "market_data",
            "--ndjson",
            "--rows",
            "300",
            "--bodies-per-site",
            "4",
            "--requests",
            "8",
            "--concurrency",
            "2",
            "--verify",
        ],
    );
    let report = adit_load::run_load(&run, keys[2..].to_vec()).await.unwrap();
    assert_eq!(report.verified, Some(true), "{report:?}");
    assert_eq!(report.uploads_ok, 8, "{report:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_dataset_is_refused_before_any_upload() {
    let (_db, stand_in, addr) = setup("load_ds_unknown", Writes::Faithfully).await;
    let run = args(addr, _db.url(), &["--dataset", "nope", "--requests", "1"]);
    let err = adit_load::run_load(&run, sites(&[61])).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("not a shipped dataset"),
        "{err:#}"
    );
    assert_eq!(stand_in.seen.lock().unwrap().requests, 0);
    // The path a dataset load posts to.
    let run = args(addr, _db.url(), &["--dataset", "market_data"]);
    assert_eq!(
        adit_load::upload_path(&run),
        "/api/datasets/market_data/upload"
    );
}

/// `adit copy-file --dataset` writes `rows` rows of `dataset` (2 sites,
/// uploads of 500) and its psql script into `dir`; returns the printed
/// column list and the paths.
fn copy_file(dir: &std::path::Path, dataset: &str, rows: usize) -> (String, String, String) {
    let (data, script) = (
        dir.join(format!("{dataset}.copy")),
        dir.join(format!("{dataset}.sql")),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
        .args([
            "copy-file",
            "--dataset",
            dataset,
            "--sites",
            "2",
            "--miners",
            "500",
        ])
        .args(["--rows", &rows.to_string(), "--out"])
        .arg(&data)
        .arg("--psql-script")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
        data.display().to_string(),
        script.display().to_string(),
    )
}

fn psql(url: &str, args: &[&str]) {
    let out = std::process::Command::new("psql")
        .args([url, "-qX", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn copy_file_rows_load_with_psql_into_the_migrated_tables() {
    let db = TestDb::new("copy_file_ds").await;
    let mut client = connect(db.url()).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    let dir = std::env::temp_dir().join(format!("adit-copy-ds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = Catalog::shipped().unwrap();
    for dataset in [
        "metrics_aggregated",
        "market_data",
        "agent_analysis_results",
    ] {
        let ds = catalog.get(dataset).unwrap().dataset().clone();
        client
            .execute(
                "SELECT adit_ensure_dataset_partition($1::text::regclass, $2, g) \
                 FROM generate_series(now() - interval '30 days', now(), interval '1 day') g",
                &[&dataset, &ds.partition.as_str()],
            )
            .await
            .unwrap();
        let (columns, data, script) = copy_file(&dir, dataset, 4000);
        assert_eq!(columns, ddl::copy_columns(&ds));
        // Every row of the file, as psql's \copy with the printed columns.
        client
            .batch_execute(&format!("CREATE TABLE raw_{dataset} (LIKE {dataset})"))
            .await
            .unwrap();
        psql(
            db.url(),
            &[
                "-c",
                &format!("\\copy raw_{dataset} ({columns}) FROM '{data}' WITH (FORMAT binary)"),
            ],
        );
        let file_rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM raw_{dataset}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(file_rows, 4000, "{dataset}");
        // The script loads them as adit writes the dataset.
        psql(db.url(), &["-f", &script]);
        let stored: i64 = client
            .query_one(&format!("SELECT count(*) FROM {dataset}"), &[])
            .await
            .unwrap()
            .get(0);
        let sites: Vec<i32> = client
            .query(
                &format!("SELECT DISTINCT site_id FROM {dataset} ORDER BY 1"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(sites, [1000, 1001], "{dataset}");
        if dataset == "market_data" {
            // Corrected bars share keys: fewer rows than bars sent, one per key.
            let keys: i64 = client
                .query_one(
                    "SELECT count(DISTINCT (site_id, timestamp, asset, timeframe)) FROM raw_market_data",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert!(keys < 4000);
            assert_eq!(stored, keys);
            // And each bar holds the last version in the file.
            let stale: i64 = client
                .query_one(
                    "SELECT count(*) FROM market_data m JOIN LATERAL (SELECT close FROM \
                     raw_market_data r WHERE (r.site_id, r.timestamp, r.asset, r.timeframe) \
                     = (m.site_id, m.timestamp, m.asset, m.timeframe) ORDER BY r.ctid DESC \
                     LIMIT 1) last ON true WHERE last.close <> m.close",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(stale, 0);
        } else {
            assert_eq!(stored, 4000, "{dataset}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `POST /api/datasets/{name}/upload` over real HTTP into a real
//! PostgreSQL: the seeds' rows of every shipped dataset go in and come back
//! equal; bad rows are refused alone and kept in `ingest_rejects` with
//! their dataset; a re-sent bar replaces the stored one (also when two
//! uploads of it race); NDJSON, gzip, Idempotency-Key, 404; an operator's
//! own dataset from `--datasets-dir`, and a column added to it while
//! uploads run; retention of dataset partitions; the archive marks are
//! written in the rows' transaction.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adit::serve::ServeConfig;
use chrono::{DateTime, DurationRound, Utc};
use common::{connect, fresh_database, gzip, json, request, Response, TestServer};
use hyper::StatusCode;
use tokio::sync::oneshot;

/// Posts `body` to dataset `name`'s upload endpoint with `key`.
async fn post(
    addr: SocketAddr,
    key: &str,
    name: &str,
    body: impl Into<bytes::Bytes>,
    headers: &[(&str, &str)],
) -> Response {
    let mut h = vec![("x-collector-key", key)];
    h.extend_from_slice(headers);
    if !h.iter().any(|(k, _)| *k == "content-type") {
        h.push(("content-type", "application/json"));
    }
    let path = format!("/api/datasets/{name}/upload");
    request(addr, "POST", &path, &h, body).await.unwrap()
}

/// Every row of `sql`, each value as PostgreSQL prints it (NULL as "NULL").
async fn texts(db: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    db.simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The start of the hour `hours` hours ago: recent enough for every
/// dataset's retention, aligned for every bar up to 1h.
fn hours_ago(hours: i64) -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap()
        - chrono::Duration::hours(hours)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// How PostgreSQL prints `t` (the test cluster runs in UTC).
fn pg_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S+00").to_string()
}

fn metrics_row(t: DateTime<Utc>, service: &str, error_rate: &str) -> String {
    format!(
        r#"{{"timestamp":"{}","service_name":"{service}","api_endpoint":"/predict","qps":2.50,"avg_latency_ms":120.50,"p95_latency_ms":180.20,"p99_latency_ms":250.80,"error_rate":{error_rate},"total_requests":1500}}"#,
        rfc3339(t)
    )
}

fn bar(t: DateTime<Utc>, asset: &str, close: &str, high: &str) -> String {
    format!(
        r#"{{"timestamp":"{}","asset":"{asset}","timeframe":"1h","open":100.00,"high":{high},"low":99.50,"close":{close},"volume":12.5,"ema_21":100.12,"rsi_14":55.5,"source":"binance"}}"#,
        rfc3339(t)
    )
}

fn array(rows: &[String]) -> String {
    format!("[{}]", rows.join(","))
}

#[tokio::test]
async fn the_seeds_rows_of_every_shipped_dataset_come_back_equal() {
    let server = TestServer::start("ds_up_seed_rows").await;
    let key = server.key(3).await;
    let t = hours_ago(2);
    let agent = format!(
        r#"{{"timestamp":"{}","execution_id":"7d3e2a1c-0b1f-4c6e-9a51-2f0e8d1b7c44","strategy_id":"btc-macro-v2","agent_type":"macro","score":0.8,"confidence":0.75,"reasoning":"ETF inflows and a dovish Fed","signals":{{"etf_flow":"positive","fed_rate":"dovish"}},"execution_time_ms":4210,"tokens_used":1830,"llm_model":"claude","llm_cost":0.012345,"input_data":null}}"#,
        rfc3339(t)
    );
    let execution = format!(
        r#"{{"timestamp":{},"execution_id":"0c9a8f6e-5d4b-4a3c-8b2a-1e0f9d8c7b6a","strategy_id":"btc-macro-v2","conviction_score":0.67,"signal":"BUY","agent_scores":{{"macro":0.8,"onchain":0.7,"ta":0.5}},"action_taken":"executed","total_execution_time_ms":9000,"total_tokens_used":5120,"total_cost":0.034,"status":"completed","trace":"abc"}}"#,
        t.timestamp()
    );
    for (name, row) in [
        (
            "metrics_aggregated",
            metrics_row(t, "model-api-v1", "0.0200"),
        ),
        ("market_data", bar(t, "BTC", "100.50", "101.25")),
        ("agent_analysis_results", agent),
        ("strategy_executions", execution),
    ] {
        let (status, _, body) = post(server.addr, &key, name, array(&[row]), &[]).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        let v = json(&body);
        assert_eq!(v["success"], true);
        assert_eq!(v["data"]["processed"], 1, "{name}: {body}");
        assert_eq!(v["data"]["rejected"], 0);
        assert!(v["data"].get("online").is_none(), "no telemetry counts");
    }
    let ts = pg_time(t);
    assert_eq!(
        texts(&server.db, "SELECT * FROM metrics_aggregated").await,
        [[
            "3",
            ts.as_str(),
            "model-api-v1",
            "/predict",
            "2.5",
            "120.5",
            "180.2",
            "250.8",
            "0.02",
            "1500",
            "NULL"
        ]]
    );
    assert_eq!(
        texts(&server.db, "SELECT * FROM market_data").await,
        [[
            "3",
            ts.as_str(),
            "BTC",
            "1h",
            "100.00",
            "101.25",
            "99.50",
            "100.50",
            "12.50000000",
            "100.12",
            "NULL",
            "55.50",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "binance",
            "NULL"
        ]]
    );
    assert_eq!(
        texts(&server.db, "SELECT * FROM agent_analysis_results").await,
        [[
            "3",
            ts.as_str(),
            "7d3e2a1c-0b1f-4c6e-9a51-2f0e8d1b7c44",
            "btc-macro-v2",
            "macro",
            "0.80",
            "0.75",
            "ETF inflows and a dovish Fed",
            r#"{"etf_flow": "positive", "fed_rate": "dovish"}"#,
            "4210",
            "1830",
            "claude",
            "0.012345",
            "NULL",
            "NULL"
        ]]
    );
    assert_eq!(
        texts(&server.db, "SELECT * FROM strategy_executions").await,
        [[
            "3",
            ts.as_str(),
            "0c9a8f6e-5d4b-4a3c-8b2a-1e0f9d8c7b6a",
            "btc-macro-v2",
            "NULL",
            "0.67",
            "BUY",
            "NULL",
            r#"{"ta": 0.5, "macro": 0.8, "onchain": 0.7}"#,
            "executed",
            "NULL",
            "9000",
            "5120",
            "0.034000",
            "completed",
            "NULL",
            r#"{"trace": "abc"}"#
        ]]
    );
    // Each upload is logged with its dataset, each (dataset, site, day)
    // marked for the archive.
    assert_eq!(
        texts(
            &server.db,
            "SELECT dataset, processed, rejected FROM upload_log ORDER BY dataset"
        )
        .await,
        [
            ["agent_analysis_results", "1", "0"],
            ["market_data", "1", "0"],
            ["metrics_aggregated", "1", "0"],
            ["strategy_executions", "1", "0"]
        ]
    );
    let day = t.format("%Y-%m-%d").to_string();
    assert_eq!(
        texts(
            &server.db,
            "SELECT dataset, site_id, day FROM dataset_archive_dirty ORDER BY dataset"
        )
        .await,
        [
            ["agent_analysis_results", "3", day.as_str()],
            ["market_data", "3", day.as_str()],
            ["metrics_aggregated", "3", day.as_str()],
            ["strategy_executions", "3", day.as_str()]
        ]
    );
    let (_, _, metrics) = common::get(server.addr, "/metrics").await.unwrap();
    assert!(
        metrics.contains(r#"adit_dataset_uploads_total{dataset="market_data",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"adit_dataset_rows_accepted_total{dataset="market_data"} 1"#));
    assert!(metrics.contains(r#"adit_site_uploads_total{dataset="market_data",site_id="3"} 1"#));
    // Telemetry's own counters are telemetry's alone.
    assert!(metrics.contains("adit_rows_accepted_total 0"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn bad_rows_are_refused_alone_with_a_reason_and_kept_with_their_dataset() {
    let server = TestServer::start("ds_up_bad_rows").await;
    let key = server.key(4).await;
    let t = hours_ago(3);
    let misaligned = bar(t + chrono::Duration::minutes(30), "ETH", "100.50", "101");
    let rows = [
        bar(t, "BTC", "100.50", "101"),
        bar(t, "ETH", "102.00", "101"), // close above high
        misaligned,
        bar(t, "SOL", "100.50", "101").replace("\"open\":100.00", "\"open\":\"abc\""),
        bar(t, "ADA", "100.50", "101"),
    ];
    let (status, _, body) = post(server.addr, &key, "market_data", array(&rows), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json(&body);
    assert_eq!(v["data"]["processed"], 2, "{body}");
    assert_eq!(v["data"]["rejected"], 3);
    let errors = v["data"]["errors"].as_array().unwrap();
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2, 3]);
    for e in errors {
        assert!(!e["reason"].as_str().unwrap().is_empty(), "{e}");
    }
    assert_eq!(errors[2]["field"], "open", "{body}");
    let (status, _, body) = post(
        server.addr,
        &key,
        "metrics_aggregated",
        array(&[metrics_row(t, "a", "0.5"), metrics_row(t, "b", "1.5")]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    assert_eq!(
        (
            v["data"]["processed"].as_u64(),
            v["data"]["rejected"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(v["data"]["errors"][0]["field"], "error_rate", "{body}");

    assert_eq!(
        texts(&server.db, "SELECT asset FROM market_data ORDER BY asset").await,
        [["ADA"], ["BTC"]]
    );
    assert_eq!(
        texts(&server.db, "SELECT service_name FROM metrics_aggregated").await,
        [["a"]]
    );
    let rejects = texts(
        &server.db,
        "SELECT dataset, site_id, row_index, field, raw FROM ingest_rejects ORDER BY dataset, row_index",
    )
    .await;
    assert_eq!(rejects.len(), 4, "{rejects:?}");
    assert_eq!(&rejects[0][..4], ["market_data", "4", "1", "high"]);
    assert_eq!(rejects[1][..3], ["market_data", "4", "2"]);
    assert!(rejects[1][4].contains("\"ETH\""), "the raw row is kept");
    assert_eq!(&rejects[2][..4], ["market_data", "4", "3", "open"]);
    assert_eq!(
        &rejects[3][..4],
        ["metrics_aggregated", "4", "1", "error_rate"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_resent_bar_replaces_the_stored_one_also_when_two_race() {
    let server = TestServer::start("ds_up_upsert").await;
    let key = server.key(5).await;
    let t = hours_ago(1);
    let first = array(&[bar(t, "BTC", "100.50", "101")]);
    let (status, _, body) = post(server.addr, &key, "market_data", first, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Corrected: a new close and high.
    let corrected = array(&[bar(t, "BTC", "101.75", "102")]);
    let (status, _, body) = post(server.addr, &key, "market_data", corrected, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let q = "SELECT close, high FROM market_data WHERE asset = 'BTC'";
    assert_eq!(texts(&server.db, q).await, [["101.75", "102.00"]]);
    // Twice in one upload: the last one sent wins.
    let twice = array(&[
        bar(t, "BTC", "100.10", "101"),
        bar(t, "BTC", "100.20", "101"),
    ]);
    let (status, _, _) = post(server.addr, &key, "market_data", twice, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts(&server.db, q).await, [["100.20", "101.00"]]);
    // Two uploads of the same bar in flight at once, again and again: one
    // row, holding one of the two.
    for round in 0..10 {
        let a = array(&[bar(t, "ETH", "100.60", "101")]);
        let b = array(&[bar(t, "ETH", "100.70", "101")]);
        let (ra, rb) = tokio::join!(
            post(server.addr, &key, "market_data", a, &[]),
            post(server.addr, &key, "market_data", b, &[]),
        );
        assert_eq!(
            (ra.0, rb.0),
            (StatusCode::OK, StatusCode::OK),
            "round {round}"
        );
        let got = texts(
            &server.db,
            "SELECT close FROM market_data WHERE asset = 'ETH'",
        )
        .await;
        assert_eq!(got.len(), 1, "round {round}: {got:?}");
        assert!(
            ["100.60", "100.70"].contains(&got[0][0].as_str()),
            "{got:?}"
        );
    }
    // Another site's bar of the same key is its own row.
    let other = server.key(6).await;
    let (status, _, _) = post(
        server.addr,
        &other,
        "market_data",
        array(&[bar(t, "BTC", "100.00", "101")]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.count("SELECT count(*) FROM market_data").await, 3);
    server.stop().await;
}

#[tokio::test]
async fn ndjson_gzip_and_the_error_answers() {
    let server = TestServer::start("ds_up_ndjson").await;
    let key = server.key(7).await;
    let t = hours_ago(1);
    let lines = format!(
        "{}\n\n{}\r\nnot json\n{}\n",
        metrics_row(t, "a", "0.1"),
        metrics_row(t, "b", "0.2"),
        metrics_row(t, "c", "0.3")
    );
    let (status, _, body) = post(
        server.addr,
        &key,
        "metrics_aggregated",
        gzip(lines.as_bytes()),
        &[
            ("content-type", "application/x-ndjson"),
            ("content-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json(&body);
    assert_eq!(v["data"]["processed"], 3, "{body}");
    assert_eq!(v["data"]["rejected"], 1);
    assert_eq!(
        v["data"]["errors"][0]["index"], 2,
        "blank lines are not rows"
    );
    assert_eq!(
        texts(
            &server.db,
            "SELECT service_name FROM metrics_aggregated ORDER BY 1"
        )
        .await,
        [["a"], ["b"], ["c"]]
    );
    // The whole-batch errors of the upload contract.
    let (status, _, body) = post(server.addr, &key, "nope", "[]", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["code"], "unknown_dataset");
    let (status, _, body) = post(server.addr, "hsc_wrong", "metrics_aggregated", "[]", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = post(server.addr, &key, "metrics_aggregated", "{\"a\":1}", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json(&body)["code"], "malformed_json");
    let (status, _, _) = post(
        server.addr,
        &key,
        "metrics_aggregated",
        "[]",
        &[("content-type", "text/csv")],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, body) = post(
        server.addr,
        &key,
        "metrics_aggregated",
        "[]",
        &[("content-encoding", "br")],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _, body) = post(server.addr, &key, "metrics_aggregated", "[]", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["data"]["processed"], 0);
    let (status, _, _) = request(
        server.addr,
        "GET",
        "/api/datasets/metrics_aggregated/upload",
        &[],
        bytes::Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        server
            .count("SELECT count(*) FROM metrics_aggregated")
            .await,
        3
    );
    server.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_replay_answers_the_first_answer_and_writes_nothing() {
    let server = TestServer::start("ds_up_idem").await;
    let key = server.key(8).await;
    let t = hours_ago(1);
    let body = array(&[metrics_row(t, "a", "0.1"), metrics_row(t, "b", "7")]);
    let idem = [("idempotency-key", "retry-1")];
    let (status, _, first) =
        post(server.addr, &key, "metrics_aggregated", body.clone(), &idem).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    for _ in 0..2 {
        let (status, _, again) =
            post(server.addr, &key, "metrics_aggregated", body.clone(), &idem).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, first, "byte for byte");
    }
    let other = array(&[metrics_row(t, "c", "0.1")]);
    let (status, _, conflict) = post(server.addr, &key, "metrics_aggregated", other, &idem).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(&conflict)["code"], "idempotency_conflict");
    assert_eq!(
        server
            .count("SELECT count(*) FROM metrics_aggregated")
            .await,
        1
    );
    assert_eq!(server.count("SELECT count(*) FROM ingest_rejects").await, 1);
    assert_eq!(server.count("SELECT count(*) FROM upload_log").await, 1);
    // The same key and body for another dataset is a conflict, not the
    // other dataset's answer.
    let (status, _, conflict) = post(
        server.addr,
        &key,
        "strategy_executions",
        body.clone(),
        &idem,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{conflict}");
    // Scoped to the collector key: another key's same Idempotency-Key writes.
    let key2 = server.key(9).await;
    let (status, _, _) = post(server.addr, &key2, "metrics_aggregated", body, &idem).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server
            .count("SELECT count(*) FROM metrics_aggregated")
            .await,
        2
    );
    server.stop().await;
}

const OPERATOR_V1: &str = r#"
name = "sensor_readings"
time_column = "at"
partition = "week"
retention = "90d"
mode = "upsert"
key = ["sensor", "at"]
[[columns]]
name = "at"
type = "timestamptz"
required = true
[[columns]]
name = "sensor"
type = "text"
required = true
max_length = 32
[[columns]]
name = "celsius"
type = "double"
min = -90
max = 90
"#;

fn operator_v2() -> String {
    format!(
        "{OPERATOR_V1}[[columns]]\nname = \"humidity\"\ntype = \"double\"\nmin = 0\nmax = 100\n"
    )
}

fn datasets_dir(tag: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adit-ds-up-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sensor_readings.toml"), text).unwrap();
    dir
}

/// An in-process `adit serve` on an existing database.
struct Serving {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Serving {
    async fn start(db_url: &str, dir: &std::path::Path) -> Self {
        let mut config = ServeConfig::test_config(db_url.to_string());
        config.datasets_dir = Some(dir.to_path_buf());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(adit::serve::run(listener, config, async {
            let _ = stopped.await;
        }));
        for _ in 0..400 {
            if let Ok((StatusCode::OK, _, _)) = common::get(addr, "/health").await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

fn reading(t: DateTime<Utc>, sensor: &str, humidity: Option<u32>) -> String {
    let h = humidity
        .map(|h| format!(",\"humidity\":{h}"))
        .unwrap_or_default();
    format!(
        r#"{{"at":"{}","sensor":"{sensor}","celsius":21.5{h}}}"#,
        rfc3339(t)
    )
}

#[tokio::test]
async fn an_operators_dataset_works_end_to_end_and_takes_a_new_column_while_uploads_run() {
    let db_url = fresh_database("ds_up_operator").await;
    let db = connect(&db_url).await;
    let dir = datasets_dir("v1", OPERATOR_V1);
    let a = Serving::start(&db_url, &dir).await;
    let key = adit_control::keys::create_key(&db, Some(11), Some("t"))
        .await
        .unwrap()
        .1;
    let t = hours_ago(1);
    // Declared without code: taken at once, an unknown field kept in extra.
    let (status, _, body) = post(
        a.addr,
        &key,
        "sensor_readings",
        array(&[reading(t, "s-0", Some(40)), reading(t, "s-0", None)]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        texts(
            &db,
            "SELECT site_id, sensor, celsius, extra FROM sensor_readings"
        )
        .await,
        [["11", "s-0", "21.5", "NULL"]],
        "the last of one key wins"
    );

    // Uploads keep going, first to the server with the old declaration,
    // while a second one starts with the new declaration (migrating the
    // table under them), then to the second once the first stops.
    let addr_now = std::sync::Arc::new(std::sync::Mutex::new(a.addr));
    let (done_tx, mut done_rx) = oneshot::channel::<()>();
    let uploader = {
        let (key, addr_now) = (key.clone(), addr_now.clone());
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..400u32 {
                if done_rx.try_recv().is_ok() {
                    break;
                }
                let addr = *addr_now.lock().unwrap();
                let sensor = format!("u-{i}");
                let row = reading(t, &sensor, Some(i % 100));
                let (status, _, body) =
                    post(addr, &key, "sensor_readings", array(&[row]), &[]).await;
                if status == StatusCode::OK {
                    assert_eq!(json(&body)["data"]["processed"], 1, "{body}");
                    sent.push((sensor, addr));
                } else {
                    // Only the first server stopping may refuse one.
                    assert!(
                        status == StatusCode::SERVICE_UNAVAILABLE,
                        "{status}: {body}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dir2 = datasets_dir("v2", &operator_v2());
    let b = Serving::start(&db_url, &dir2).await;
    let has_column = texts(
        &db,
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'sensor_readings' AND column_name = 'humidity'",
    )
    .await;
    assert_eq!(has_column, [["1"]], "migrated at start");
    tokio::time::sleep(Duration::from_millis(200)).await;
    *addr_now.lock().unwrap() = b.addr;
    let a_addr = a.addr;
    a.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = done_tx.send(());
    let sent = uploader.await.unwrap();
    let (before, after): (Vec<_>, Vec<_>) = sent.iter().partition(|(_, addr)| *addr == a_addr);
    assert!(
        !before.is_empty() && !after.is_empty(),
        "{} / {}",
        before.len(),
        after.len()
    );
    // Every acknowledged upload landed; the new column is filled from the
    // new declaration on (the old server kept it in extra).
    for (sensor, addr) in &sent {
        let row = texts(
            &db,
            &format!(
                "SELECT humidity IS NOT NULL, coalesce(extra ? 'humidity', false) \
                 FROM sensor_readings \
                 WHERE sensor = '{sensor}'"
            ),
        )
        .await;
        let want = if *addr == a_addr {
            ["f", "t"]
        } else {
            ["t", "f"]
        };
        assert_eq!(row, [want], "{sensor}");
    }
    let sent_count = sent.len() as i64 + 1;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM sensor_readings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, sent_count);
    // Weekly partitions, named after their Monday.
    let monday = t.date_naive().week(chrono::Weekday::Mon).first_day();
    let part = format!("sensor_readings_p{}", monday.format("%Y%m%d"));
    assert_eq!(
        texts(&db, &format!("SELECT to_regclass('{part}') IS NOT NULL")).await,
        [["t"]]
    );
    b.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(dir2).unwrap();
}

#[tokio::test]
async fn retention_drops_an_expired_dataset_partition_and_keeps_the_rest() {
    let server = TestServer::start("ds_up_retention").await;
    let key = server.key(12).await;
    let t = hours_ago(1);
    let (status, _, _) = post(
        server.addr,
        &key,
        "metrics_aggregated",
        array(&[metrics_row(t, "now", "0.1")]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A partition 40 days old (past metrics_aggregated's 30), with a row.
    let old = Utc::now() - chrono::Duration::days(40);
    let name: String = server
        .db
        .query_one(
            adit_dataset::ENSURE_PARTITION_SQL,
            &[&"metrics_aggregated", &"day", &old],
        )
        .await
        .unwrap()
        .get(0);
    server
        .db
        .execute(
            "INSERT INTO metrics_aggregated (site_id, timestamp, service_name, api_endpoint) \
             VALUES (12, $1, 'old', '/x')",
            &[&old],
        )
        .await
        .unwrap();
    // Made ahead at start: the partition after today's.
    let tomorrow = (Utc::now() + chrono::Duration::days(1)).format("%Y%m%d");
    let q = format!("SELECT to_regclass('metrics_aggregated_p{tomorrow}') IS NOT NULL");
    assert_eq!(texts(&server.db, &q).await, [["t"]]);
    let catalog = adit_dataset::Catalog::shipped().unwrap();
    let datasets: Vec<_> = catalog.iter().map(|d| d.dataset().clone()).collect();
    let cfg = adit_rollup::RollupConfig::default();
    adit::serve::retain(&server.db, &cfg, &datasets, Utc::now()).await;
    let q = format!("SELECT to_regclass('{name}') IS NULL");
    assert_eq!(texts(&server.db, &q).await, [["t"]], "{name} dropped");
    assert_eq!(
        texts(&server.db, "SELECT service_name FROM metrics_aggregated").await,
        [["now"]]
    );
    server.stop().await;
}

#[tokio::test]
async fn archive_marks_are_written_in_the_rows_transaction() {
    let server = TestServer::start("ds_up_marks").await;
    let key = server.key(13).await;
    // The database refuses any row of service "boom": the whole flush
    // rolls back.
    server
        .db
        .batch_execute(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.service_name = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER boom BEFORE INSERT ON metrics_aggregated \
               FOR EACH ROW EXECUTE FUNCTION boom();",
        )
        .await
        .unwrap();
    let t = hours_ago(1);
    let (status, _, body) = post(
        server.addr,
        &key,
        "metrics_aggregated",
        array(&[metrics_row(t, "boom", "0.1"), metrics_row(t, "ok", "7")]),
        &[],
    )
    .await;
    assert!(status.is_server_error(), "{status}: {body}");
    for table in [
        "metrics_aggregated",
        "dataset_archive_dirty",
        "upload_log",
        "ingest_rejects",
    ] {
        let n = server.count(&format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(n, 0, "{table}: a rolled-back flush leaves nothing");
    }
    let (status, _, _) = post(
        server.addr,
        &key,
        "metrics_aggregated",
        array(&[metrics_row(t, "fine", "0.1")]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        texts(
            &server.db,
            "SELECT dataset, site_id FROM dataset_archive_dirty"
        )
        .await,
        [["metrics_aggregated", "13"]]
    );
    server.stop().await;
}

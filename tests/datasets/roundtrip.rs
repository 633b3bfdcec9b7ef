//! Rows decoded from JSON, COPYed in binary, read back as PostgreSQL
//! prints them: the seeds' example rows for each shipped dataset, an
//! operator's dataset with every column type, and the upsert's merge.

use super::*;

const METRICS: &str = r#"{"timestamp":"2025-07-01T10:30:00Z","service_name":"model-api-v1","api_endpoint":"/predict","qps":2.50,"avg_latency_ms":120.50,"p95_latency_ms":180.20,"p99_latency_ms":250.80,"error_rate":0.0200,"total_requests":1500}"#;
const AGENT: &str = r#"{"timestamp":"2025-07-01T10:00:00Z","execution_id":"7d3e2a1c-0b1f-4c6e-9a51-2f0e8d1b7c44","strategy_id":"btc-macro-v2","agent_type":"macro","score":0.8,"confidence":0.75,"reasoning":"ETF inflows and a dovish Fed","signals":{"etf_flow":"positive","fed_rate":"dovish"},"execution_time_ms":4210,"tokens_used":1830,"llm_model":"claude","llm_cost":0.012345,"input_data":null}"#;
const EXECUTION: &str = r#"{"timestamp":1751364000,"execution_id":"0c9a8f6e-5d4b-4a3c-8b2a-1e0f9d8c7b6a","strategy_id":"btc-macro-v2","conviction_score":0.67,"signal":"BUY","agent_scores":{"macro":0.8,"onchain":0.7,"ta":0.5},"action_taken":"executed","total_execution_time_ms":9000,"total_tokens_used":5120,"total_cost":0.034,"status":"completed","trace":"abc"}"#;

#[tokio::test]
async fn the_seeds_example_rows_come_back_equal() {
    let db = TestDb::new("datasets_seed_rows").await;
    let mut client = adit_testkit::connect(db.url()).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    let catalog = Catalog::shipped().unwrap();
    let tx = client.transaction().await.unwrap();
    for (name, row) in [
        ("metrics_aggregated", METRICS),
        ("agent_analysis_results", AGENT),
        ("strategy_executions", EXECUTION),
    ] {
        let d = catalog.get(name).unwrap();
        copy_rows(&tx, d, name, 3, row).await;
    }
    tx.commit().await.unwrap();
    assert_eq!(
        texts(&client, "SELECT * FROM metrics_aggregated").await,
        [[
            "3",
            "2025-07-01 10:30:00+00",
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
        texts(&client, "SELECT * FROM agent_analysis_results").await,
        [[
            "3",
            "2025-07-01 10:00:00+00",
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
        texts(&client, "SELECT * FROM strategy_executions").await,
        [[
            "3",
            "2025-07-01 10:00:00+00",
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
}

const EVERY_TYPE: &str = r#"
name = "every_type"
time_column = "ts"
partition = "month"
retention = "100y"
[[columns]]
name = "ts"
type = "timestamptz"
required = true
[[columns]]
name = "label"
type = "text"
[[columns]]
name = "ok"
type = "bool"
[[columns]]
name = "small"
type = "int"
[[columns]]
name = "big"
type = "bigint"
[[columns]]
name = "x"
type = "double"
[[columns]]
name = "price"
type = "numeric(30,8)"
[[columns]]
name = "tags"
type = "text[]"
[[columns]]
name = "xs"
type = "double[]"
[[columns]]
name = "doc"
type = "jsonb"
"#;

#[tokio::test]
async fn every_column_type_and_null_round_trips_through_binary_copy() {
    let db = TestDb::new("datasets_every_type").await;
    let mut client = adit_testkit::connect(db.url()).await;
    let dir = write_dir("every", &[("every_type.toml", EVERY_TYPE)]);
    let catalog = Catalog::load(Some(&dir)).unwrap();
    migrate_with(&mut client, &catalog).await.unwrap();
    let d = catalog.get("every_type").unwrap();
    let rows = [
        r#"{"ts":"2024-02-29T23:59:59.123456+02:00","label":"caf\u00e9 \"q\" \\ \ud83d\ude00","ok":true,"small":-2147483648,"big":9223372036854775807,"x":-1.5e-300,"price":-12345678901234567890.12345678,"tags":["a","b c",""],"xs":[1,2.5,-0.0],"doc":{"k":[1,"two",null,{"n":1.50}]}}"#,
        r#"{"ts":0,"ok":false,"small":0,"big":-1,"x":0,"price":0,"tags":[],"xs":[],"doc":[]}"#,
        r#"{"ts":"1999-12-31T23:59:59Z","label":null,"price":1e-8,"more":{"a":1},"z":"\u00e9"}"#,
    ];
    let tx = client.transaction().await.unwrap();
    copy_rows(&tx, d, "every_type", -5, &rows.join("\n")).await;
    tx.commit().await.unwrap();
    let got = texts(&client, "SELECT * FROM every_type ORDER BY ts DESC").await;
    assert_eq!(
        got,
        [
            vec![
                "-5",
                "2024-02-29 21:59:59.123456+00",
                "café \"q\" \\ 😀",
                "t",
                "-2147483648",
                "9223372036854775807",
                "-1.5e-300",
                "-12345678901234567890.12345678",
                r#"{a,"b c",""}"#,
                "{1,2.5,-0}",
                r#"{"k": [1, "two", null, {"n": 1.50}]}"#,
                "NULL",
            ],
            vec![
                "-5",
                "1999-12-31 23:59:59+00",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "0.00000001",
                "NULL",
                "NULL",
                "NULL",
                r#"{"z": "é", "more": {"a": 1}}"#,
            ],
            vec![
                "-5",
                "1970-01-01 00:00:00+00",
                "NULL",
                "f",
                "0",
                "-1",
                "0",
                "0.00000000",
                "{}",
                "{}",
                "[]",
                "NULL",
            ],
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn bar(asset: &str, close: &str, high: &str, extra: &str) -> String {
    format!(
        r#"{{"timestamp":"2025-07-01T10:00:00Z","asset":"{asset}","timeframe":"1h","open":100.00,"high":{high},"low":99.50,"close":{close},"volume":12.5{extra}}}"#
    )
}

/// COPYs `rows` into the staging table and merges them, in one transaction.
async fn upsert(client: &mut Client, d: &Declared, site: i32, rows: &[String]) -> u64 {
    let ds = d.dataset();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&ddl::create_stage(ds)).await.unwrap();
    copy_rows(&tx, d, &ddl::stage_table(ds), site, &rows.join("\n")).await;
    let n = tx.execute(&ddl::upsert(ds), &[]).await.unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test]
async fn a_resent_bar_replaces_the_stored_one() {
    let db = TestDb::new("datasets_upsert").await;
    let mut client = adit_testkit::connect(db.url()).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    let catalog = Catalog::shipped().unwrap();
    let d = catalog.get("market_data").unwrap();
    let first = [
        bar("BTC", "100.50", "101.00", r#","note":"first""#),
        bar("ETH", "100.10", "100.20", ""),
    ];
    assert_eq!(upsert(&mut client, d, 7, &first).await, 2);
    // The exchange corrects the BTC bar twice in one batch (the last one
    // wins), and another site sends the same bar: its own row.
    let second = [
        bar("BTC", "100.70", "101.30", ""),
        bar("BTC", "100.90", "101.40", r#","note":"fixed""#),
        bar("BTC", "100.00", "100.00", ""),
    ];
    assert_eq!(upsert(&mut client, d, 7, &second[..2]).await, 1);
    assert_eq!(upsert(&mut client, d, 8, &second[2..]).await, 1);
    let rows = texts(
        &client,
        "SELECT site_id, asset, open, high, low, close, volume, extra FROM market_data \
         ORDER BY site_id, asset",
    )
    .await;
    assert_eq!(
        rows,
        [
            [
                "7",
                "BTC",
                "100.00",
                "101.40",
                "99.50",
                "100.90",
                "12.50000000",
                r#"{"note": "fixed"}"#
            ],
            [
                "7",
                "ETH",
                "100.00",
                "100.20",
                "99.50",
                "100.10",
                "12.50000000",
                "NULL"
            ],
            [
                "8",
                "BTC",
                "100.00",
                "100.00",
                "99.50",
                "100.00",
                "12.50000000",
                "NULL"
            ],
        ]
    );
    // The staging table is empty again after each commit.
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&ddl::create_stage(d.dataset()))
        .await
        .unwrap();
    let staged: i64 = tx
        .query_one("SELECT count(*) FROM adit_stage_market_data", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(staged, 0);
}

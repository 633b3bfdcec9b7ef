//! What PostgreSQL refuses never reaches it: a row holding a value `jsonb`
//! or `text` would refuse is rejected alone at validation (issue 17 item
//! 1), the number rule agrees with a live server, and a batch the database
//! refuses anyway fails only the upload that poisoned it.

mod common;

use std::time::Duration;

use adit_types::Sample;
use adit_writer::{Ack, Error as WriterError, Upload, Writer, WriterConfig};
use common::*;
use hyper::StatusCode;

/// `check_number` says yes exactly when PostgreSQL's `jsonb` takes the
/// number: boundary literals and random ones around the limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_rule_agrees_with_postgres() {
    let db = connect(&admin_url()).await;
    let mut literals: Vec<String> = [
        "0",
        "-0",
        "1.5",
        "1e131071",
        "9.9e131071",
        "1e131072",
        "0.1e131072",
        "10e131071",
        "0.01e131073",
        "0.01e131074",
        "1e-16383",
        "1e-16384",
        "0e-16384",
        "0.0e-16383",
        "1.5e-16382",
        "1.55e-16382",
        "0e999999999",
        "0e1073741822",
        "0e1073741823",
        "1e200000",
        "-1e-200000",
        "1E+131071",
        "1E+131072",
        "123.456e-16380",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    literals.push(format!("1{}", "0".repeat(131_071)));
    literals.push(format!("1{}", "0".repeat(131_072)));
    literals.push(format!("0.{}1", "0".repeat(16_382)));
    literals.push(format!("0.{}1", "0".repeat(16_383)));
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let int = ["0", "1", "12", "9999", "00"][(x % 4) as usize];
        let frac = ["", ".0", ".5", ".000", ".0001"][((x >> 8) % 5) as usize];
        let sign = if (x >> 16).is_multiple_of(2) { "" } else { "-" };
        let exp = match (x >> 20) % 3 {
            0 => 131_060 + (x >> 24) % 20,
            1 => 16_370 + (x >> 24) % 20,
            _ => (x >> 24) % 5,
        };
        literals.push(format!("{int}{frac}e{sign}{exp}"));
    }
    literals.retain(|l| !l.starts_with("00"));
    for lit in &literals {
        let json = format!(r#"{{"a":{lit}}}"#);
        let postgres = db
            .query_one("SELECT $1::text::jsonb IS NOT NULL", &[&json])
            .await
            .is_ok();
        let ours = adit_ingest::json::check_number(lit.as_bytes()).is_ok();
        assert_eq!(ours, postgres, "{}", &lit[..lit.len().min(40)]);
    }
}

/// The issue's upload: the row with the huge unknown number is rejected
/// alone (200, an entry in `errors`, a row in `ingest_rejects`), the other
/// row is stored; the same for board members and `\u0000` in kept JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_postgres_refuses_rejects_its_row_alone() {
    let srv = TestServer::start("storable").await;
    let key = srv.key(4).await;
    let body = r#"[{"miner_id":"x1","junk":1e200000},{"miner_id":"x2","online":true},
        {"miner_id":"x3","boards":[{"id":0,"psu":1e-20000}]},
        {"miner_id":"x4","vendor":{"\u0000":1}},
        {"miner_id":"x5","extra_ok":1e131071,"boards":[{"id":0,"note":"\u00e9"}]},
        {"miner_id":"x6","model":"a\u0000b"},{"miner_id":"x7","model":"\ud800"},
        {"miner_id":"x8","\ud800x":1},{"miner_id":"x9","v":["\udc00"]},
        {"miner_id":"x\u0000"}]"#;
    let (status, _, text) = upload(srv.addr, &key, body, &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v = json(&text);
    assert_eq!(v["data"]["processed"], 2, "{text}");
    assert_eq!(v["data"]["rejected"], 8, "{text}");
    let errors = v["data"]["errors"].as_array().unwrap();
    let fields: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            (0, "junk"),
            (2, "boards"),
            (3, "vendor"),
            (5, "model"),
            (6, "model"),
            (7, "row"),
            (8, "v"),
            (9, "miner_id")
        ]
    );
    assert_eq!(
        srv.count("SELECT count(*) FROM ingest_rejects").await,
        8,
        "every refused row is stored raw"
    );
    let stored: Vec<String> = srv
        .db
        .query(
            "SELECT miner_id FROM miner_telemetry ORDER BY miner_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, ["x2", "x5"]);
    srv.stop().await;
}

fn sample(miner: &str, extra: Option<&str>) -> Sample {
    Sample {
        ts_micros: chrono::Utc::now().timestamp_micros(),
        miner_id: miner.into(),
        online: Some(true),
        extra: extra.map(str::to_string),
        ..Sample::default()
    }
}

/// Uploads grouped in one commit: one the database refuses (a `jsonb`
/// value validation would now stop, put straight into the writer) fails
/// alone; the writer retries the batch upload by upload and every other
/// upload commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_never_fails_the_others_in_its_batch() {
    let db_url = fresh_database("storable_batch").await;
    let mut db = connect(&db_url).await;
    adit::migrate::migrate(&mut db).await.unwrap();
    let mut config = WriterConfig::test_config(db_url.clone());
    config.workers = 1;
    config.batch.flush_interval = Duration::from_millis(300);
    let writer = Writer::spawn(config);
    let poison = [
        r#"{"junk":1e200000}"#,
        r#"{"junk":"\u0000"}"#,
        r#"{"junk":1e-20000}"#,
    ];
    let mut replies = Vec::new();
    for i in 0..8 {
        let mut up = Upload::test_upload();
        up.upload_id = 1000 + i;
        up.site_id = 9;
        let bad = (i % 3 == 1).then(|| poison[(i / 3) as usize]);
        up.samples = vec![
            sample(&format!("m{i}"), bad),
            sample(&format!("n{i}"), None),
        ];
        up.summary.processed = 2;
        replies.push((bad.is_some(), writer.handle.submit(up).unwrap()));
    }
    let mut committed = 0;
    for (bad, reply) in replies {
        let answer = reply.await.unwrap();
        if bad {
            assert!(
                matches!(answer, Err(WriterError::Refused { .. })),
                "{answer:?}"
            );
        } else {
            assert!(matches!(answer, Ok(Ack::Committed { .. })), "{answer:?}");
            committed += 1;
        }
    }
    assert_eq!(committed, 5);
    let rows: i64 = db
        .query_one("SELECT count(*) FROM miner_telemetry", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 10, "both rows of each good upload, none of a bad one");
    writer.shutdown().await;
}

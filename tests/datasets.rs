//! The dataset engine against a real PostgreSQL: `adit migrate` creates and
//! evolves dataset tables from their declarations; decoded rows COPY in
//! through the binary encoder and read back equal; an upsert batch replaces
//! stored bars.

use adit::datasets::Applied;
use adit::migrate::migrate_with;
use adit_dataset::{
    copy, ddl, decode, partitions, BodyFormat, Catalog, Declared, Limits, Partition,
};
use adit_testkit::TestDb;
use bytes::{Bytes, BytesMut};
use tokio_postgres::{Client, Transaction};

/// 2025-07-01T10:31:00Z: just after the seeds' example rows.
const NOW: i64 = 1_751_365_860_000_000;

/// Decodes `body` for `d` (every row must be accepted), COPYs it into
/// `table` as site `site_id` (its partition created first), returns rows
/// written.
async fn copy_rows(
    db: &Transaction<'_>,
    d: &Declared,
    table: &str,
    site_id: i32,
    body: &str,
) -> u64 {
    let decoded = decode(
        d,
        body.as_bytes(),
        BodyFormat::Ndjson,
        &Limits::default(),
        NOW,
    )
    .unwrap();
    assert!(decoded.rejects.is_empty(), "{:?}", decoded.errors);
    let ds = d.dataset();
    for p in partitions(ds, &decoded.batch) {
        let at = chrono::DateTime::from_timestamp_micros(p.start_micros).unwrap();
        let part: String = db
            .query_one(
                adit_dataset::ENSURE_PARTITION_SQL,
                &[&ds.table(), &ds.partition.as_str(), &at],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(part, p.name(ds.table()));
    }
    let mut buf = BytesMut::new();
    copy::begin(&mut buf);
    copy::encode_batch(&mut buf, d, site_id, &decoded.batch);
    copy::end(&mut buf);
    let sink = db
        .copy_in::<_, Bytes>(&ddl::copy_into(ds, table))
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    futures_util::SinkExt::send(&mut sink, buf.freeze())
        .await
        .unwrap();
    let n = sink.finish().await.unwrap();
    assert_eq!(n as usize, decoded.batch.num_rows());
    n
}

/// Each row of `sql` as its columns' text (NULL as "NULL").
async fn texts(db: &Client, sql: &str) -> Vec<Vec<String>> {
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

fn write_dir(tag: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("adit-datasets-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

#[tokio::test]
async fn migrate_creates_the_shipped_tables_once_and_records_their_declarations() {
    let db = TestDb::new("datasets_migrate").await;
    let mut client = adit_testkit::connect(db.url()).await;
    let catalog = Catalog::shipped().unwrap();
    let (_, applied) = migrate_with(&mut client, &catalog).await.unwrap();
    assert_eq!(applied.len(), 5);
    assert!(applied.iter().all(|a| matches!(a, Applied::Created { .. })));
    let (versions, again) = migrate_with(&mut client, &catalog).await.unwrap();
    assert!(versions.is_empty() && again.is_empty(), "idempotent");
    let rows = texts(
        &client,
        "SELECT dataset, table_name, declaration->>'retention', length(sha256) \
         FROM dataset_declarations ORDER BY dataset",
    )
    .await;
    assert_eq!(
        rows,
        [
            [
                "agent_analysis_results",
                "agent_analysis_results",
                "730d",
                "32"
            ],
            ["inventory", "inventory_snapshots", "30d", "32"],
            ["market_data", "market_data", "365d", "32"],
            ["metrics_aggregated", "metrics_aggregated", "30d", "32"],
            ["strategy_executions", "strategy_executions", "730d", "32"],
        ]
    );
    let partitioned = texts(
        &client,
        "SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_partitioned_table p \
         JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname = 'market_data'",
    )
    .await;
    assert_eq!(partitioned, [["market_data", "RANGE (\"timestamp\")"]]);
    let index = texts(
        &client,
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'market_data_key'",
    )
    .await;
    assert!(
        index[0][0].starts_with("CREATE UNIQUE INDEX market_data_key"),
        "{index:?}"
    );
    // The plain `migrate` (serve, keys, …) applies the shipped datasets too.
    let plain = TestDb::new("datasets_plain").await;
    let mut fresh = adit_testkit::connect(plain.url()).await;
    adit::migrate::migrate(&mut fresh).await.unwrap();
    let n = texts(&fresh, "SELECT count(*) FROM dataset_declarations").await;
    assert_eq!(n, [["5"]]);
}

#[tokio::test]
async fn week_and_month_partitions_hold_what_the_rust_bounds_say() {
    let db = TestDb::new("datasets_partitions").await;
    let client = adit_testkit::connect(db.url()).await;
    adit::migrate::migrate(&mut adit_testkit::connect(db.url()).await)
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE m (ts timestamptz NOT NULL) PARTITION BY RANGE (ts)")
        .await
        .unwrap();
    let t = chrono::DateTime::parse_from_rfc3339("2025-07-02T23:59:59Z").unwrap();
    for (step, interval) in [
        ("week", adit_types::dataset::PartitionInterval::Week),
        ("month", adit_types::dataset::PartitionInterval::Month),
    ] {
        let name: String = client
            .query_one(adit_dataset::ENSURE_PARTITION_SQL, &[&"m", &step, &t])
            .await
            .unwrap()
            .get(0);
        let p = Partition::of(interval, t.timestamp_micros()).unwrap();
        assert_eq!(name, p.name("m"));
        // The partition holds [start, end) and nothing else.
        let micros = |m: i64| chrono::DateTime::from_timestamp_micros(m).unwrap();
        for (m, fits) in [
            (p.start_micros, true),
            (p.end_micros - 1, true),
            (p.start_micros - 1, false),
            (p.end_micros, false),
        ] {
            let r = client
                .execute("INSERT INTO m VALUES ($1)", &[&micros(m)])
                .await;
            assert_eq!(r.is_ok(), fits, "{step} {m}");
        }
        client
            .batch_execute(&format!("DROP TABLE {name}"))
            .await
            .unwrap();
    }
}

#[path = "datasets/roundtrip.rs"]
mod roundtrip;

#[path = "datasets/evolve.rs"]
mod evolve;

//! Two transactions that need the same new partition at once (two writer
//! workers, or two adit nodes, with late rows for a day or week nobody
//! wrote yet): the second waits for the first and then uses its partition,
//! instead of failing with "relation already exists". Telemetry's daily
//! partitions and the datasets' day/week/month partitions alike.

use adit_testkit::TestDb;
use std::time::Duration;

/// Runs `ensure` in two open transactions at once: A creates the
/// partition and holds its transaction open while B asks for the same
/// one; then A commits. B must succeed with the same partition.
async fn race(name: &str, ensure: &str) {
    let db = TestDb::new(name).await;
    let mut setup = adit_testkit::connect(db.url()).await;
    adit::migrate::migrate(&mut setup).await.unwrap();
    let mut a = adit_testkit::connect(db.url()).await;
    let b = adit_testkit::connect(db.url()).await;
    let ta = a.transaction().await.unwrap();
    let made: String = ta.query_one(ensure, &[]).await.unwrap().get(0);
    let sql = ensure.to_string();
    let second = tokio::spawn(async move {
        b.batch_execute("BEGIN").await.unwrap();
        let got = b
            .query_one(sql.as_str(), &[])
            .await
            .map(|r| r.get::<_, String>(0));
        let end = if got.is_ok() { "COMMIT" } else { "ROLLBACK" };
        b.batch_execute(end).await.unwrap();
        got.map_err(|e| adit_types::pg::DbErrorText(&e).to_string())
    });
    // B is now waiting for A's lock on the new partition's name.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ta.commit().await.unwrap();
    let got = second.await.unwrap();
    assert_eq!(
        got,
        Ok(made),
        "the second transaction takes the first one's partition"
    );
}

#[tokio::test]
async fn two_transactions_needing_one_new_dataset_partition_both_succeed() {
    race(
        "partition_race_dataset",
        "SELECT adit_ensure_dataset_partition('market_data', 'day', '2021-03-04T05:06:07Z')",
    )
    .await;
}

#[tokio::test]
async fn two_transactions_needing_one_new_telemetry_partition_both_succeed() {
    race(
        "partition_race_telemetry",
        "SELECT adit_ensure_day_partition('miner_telemetry', '2021-03-04')",
    )
    .await;
}

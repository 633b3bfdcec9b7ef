//! The collector's spool and uploads against a real adit: batches spooled
//! while adit is unreachable arrive exactly once when it is back, a batch
//! sent again after a lost answer is written once (its key), a wrong key
//! keeps batches spooled, and a batch adit can never take is dropped.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use adit_collector::spool::{Batch, Spool};
use adit_collector::upload::{drain, spool_samples, Outcome, Uploader, DEFAULT_MAX_ROWS};
use adit_collector::Sample;
use common::*;

/// A fresh spool directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "adit-collector-spool-{tag}-{}-{nanos}",
            std::process::id()
        ));
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One cycle's samples: `n` miners of `tag`, measured at `ts`.
fn cycle(tag: &str, n: usize, ts: i64) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            miner_id: format!("{tag}-m{i}"),
            online: true,
            hashrate_ghs: Some(100.0 + i as f64),
            timestamp: ts,
            ..Sample::default()
        })
        .collect()
}

const MAX_BYTES: u64 = 64 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_batches_arrive_exactly_once_when_adit_is_back() {
    let dir = Dir::new("outage");
    let now = chrono::Utc::now().timestamp();
    let mut spool = Spool::open(&dir.0, MAX_BYTES).unwrap();
    let mut keys = Vec::new();
    for (c, n) in [5usize, 7, 9].into_iter().enumerate() {
        let ts = now - 180 + 60 * c as i64;
        keys.extend(
            spool_samples(
                &mut spool,
                &cycle(&format!("c{c}"), n, ts),
                DEFAULT_MAX_ROWS,
            )
            .unwrap(),
        );
    }
    assert_eq!(spool.len(), 3);
    let first = spool.peek().unwrap().unwrap();

    // adit unreachable: a closed port. The batches stay, oldest first.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let nowhere = Uploader::new(&closed, "any", Duration::from_secs(2));
    let done = drain(&mut spool, &nowhere).await.unwrap();
    assert_eq!(done.sent, 0);
    assert!(
        matches!(done.stopped, Some(Outcome::Network { .. })),
        "{done:?}"
    );
    assert_eq!(spool.len(), 3);

    // The collector restarts: the spool reloads the same batches, same keys.
    drop(spool);
    let mut spool = Spool::open(&dir.0, MAX_BYTES).unwrap();
    assert_eq!(spool.len(), 3);
    assert_eq!(spool.peek().unwrap().unwrap(), first);

    // adit is back: everything arrives, once.
    let srv = TestServer::start("collector_spool").await;
    let key = srv.key(3).await;
    let url = format!("http://{}", srv.addr);
    let uploader = Uploader::new(&url, &key, Duration::from_secs(10));
    let done = drain(&mut spool, &uploader).await.unwrap();
    assert_eq!(
        (done.sent, done.rejected, done.stopped.clone()),
        (3, 0, None),
        "{done:?}"
    );
    assert!(spool.is_empty());
    assert_eq!(spool.queued_bytes(), 0);
    let rows = eventually("21 rows", || async {
        let n = srv.count("SELECT count(*) FROM miner_telemetry").await;
        (n == 21).then_some(n)
    })
    .await;
    assert_eq!(rows, 5 + 7 + 9);
    assert_eq!(srv.count("SELECT count(*) FROM upload_log").await, 3);
    let mut logged: Vec<String> = srv
        .db
        .query("SELECT idempotency_key FROM upload_log", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    logged.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        logged, sorted,
        "each batch once, with the key it was spooled with"
    );
    // Every sample still says when it was measured, not when it was sent.
    let oldest: i64 = srv
        .count("SELECT min(extract(epoch FROM ts))::int8 FROM miner_telemetry")
        .await;
    assert_eq!(oldest, now - 180);

    // A lost answer: the first batch is sent again under its key.
    spool.push_batch(&first).unwrap();
    let done = drain(&mut spool, &uploader).await.unwrap();
    assert_eq!(
        done.sent, 1,
        "adit answers the retry as it answered the first send"
    );
    assert!(spool.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 21);
    assert_eq!(srv.count("SELECT count(*) FROM upload_log").await, 3);

    // A wrong key: the batch stays spooled until the key is fixed.
    spool_samples(&mut spool, &cycle("c3", 4, now - 30), DEFAULT_MAX_ROWS).unwrap();
    let wrong = Uploader::new(&url, "not-a-key", Duration::from_secs(10));
    let done = drain(&mut spool, &wrong).await.unwrap();
    assert_eq!(done.sent, 0);
    assert!(
        matches!(done.stopped, Some(Outcome::Unauthorized { .. })),
        "{done:?}"
    );
    assert_eq!(spool.len(), 1);
    let done = drain(&mut spool, &uploader).await.unwrap();
    assert_eq!(done.sent, 1);
    eventually("25 rows", || async {
        (srv.count("SELECT count(*) FROM miner_telemetry").await == 25).then_some(())
    })
    .await;

    // A batch adit can never take (not gzip) is dropped and counted; the
    // batch behind it is still sent.
    spool
        .push_batch(&Batch {
            key: "broken-1".into(),
            rows: 1,
            body: b"this is not gzip".to_vec(),
        })
        .unwrap();
    spool_samples(&mut spool, &cycle("c4", 2, now - 10), DEFAULT_MAX_ROWS).unwrap();
    let done = drain(&mut spool, &uploader).await.unwrap();
    assert_eq!((done.sent, done.rejected, done.stopped), (1, 1, None));
    assert_eq!(spool.rejected_batches(), 1);
    assert!(spool.is_empty());
    eventually("27 rows", || async {
        (srv.count("SELECT count(*) FROM miner_telemetry").await == 27).then_some(())
    })
    .await;
    srv.stop().await;
}

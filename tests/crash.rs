//! No acknowledged row is ever missing: SIGKILL the real `adit` binary
//! while uploads are in flight, restart it, and find every acknowledged row.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;

const ROWS_PER_UPLOAD: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_acknowledgements_loses_no_acknowledged_row() {
    let Spawned {
        mut child,
        db_url,
        db,
        key,
        port,
        addr,
        ..
    } = spawn_with_key("crash", 9, &[], &[]).await;

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (acked, stop, key) = (acked.clone(), stop.clone(), key.clone());
            tokio::spawn(async move {
                for n in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let tag = format!("c{c}n{n}");
                    let body = gzip(array(&rows(&tag, ROWS_PER_UPLOAD)).as_bytes());
                    let headers = [
                        ("x-collector-key", key.as_str()),
                        ("content-encoding", "gzip"),
                    ];
                    match request(addr, "POST", "/api/collector/upload", &headers, body).await {
                        Ok((StatusCode::OK, _, _)) => {
                            acked.lock().unwrap().insert(tag);
                        }
                        _ => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Kill as soon as a good number of uploads has been acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 40,
        "only {} uploads acknowledged before the deadline",
        acked.len()
    );

    let mut child = spawn_adit(&db_url, port, &[], &[]);
    wait_healthy(port).await;
    let per_tag = db
        .query(
            "SELECT split_part(miner_id, '-', 1), count(*) FROM miner_telemetry GROUP BY 1",
            &[],
        )
        .await
        .unwrap();
    let stored: BTreeMap<String, i64> = per_tag.iter().map(|r| (r.get(0), r.get(1))).collect();
    for tag in &acked {
        assert_eq!(
            stored.get(tag).copied(),
            Some(ROWS_PER_UPLOAD as i64),
            "acknowledged upload {tag} must be whole in PostgreSQL"
        );
    }
    // Unacknowledged uploads are all-or-nothing too.
    assert!(stored.values().all(|&n| n == ROWS_PER_UPLOAD as i64));
    let (status, _, _) = upload(addr, &key, &array(&rows("after", 3)), &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the restarted server accepts uploads"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

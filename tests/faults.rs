//! Faults: PostgreSQL stopped and restarted under load, and SIGTERM under
//! load. Every acknowledged upload must be in PostgreSQL exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;

const ROWS: usize = 100;

/// A private PostgreSQL cluster of this test's own, via scripts/pg.sh.
struct Cluster {
    dir: String,
    port: u16,
}

impl Cluster {
    fn new(name: &str) -> Self {
        let dir = format!(
            "{}/.data/pg-{name}-{}",
            env!("CARGO_MANIFEST_DIR"),
            rand::random::<u32>()
        );
        Self {
            dir,
            port: free_port(),
        }
    }

    fn pg(&self, cmd: &str) -> String {
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
            .arg(cmd)
            .env("ADIT_PG_DIR", &self.dir)
            .env("ADIT_PG_PORT", self.port.to_string())
            .output()
            .expect("scripts/pg.sh runs");
        assert!(
            out.status.success(),
            "pg.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
            .arg("stop")
            .env("ADIT_PG_DIR", &self.dir)
            .env("ADIT_PG_PORT", self.port.to_string())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Uploads tagged batches with an Idempotency-Key each, retrying 503s and
/// network errors with the same key, until `stop`; returns acked tags.
fn clients(
    addr: std::net::SocketAddr,
    key: String,
    n: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..n)
        .map(|c| {
            let (key, stop) = (key.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..100_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let tag = format!("c{c}u{i}");
                    let body = gzip(array(&rows(&tag, ROWS)).as_bytes());
                    for _attempt in 0..50 {
                        let headers = [
                            ("x-collector-key", key.as_str()),
                            ("content-encoding", "gzip"),
                            ("idempotency-key", tag.as_str()),
                        ];
                        match request(
                            addr,
                            "POST",
                            "/api/collector/upload",
                            &headers,
                            body.clone(),
                        )
                        .await
                        {
                            Ok((StatusCode::OK, _, _)) => {
                                acked.push(tag.clone());
                                break;
                            }
                            _ => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                }
                acked
            })
        })
        .collect()
}

async fn rows_per_tag(db: &tokio_postgres::Client) -> BTreeMap<String, i64> {
    db.query(
        "SELECT split_part(miner_id, '-', 1), count(*) FROM miner_telemetry GROUP BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_and_doubles_nothing() {
    let cluster = Cluster::new("fault");
    cluster.pg("start");
    let admin = cluster.pg("url");
    let srv = TestServer::start_on(&admin, "pgrestart", |c| {
        c.writer.retry_for = Duration::from_secs(20);
    })
    .await;
    let key = srv.key(3).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks = clients(srv.addr, key, 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let before_stop = srv.count("SELECT count(*) FROM miner_telemetry").await;
    cluster.pg("stop");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut not_ready = false;
    while Instant::now() < deadline {
        if let Ok((StatusCode::SERVICE_UNAVAILABLE, _, _)) = get(srv.addr, "/ready").await {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(not_ready, "/ready goes false while PostgreSQL is down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.pg("start");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let (status, _, _) = get(srv.addr, "/ready").await.unwrap();
    assert_eq!(status, StatusCode::OK, "ready again after the restart");
    assert!(
        acked.len() >= 8,
        "uploads went through before and after: {}",
        acked.len()
    );

    let db = connect(&srv.db_url).await;
    let after: i64 = db
        .query_one("SELECT count(*) FROM miner_telemetry", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        after > before_stop,
        "the writer reconnected and wrote again: {before_stop} -> {after}"
    );
    let stored = rows_per_tag(&db).await;
    for tag in &acked {
        assert_eq!(
            stored.get(tag).copied(),
            Some(ROWS as i64),
            "acked {tag} exactly once"
        );
    }
    assert!(
        stored.values().all(|&n| n == ROWS as i64),
        "nothing written twice: {stored:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_what_it_took_and_exits_zero() {
    let Spawned {
        mut child,
        db,
        key,
        addr,
        ..
    } = spawn_with_key("sigterm", 4, &[], &[]).await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|c| {
            let (key, acked, stop) = (key.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 0..10_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let tag = format!("t{c}u{i}");
                    let body = gzip(array(&rows(&tag, ROWS)).as_bytes());
                    let headers = [
                        ("x-collector-key", key.as_str()),
                        ("content-encoding", "gzip"),
                    ];
                    match request(addr, "POST", "/api/collector/upload", &headers, body).await {
                        Ok((StatusCode::OK, _, _)) => {
                            acked.lock().unwrap().insert(tag);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "adit exits within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(status.success(), "exit status {status}");
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let stored = rows_per_tag(&db).await;
    for tag in &acked {
        assert_eq!(
            stored.get(tag).copied(),
            Some(ROWS as i64),
            "acked {tag} is committed"
        );
    }
}

/// A TCP proxy to PostgreSQL that, once armed, forwards the next `COMMIT`
/// and then swallows the server's answer and cuts the connection: the
/// transaction is committed but the client never hears it.
struct CommitCutter {
    addr: std::net::SocketAddr,
    armed: Arc<std::sync::atomic::AtomicBool>,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
}

impl CommitCutter {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (armed2, cuts2) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let cutting = Arc::new(AtomicBool::new(false));
                let (armed, cuts, cutting2) = (armed2.clone(), cuts2.clone(), cutting.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
                        if commit && armed.swap(false, Ordering::SeqCst) {
                            cutting2.store(true, Ordering::SeqCst);
                            cuts.fetch_add(1, Ordering::SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = sr.read(&mut buf).await {
                        // The COMMIT's answer (the server has committed):
                        // dropped, and the client's connection closed.
                        if n == 0 || cutting.load(Ordering::SeqCst) {
                            break;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = cw.shutdown().await;
                });
            }
        });
        Self { addr, armed, cuts }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_through(&self, url: &str) -> String {
        let (head, rest) = url.split_once('@').expect("URL has a user");
        let (_, db) = rest.split_once('/').expect("URL has a database");
        format!("{head}@{}/{db}", self.addr)
    }
}

fn upload_of(site: i32, tag: &str, idempotency_key: Option<&str>) -> adit_writer::Upload {
    let mut u = adit_writer::Upload::test_upload();
    u.upload_id = rand::random::<i64>() & i64::MAX;
    u.site_id = site;
    u.samples = (0..ROWS)
        .map(|i| adit_types::Sample {
            ts_micros: chrono::Utc::now().timestamp_micros() - 60_000_000,
            miner_id: adit_types::Text::from(format!("{tag}-{i}").as_str()),
            online: Some(true),
            ..Default::default()
        })
        .collect();
    u.summary.processed = ROWS as u32;
    u.idempotency = idempotency_key.map(|k| adit_writer::Idempotency {
        key: k.to_string(),
        body_digest: [7; 16],
    });
    u
}

/// Issue 17 item 6: a batch whose COMMIT answer is lost is checked before
/// it is retried. When the batch's first upload was an idempotency
/// duplicate (written nowhere), the check used to look for that upload,
/// found nothing, and wrote the rest of the batch a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_after_a_duplicate_writes_nothing_twice() {
    let db_url = fresh_database("lostcommit").await;
    let mut client = connect(&db_url).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    let pg: tokio_postgres::Config = db_url.parse().unwrap();
    let upstream = format!("127.0.0.1:{}", pg.get_ports()[0]).parse().unwrap();
    let proxy = CommitCutter::start(upstream).await;
    let mut wc = adit_writer::WriterConfig::test_config(proxy.url_through(&db_url));
    wc.workers = 1;
    // Long enough that the two uploads below share one batch.
    wc.batch.flush_interval = Duration::from_secs(1);
    let writer = adit_writer::Writer::spawn(wc);
    let first = writer
        .handle
        .submit(upload_of(5, "first", Some("k0")))
        .unwrap();
    assert!(matches!(
        first.await.unwrap().unwrap(),
        adit_writer::Ack::Committed { .. }
    ));

    proxy.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let retry = writer
        .handle
        .submit(upload_of(5, "retry", Some("k0")))
        .unwrap();
    let other = writer.handle.submit(upload_of(5, "other", None)).unwrap();
    assert_eq!(retry.await.unwrap().unwrap(), adit_writer::Ack::Duplicate);
    assert!(matches!(
        other.await.unwrap().unwrap(),
        adit_writer::Ack::Committed { .. }
    ));
    assert_eq!(
        proxy.cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the COMMIT answer was lost once"
    );
    writer.shutdown().await;
    let stored = rows_per_tag(&client).await;
    assert_eq!(stored.get("first"), Some(&(ROWS as i64)));
    assert_eq!(stored.get("retry"), None, "the duplicate wrote nothing");
    assert_eq!(
        stored.get("other"),
        Some(&(ROWS as i64)),
        "the batch was written once: {stored:?}"
    );
    let logged: i64 = client
        .query_one("SELECT count(*) FROM upload_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 2, "two uploads logged");
}

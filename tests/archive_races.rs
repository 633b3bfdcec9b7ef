//! The archive under the interleavings an ordinary load only hits by
//! chance, forced here: a writer batch holding two uploads of one site with
//! a file written in between, a file offered only part of its batch, a
//! recovery running while another archiver is still uploading, and an
//! object put between the orphan sweep's two looks.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use adit_archive::sink::{self, Kind};
use adit_archive::verify::{self, Scope, WindowCheck};
use adit_archive::{maintain, Archive, ArchiveConfig, ArchiveError, ArchiveStats, Archiver};
use adit_types::{Sample, Text};
use adit_writer::{Ack, Upload, Writer, WriterConfig};
use common::*;

fn temp_archive(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("adit-{name}-{}", rand::random::<u32>()));
    (dir.clone(), format!("file://{}", dir.display()))
}

/// Noon yesterday (UTC), in microseconds: one daily window whatever the
/// time the test runs at.
fn yesterday_noon() -> i64 {
    let midnight = chrono::Utc::now().timestamp().div_euclid(86_400) * 86_400;
    (midnight - 86_400 + 43_200) * 1_000_000
}

fn yesterday() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Days::new(1)
}

fn samples(tag: &str, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            ts_micros: yesterday_noon() + i as i64 * 1_000_000,
            miner_id: Text::from(format!("{tag}-{i}").as_str()),
            online: Some(true),
            hashrate_ghs: Some(100.5),
            accepted_shares: Some(i as i64 * 7),
            ..Default::default()
        })
        .collect()
}

fn upload(site: i32, tag: &str, n: usize) -> Upload {
    let mut u = Upload::test_upload();
    u.upload_id = rand::random::<i64>() & i64::MAX;
    u.site_id = site;
    u.samples = samples(tag, n);
    u.summary.processed = n as u32;
    u.summary.online = n as u32;
    u
}

async fn migrated(name: &str) -> (String, tokio_postgres::Client) {
    let db_url = fresh_database(name).await;
    let mut client = connect(&db_url).await;
    adit::migrate::migrate(&mut client).await.unwrap();
    (db_url, client)
}

async fn check(db: &tokio_postgres::Client, url: &str) -> Vec<WindowCheck> {
    let archive = Archive::from_url(url).unwrap();
    verify::check(db, &archive, &Scope::default())
        .await
        .unwrap()
}

/// (miner_id, ts) of every row of every live file, read back with pyarrow,
/// with how many files hold it.
async fn rows_in_files(
    db: &tokio_postgres::Client,
    dir: &std::path::Path,
) -> BTreeMap<String, usize> {
    let live: Vec<String> = db
        .query("SELECT path FROM archive_files WHERE state = 'live'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| dir.join(r.get::<_, &str>(0)).display().to_string())
        .collect();
    let mut args: Vec<&str> = vec![];
    args.extend(live.iter().map(String::as_str));
    let out = python(
        "import sys, pyarrow.parquet as pq\n\
         for p in sys.argv[1:]:\n\
         \x20   t = pq.read_table(p, columns=['miner_id', 'ts'])\n\
         \x20   for m, ts in zip(t['miner_id'].to_pylist(), t['ts'].to_pylist()):\n\
         \x20       print(m, ts.isoformat())\n",
        &args,
    );
    let mut seen = BTreeMap::new();
    for line in out.lines() {
        *seen
            .entry(line.split(' ').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    seen
}

/// Every row PostgreSQL holds is in exactly one live file, and nothing else is.
async fn every_row_in_exactly_one_file(db: &tokio_postgres::Client, dir: &std::path::Path) {
    let in_db: Vec<String> = db
        .query("SELECT miner_id FROM miner_telemetry ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let in_files = rows_in_files(db, dir).await;
    for m in &in_db {
        assert_eq!(
            in_files.get(m),
            Some(&1),
            "row {m}: in files {:?}",
            in_files.get(m)
        );
    }
    assert_eq!(in_files.len(), in_db.len(), "files hold no other rows");
}

/// Issue 17 item 0. The writer commits two uploads of one site in one
/// batch (one claim ticket of 5 rows); the first upload alone fills a file
/// (max_file_rows 3), so a file is written between the two. Before the fix
/// the file claimed the ticket with 3 rows and the other 2 were dropped as
/// "already claimed": acknowledged rows in no file and no longer queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_uploads_of_one_site_in_one_batch_are_archived_whole() {
    let (db_url, db) = migrated("handover").await;
    let (dir, url) = temp_archive("handover");
    let mut cfg = ArchiveConfig::new(url.clone(), db_url.clone());
    cfg.max_file_rows = 3;
    cfg.flush_interval = Duration::from_millis(200);
    let archiver = Archiver::spawn(cfg, Archive::from_url(&url).unwrap());
    let mut wc = WriterConfig::test_config(db_url.clone());
    wc.workers = 1;
    // Long enough that both uploads join one batch.
    wc.batch.flush_interval = Duration::from_secs(1);
    wc.archive = Some(archiver.handle.clone());
    let writer = Writer::spawn(wc);
    let a = writer.handle.submit(upload(7, "a", 3)).unwrap();
    let b = writer.handle.submit(upload(7, "b", 2)).unwrap();
    assert!(matches!(a.await.unwrap().unwrap(), Ack::Committed { .. }));
    assert!(matches!(b.await.unwrap().unwrap(), Ack::Committed { .. }));
    let batches: i64 = db
        .query_one("SELECT count(DISTINCT batch_id) FROM miner_telemetry", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 1, "both uploads in one writer batch");
    writer.shutdown().await;
    archive_drained(&db).await;
    archiver.shutdown().await;
    let windows = check(&db, &url).await;
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert!(windows[0].exact(), "{:?}", windows[0]);
    assert_eq!(windows[0].files.rows, 5);
    every_row_in_exactly_one_file(&db, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Commits `n` rows of one upload for `site` with the archive on but its
/// stream stopped: the rows and their claim ticket are in PostgreSQL and
/// nothing is archived. Returns the batch id and the samples.
async fn committed_unarchived(
    db_url: &str,
    url: &str,
    site: i32,
    tag: &str,
    n: usize,
) -> (i64, Vec<Sample>) {
    let cfg = ArchiveConfig::new(url.to_string(), db_url.to_string());
    let archiver = Archiver::spawn(cfg, Archive::from_url(url).unwrap());
    let handle = archiver.handle.clone();
    archiver.shutdown().await;
    let mut wc = WriterConfig::test_config(db_url.to_string());
    wc.archive = Some(handle);
    let writer = Writer::spawn(wc);
    let u = upload(site, tag, n);
    let sent = u.samples.clone();
    let ack = writer.handle.submit(u).unwrap().await.unwrap().unwrap();
    assert!(matches!(ack, Ack::Committed { .. }));
    writer.shutdown().await;
    let db = connect(db_url).await;
    let batch: i64 = db
        .query_one(
            "SELECT batch_id FROM archive_queue WHERE site_id = $1",
            &[&site],
        )
        .await
        .unwrap()
        .get(0);
    (batch, sent)
}

/// Issue 17 item 0, the claim itself: a file that holds only some of a
/// batch's rows cannot claim the batch's ticket. The batch stays queued and
/// the sweeper exports all of it from PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_part_of_a_batch_cannot_claim_its_ticket() {
    let (db_url, db) = migrated("partial").await;
    let (dir, url) = temp_archive("partial");
    let (batch, sent) = committed_unarchived(&db_url, &url, 8, "p", 5).await;
    let archive = Archive::from_url(&url).unwrap();
    let mut client = connect(&db_url).await;
    let part: Vec<&Sample> = sent.iter().take(3).collect();
    let claim = [sink::Claim {
        batch_id: batch,
        rows: 3,
    }];
    let result = sink::write_part(&mut client, &archive, (8, yesterday()), &part, &claim).await;
    assert!(
        matches!(result, Err(ArchiveError::Incomplete { ref batches }) if batches == &[batch]),
        "a partial file claimed the batch: {result:?}"
    );
    let queued: i64 = db
        .query_one("SELECT count(*) FROM archive_queue", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 1, "the batch is still queued");
    let windows = check(&db, &url).await;
    assert!(windows[0].pending(), "{:?}", windows[0]);
    let cfg = ArchiveConfig::new(url.clone(), db_url.clone());
    maintain::sweep(
        &mut client,
        &archive,
        &cfg,
        &ArchiveStats::default(),
        Duration::ZERO,
        &[],
    )
    .await
    .unwrap();
    let windows = check(&db, &url).await;
    assert!(windows[0].exact(), "{:?}", windows[0]);
    every_row_in_exactly_one_file(&db, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The live files of a window, by id.
async fn live_ids(db: &tokio_postgres::Client) -> Vec<i64> {
    db.query("SELECT id FROM archive_files WHERE state = 'live'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Issue 17 item 8: recovery at the start of one archiver must not delete
/// a file another one (a second node, `adit archive compact`) is still
/// writing, however long that takes; a file whose writer is gone is
/// removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_leaves_a_file_a_live_archiver_is_writing() {
    let (db_url, db) = migrated("writing").await;
    let (dir, url) = temp_archive("writing");
    let (_, sent) = committed_unarchived(&db_url, &url, 9, "w", 6).await;
    let archive = Archive::from_url(&url).unwrap();
    let cfg = ArchiveConfig::new(url.clone(), db_url.clone());
    let mut other = connect(&db_url).await;
    maintain::sweep(
        &mut other,
        &archive,
        &cfg,
        &ArchiveStats::default(),
        Duration::ZERO,
        &[],
    )
    .await
    .unwrap();
    let old = live_ids(&db).await;
    assert_eq!(old.len(), 1);

    // Another archiver is mid-compaction: the merged file is uploaded and
    // recorded as 'writing', the old file still live.
    let refs: Vec<&Sample> = sent.iter().collect();
    let staged = sink::stage(&other, &archive, (9, yesterday()), Kind::Compacted, &refs)
        .await
        .unwrap();
    // This process starts and recovers, with a zero grace for old uploads.
    let mut mine = connect(&db_url).await;
    let mut quick = cfg.clone();
    quick.stale_writing = Duration::ZERO;
    maintain::recover(&mut mine, &archive, &quick, &ArchiveStats::default())
        .await
        .unwrap();
    let rows = sink::commit(
        &mut other,
        &archive,
        (9, yesterday()),
        std::slice::from_ref(&staged),
        &[],
        &old,
    )
    .await;
    assert!(
        rows.is_ok(),
        "the other archiver's compaction commits: {rows:?}"
    );
    let windows = check(&db, &url).await;
    assert!(windows[0].exact(), "{:?}", windows[0]);
    every_row_in_exactly_one_file(&db, &dir).await;

    // A writer that is gone: its 'writing' file is removed at recovery.
    let gone = connect(&db_url).await;
    let pid: i32 = gone
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let abandoned = sink::stage(&gone, &archive, (9, yesterday()), Kind::Compacted, &refs)
        .await
        .unwrap();
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if alive == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "backend {pid} did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    maintain::recover(&mut mine, &archive, &cfg, &ArchiveStats::default())
        .await
        .unwrap();
    let writing: i64 = db
        .query_one(
            "SELECT count(*) FROM archive_files WHERE state = 'writing'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(writing, 0, "the abandoned upload's row is gone");
    assert!(
        !dir.join(abandoned.path.as_ref()).exists(),
        "the abandoned upload's object is gone"
    );
    assert!(check(&db, &url).await[0].exact());
    let _ = std::fs::remove_dir_all(dir);
}

/// A store that runs `hook` once, when a listing starts: whatever the hook
/// puts is there by the time the listing reads the directory.
struct HookedStore {
    inner: std::sync::Arc<dyn ObjectStore>,
    hook: std::sync::Mutex<Option<futures_util::future::BoxFuture<'static, ()>>>,
}

impl std::fmt::Debug for HookedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookedStore({:?})", self.inner)
    }
}

impl std::fmt::Display for HookedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookedStore({})", self.inner)
    }
}

use futures_util::stream::{BoxStream, StreamExt as _};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

#[async_trait::async_trait]
impl ObjectStore for HookedStore {
    async fn put_opts(
        &self,
        p: &Path,
        b: PutPayload,
        o: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(p, b, o).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(p, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let hook = self.hook.lock().unwrap().take();
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        futures_util::stream::once(async move {
            if let Some(hook) = hook {
                hook.await;
            }
        })
        .flat_map(move |()| inner.list(prefix.as_ref()))
        .boxed()
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

/// Issue 17 item 8: the orphan sweep must not delete an object whose
/// manifest row was written after the sweep read the manifest: here
/// another archiver stages a file while the sweep lists the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_sweep_keeps_a_file_staged_while_it_lists() {
    let (db_url, db) = migrated("orphans").await;
    let (dir, url) = temp_archive("orphans");
    let (_, sent) = committed_unarchived(&db_url, &url, 10, "o", 4).await;
    let plain = Archive::from_url(&url).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (db_url2, plain2) = (db_url.clone(), plain.clone());
    let stage_meanwhile: futures_util::future::BoxFuture<'static, ()> = Box::pin(async move {
        let other = connect(&db_url2).await;
        let refs: Vec<&Sample> = sent.iter().collect();
        let staged = sink::stage(&other, &plain2, (10, yesterday()), Kind::Part, &refs)
            .await
            .unwrap();
        let _ = tx.send((other, staged));
    });
    let hooked = Archive {
        store: std::sync::Arc::new(HookedStore {
            inner: plain.store.clone(),
            hook: std::sync::Mutex::new(Some(stage_meanwhile)),
        }),
        prefix: plain.prefix.clone(),
    };
    // Something to list, so the listing runs (a recorded live file).
    let client = connect(&db_url).await;
    let deleted = maintain::delete_orphans(&client, &hooked).await.unwrap();
    let (mut other, staged) = rx.await.expect("the hook ran during the sweep");
    assert_eq!(deleted, 0, "nothing was an orphan");
    assert!(
        dir.join(staged.path.as_ref()).exists(),
        "the staged object survived the sweep"
    );
    let batch: i64 = db
        .query_one("SELECT batch_id FROM archive_queue", &[])
        .await
        .unwrap()
        .get(0);
    let claims = [sink::Claim {
        batch_id: batch,
        rows: 4,
    }];
    sink::commit(
        &mut other,
        &plain,
        (10, yesterday()),
        std::slice::from_ref(&staged),
        &claims,
        &[],
    )
    .await
    .unwrap();
    assert!(check(&db, &url).await[0].exact());
    every_row_in_exactly_one_file(&db, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Two backfills of a window that has no file yet (rows written with the
/// archive off) at the same time, as two operators or an operator and a
/// second node would: the window is archived once. Compactions of a window
/// take turns; the second rewrites the first's file instead of adding one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backfills_at_once_archive_a_window_once() {
    let (db_url, db) = migrated("twobackfills").await;
    let (dir, url) = temp_archive("twobackfills");
    let writer = Writer::spawn(WriterConfig::test_config(db_url.clone()));
    let ack = writer.handle.submit(upload(11, "b", 2_000)).unwrap();
    assert!(matches!(ack.await.unwrap().unwrap(), Ack::Committed { .. }));
    writer.shutdown().await;
    assert_eq!(
        check(&db, &url).await[0].status(),
        verify::Status::PredatesArchive
    );
    let archive = Archive::from_url(&url).unwrap();
    let cfg = ArchiveConfig::new(url.clone(), db_url.clone());
    let (mut a, mut b) = (connect(&db_url).await, connect(&db_url).await);
    let all = Scope::default();
    let (ra, rb) = tokio::join!(
        maintain::backfill(&mut a, &archive, &cfg, &all),
        maintain::backfill(&mut b, &archive, &cfg, &all),
    );
    ra.unwrap();
    rb.unwrap();
    let windows = check(&db, &url).await;
    assert!(windows[0].exact(), "{:?}", windows[0]);
    every_row_in_exactly_one_file(&db, &dir).await;
    let _ = std::fs::remove_dir_all(dir);
}

//! The dataset archive against a real PostgreSQL, a real file:// (and S3
//! compatible) store, and the files read back by pyarrow: rows are written
//! into the dataset tables with the dataset crate's COPY encoder and the
//! writer's dirty marks (the contract SQL), then exported per closed day.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use adit::migrate::migrate_with;
use adit_archive::dataset::verify::{self, Status};
use adit_archive::dataset::{self as darchive, DatasetArchiveConfig, PassReport, Window};
use adit_archive::verify::Scope;
use adit_archive::Archive;
use adit_dataset::{copy, ddl, decode, partitions, BodyFormat, Catalog, Declared, Limits};
use adit_testkit::TestDb;
use adit_types::dataset::WriteMode;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, Utc};
use common::{free_port, python, spawn_adit};
use serde_json::Value;
use tokio_postgres::Client;

/// The writer's dirty mark, exactly as the hand-off contract runs it.
const MARK_DIRTY: &str = "INSERT INTO dataset_archive_dirty (dataset, site_id, day) \
    SELECT * FROM unnest($1::text[], $2::int4[], $3::date[]) \
    ON CONFLICT (dataset, site_id, day) DO UPDATE SET marked_at = now()";

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// A UTC day `days_ago` days before today.
fn day(days_ago: i64) -> NaiveDate {
    (Utc::now() - chrono::Duration::days(days_ago)).date_naive()
}

fn at(day: NaiveDate, h: u32, m: u32) -> String {
    format!("{}T{h:02}:{m:02}:00Z", day.format("%Y-%m-%d"))
}

async fn setup(name: &str) -> (TestDb, Client, Catalog, std::path::PathBuf, Archive) {
    let db = TestDb::new(name).await;
    let mut client = adit_testkit::connect(db.url()).await;
    let catalog = Catalog::shipped().unwrap();
    migrate_with(&mut client, &catalog).await.unwrap();
    let dir = std::env::temp_dir().join(format!("adit-dsarch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let archive = Archive::from_url(&format!("file://{}", dir.display())).unwrap();
    (db, client, catalog, dir, archive)
}

/// Writes the NDJSON `body` as site `site_id` the way the writer does: in
/// one transaction, the rows (COPY, or COPY into the staging table and the
/// merge for an upsert dataset) and the dirty mark of every day touched.
async fn write(client: &mut Client, d: &Declared, site_id: i32, body: &str) {
    write_at(client, d, site_id, body, now_micros()).await;
}

/// [`write`] as if it were `now` (for rows older than today's retention).
async fn write_at(client: &mut Client, d: &Declared, site_id: i32, body: &str, now: i64) {
    let decoded = decode(
        d,
        body.as_bytes(),
        BodyFormat::Ndjson,
        &Limits::default(),
        now,
    )
    .unwrap();
    assert!(decoded.rejects.is_empty(), "{:?}", decoded.errors);
    let ds = d.dataset();
    let tx = client.transaction().await.unwrap();
    for p in partitions(ds, &decoded.batch) {
        let start = DateTime::from_timestamp_micros(p.start_micros).unwrap();
        tx.query_one(
            adit_dataset::ENSURE_PARTITION_SQL,
            &[&ds.table(), &ds.partition.as_str(), &start],
        )
        .await
        .unwrap();
    }
    let table = if ds.mode == WriteMode::Upsert {
        tx.batch_execute(&ddl::create_stage(ds)).await.unwrap();
        ddl::stage_table(ds)
    } else {
        ds.table().to_string()
    };
    let mut buf = BytesMut::new();
    copy::begin(&mut buf);
    copy::encode_batch(&mut buf, d, site_id, &decoded.batch);
    copy::end(&mut buf);
    let sink = tx
        .copy_in::<_, Bytes>(&ddl::copy_into(ds, &table))
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    futures_util::SinkExt::send(&mut sink, buf.freeze())
        .await
        .unwrap();
    sink.finish().await.unwrap();
    if ds.mode == WriteMode::Upsert {
        tx.execute(&ddl::upsert(ds), &[]).await.unwrap();
    }
    let time = decoded
        .batch
        .column(ds.column_index(&ds.time_column).unwrap())
        .as_primitive::<TimestampMicrosecondType>();
    let days: BTreeSet<NaiveDate> = time
        .values()
        .iter()
        .map(|&t| DateTime::from_timestamp_micros(t).unwrap().date_naive())
        .collect();
    let days: Vec<NaiveDate> = days.into_iter().collect();
    let names = vec![ds.name.clone(); days.len()];
    let sites = vec![site_id; days.len()];
    tx.execute(MARK_DIRTY, &[&names, &sites, &days])
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn metrics_rows(day: NaiveDate, n: usize, tag: &str) -> String {
    let services = ["search", "chat", "embed", "Auth", "billing"];
    (0..n)
        .map(|i| {
            // Out of order on purpose: the file is sorted, not the input.
            let k = (i * 7919) % n;
            serde_json::json!({
                "timestamp": at(day, (k / 60 % 24) as u32, (k % 60) as u32),
                "service_name": services[k % services.len()],
                "api_endpoint": format!("/v1/{}", k % 3),
                "qps": k as f64 * 1.25,
                "avg_latency_ms": 10.5 + (k % 13) as f64,
                "p95_latency_ms": 40.25,
                "p99_latency_ms": 90.0,
                "error_rate": (k % 10) as f64 / 100.0,
                "total_requests": k as i64 * 1000,
                "region": tag,
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn bar(day: NaiveDate, asset: &str, hour: u32, close: &str) -> String {
    serde_json::json!({
        "timestamp": at(day, hour, 0),
        "asset": asset,
        "timeframe": "1h",
        "open": 100.5, "high": 120.25, "low": 90.75,
        "close": close.parse::<f64>().unwrap(),
        "volume": 12.5,
        "rsi_14": 55.5,
        "source": "binance",
    })
    .to_string()
}

fn config(delay_s: u64) -> DatasetArchiveConfig {
    DatasetArchiveConfig {
        delay: Duration::from_secs(delay_s),
        ..Default::default()
    }
}

async fn pass(
    client: &mut Client,
    db: &TestDb,
    archive: &Archive,
    catalog: &Catalog,
    cfg: &DatasetArchiveConfig,
) -> PassReport {
    darchive::pass(client, db.url(), archive, catalog, cfg)
        .await
        .unwrap()
}

/// Live files of a window: path.
async fn live(client: &Client, dataset: &str, site: i32, day: NaiveDate) -> Vec<String> {
    client
        .query(
            "SELECT path FROM dataset_archive_files WHERE dataset = $1 AND site_id = $2 \
               AND day = $3 AND state = 'live' ORDER BY path",
            &[&dataset, &site, &day],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every file in the store under `dir/rel`.
fn files_under(dir: &std::path::Path, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(rel)];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

const PYARROW_READ: &str = r#"
import sys, json, datetime, decimal
import pyarrow.parquet as pq
t = pq.ParquetFile(sys.argv[1]).read()
ep = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
def conv(v):
    if isinstance(v, datetime.datetime):
        return (v - ep) // datetime.timedelta(microseconds=1)
    if isinstance(v, decimal.Decimal):
        return str(v)
    return v
out = {
    "types": {f.name: str(f.type) for f in t.schema},
    "nullable": {f.name: f.nullable for f in t.schema},
    "meta": {f.name: {k.decode(): v.decode() for k, v in (f.metadata or {}).items()} for f in t.schema},
    "rows": [[conv(v) for v in r.values()] for r in t.to_pylist()],
}
print(json.dumps(out))
"#;

fn read_back(dir: &std::path::Path, path: &str) -> Value {
    serde_json::from_str(&python(PYARROW_READ, &[dir.join(path).to_str().unwrap()])).unwrap()
}

/// metrics_aggregated as PostgreSQL holds it for a site-day, in the file's
/// order (service, endpoint, time; text compared byte by byte).
async fn metrics_in_postgres(client: &Client, site: i32, day: NaiveDate) -> Vec<Value> {
    client
        .query(
            "SELECT (extract(epoch FROM \"timestamp\") * 1000000)::int8, service_name, api_endpoint, \
               qps, avg_latency_ms, p95_latency_ms, p99_latency_ms, error_rate, total_requests, \
               extra::text \
             FROM metrics_aggregated WHERE site_id = $1 AND (\"timestamp\" AT TIME ZONE 'UTC')::date = $2 \
             ORDER BY service_name COLLATE \"C\", api_endpoint COLLATE \"C\", \"timestamp\"",
            &[&site, &day],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::json!([
                r.get::<_, i64>(0),
                r.get::<_, &str>(1),
                r.get::<_, &str>(2),
                r.get::<_, Option<f64>>(3),
                r.get::<_, Option<f64>>(4),
                r.get::<_, Option<f64>>(5),
                r.get::<_, Option<f64>>(6),
                r.get::<_, Option<f64>>(7),
                r.get::<_, Option<i64>>(8),
                r.get::<_, Option<&str>>(9),
            ])
        })
        .collect()
}

/// The file's rows are PostgreSQL's (as a multiset), in the order of the
/// sort key (service, endpoint, time); rows equal on the key may come in
/// any order.
fn assert_same_rows_in_key_order(file: &[Value], postgres: &[Value]) {
    assert_eq!(file.len(), postgres.len(), "rows in the file");
    let key = |r: &Value| (r[1].to_string(), r[2].to_string(), r[0].as_i64().unwrap());
    for (i, pair) in file.windows(2).enumerate() {
        assert!(
            key(&pair[0]) <= key(&pair[1]),
            "row {i} of the file is out of order"
        );
    }
    for (i, (f, p)) in file.iter().zip(postgres).enumerate() {
        assert_eq!(key(f), key(p), "row {i}'s key");
    }
    let text = |rows: &[Value]| {
        let mut v: Vec<String> = rows.iter().map(Value::to_string).collect();
        v.sort();
        v
    };
    let (f, p) = (text(file), text(postgres));
    let differ = f.iter().zip(&p).position(|(a, b)| a != b);
    assert!(
        differ.is_none(),
        "file {:?} vs PostgreSQL {:?}",
        differ.map(|i| &f[i]),
        differ.map(|i| &p[i])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_day_is_exported_sorted_and_pyarrow_reads_what_postgres_holds() {
    let (db, mut client, catalog, dir, archive) = setup("dsarch_closed").await;
    let d = catalog.get("metrics_aggregated").unwrap();
    let closed = day(2);
    write(&mut client, d, 7, &metrics_rows(closed, 1_500, "eu")).await;
    write(&mut client, d, 7, &metrics_rows(closed, 300, "us")).await;
    write(&mut client, d, 8, &metrics_rows(closed, 40, "ap")).await;
    // Today's window is not closed: it stays dirty and unexported.
    write(&mut client, d, 7, &metrics_rows(day(0), 1, "now")).await;

    let report = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!(report.windows, 2, "{report:?}");
    assert_eq!(report.rows, 1_840);
    assert_eq!(report.still_dirty, 0);
    let dirty: Vec<NaiveDate> = client
        .query("SELECT day FROM dataset_archive_dirty", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(dirty, [day(0)], "only the open day is left dirty");
    assert!(live(&client, "metrics_aggregated", 7, day(0))
        .await
        .is_empty());

    let files = files_under(&dir, "metrics_aggregated");
    assert_eq!(files.len(), 2, "{files:?}");
    let prefix = format!("metrics_aggregated/site_id=7/date={closed}/");
    let file = live(&client, "metrics_aggregated", 7, closed).await;
    assert_eq!(file.len(), 1);
    assert!(
        file[0].starts_with(&prefix) && file[0].ends_with(".parquet"),
        "{file:?}"
    );
    assert!(files.contains(&file[0]));

    let got = read_back(&dir, &file[0]);
    let want = metrics_in_postgres(&client, 7, closed).await;
    assert_eq!(want.len(), 1_800);
    assert_same_rows_in_key_order(got["rows"].as_array().unwrap(), &want);
    assert_eq!(got["types"]["timestamp"], "timestamp[us, tz=UTC]");
    assert_eq!(got["types"]["service_name"], "string");
    assert_eq!(got["types"]["qps"], "double");
    assert_eq!(got["types"]["total_requests"], "int64");
    assert_eq!(got["nullable"]["timestamp"], false, "a required column");
    assert_eq!(got["nullable"]["qps"], true);
    let extra_is_json = got["types"]["extra"] == "extension<arrow.json>"
        || got["meta"]["extra"]["ARROW:extension:name"] == "arrow.json";
    assert!(
        extra_is_json,
        "extra is JSON text: {} {}",
        got["types"], got["meta"]
    );
    assert!(want[0][9].as_str().unwrap().contains("region"));

    let windows = verify::check(&client, &archive, d.dataset(), &Scope::default())
        .await
        .unwrap();
    let status: Vec<(i32, NaiveDate, Status)> = windows
        .iter()
        .map(|w| (w.site_id, w.day, w.status()))
        .collect();
    assert_eq!(
        status,
        [
            (7, closed, Status::Exact),
            (7, day(0), Status::Pending),
            (8, closed, Status::Exact)
        ]
    );
    // A second pass has nothing to do.
    let again = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!(again.windows, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_day_is_replaced_whole_and_shows_the_corrected_bar() {
    let (db, mut client, catalog, dir, archive) = setup("dsarch_upsert").await;
    let d = catalog.get("market_data").unwrap();
    let closed = day(3);
    let bars: Vec<String> = (0..24)
        .flat_map(|h| {
            ["ETH", "BTC", "SOL"]
                .into_iter()
                .map(move |a| bar(closed, a, h, "101.5"))
        })
        .collect();
    write(&mut client, d, 3, &bars.join("\n")).await;
    let first = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!((first.windows, first.rows), (1, 72));
    let old = live(&client, "market_data", 3, closed).await;
    assert_eq!(old.len(), 1);

    // The exchange corrects BTC's 05:00 bar: one row, new values.
    write(&mut client, d, 3, &bar(closed, "BTC", 5, "110.75")).await;
    let second = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!((second.windows, second.rows), (1, 72));
    let new = live(&client, "market_data", 3, closed).await;
    assert_eq!(new.len(), 1);
    assert_ne!(new, old);
    assert!(!dir.join(&old[0]).exists(), "the replaced file is deleted");
    assert_eq!(files_under(&dir, "market_data"), new);

    let got = read_back(&dir, &new[0]);
    assert_eq!(got["types"]["close"], "decimal128(20, 2)");
    assert_eq!(got["types"]["volume"], "decimal128(30, 8)");
    let rows = got["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 72);
    // Columns: timestamp, asset, timeframe, open, high, low, close, …
    let keys: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r[1].as_str().unwrap().to_string(), r[0].as_i64().unwrap()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by asset, timeframe, timestamp");
    let five = closed
        .and_hms_opt(5, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let btc5: Vec<&Value> = rows
        .iter()
        .filter(|r| r[1] == "BTC" && r[0] == five)
        .collect();
    assert_eq!(btc5.len(), 1);
    assert_eq!(btc5[0][6], "110.75");
    assert_eq!(btc5[0][7], "12.50000000");
    assert_eq!(
        rows.iter().filter(|r| r[6] == "101.50").count(),
        71,
        "every other bar as it was"
    );
    let windows = verify::check(&client, &archive, d.dataset(), &Scope::default())
        .await
        .unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].status(), Status::Exact, "{windows:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_not_yet_closed_is_not_exported() {
    let (db, mut client, catalog, dir, archive) = setup("dsarch_open").await;
    let d = catalog.get("metrics_aggregated").unwrap();
    write(&mut client, d, 1, &metrics_rows(day(0), 10, "x")).await;
    write(&mut client, d, 1, &metrics_rows(day(1), 10, "x")).await;
    // Yesterday ended less than 30 days ago, today not at all.
    let report = pass(&mut client, &db, &archive, &catalog, &config(30 * 86_400)).await;
    assert_eq!(report, PassReport::default());
    assert!(files_under(&dir, "metrics_aggregated").is_empty());
    // With the default delay yesterday is closed (unless the test runs in
    // the first hour of the day, when it is not closed yet either).
    let yesterday_closed = Utc::now().time() >= chrono::NaiveTime::from_hms_opt(1, 0, 0).unwrap();
    let report = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!(report.windows, usize::from(yesterday_closed));
    assert!(live(&client, "metrics_aggregated", 1, day(0))
        .await
        .is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_arriving_during_the_export_keeps_the_window_dirty_for_the_next_pass() {
    let (db, mut client, catalog, dir, archive) = setup("dsarch_race").await;
    let d = catalog.get("metrics_aggregated").unwrap();
    let closed = day(2);
    write(&mut client, d, 5, &metrics_rows(closed, 100, "a")).await;

    // A writer's transaction is open with a late row of the window and its
    // mark: the export reads the window without it and waits on the mark.
    let mut writer = adit_testkit::connect(db.url()).await;
    let late = metrics_rows(closed, 1, "late").replace("/v1/0", "/v1/late");
    let writer_tx = {
        let decoded = decode(
            d,
            late.as_bytes(),
            BodyFormat::Ndjson,
            &Limits::default(),
            now_micros(),
        )
        .unwrap();
        let mut buf = BytesMut::new();
        copy::begin(&mut buf);
        copy::encode_batch(&mut buf, d, 5, &decoded.batch);
        copy::end(&mut buf);
        let tx = writer.transaction().await.unwrap();
        let sink = tx
            .copy_in::<_, Bytes>(&ddl::copy_into(d.dataset(), "metrics_aggregated"))
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        futures_util::SinkExt::send(&mut sink, buf.freeze())
            .await
            .unwrap();
        sink.finish().await.unwrap();
        tx.execute(
            MARK_DIRTY,
            &[&vec!["metrics_aggregated"], &vec![5i32], &vec![closed]],
        )
        .await
        .unwrap();
        tx
    };
    let exporter = {
        let (url, archive, catalog) = (db.url().to_string(), archive.clone(), catalog.clone());
        tokio::spawn(async move {
            let mut client = adit_testkit::connect(&url).await;
            darchive::pass(&mut client, &url, &archive, &catalog, &config(3600))
                .await
                .unwrap()
        })
    };
    // Wait until the export is blocked on the mark's row lock.
    let mut blocked = false;
    for _ in 0..200 {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM dataset_archive_dirty%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        blocked,
        "the export reached the mark while the writer held it"
    );
    writer_tx.commit().await.unwrap();
    let report = exporter.await.unwrap();
    assert_eq!(
        (report.windows, report.rows, report.still_dirty),
        (1, 100, 1)
    );
    let marks: i64 = client
        .query_one("SELECT count(*) FROM dataset_archive_dirty", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(marks, 1, "the window is still dirty");
    let windows = verify::check(&client, &archive, d.dataset(), &Scope::default())
        .await
        .unwrap();
    assert_eq!(windows[0].status(), Status::Pending);
    assert_eq!(
        (windows[0].database.rows, windows[0].manifest.rows),
        (101, 100)
    );

    let next = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!((next.windows, next.rows, next.still_dirty), (1, 101, 0));
    let file = live(&client, "metrics_aggregated", 5, closed).await;
    let got = read_back(&dir, &file[0]);
    assert_same_rows_in_key_order(
        got["rows"].as_array().unwrap(),
        &metrics_in_postgres(&client, 5, closed).await,
    );
    assert!(got["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r[2] == "/v1/late"));
    let windows = verify::check(&client, &archive, d.dataset(), &Scope::default())
        .await
        .unwrap();
    assert_eq!(windows[0].status(), Status::Exact);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_upload_and_manifest_leaves_no_live_duplicate() {
    let (db, mut client, catalog, dir, archive) = setup("dsarch_crash").await;
    let d = catalog.get("metrics_aggregated").unwrap();
    let closed = day(2);
    write(&mut client, d, 4, &metrics_rows(closed, 50, "a")).await;
    // An exporter uploads a copy of the window and records it 'writing',
    // then dies before the transaction that would make it live.
    let w = Window {
        dataset: "metrics_aggregated".into(),
        site_id: 4,
        day: closed,
    };
    let crashed = adit_testkit::connect(db.url()).await;
    let staged = darchive::stage(&crashed, &archive, &w, b"PAR1 cut short".to_vec(), 50, 0)
        .await
        .unwrap();
    drop(crashed);
    // And an object no manifest row names (a crash between a discard's
    // row delete and its object delete leaves one).
    let orphan = darchive::file_path(&archive, "metrics_aggregated", 4, closed, "orphan.parquet");
    object_store::ObjectStoreExt::put(
        archive.store.as_ref(),
        &orphan,
        Bytes::from_static(b"x").into(),
    )
    .await
    .unwrap();
    assert_eq!(files_under(&dir, "metrics_aggregated").len(), 2);

    // Recovery (at the archiver's start) removes both once the crashed
    // backend is gone; the pass exports the window once.
    let mut removed = (0, 0);
    for _ in 0..100 {
        let r = darchive::recover(&client, &archive, &catalog)
            .await
            .unwrap();
        removed.0 += r.0;
        removed.1 += r.1;
        if removed.0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(removed, (1, 1), "the interrupted upload and the orphan");
    assert!(!dir.join(staged.path.as_ref()).exists());
    let report = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!((report.windows, report.rows), (1, 50));
    let file = live(&client, "metrics_aggregated", 4, closed).await;
    assert_eq!(file.len(), 1);
    assert_eq!(files_under(&dir, "metrics_aggregated"), file);
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM dataset_archive_files", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1, "no 'writing' row is left or counted");
    let windows = verify::check(&client, &archive, d.dataset(), &Scope::default())
        .await
        .unwrap();
    assert_eq!(windows[0].status(), Status::Exact);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_retention_dropped_stays_archived_and_verifies() {
    let (db, mut client, catalog, dir, archive) = setup("dsarch_retention").await;
    let d = catalog.get("metrics_aggregated").unwrap();
    // metrics_aggregated is kept 30 days: rows of 40 days ago, written
    // 39 days ago.
    let old_day = day(40);
    let then = (Utc::now() - chrono::Duration::days(39)).timestamp_micros();
    write_at(&mut client, d, 6, &metrics_rows(old_day, 30, "r"), then).await;
    let report = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!((report.windows, report.rows), (1, 30));
    let file = live(&client, "metrics_aggregated", 6, old_day).await;

    // Retention drops the day's partition; the archive keeps the day.
    client
        .batch_execute(&format!(
            "DROP TABLE metrics_aggregated_p{}",
            old_day.format("%Y%m%d")
        ))
        .await
        .unwrap();
    let windows = verify::check(&client, &archive, d.dataset(), &Scope::default())
        .await
        .unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!((windows[0].database.rows, windows[0].files.rows), (0, 30));
    assert_eq!(windows[0].status(), Status::Exact, "{windows:?}");
    // A mark left for the dropped day (an export the store delayed past
    // retention) does not wipe its files.
    client
        .execute(
            MARK_DIRTY,
            &[&vec!["metrics_aggregated"], &vec![6i32], &vec![old_day]],
        )
        .await
        .unwrap();
    let report = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!((report.windows, report.rows, report.files), (1, 0, 0));
    assert_eq!(live(&client, "metrics_aggregated", 6, old_day).await, file);
    assert!(dir.join(&file[0]).exists());
    let marks: i64 = client
        .query_one("SELECT count(*) FROM dataset_archive_dirty", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(marks, 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// `adit archive <args>` against `db_url`: exit success and stdout.
fn adit_archive(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adit"))
        .arg("archive")
        .args(args)
        .env("DATABASE_URL", db_url)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_says_ok_then_mismatch_for_a_tampered_file_then_missing_for_a_deleted_one() {
    let (db, mut client, catalog, dir, archive) = setup("dsarch_verify").await;
    let d = catalog.get("metrics_aggregated").unwrap();
    let closed = day(2);
    write(&mut client, d, 9, &metrics_rows(closed, 200, "a")).await;
    write(&mut client, d, 9, &metrics_rows(day(3), 20, "b")).await;
    pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    let url = format!("file://{}", dir.display());
    let verify = [
        "--archive-url",
        &url,
        "verify",
        "--dataset",
        "metrics_aggregated",
    ];

    let (ok, out) = adit_archive(db.url(), &verify, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("2 window(s): 2 exact"), "{out}");
    let (ok, out) = adit_archive(
        db.url(),
        &[
            "--archive-url",
            &url,
            "ls",
            "--dataset",
            "metrics_aggregated",
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("rows=200")).count(),
        1,
        "{out}"
    );

    // Tampered: a valid Parquet file with one row fewer.
    let file = live(&client, "metrics_aggregated", 9, closed).await;
    let path = dir.join(&file[0]);
    python(
        "import sys, pyarrow.parquet as pq\nt = pq.ParquetFile(sys.argv[1]).read()\npq.write_table(t.slice(1), sys.argv[1])",
        &[path.to_str().unwrap()],
    );
    let (ok, out) = adit_archive(db.url(), &verify, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("date={closed}\tMISMATCH")), "{out}");
    let (ok, out) = adit_archive(
        db.url(),
        &[
            &verify[..],
            &["--from", &day(3).to_string(), "--to", &day(3).to_string()],
        ]
        .concat(),
        &[],
    );
    assert!(
        ok && out.contains("1 window(s): 1 exact"),
        "the other day is fine: {out}"
    );

    std::fs::remove_file(&path).unwrap();
    let (ok, out) = adit_archive(db.url(), &verify, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("date={closed}\tMISSING")), "{out}");

    let (ok, out) = adit_archive(
        db.url(),
        &["--archive-url", &url, "verify", "--dataset", "nope"],
        &[],
    );
    assert!(!ok && out.contains("unknown dataset"), "{out}");
    // Backfill marks the dataset's windows; the next pass writes the lost
    // file again.
    let to = closed.to_string();
    let (ok, out) = adit_archive(
        db.url(),
        &[
            "--archive-url",
            &url,
            "backfill",
            "--dataset",
            "metrics_aggregated",
            "--to",
            &to,
        ],
        &[],
    );
    assert!(
        ok && out.contains("2 window(s) of dataset metrics_aggregated marked"),
        "{out}"
    );
    let report = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    assert_eq!((report.windows, report.rows), (2, 220));
    let (ok, out) = adit_archive(db.url(), &verify, &[]);
    assert!(ok && out.contains("2 window(s): 2 exact"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adit_serve_archives_closed_dataset_days_to_an_s3_compatible_store() {
    let s3_port = free_port();
    let mut moto = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &s3_port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto server starts (make setup installs moto[server])");
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let mut made = false;
    for _ in 0..100 {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='test', \
                 aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='adit-ds')",
                &endpoint,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            made = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(made, "bucket created on the loopback S3 server");
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let db = TestDb::new("dsarch_s3").await;
    let mut client = adit_testkit::connect(db.url()).await;
    let catalog = Catalog::shipped().unwrap();
    migrate_with(&mut client, &catalog).await.unwrap();
    write(
        &mut client,
        catalog.get("metrics_aggregated").unwrap(),
        2,
        &metrics_rows(day(2), 500, "s3"),
    )
    .await;
    let bars: Vec<String> = (0..6).map(|h| bar(day(4), "ETH", h, "99.5")).collect();
    write(
        &mut client,
        catalog.get("market_data").unwrap(),
        2,
        &bars.join("\n"),
    )
    .await;

    // The archive's background task exports at start, then every minute.
    let url = "s3://adit-ds/fleet";
    let port = free_port();
    let mut child = spawn_adit(
        db.url(),
        port,
        &["--archive-url", url, "--archive-dataset-delay", "1h"],
        &env,
    );
    let mut drained = false;
    for _ in 0..300 {
        let left: i64 = client
            .query_one("SELECT count(*) FROM dataset_archive_dirty", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(drained, "every closed dirty window exported");
    for dataset in ["metrics_aggregated", "market_data"] {
        let (ok, out) = adit_archive(
            db.url(),
            &["--archive-url", url, "verify", "--dataset", dataset],
            &env,
        );
        assert!(ok, "{out}");
        assert!(out.contains("1 window(s): 1 exact"), "{out}");
        let (ok, out) = adit_archive(
            db.url(),
            &["--archive-url", url, "ls", "--dataset", dataset],
            &env,
        );
        assert!(
            ok && out.contains(&format!("fleet/{dataset}/site_id=2/date=")),
            "{out}"
        );
    }
    let _ = moto.kill();
    let _ = moto.wait();
}

/// Not a test: the export's speed and where it goes, for the README.
/// `cargo test --test dataset_archive measure_export -- --ignored --nocapture`
/// (ADIT_MEASURE_ROWS rows, default 1,000,000, in one metrics_aggregated
/// site-day): a raw binary `COPY (SELECT …) TO STDOUT` of the window (the
/// floor of any reader), the exporter's row stream alone, and the whole
/// export (read, Arrow, sort by PostgreSQL, zstd Parquet, file:// store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_export_rows_per_s() {
    let n: i64 = std::env::var("ADIT_MEASURE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (db, mut client, catalog, dir, archive) = setup("dsarch_measure").await;
    let d = catalog.get("metrics_aggregated").unwrap();
    let closed = day(2);
    let start = closed.and_hms_opt(0, 0, 0).unwrap().and_utc();
    client
        .query_one(
            adit_dataset::ENSURE_PARTITION_SQL,
            &[&"metrics_aggregated", &"day", &start],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO metrics_aggregated (site_id, \"timestamp\", service_name, api_endpoint, qps, \
               avg_latency_ms, p95_latency_ms, p99_latency_ms, error_rate, total_requests, extra) \
             SELECT 1, $1::timestamptz + make_interval(secs => (i % 86400)), 'svc-' || (i % 40), \
               '/v1/endpoint/' || (i % 25), i * 0.5, 12.5 + i % 7, 40.25, 90.5, (i % 100) / 1000.0, i, \
               CASE WHEN i % 10 = 0 THEN '{\"region\": \"eu\"}'::jsonb END \
             FROM generate_series(1, $2::int8) i",
            &[&start, &n],
        )
        .await
        .unwrap();
    client
        .execute(
            MARK_DIRTY,
            &[&vec!["metrics_aggregated"], &vec![1i32], &vec![closed]],
        )
        .await
        .unwrap();
    client
        .batch_execute("VACUUM ANALYZE metrics_aggregated")
        .await
        .unwrap();

    let sql = darchive::read::select_window(d);
    let literal = sql
        .replace("$1", "1")
        .replace("$2", &format!("'{}'", start.to_rfc3339()))
        .replace(
            "$3",
            &format!("'{}'", (start + chrono::Duration::days(1)).to_rfc3339()),
        );
    let t = std::time::Instant::now();
    let stream = client
        .copy_out(&format!("COPY ({literal}) TO STDOUT (FORMAT binary)"))
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    let mut bytes = 0usize;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        bytes += chunk.unwrap().len();
    }
    let copy_s = t.elapsed().as_secs_f64();

    let t = std::time::Instant::now();
    let rows = darchive::read::window_rows(&client, d, 1, closed)
        .await
        .unwrap();
    futures_util::pin_mut!(rows);
    let mut batcher = darchive::read::Batcher::new(d);
    let mut read = 0usize;
    while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows)
        .await
        .unwrap()
    {
        batcher.push(&row).unwrap();
        read += 1;
        if batcher.rows() == 256 * 1024 {
            batcher.finish().unwrap();
        }
    }
    let stream_s = t.elapsed().as_secs_f64();
    assert_eq!(read as i64, n);

    let t = std::time::Instant::now();
    let report = pass(&mut client, &db, &archive, &catalog, &config(3600)).await;
    let pass_s = t.elapsed().as_secs_f64();
    assert_eq!(report.rows, n);
    let file_bytes: i64 = client
        .query_one("SELECT sum(bytes)::int8 FROM dataset_archive_files", &[])
        .await
        .unwrap()
        .get(0);
    let rate = |s: f64| n as f64 / s;
    println!(
        "{n} rows: COPY TO binary {copy_s:.2}s ({:.0} rows/s, {bytes} B); row stream + Arrow \
         {stream_s:.2}s ({:.0} rows/s); whole export {pass_s:.2}s ({:.0} rows/s, {} files, {file_bytes} B)",
        rate(copy_s),
        rate(stream_s),
        rate(pass_s),
        report.files,
    );
    let _ = std::fs::remove_dir_all(dir);
}

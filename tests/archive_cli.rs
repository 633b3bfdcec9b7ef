//! `adit archive …` as a person types it, with the real binary: options of
//! the command group after the subcommand, backfill and verify on a
//! database that held rows before the archive was enabled, a verify that
//! finds a difference, and the help texts.

mod common;

use std::process::{Command, Output};

use common::*;

/// Runs the adit binary with a clean environment for its own variables.
fn adit(args: &[&str]) -> Output {
    adit_with(args, &[])
}

fn adit_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adit"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("ADIT_ARCHIVE_URL")
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("the adit binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\n{}\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn temp_archive(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("adit-{name}-{}", rand::random::<u32>()));
    (dir.clone(), format!("file://{}", dir.display()))
}

/// Issue 17 item 3: `--database-url` and `--archive-url` belong to the
/// command group but are typed after the subcommand too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_options_are_accepted_after_the_subcommand() {
    let db_url = fresh_database("cliglobal").await;
    let (dir, url) = temp_archive("cliglobal");
    ok(&adit(&["migrate", "--database-url", &db_url]), "migrate");
    let after = ok(
        &adit(&[
            "archive",
            "verify",
            "--archive-url",
            &url,
            "--database-url",
            &db_url,
        ]),
        "archive verify --archive-url … --database-url …",
    );
    assert!(after.contains("0 window(s)"), "{after}");
    ok(
        &adit(&[
            "archive",
            "--archive-url",
            &url,
            "ls",
            "--database-url",
            &db_url,
        ]),
        "options on both sides",
    );
    ok(
        &adit(&[
            "archive",
            "backfill",
            "--archive-url",
            &url,
            "--database-url",
            &db_url,
            "--site",
            "3",
        ]),
        "archive backfill",
    );
    ok(
        &adit(&["keys", "list", "--database-url", &db_url]),
        "keys list --database-url",
    );
    ok(
        &adit(&["rollup", "run", "--database-url", &db_url]),
        "rollup run --database-url",
    );
    // Still refused when missing, in one line.
    let missing = adit(&["archive", "verify", "--database-url", &db_url]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert_eq!(
        stderr(&missing).trim(),
        "error: no archive: pass --archive-url or set ADIT_ARCHIVE_URL"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Rows for `site` at noon of `days_ago` (± a few minutes).
fn rows_on(site: i32, days_ago: i64, tag: &str, n: usize) -> Vec<String> {
    let midnight = chrono::Utc::now().timestamp().div_euclid(86_400) * 86_400;
    let noon = midnight - days_ago * 86_400 + 43_200;
    (0..n)
        .map(|i| {
            format!(
                r#"{{"miner_id":"{tag}{site}-{i}","timestamp":{},"online":true,"hashrate_ghs":{}.5,"accepted_shares":{i}}}"#,
                noon - (i as i64 % 600),
                90_000 + i
            )
        })
        .collect()
}

async fn live_paths(db: &tokio_postgres::Client) -> Vec<String> {
    db.query(
        "SELECT path FROM archive_files WHERE state = 'live' ORDER BY path",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Issue 18: a database that held rows before the archive was enabled.
/// `verify` says those windows predate the archive (not a failure);
/// `backfill` archives them from PostgreSQL while the archiver runs and
/// uploads go on, doubling nothing; a second backfill has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_archives_the_rows_written_before_the_archive_was_enabled() {
    let (dir, url) = temp_archive("backfill");
    let site = 21;
    let Spawned {
        mut child,
        db_url,
        db,
        key,
        port,
        addr,
    } = spawn_with_key("backfill", site, &[], &[]).await;
    upload_rows(addr, &key, &rows_on(site, 2, "old", 300), 100).await;
    upload_rows(addr, &key, &rows_on(site, 1, "old", 300), 100).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let args = [
        "--archive-url",
        url.as_str(),
        "--archive-flush-interval",
        "300ms",
    ];
    let mut child = spawn_adit(&db_url, port, &args, &[]);
    wait_healthy(port).await;
    upload_rows(addr, &key, &rows_on(site, 1, "new", 200), 100).await;
    archive_drained(&db).await;

    let verify = [
        "archive",
        "verify",
        "--archive-url",
        &url,
        "--database-url",
        &db_url,
    ];
    let report = ok(&adit(&verify), "verify before the backfill");
    assert_eq!(
        report.matches("\tpredates-archive\t").count(),
        2,
        "both windows hold rows from before the archive: {report}"
    );
    assert!(
        report.contains("2 window(s): 0 exact, 0 still being archived, 2 predate the archive"),
        "{report}"
    );
    assert!(report.contains("adit archive backfill"), "{report}");

    // Backfill while the archiver runs and rows keep coming.
    let backfill = [
        "archive",
        "backfill",
        "--archive-url",
        &url,
        "--database-url",
        &db_url,
    ];
    let during = tokio::spawn({
        let key = key.clone();
        async move { upload_rows(addr, &key, &rows_on(site, 1, "during", 400), 100).await }
    });
    let args: Vec<String> = backfill.iter().map(|s| s.to_string()).collect();
    let done = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        adit(&args)
    })
    .await
    .unwrap();
    let done = ok(&done, "backfill");
    assert!(done.contains("2 window(s) backfilled"), "{done}");
    during.await.unwrap();
    archive_drained(&db).await;

    let report = ok(&adit(&verify), "verify after the backfill");
    assert!(report.contains("2 window(s): 2 exact"), "{report}");
    let total: i64 = db
        .query_one("SELECT count(*) FROM miner_telemetry", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 1_200);
    let archived: i64 = db
        .query_one(
            "SELECT sum(rows)::int8 FROM archive_files WHERE state = 'live'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 1_200, "every row archived once");

    let files = live_paths(&db).await;
    let again = ok(&adit(&backfill), "a second backfill");
    assert!(again.contains("0 window(s) backfilled"), "{again}");
    assert_eq!(live_paths(&db).await, files, "nothing rewritten");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 18: a verify that finds a difference is an ordinary failure: one
/// line on stderr and exit code 1, no backtrace even with RUST_BACKTRACE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_that_finds_missing_rows_says_so_in_one_line() {
    let db_url = fresh_database("clifail").await;
    let (dir, url) = temp_archive("clifail");
    ok(&adit(&["migrate", "--database-url", &db_url]), "migrate");
    let db = connect(&db_url).await;
    let today = adit_types::day_of(chrono::Utc::now().timestamp_micros());
    adit_writer::partition::ensure_ahead(&db, today, 1, 1)
        .await
        .unwrap();
    // A row of an archived batch that is in no file and not queued.
    db.execute(
        "INSERT INTO miner_telemetry (ts, site_id, miner_id, batch_id) VALUES (now(), 3, 'm', 42)",
        &[],
    )
    .await
    .unwrap();
    let out = adit_with(
        &[
            "archive",
            "verify",
            "--archive-url",
            &url,
            "--database-url",
            &db_url,
        ],
        &[("RUST_BACKTRACE", "1")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("\tMISSING\t"), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: the archive differs from PostgreSQL: 1 window(s) missing rows"),
        "{err}"
    );
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 18: every option of every archive command says what it is.
#[test]
fn every_archive_option_has_help() {
    for sub in ["verify", "ls", "compact", "backfill"] {
        let help = ok(&adit(&["archive", sub, "-h"]), sub);
        let options: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.starts_with("Options:"))
            .filter(|l| l.trim_start().starts_with('-'))
            .collect();
        assert!(
            options.iter().any(|l| l.contains("--archive-url")),
            "{help}"
        );
        for line in options {
            let parts = line
                .trim()
                .split("  ")
                .filter(|p| !p.trim().is_empty())
                .count();
            assert!(
                parts >= 2,
                "`adit archive {sub}`: no help for {line:?}\n{help}"
            );
        }
    }
    let verify = ok(&adit(&["archive", "verify", "-h"]), "verify");
    assert!(verify.contains("Only this site's windows"), "{verify}");
}

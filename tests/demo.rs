//! The README's front door, as a newcomer follows it: `scripts/run.sh`
//! (what `make run` runs) starts adit and prints a curl command; pasting
//! that command uploads the demo sample, and within seconds the README's
//! DuckDB query over the archive finds it.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_run_prints_a_curl_that_works_and_the_archive_shows_it_within_seconds() {
    let db_url = common::fresh_database("demo").await;
    let dir = std::env::temp_dir().join(format!("adit-demo-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("archive");
    let port = common::free_port();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut run = Command::new("bash")
        .arg(format!("{root}/scripts/run.sh"))
        .env("DATABASE_URL", &db_url)
        .env("ADIT_BIN", env!("CARGO_BIN_EXE_adit"))
        .env("ADIT_DEMO_DIR", &dir)
        .env("ADIT_ARCHIVE_URL", format!("file://{}", archive.display()))
        .env("ADIT_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("ADIT_ARCHIVE_FLUSH_INTERVAL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bash runs scripts/run.sh");

    // The banner: the curl command to paste, and the demo's flush interval.
    let mut banner = String::new();
    let mut curl = None;
    for line in BufReader::new(run.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("curl ") {
            curl = Some(line);
            break;
        }
    }
    let curl = curl.unwrap_or_else(|| panic!("no curl command in:\n{banner}"));
    assert!(banner.contains("every 5s"), "banner: {banner}");
    common::wait_healthy(port).await;

    let out = Command::new("sh").arg("-c").arg(&curl).output().unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    let body = common::json(&answer);
    assert_eq!(body["data"]["processed"], 1, "{answer}");

    // The README's query, on this archive.
    let query = format!(
        "SELECT miner_id, hashrate_ghs FROM read_parquet('{}/miner_telemetry/*/*/*.parquet', \
         hive_partitioning = true)",
        archive.display()
    );
    let script = "import duckdb, sys\n\
                  rows = duckdb.sql(sys.argv[1]).fetchall()\n\
                  print(rows)";
    let started = Instant::now();
    let found = loop {
        let has_files = std::fs::read_dir(&archive)
            .map(|_| walk(&archive).iter().any(|p| p.ends_with(".parquet")))
            .unwrap_or(false);
        if has_files {
            break common::python(script, &[&query]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no Parquet file 30 s after the upload"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(found.contains("SN123456789"), "DuckDB read: {found}");

    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let _ = run.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

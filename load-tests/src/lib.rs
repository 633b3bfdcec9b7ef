//! adit's load generator: simulated edge collectors posting gzip batches to
//! a running adit, in a closed loop (C uploads in flight at all times), for
//! a bounded time and/or number of uploads, against loopback by default.
//! Bodies are built and compressed ahead so the generator measures the
//! server, not itself.

pub mod fleet;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap_args::LoadArgs as Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub use clap_args::LoadArgs;

mod clap_args {
    use std::time::Duration;

    /// Options of `adit load`.
    #[derive(Debug, Clone, clap::Args)]
    pub struct LoadArgs {
        /// Base URL of the adit to load.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        pub url: String,
        /// Collector keys to upload with, one simulated site each
        /// (repeat the flag, or comma-separate in ADIT_LOAD_KEYS).
        #[arg(
            long = "key",
            env = "ADIT_LOAD_KEYS",
            value_delimiter = ',',
            hide_env_values = true
        )]
        pub keys: Vec<String>,
        /// Create this many site keys first (needs DATABASE_URL).
        #[arg(long)]
        pub create_sites: Option<usize>,
        /// First site id when creating keys.
        #[arg(long, default_value_t = 1000)]
        pub site_base: i32,
        /// Miners per simulated site = rows per upload.
        #[arg(long, default_value_t = 1000)]
        pub rows: usize,
        /// Uploads in flight at once (closed model).
        #[arg(long, default_value_t = 8)]
        pub concurrency: usize,
        /// Stop after this long.
        #[arg(long, default_value = "10s")]
        pub duration: humantime::Duration,
        /// Stop after this many uploads (0: no limit).
        #[arg(long, default_value_t = 0)]
        pub requests: u64,
        /// Distinct pre-built bodies per site.
        #[arg(long, default_value_t = 4)]
        pub bodies_per_site: usize,
        /// Put a per-row `timestamp` in the samples (else server time).
        #[arg(long)]
        pub timestamps: bool,
        /// Write the final report as JSON to this file.
        #[arg(long)]
        pub json_report: Option<std::path::PathBuf>,
        /// Allow a target that is not a loopback address.
        #[arg(long)]
        pub allow_remote: bool,
        /// Per-upload timeout.
        #[arg(long, default_value = "30s")]
        pub timeout: humantime::Duration,
    }

    impl LoadArgs {
        pub fn duration(&self) -> Duration {
            self.duration.into()
        }
    }
}

/// A simulated collector: its key and its ready-made gzip bodies.
#[derive(Debug)]
struct Collector {
    key: String,
    bodies: Vec<(Bytes, usize)>,
}

/// What a run measured.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub uploads_ok: u64,
    pub uploads_failed: u64,
    pub rows_acked: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub uploads_per_s: f64,
    pub mb_per_s_compressed: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    pub status_counts: BTreeMap<String, u64>,
}

/// Refuses targets off this machine unless allowed.
fn check_target(args: &Args) -> anyhow::Result<hyper::Uri> {
    let uri: hyper::Uri = args.url.parse().context("--url is not a valid URL")?;
    let host = uri.host().context("--url has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let loopback = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map(|mut addrs| {
            addrs.all(|a| {
                matches!(a.ip(), IpAddr::V4(v4) if v4.is_loopback()) || a.ip().is_loopback()
            })
        })
        .unwrap_or(false);
    if !loopback && !args.allow_remote {
        bail!("{host} is not a loopback address; pass --allow-remote to load it");
    }
    Ok(uri)
}

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 6),
        flate2::Compression::fast(),
    );
    enc.write_all(data).expect("gzip into memory");
    Bytes::from(enc.finish().expect("gzip into memory"))
}

/// Runs the load; `keys` pairs each site id with its collector key.
pub async fn run_with_keys(args: &Args, keys: Vec<(i32, String)>) -> anyhow::Result<Report> {
    let base = check_target(args)?;
    if keys.is_empty() {
        bail!("no collector keys: pass --key or --create-sites N (with DATABASE_URL)");
    }
    let now = chrono::Utc::now().timestamp();
    let collectors: Vec<Collector> = keys
        .into_iter()
        .map(|(site, key)| {
            let mut fleet = fleet::Fleet::new(site, args.rows, 42);
            let bodies = (0..args.bodies_per_site.max(1))
                .map(|i| {
                    let ts = args
                        .timestamps
                        .then_some(now - 60 * (args.bodies_per_site - i) as i64);
                    let json = fleet.collect_json(ts, 60);
                    (gzip(&json), fleet.len())
                })
                .collect();
            Collector { key, bodies }
        })
        .collect();
    let collectors = Arc::new(collectors);
    let upload_uri: hyper::Uri = format!(
        "{}/api/collector/upload",
        base.to_string().trim_end_matches('/')
    )
    .parse()?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build_http();

    let started = Instant::now();
    let deadline = started + args.duration();
    let next = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Mutex::new((Vec::<u32>::new(), Report::default())));
    let tasks: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (client, collectors, next, shared, uri) = (
                client.clone(),
                collectors.clone(),
                next.clone(),
                shared.clone(),
                upload_uri.clone(),
            );
            let (limit, timeout) = (args.requests, Duration::from(args.timeout));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut local = Report::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if (limit > 0 && n >= limit) || Instant::now() >= deadline {
                        break;
                    }
                    let c = &collectors[n as usize % collectors.len()];
                    let (body, rows) = &c.bodies[(n as usize / collectors.len()) % c.bodies.len()];
                    let req = hyper::Request::post(uri.clone())
                        .header("x-collector-key", &c.key)
                        .header("content-type", "application/json")
                        .header("content-encoding", "gzip")
                        .body(Full::new(body.clone()))
                        .expect("request builds");
                    let t0 = Instant::now();
                    let status = match tokio::time::timeout(timeout, async {
                        let resp = client.request(req).await?;
                        let status = resp.status();
                        resp.into_body().collect().await?;
                        Ok::<_, anyhow::Error>(status)
                    })
                    .await
                    {
                        Ok(Ok(s)) => s.as_u16().to_string(),
                        Ok(Err(_)) => "connection_error".to_string(),
                        Err(_) => "timeout".to_string(),
                    };
                    latencies.push(t0.elapsed().as_micros() as u32);
                    if status == "200" {
                        local.uploads_ok += 1;
                        local.rows_acked += *rows as u64;
                        local.mb_per_s_compressed += body.len() as f64;
                    } else {
                        local.uploads_failed += 1;
                        if status == "connection_error" {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    *local.status_counts.entry(status).or_default() += 1;
                }
                let mut s = shared.lock().expect("report lock");
                s.0.extend(latencies);
                s.1.uploads_ok += local.uploads_ok;
                s.1.uploads_failed += local.uploads_failed;
                s.1.rows_acked += local.rows_acked;
                s.1.mb_per_s_compressed += local.mb_per_s_compressed;
                for (k, v) in local.status_counts {
                    *s.1.status_counts.entry(k).or_default() += v;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (mut latencies, mut report) = Arc::try_unwrap(shared)
        .expect("tasks done")
        .into_inner()
        .expect("lock");
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    report.seconds = seconds;
    report.rows_per_s = report.rows_acked as f64 / seconds;
    report.uploads_per_s = report.uploads_ok as f64 / seconds;
    report.mb_per_s_compressed /= seconds * 1e6;
    report.latency_ms_p50 = pct(0.50);
    report.latency_ms_p90 = pct(0.90);
    report.latency_ms_p99 = pct(0.99);
    report.latency_ms_max = pct(1.0);
    Ok(report)
}

impl Report {
    pub fn print(&self) {
        println!(
            "uploads ok {} failed {} | rows acked {} in {:.1}s | {:.0} rows/s, {:.1} uploads/s, {:.2} MB/s gzip",
            self.uploads_ok, self.uploads_failed, self.rows_acked, self.seconds, self.rows_per_s,
            self.uploads_per_s, self.mb_per_s_compressed
        );
        println!(
            "latency ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1} | status {:?}",
            self.latency_ms_p50,
            self.latency_ms_p90,
            self.latency_ms_p99,
            self.latency_ms_max,
            self.status_counts
        );
    }
}

/// Runs `adit load` with keys already resolved, prints and saves the report.
pub async fn run(args: Args, keys: Vec<(i32, String)>) -> anyhow::Result<()> {
    let report = run_with_keys(&args, keys).await?;
    report.print();
    if let Some(path) = &args.json_report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if report.uploads_ok == 0 {
        bail!("no upload succeeded");
    }
    Ok(())
}

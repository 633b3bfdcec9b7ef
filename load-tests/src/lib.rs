//! adit's load generator: simulated edge collectors (one collector key per
//! site, a realistic fleet per site) posting gzip batches to a running adit,
//! in a closed model (C uploads always in flight) or an open model (a fixed
//! start rate), bounded by time and/or count, loopback only by default.
//! Bodies are built and compressed ahead so the generator measures the
//! server, not itself. `--verify` then checks through PostgreSQL that
//! exactly the acknowledged rows arrived.
//!
//! With `--dataset NAME` the uploads carry generated rows of a shipped
//! dataset ([`datasets`]) to `POST /api/datasets/{name}/upload` instead.

mod args;
pub mod bench;
pub mod datasets;
pub mod fleet;
pub mod report;
pub mod runner;
pub mod verify;

use std::io::Write as _;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use bytes::Bytes;

pub use args::LoadArgs;
pub use report::Report;
pub use runner::{Acked, AckedUpload, Body, Target};

/// Collection interval of the simulated collectors (edge collectors poll
/// their miners every 60 s).
const INTERVAL_S: i64 = 60;

/// Refuses targets off this machine unless allowed.
fn check_target(args: &LoadArgs) -> anyhow::Result<hyper::Uri> {
    let uri: hyper::Uri = args.url.parse().context("--url is not a valid URL")?;
    let host = uri.host().context("--url has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let loopback = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map(|addrs| addrs.into_iter().all(|a| is_loopback(a.ip())))
        .unwrap_or(false);
    if !loopback && !args.allow_remote {
        bail!("{host} is not a loopback address; pass --allow-remote to load it");
    }
    let base = args.url.trim_end_matches('/');
    Ok(format!("{base}{}", upload_path(args)).parse()?)
}

/// The path uploads go to: the collector upload, or the dataset's.
pub fn upload_path(args: &LoadArgs) -> String {
    match &args.dataset {
        Some(name) => format!("/api/datasets/{name}/upload"),
        None => "/api/collector/upload".to_string(),
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

pub fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 6),
        flate2::Compression::fast(),
    );
    enc.write_all(data).expect("gzip into memory");
    Bytes::from(enc.finish().expect("gzip into memory"))
}

/// Builds each site's fleet and its gzip bodies (miner telemetry; see
/// [`build_dataset_targets`] for a dataset).
pub fn build_targets(args: &LoadArgs, sites: Vec<(i32, String)>) -> Vec<Target> {
    let now = chrono::Utc::now().timestamp();
    let rounds = args.bodies_per_site.max(1);
    sites
        .into_iter()
        .map(|(site_id, key)| {
            let mut fleet = fleet::Fleet::new(site_id, args.rows, 42);
            let bodies = (0..rounds)
                .map(|i| {
                    let ts = args
                        .timestamps
                        .then(|| now - INTERVAL_S * (rounds - i) as i64);
                    let round = fleet.collect(ts, INTERVAL_S);
                    Body {
                        gzip: gzip(&round.json),
                        raw_len: round.json.len() as u64,
                        rows: round.rows as u64,
                        accepted_sum: round.accepted_sum,
                    }
                })
                .collect();
            Target {
                site_id,
                key,
                bodies,
            }
        })
        .collect()
}

/// Where each site's generated rows of `dataset` start, for `rows_per_site`
/// rows ending before `now` (Unix microseconds).
pub fn dataset_start(dataset: &str, rows_per_site: usize, now: i64) -> anyhow::Result<i64> {
    let catalog = adit_dataset::Catalog::shipped()?;
    let declared = catalog.get(dataset).map_err(|_| {
        anyhow::anyhow!(
            "--dataset {dataset:?} is not a shipped dataset; generated: {}",
            datasets::GENERATED.join(", ")
        )
    })?;
    datasets::start_micros(
        dataset,
        rows_per_site,
        now,
        declared.dataset().retention.days,
    )
}

/// Each site's generated rows of `dataset` as gzip bodies of `--rows`
/// rows, `--bodies-per-site` of them, built on all cores.
pub fn build_dataset_targets(
    args: &LoadArgs,
    dataset: &str,
    sites: Vec<(i32, String)>,
    now: i64,
) -> anyhow::Result<Vec<Target>> {
    let rounds = args.bodies_per_site.max(1);
    let rows = args.rows.max(1);
    let start = dataset_start(dataset, rows * rounds, now)?;
    let build = |site_id: i32, key: String| -> anyhow::Result<Target> {
        let mut source = datasets::Source::new(dataset, site_id, args.seed, start)?;
        let bodies = (0..rounds)
            .map(|_| {
                let json = match args.ndjson {
                    true => source.ndjson(rows),
                    false => source.json_array(rows),
                };
                Body {
                    gzip: gzip(&json),
                    raw_len: json.len() as u64,
                    rows: rows as u64,
                    accepted_sum: 0,
                }
            })
            .collect();
        Ok(Target {
            site_id,
            key,
            bodies,
        })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut sites: Vec<Option<(i32, String)>> = sites.into_iter().map(Some).collect();
    let chunk = sites.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = sites
            .chunks_mut(chunk)
            .map(|part| {
                scope.spawn(|| {
                    part.iter_mut()
                        .map(|s| {
                            let (site, key) = s.take().expect("each site once");
                            build(site, key)
                        })
                        .collect::<anyhow::Result<Vec<Target>>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(h.join().expect("a body builder panicked")?);
        }
        Ok(out)
    })
}

/// Runs the load against `sites` (site id, collector key); with `verify`
/// set, checks the database afterwards. The report's `verified` says how
/// that went.
pub async fn run_load(args: &LoadArgs, sites: Vec<(i32, String)>) -> anyhow::Result<Report> {
    let uri = check_target(args)?;
    if sites.is_empty() {
        bail!("no collector keys: pass --key or --create-sites N (with DATABASE_URL)");
    }
    let site_ids: Vec<i32> = sites.iter().map(|(s, _)| *s).collect();
    if let Some(dataset) = &args.dataset {
        return run_dataset_load(args, dataset, uri, sites).await;
    }
    let db = match args.verify {
        true => {
            let url = args
                .database_url
                .as_deref()
                .context("--verify needs DATABASE_URL")?;
            Some(verify::connect(url).await?)
        }
        false => None,
    };
    let before = match &db {
        Some(db) => verify::snapshot(db, &site_ids).await?,
        None => Default::default(),
    };
    let targets = Arc::new(build_targets(args, sites));
    let (mut report, acked, _) = runner::run(args, uri, targets).await;
    if let Some(db) = &db {
        let after = verify::snapshot(db, &site_ids).await?;
        report.verified = Some(verify::compare(&site_ids, &before, &after, &acked));
    }
    Ok(report)
}

/// [`run_load`] for `--dataset`: generated rows; `--verify` per the
/// dataset's write mode ([`datasets::verify`]).
async fn run_dataset_load(
    args: &LoadArgs,
    dataset: &str,
    uri: hyper::Uri,
    sites: Vec<(i32, String)>,
) -> anyhow::Result<Report> {
    let site_ids: Vec<i32> = sites.iter().map(|(s, _)| *s).collect();
    let now = chrono::Utc::now().timestamp_micros();
    let targets = Arc::new(build_dataset_targets(args, dataset, sites, now)?);
    let since = dataset_start(dataset, args.rows.max(1) * args.bodies_per_site.max(1), now)?;
    let verifier = match args.verify {
        true => {
            let url = args
                .database_url
                .as_deref()
                .context("--verify needs DATABASE_URL")?;
            let client = verify::connect(url).await?;
            Some(datasets::verify::Verifier::before(client, dataset, site_ids, since).await?)
        }
        false => None,
    };
    let (mut report, acked, log) = runner::run(args, uri, targets.clone()).await;
    report.dataset = Some(dataset.to_string());
    if let Some(v) = verifier {
        report.verified = Some(v.after(&targets, &acked, &log).await?);
    }
    Ok(report)
}

/// `adit load`: runs, prints, saves the JSON report; fails when nothing
/// succeeded or verification found a difference.
pub async fn run(args: LoadArgs, sites: Vec<(i32, String)>) -> anyhow::Result<()> {
    let report = run_load(&args, sites).await?;
    report.print();
    if let Some(path) = &args.json_report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.verified == Some(false) {
        bail!("verification failed: PostgreSQL does not hold exactly the acknowledged rows");
    }
    if report.verified == Some(true) {
        println!("  verified: PostgreSQL holds exactly the acknowledged rows");
    }
    if report.uploads_ok == 0 {
        bail!("no upload succeeded");
    }
    Ok(())
}

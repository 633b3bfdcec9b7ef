//! adit's load generator: simulated edge collectors (one collector key per
//! site, a realistic fleet per site) posting gzip batches to a running adit,
//! in a closed model (C uploads always in flight) or an open model (a fixed
//! start rate), bounded by time and/or count, loopback only by default.
//! Bodies are built and compressed ahead so the generator measures the
//! server, not itself. `--verify` then checks through PostgreSQL that
//! exactly the acknowledged rows arrived.

mod args;
pub mod bench;
pub mod datasets;
pub mod fleet;
pub mod report;
pub mod runner;
pub mod verify;

use std::io::Write as _;
use std::net::{IpAddr, ToSocketAddrs};

use anyhow::{bail, Context as _};
use bytes::Bytes;

pub use args::LoadArgs;
pub use report::Report;
pub use runner::{Acked, Body, Target};

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
    Ok(format!("{base}/api/collector/upload").parse()?)
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

/// Builds each site's fleet and its gzip bodies.
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

/// Runs the load against `sites` (site id, collector key); with `verify`
/// set, checks the database afterwards. The report's `verified` says how
/// that went.
pub async fn run_load(args: &LoadArgs, sites: Vec<(i32, String)>) -> anyhow::Result<Report> {
    let uri = check_target(args)?;
    if sites.is_empty() {
        bail!("no collector keys: pass --key or --create-sites N (with DATABASE_URL)");
    }
    let site_ids: Vec<i32> = sites.iter().map(|(s, _)| *s).collect();
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
    let targets = build_targets(args, sites);
    let (mut report, acked) = runner::run(args, uri, targets).await;
    if let Some(db) = &db {
        let after = verify::snapshot(db, &site_ids).await?;
        report.verified = Some(verify::compare(&site_ids, &before, &after, &acked));
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

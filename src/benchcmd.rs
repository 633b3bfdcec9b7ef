//! `make bench`'s helpers. `adit copy-file` writes the rows a load run would
//! upload as a PostgreSQL binary COPY file, through the real parse and
//! encode path, so psql's raw `\copy … (FORMAT binary)` and adit load the
//! very same rows into the same table.
//!
//! The rows come in the order collectors send them: round after round of
//! the same fleet (`--sites` sites of `--miners` miners), each round one
//! collection later. Order matters to PostgreSQL: the btree on
//! (site_id, miner_id, ts) takes rows of ever new miners at its right
//! edge almost for free, while rounds of the same miners land all over it,
//! as they do under a load run.
//!
//! With `--dataset NAME` the file holds the rows `adit load --dataset`
//! sends (`adit_load::datasets::copyfile`), and `--psql-script` writes the
//! psql script that loads them as adit writes that dataset.
//!
//! `adit bench-report` writes `latest.json` and prints the table from the
//! load runs' JSON reports (`adit_load::bench`); its `rows-per-s` and
//! `upload-rate` subcommands are the sums the script makes between runs.

use std::io::Write as _;
use std::path::PathBuf;

use adit_ingest::validate::{parse_batch, Rules};
use adit_load::fleet::Fleet;
use adit_types::MICROS_PER_DAY;
use adit_writer::copy;
use anyhow::{bail, Context as _};
use bytes::BytesMut;

#[derive(Debug, clap::Args)]
pub struct CopyFileArgs {
    /// Rows to write.
    #[arg(long, default_value_t = 500_000)]
    pub rows: usize,
    /// Miners per site (rows per simulated upload).
    #[arg(long, default_value_t = 1000)]
    pub miners: usize,
    /// Sites in the fleet (as `adit load --create-sites`); the rows are
    /// rounds of all of them. Each part takes its share of the sites.
    #[arg(long, default_value_t = 8)]
    pub sites: usize,
    /// Split the rows over this many files (`<out>.0`, `<out>.1`, …) for
    /// parallel COPY streams; 1 writes `<out>` itself.
    #[arg(long, default_value_t = 1)]
    pub parts: usize,
    /// First site id (as `adit load --site-base`).
    #[arg(long, default_value_t = 1000)]
    pub site_base: i32,
    #[arg(long)]
    pub out: PathBuf,
    /// Rows of this shipped dataset instead of miner telemetry: the rows
    /// `adit load --dataset NAME --create-sites <sites> --rows <miners>`
    /// sends with `--bodies-per-site` = rows / sites / miners (same seed,
    /// same sites, the same minute), for the dataset's table.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Seed of the dataset rows (as `adit load --seed`).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// With --dataset: also write a psql script that loads the file as
    /// adit writes the dataset (an upsert dataset: staging table and the
    /// same INSERT … ON CONFLICT, in one transaction); `<script>.<part>`
    /// with --parts.
    #[arg(long)]
    pub psql_script: Option<PathBuf>,
}

pub fn copy_file(args: CopyFileArgs) -> anyhow::Result<()> {
    if args.miners == 0 || args.parts == 0 || args.sites < args.parts {
        bail!("--miners must be positive and --sites at least --parts (at least 1)");
    }
    if let Some(dataset) = &args.dataset {
        return copy_dataset_file(&args, dataset);
    }
    // Every row falls on today (UTC), one second per round from 01:00, so
    // the file fits the day's partition whenever it is loaded that day.
    let day = chrono::Utc::now()
        .timestamp_micros()
        .div_euclid(MICROS_PER_DAY)
        * MICROS_PER_DAY;
    let rules = Rules::default();
    let per_part = args.rows.div_ceil(args.parts);
    let mut written = 0usize;
    for part in 0..args.parts {
        let path = match args.parts {
            1 => args.out.clone(),
            _ => PathBuf::from(format!("{}.{part}", args.out.display())),
        };
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        let sites = (part * args.sites / args.parts)..((part + 1) * args.sites / args.parts);
        let mut fleets: Vec<(i32, Fleet)> = sites
            .map(|i| {
                let site = args.site_base + i as i32;
                (site, Fleet::new(site, args.miners, 42))
            })
            .collect();
        let mut buf = BytesMut::with_capacity(4 << 20);
        copy::begin(&mut buf);
        let mut rows = 0;
        'rounds: for round in 0.. {
            let stamp = day + HOUR_US + round * 1_000_000;
            for (site, fleet) in &mut fleets {
                if rows >= per_part || written >= args.rows {
                    break 'rounds;
                }
                let json = fleet.collect_json(None, 60);
                let parsed = parse_batch(&json, &rules, stamp)?;
                for s in parsed
                    .samples
                    .iter()
                    .take((per_part - rows).min(args.rows - written))
                {
                    copy::encode_sample(&mut buf, *site, None, s);
                    rows += 1;
                    written += 1;
                }
                file.write_all(&buf)?;
                buf.clear();
            }
        }
        copy::end(&mut buf);
        file.write_all(&buf)?;
        file.flush()?;
        eprintln!("Wrote {rows} rows to {}.", path.display());
    }
    println!("{}", copy::COPY_COLUMNS);
    Ok(())
}

const HOUR_US: i64 = MICROS_PER_DAY / 24;

/// `adit copy-file --dataset`: each part holds its share of the sites,
/// `--rows / --sites` rows each; prints the COPY column list.
fn copy_dataset_file(args: &CopyFileArgs, dataset: &str) -> anyhow::Result<()> {
    use adit_load::datasets::copyfile;
    let rows_per_site = args.rows / args.sites;
    if rows_per_site == 0 {
        bail!("--rows must be at least --sites");
    }
    let now = chrono::Utc::now().timestamp_micros();
    for part in 0..args.parts {
        let path = match args.parts {
            1 => args.out.clone(),
            _ => PathBuf::from(format!("{}.{part}", args.out.display())),
        };
        let sites = (part * args.sites / args.parts)..((part + 1) * args.sites / args.parts);
        let plan = copyfile::Plan {
            dataset: dataset.to_string(),
            sites: sites.map(|i| args.site_base + i as i32).collect(),
            rows_per_site,
            rows_per_upload: args.miners,
            seed: args.seed,
            now,
        };
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        let rows = copyfile::write(&plan, &mut file)?;
        eprintln!("Wrote {rows} rows of {dataset} to {}.", path.display());
        if let Some(script) = &args.psql_script {
            let script = match args.parts {
                1 => script.clone(),
                _ => PathBuf::from(format!("{}.{part}", script.display())),
            };
            let abs = std::path::absolute(&path)?;
            std::fs::write(
                &script,
                copyfile::psql_script(dataset, &abs.display().to_string())?,
            )
            .with_context(|| format!("cannot write {}", script.display()))?;
        }
    }
    println!("{}", copyfile::columns(dataset)?);
    Ok(())
}

/// `adit bench-report`: `make bench`'s report, and the rates its runs take
/// from one another.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchReportArgs {
    #[command(subcommand)]
    pub command: Option<BenchRateCommand>,
    /// Where the load runs wrote their JSON reports (e2e.json, half.json,
    /// frontdoor.json, overload.json) and criterion.json; latest.json is
    /// written there.
    #[arg(long, default_value = "target/bench")]
    pub dir: PathBuf,
    /// Best raw psql binary COPY rate with 1 stream (rows/s).
    #[arg(long, required = true)]
    pub raw_1: Option<u64>,
    /// Best raw psql binary COPY rate with 2 streams (rows/s).
    #[arg(long, required = true)]
    pub raw_2: Option<u64>,
    /// adit's peak RSS (MiB) over the end-to-end and half-rate runs.
    #[arg(long, required = true)]
    pub rss: Option<f64>,
    /// adit's peak RSS (MiB) under the 3x overload.
    #[arg(long, required = true)]
    pub over_rss: Option<f64>,
    /// adit's user + system clock ticks during the end-to-end run.
    #[arg(long, required = true)]
    pub cpu_ticks: Option<u64>,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchRateCommand {
    /// Print the rows/s of a copy of --rows rows between two
    /// `date +%s.%N` stamps.
    RowsPerS {
        #[arg(long)]
        rows: u64,
        #[arg(long)]
        from: f64,
        #[arg(long)]
        to: f64,
    },
    /// Print a load run's uploads/s (from its --json-report) times --times,
    /// to two decimals.
    UploadRate {
        #[arg(long)]
        report: PathBuf,
        #[arg(long)]
        times: f64,
    },
}

pub fn bench_report(args: BenchReportArgs) -> anyhow::Result<()> {
    use adit_load::bench;
    match args.command {
        Some(BenchRateCommand::RowsPerS { rows, from, to }) => {
            println!("{}", bench::rows_per_s(rows, from, to)?);
        }
        Some(BenchRateCommand::UploadRate { report, times }) => {
            println!("{}", bench::scaled_upload_rate(&report, times)?);
        }
        None => {
            let measured = bench::Measured {
                raw_1: args.raw_1.context("--raw-1 is required")?,
                raw_2: args.raw_2.context("--raw-2 is required")?,
                rss_mib: args.rss.context("--rss is required")?,
                over_rss_mib: args.over_rss.context("--over-rss is required")?,
                cpu_ticks: args.cpu_ticks.context("--cpu-ticks is required")?,
            };
            bench::report(&args.dir, measured)?;
        }
    }
    Ok(())
}

//! `adit copy-file` (for `make bench`): writes the rows a load run would
//! upload as a PostgreSQL binary COPY file, through the real parse and
//! encode path, so psql's raw `\copy … (FORMAT binary)` and adit load the
//! very same rows into the same table.

use std::io::Write as _;
use std::path::PathBuf;

use adit_ingest::validate::{parse_batch, Rules};
use adit_load::fleet::Fleet;
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
    /// Split the rows over this many files (`<out>.0`, `<out>.1`, …) for
    /// parallel COPY streams; 1 writes `<out>` itself.
    #[arg(long, default_value_t = 1)]
    pub parts: usize,
    /// First site id.
    #[arg(long, default_value_t = 1)]
    pub site_base: i32,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn copy_file(args: CopyFileArgs) -> anyhow::Result<()> {
    if args.miners == 0 || args.parts == 0 {
        bail!("--miners and --parts must be positive");
    }
    let now = chrono::Utc::now().timestamp_micros();
    let rules = Rules::default();
    let per_part = args.rows.div_ceil(args.parts);
    let mut written = 0usize;
    let mut site = args.site_base;
    for part in 0..args.parts {
        let path = match args.parts {
            1 => args.out.clone(),
            _ => PathBuf::from(format!("{}.{part}", args.out.display())),
        };
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        );
        let mut buf = BytesMut::with_capacity(4 << 20);
        copy::begin(&mut buf);
        let mut rows = 0;
        while rows < per_part && written < args.rows {
            let mut fleet = Fleet::new(site, args.miners, 42);
            let json = fleet.collect_json(None, 60);
            let parsed = parse_batch(&json, &rules, now)?;
            for s in parsed
                .samples
                .iter()
                .take((per_part - rows).min(args.rows - written))
            {
                copy::encode_sample(&mut buf, site, None, s);
                rows += 1;
                written += 1;
            }
            file.write_all(&buf)?;
            buf.clear();
            site += 1;
        }
        copy::end(&mut buf);
        file.write_all(&buf)?;
        file.flush()?;
        eprintln!("Wrote {rows} rows to {}.", path.display());
    }
    println!("{}", copy::COPY_COLUMNS);
    Ok(())
}

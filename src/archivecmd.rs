//! `adit archive verify | ls | compact`.

use anyhow::bail;
use tokio_postgres::Client;

use adit_writer::archive::verify::{self, Scope};
use adit_writer::archive::{maintain, Archive, ArchiveConfig};

use crate::cli::{ArchiveCommand, WindowScope};

fn scope(w: &WindowScope) -> Scope {
    Scope {
        site_id: w.site,
        from: w.from,
        to: w.to,
    }
}

pub async fn run(
    client: &mut Client,
    database_url: &str,
    archive_url: &str,
    command: ArchiveCommand,
) -> anyhow::Result<()> {
    let archive = Archive::from_url(archive_url)?;
    match command {
        ArchiveCommand::Verify(w) => {
            let windows = verify::check(client, &archive, &scope(&w)).await?;
            let mut bad = 0;
            let mut pending = 0;
            for c in &windows {
                let status = if c.exact() {
                    "ok"
                } else if c.pending() {
                    pending += 1;
                    "pending"
                } else {
                    bad += 1;
                    "MISMATCH"
                };
                println!(
                    "site={}\tdate={}\t{status}\tpostgres={} manifest={} files={} (in {} files) queued={}{}",
                    c.site_id,
                    c.day,
                    c.database.rows,
                    c.manifest.rows,
                    c.files.rows,
                    c.file_count,
                    c.queued_rows,
                    if c.exact() || c.database.rows != c.files.rows { "" } else { " checksum differs" },
                );
            }
            println!(
                "{} window(s): {} exact, {pending} still being archived, {bad} with differences",
                windows.len(),
                windows.len() - bad - pending
            );
            if bad > 0 {
                bail!("the archive differs from PostgreSQL in {bad} window(s)");
            }
            Ok(())
        }
        ArchiveCommand::Ls(w) => {
            for line in verify::list(client, &scope(&w)).await? {
                println!("{line}");
            }
            Ok(())
        }
        ArchiveCommand::Compact { site, date } => {
            let cfg = ArchiveConfig::new(archive_url, database_url);
            let rows = maintain::compact(client, &archive, &cfg, (site, date)).await?;
            eprintln!("Compacted site {site} {date}: {rows} rows.");
            Ok(())
        }
    }
}

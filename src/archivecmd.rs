//! `adit archive verify | ls | compact | backfill`.

use anyhow::bail;
use tokio_postgres::Client;

use adit_archive::verify::{self, Scope, Status};
use adit_archive::{dataset, maintain, Archive, ArchiveConfig};
use adit_types::dataset::Dataset;

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
        ArchiveCommand::Verify(ref w) if w.dataset.is_some() => {
            let name = w.dataset.as_deref().unwrap_or_default();
            let d = applied_dataset(client, name).await?;
            verify_dataset(client, &archive, &d, &scope(w)).await
        }
        ArchiveCommand::Ls(ref w) if w.dataset.is_some() => {
            let name = w.dataset.as_deref().unwrap_or_default();
            for line in dataset::verify::list(client, name, &scope(w)).await? {
                println!("{line}");
            }
            Ok(())
        }
        ArchiveCommand::Backfill(ref w) if w.dataset.is_some() => {
            let name = w.dataset.as_deref().unwrap_or_default();
            let d = applied_dataset(client, name).await?;
            let marked = dataset::verify::mark_windows(client, &d, &scope(w)).await?;
            println!(
                "{marked} window(s) of dataset {name} marked for the archive: `adit serve` with \
                 --archive-url exports each from PostgreSQL once its day has ended"
            );
            Ok(())
        }
        ArchiveCommand::Verify(w) => verify(client, &archive, &scope(&w)).await,
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
        ArchiveCommand::Backfill(w) => {
            let cfg = ArchiveConfig::new(archive_url, database_url);
            let done = maintain::backfill(client, &archive, &cfg, &scope(&w)).await?;
            for ((site, day), rows) in &done {
                println!("site={site}\tdate={day}\tbackfilled\trows={rows}");
            }
            println!(
                "{} window(s) backfilled from PostgreSQL, {} rows in their files now",
                done.len(),
                done.iter().map(|(_, rows)| rows).sum::<u64>()
            );
            Ok(())
        }
    }
}

/// One line per window and a summary; fails when rows are missing or differ.
async fn verify(client: &Client, archive: &Archive, scope: &Scope) -> anyhow::Result<()> {
    let windows = verify::check(client, archive, scope).await?;
    let count = |status: Status| windows.iter().filter(|w| w.status() == status).count();
    let (exact, pending, predates, missing, bad) = (
        count(Status::Exact),
        count(Status::Pending),
        count(Status::PredatesArchive),
        count(Status::Missing),
        count(Status::Mismatch),
    );
    for c in &windows {
        let status = c.status();
        let note = match status {
            Status::Exact | Status::Pending => String::new(),
            Status::PredatesArchive => format!(
                " unarchived={} (written before the archive was enabled)",
                c.database.rows - c.manifest.rows - c.queued_rows
            ),
            Status::Missing => format!(
                " unarchived={} (neither queued nor in a file)",
                c.database.rows - c.manifest.rows - c.queued_rows
            ),
            Status::Mismatch if c.manifest != c.files => " files differ from the manifest".into(),
            Status::Mismatch if c.database.rows == c.manifest.rows => " checksum differs".into(),
            Status::Mismatch => " more rows archived than PostgreSQL holds".into(),
        };
        println!(
            "site={}\tdate={}\t{}\tpostgres={} manifest={} files={} (in {} files) queued={}{note}",
            c.site_id,
            c.day,
            status.word(),
            c.database.rows,
            c.manifest.rows,
            c.files.rows,
            c.file_count,
            c.queued_rows,
        );
    }
    println!(
        "{} window(s): {exact} exact, {pending} still being archived, {predates} predate the \
         archive, {missing} missing rows, {bad} with differences",
        windows.len(),
    );
    if predates > 0 {
        println!(
            "Rows written before the archive was enabled are archived by `adit archive backfill`."
        );
    }
    if missing + bad > 0 {
        bail!(
            "the archive differs from PostgreSQL: {missing} window(s) missing rows, {bad} with \
             other differences"
        );
    }
    Ok(())
}

/// The declaration `adit migrate` last applied for dataset `name` (its table
/// as it is in PostgreSQL).
async fn applied_dataset(client: &Client, name: &str) -> anyhow::Result<Dataset> {
    let Some(row) = client
        .query_opt(
            "SELECT declaration FROM dataset_declarations WHERE dataset = $1",
            &[&name],
        )
        .await?
    else {
        bail!("unknown dataset {name:?}: no declaration of it was applied (adit migrate)");
    };
    Ok(serde_json::from_value(row.get(0))?)
}

/// `verify --dataset`: one line per window and a summary; fails when a
/// window is MISSING or MISMATCH.
async fn verify_dataset(
    client: &Client,
    archive: &Archive,
    d: &Dataset,
    scope: &Scope,
) -> anyhow::Result<()> {
    use dataset::verify::Status as S;
    let windows = dataset::verify::check(client, archive, d, scope).await?;
    let count = |status: S| windows.iter().filter(|w| w.status() == status).count();
    let (exact, pending, missing, bad) = (
        count(S::Exact),
        count(S::Pending),
        count(S::Missing),
        count(S::Mismatch),
    );
    for c in &windows {
        let status = c.status();
        let mut note = String::new();
        if c.missing_files > 0 {
            note += &format!(" {} recorded file(s) not in the store", c.missing_files);
        }
        if c.bad_files > 0 {
            note += &format!(" {} file(s) differ from the manifest", c.bad_files);
        }
        match status {
            S::Exact if c.beyond_retention && c.database.rows == 0 => {
                note += " (beyond retention: PostgreSQL dropped the day, the archive keeps it)"
            }
            S::Pending if c.dirty => note += " (changed since exported)",
            S::Pending => note += " (day not ended)",
            _ => {}
        }
        println!(
            "dataset={}\tsite={}\tdate={}\t{}\tpostgres={} manifest={} files={} (in {} files){note}",
            d.name,
            c.site_id,
            c.day,
            status.word(),
            c.database.rows,
            c.manifest.rows,
            c.files.rows,
            c.file_count,
        );
    }
    println!(
        "{} window(s): {exact} exact, {pending} pending, {missing} missing rows, {bad} with \
         differences",
        windows.len(),
    );
    if missing + bad > 0 {
        bail!(
            "dataset {}'s archive differs from PostgreSQL: {missing} window(s) missing rows, \
             {bad} with other differences",
            d.name
        );
    }
    Ok(())
}

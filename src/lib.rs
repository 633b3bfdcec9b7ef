//! The `adit` binary's library: command line, wiring and the control
//! commands. The pipeline itself lives in the crates it wires together:
//! `ingest/` (front door) → `writer/` (PostgreSQL) → `rollup/`.

pub mod archivecmd;
pub mod benchcmd;
pub mod bytesize;
pub mod cli;
pub mod config;
pub mod datasets;
pub mod db;
pub mod keys;
pub mod loadcmd;
pub mod migrate;
pub mod serve;
pub mod top;

use cli::{Cli, Command, ConfigCommand, KeysCommand, LogFormat, RollupCommand};

/// Runs one command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            if let Some((path, from)) = &args.effective.file {
                tracing::info!(config = %path.display(), from = %from, "Read the configuration file.");
            }
            serve::serve(args.into_config()).await
        }
        Command::Config {
            command: ConfigCommand::Print(args),
        } => {
            print!(
                "{}",
                config::print::render(&args.effective, std::env::vars())
            );
            Ok(())
        }
        Command::Migrate(args) => {
            let catalog = adit_dataset::Catalog::load(args.datasets_dir.as_deref())?;
            let mut client = db::connect(&args.db.database_url).await?;
            let (applied, datasets) = migrate::migrate_with(&mut client, &catalog).await?;
            for d in &datasets {
                match d {
                    datasets::Applied::Created { dataset } => {
                        eprintln!("Created the table of dataset {dataset}.")
                    }
                    datasets::Applied::Changed {
                        dataset,
                        statements,
                    } => {
                        eprintln!("Applied the new declaration of dataset {dataset}.");
                        for sql in statements {
                            eprintln!("  {sql}");
                        }
                    }
                }
            }
            eprintln!(
                "Database is up to date ({} migration(s) applied now, {} dataset(s) declared).",
                applied.len(),
                catalog.len()
            );
            Ok(())
        }
        Command::Keys { db, command } => {
            let mut client = db::connect(db.url()?).await?;
            migrate::migrate(&mut client).await?;
            match command {
                KeysCommand::Create { site, name, .. } => {
                    keys::create(&client, site, name.as_deref()).await
                }
                KeysCommand::List => keys::list(&client).await,
                KeysCommand::Revoke { id } => keys::revoke(&client, id).await,
                KeysCommand::SetRate {
                    id, uploads_per_s, ..
                } => keys::set_rate(&client, id, uploads_per_s).await,
            }
        }
        Command::Load(args) => loadcmd::load(args).await,
        Command::Top(args) => top::run(args).await,
        Command::CopyFile(args) => benchcmd::copy_file(args),
        Command::BenchReport(args) => benchcmd::bench_report(args),
        Command::Archive {
            db,
            archive,
            command,
        } => {
            let mut client = db::connect(db.url()?).await?;
            migrate::migrate(&mut client).await?;
            archivecmd::run(&mut client, db.url()?, archive.url()?, command).await
        }
        Command::Rollup {
            db,
            command: RollupCommand::Run { from, to, rollup },
        } => {
            let mut client = db::connect(db.url()?).await?;
            migrate::migrate(&mut client).await?;
            let cfg = rollup.into_config();
            let now = chrono::Utc::now();
            let cutoff = match (from, to) {
                (Some(from), Some(to)) => {
                    let marked = adit_rollup::schedule::mark_range(&client, from, to).await?;
                    eprintln!("Marked {marked} hour(s) for recomputation.");
                    to.min(now)
                }
                _ => now - chrono::Duration::from_std(cfg.grace)?,
            };
            let stats = adit_rollup::schedule::run_once(&mut client, &cfg, cutoff, now).await?;
            eprintln!(
                "Rolled up {} hour(s) and {} day(s); lag now {}s.",
                stats.hours,
                stats.days,
                stats.lag.as_secs()
            );
            if stats.failed > 0 {
                anyhow::bail!(
                    "the database refused {} hour(s) or day(s), logged above; they stay marked \
                     (rollup_dirty_hours.last_error) and are retried after a backoff",
                    stats.failed
                );
            }
            Ok(())
        }
    }
}

/// Logs to stderr, level from `RUST_LOG` (default `info`): text lines, or
/// one JSON object per line (timestamp, level, fields, target) for log
/// shippers.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

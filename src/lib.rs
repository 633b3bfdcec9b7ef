//! The `adit` binary's library: command line, wiring and the control
//! commands. The pipeline itself lives in the crates it wires together:
//! `ingest/` (front door) → `writer/` (PostgreSQL) → `rollup/`.

pub mod cli;
pub mod db;
pub mod keys;
pub mod migrate;
pub mod serve;

use cli::{Cli, Command, KeysCommand};

/// Runs one command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(args.into_config()).await,
        Command::Migrate(db) => {
            let mut client = db::connect(&db.database_url).await?;
            let applied = migrate::migrate(&mut client).await?;
            eprintln!(
                "Database is up to date ({} migration(s) applied now).",
                applied.len()
            );
            Ok(())
        }
        Command::Keys { db, command } => {
            let mut client = db::connect(&db.database_url).await?;
            migrate::migrate(&mut client).await?;
            match command {
                KeysCommand::Create { site, name, .. } => {
                    keys::create(&client, site, name.as_deref()).await
                }
                KeysCommand::List => keys::list(&client).await,
                KeysCommand::Revoke { id } => keys::revoke(&client, id).await,
            }
        }
        Command::Load(args) => {
            let mut keys: Vec<(i32, String)> = args
                .keys
                .iter()
                .enumerate()
                .map(|(i, k)| (args.site_base + i as i32, k.clone()))
                .collect();
            if let Some(n) = args.create_sites {
                let url = std::env::var("DATABASE_URL")
                    .map_err(|_| anyhow::anyhow!("--create-sites needs DATABASE_URL"))?;
                let mut client = db::connect(&url).await?;
                migrate::migrate(&mut client).await?;
                for i in 0..n as i32 {
                    let site = args.site_base + keys.len() as i32 + i;
                    let (_, key) =
                        adit_ingest::auth::create_key(&client, Some(site), Some("load-test"))
                            .await?;
                    keys.push((site, key));
                }
            }
            adit_load::run(args, keys).await
        }
    }
}

/// Logs to stderr, level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

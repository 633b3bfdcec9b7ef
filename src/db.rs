//! Database connections for the control side (migrations, keys, lookups).

use adit_types::pg::DbErrorText;
use anyhow::Context as _;
use tokio_postgres::{Client, NoTls};

/// One connection, in UTC, with its driver task spawned.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(db_error)
        .with_context(|| {
            "cannot connect to PostgreSQL at DATABASE_URL (for a private cluster run `make run`, \
             or `scripts/pg.sh start` and use `scripts/pg.sh url`)"
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %DbErrorText(&e), "Connection closed.");
        }
    });
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET client_min_messages = warning")
        .await
        .map_err(db_error)?;
    Ok(client)
}

/// A database error as an `anyhow::Error` whose text is what the database
/// said, with its SQLSTATE (the driver's own text is just "db error").
pub fn db_error(e: tokio_postgres::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", DbErrorText(&e))
}

/// How long a request waits for a pooled connection before it is answered
/// 503 (the front door's key lookups wait less, `auth::POOL_WAIT`): a pool
/// exhausted by a flood never queues requests without limit.
pub const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opening a new pooled connection may take this long on a loaded machine.
const POOL_CONNECT: std::time::Duration = std::time::Duration::from_secs(10);

/// A pool of up to `size` connections, opened on demand.
pub fn pool(url: &str, size: usize) -> anyhow::Result<deadpool_postgres::Pool> {
    let config: tokio_postgres::Config = url.parse().context("DATABASE_URL is not a valid URL")?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Ok(deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_CONNECT))
        .build()?)
}

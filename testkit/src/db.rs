//! A database per test on the cluster behind `ADIT_TEST_DATABASE_URL` (or
//! `DATABASE_URL`): `adit_t_<name>_<random>`, so tests run side by side.

use tokio_postgres::NoTls;

/// The cluster's admin URL; tests fail loudly without it.
pub fn admin_url() -> String {
    std::env::var("ADIT_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .expect(
            "these tests need PostgreSQL: run `make test`, or `scripts/pg.sh start` and \
             export DATABASE_URL=$(scripts/pg.sh url)",
        )
}

/// Replaces the database name of a URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("URL has a database");
    format!("{base}/{db}")
}

/// A connection (its task spawned on the current runtime), in UTC.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to {url}: {e}; is `scripts/pg.sh start` running?")
        });
    tokio::spawn(conn);
    client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    client
}

/// A new empty database, named after the test; left for
/// `scripts/pg.sh drop-test-databases` (see [`TestDb`] for one dropped
/// when the test ends).
pub async fn fresh_database(name: &str) -> String {
    fresh_database_on(&admin_url(), name).await
}

/// A new empty database on the cluster behind `admin`.
pub async fn fresh_database_on(admin: &str, name: &str) -> String {
    with_database(admin, &create(admin, name).await)
}

async fn create(admin: &str, name: &str) -> String {
    let client = connect(admin).await;
    let db = format!("adit_t_{}_{}", name, rand::random::<u32>());
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    db
}

/// A fresh database that is dropped (its connections closed first) when
/// the fixture is.
#[derive(Debug)]
pub struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    /// A new empty database named after the test.
    pub async fn new(name: &str) -> Self {
        let admin = admin_url();
        let name = create(&admin, name).await;
        let url = with_database(&admin, &name);
        Self { admin, name, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    /// Drops the database from a thread of its own (Drop cannot await, and
    /// the test's runtime may be the one blocked here).
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin, NoTls).await?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot drop test database {}: {e}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exists(name: &str) -> bool {
        let client = connect(&admin_url()).await;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        n == 1
    }

    #[tokio::test]
    async fn a_test_database_is_dropped_with_its_fixture_even_while_connected() {
        let db = TestDb::new("testkit").await;
        let name = db.name().to_string();
        assert!(name.starts_with("adit_t_testkit_"), "{name}");
        let client = connect(db.url()).await;
        client
            .batch_execute("CREATE TABLE t (x int)")
            .await
            .unwrap();
        assert!(exists(&name).await);
        drop(db);
        assert!(!exists(&name).await, "{name} is still there");
        assert!(client.batch_execute("SELECT 1").await.is_err());
    }

    #[test]
    fn with_database_replaces_the_name() {
        assert_eq!(
            with_database("postgres://adit@127.0.0.1:54329/adit", "adit_t_x_1"),
            "postgres://adit@127.0.0.1:54329/adit_t_x_1"
        );
    }
}

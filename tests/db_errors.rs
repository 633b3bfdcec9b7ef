//! Issue 17 item 2: every database error adit logs carries the database's
//! own message and SQLSTATE (tokio_postgres::Error's Display alone says
//! "db error"), through `adit_types::pg::DbErrorText`.

mod common;

use common::*;

#[tokio::test]
async fn database_errors_show_the_message_and_sqlstate() {
    let db = TestDb::new("db_errors").await;
    let client = connect(db.url()).await;
    let e = client
        .query_one("SELECT 9223372036854775807::int8 + 1", &[])
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "db error",
        "the driver's own text says nothing"
    );
    let text = adit_types::pg::describe(&e);
    assert_eq!(text, "bigint out of range (SQLSTATE 22003)");

    let e = client
        .batch_execute("CREATE TABLE t (v int CHECK (v > 0)); INSERT INTO t VALUES (0)")
        .await
        .unwrap_err();
    let text = adit_types::pg::describe(&e);
    assert!(
        text.starts_with(
            "new row for relation \"t\" violates check constraint \"t_v_check\" (SQLSTATE 23514)"
        ) && text.contains("detail: Failing row contains (0).")
            && text.contains("constraint: t_v_check"),
        "{text}"
    );

    // Each crate's error enum shows the same.
    let e = client.query_one("SELECT 1/0", &[]).await.unwrap_err();
    let writer = adit_writer::Error::from(e).to_string();
    assert_eq!(writer, "database: division by zero (SQLSTATE 22012)");
    let e = client.query_one("SELECT 1/0", &[]).await.unwrap_err();
    let rollup = adit_rollup::Error::from(e).to_string();
    assert_eq!(rollup, "database: division by zero (SQLSTATE 22012)");
    let e = client.query_one("SELECT 1/0", &[]).await.unwrap_err();
    let archive = adit_archive::ArchiveError::from(e).to_string();
    assert_eq!(archive, "database: division by zero (SQLSTATE 22012)");
    let e = client.query_one("SELECT 1/0", &[]).await.unwrap_err();
    let control = adit_control::ControlError::from(e).to_string();
    assert!(
        control.ends_with("division by zero (SQLSTATE 22012)"),
        "{control}"
    );
    let e = client.query_one("SELECT 1/0", &[]).await.unwrap_err();
    let adit_server::Error::DatabaseUnavailable { reason } = adit_server::Error::from(e) else {
        panic!("a database error is DatabaseUnavailable")
    };
    assert_eq!(reason, "division by zero (SQLSTATE 22012)");
}

#[tokio::test]
async fn connection_failures_show_their_cause() {
    // Nothing listens on port 1 of loopback.
    let e = tokio_postgres::connect("postgres://adit@127.0.0.1:1/adit", tokio_postgres::NoTls)
        .await
        .err()
        .expect("nothing listens on port 1");
    let text = adit_types::pg::describe(&e);
    assert!(
        text.starts_with("error connecting to server: ") && text.len() > 30,
        "{text}"
    );
}

/// Issue 17 item 13 (the control plane's side): a request that finds the
/// pool exhausted is refused after `db::POOL_WAIT` (503 from the control
/// plane) instead of queueing without limit.
#[tokio::test]
async fn an_exhausted_pool_refuses_instead_of_queueing_forever() {
    let db = TestDb::new("pool_wait").await;
    let pool = adit::db::pool(db.url(), 1).unwrap();
    let held = pool.get().await.unwrap();
    let waited = tokio::time::timeout(adit::db::POOL_WAIT * 4, pool.get()).await;
    let Ok(Err(e)) = waited else {
        panic!("a second connection from a pool of one was neither refused nor given")
    };
    assert!(matches!(e, deadpool_postgres::PoolError::Timeout(_)), "{e}");
    let control = adit_server::Error::from(adit_control::ControlError::from(e));
    assert_eq!(control.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(control.code(), "database_unavailable");
    drop(held);
    assert!(pool.get().await.is_ok(), "the pool serves again once freed");
}

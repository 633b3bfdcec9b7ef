//! Exactly-once for retries: Idempotency-Key answers and conflicts.

mod common;

use common::*;
use hyper::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_the_first_answer_and_writes_nothing() {
    let srv = TestServer::start("idem").await;
    let key = srv.key(2).await;
    let mut batch = rows("i", 20);
    batch.push(r#"{"miner_id":""}"#.into());
    let body = array(&batch);
    let first = upload(srv.addr, &key, &body, &[("idempotency-key", "batch-1")]).await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.2);
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let second = upload(srv.addr, &key, &body, &[("idempotency-key", "batch-1")]).await;
    assert_eq!(second.0, StatusCode::OK);
    assert_eq!(second.2, first.2, "byte for byte");
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 20);
    assert_eq!(srv.count("SELECT count(*) FROM ingest_rejects").await, 1);
    assert_eq!(srv.count("SELECT count(*) FROM upload_log").await, 1);

    // Another collector key may use the same Idempotency-Key independently.
    let other = srv.key(3).await;
    let third = upload(srv.addr, &other, &body, &[("idempotency-key", "batch-1")]).await;
    assert_eq!(third.0, StatusCode::OK);
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 40);

    // Same key, different body: conflict, nothing written.
    let changed = array(&rows("changed", 5));
    let (status, _, resp) =
        upload(srv.addr, &key, &changed, &[("idempotency-key", "batch-1")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    assert_eq!(json(&resp)["code"], "idempotency_conflict");
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 40);

    let (status, _, resp) = upload(srv.addr, &key, &body, &[("idempotency-key", "")]).await;
    assert_eq!(
        (status, json(&resp)["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_idempotency_key"))
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_uploads_with_concurrent_retries_land_exactly_once() {
    let srv = TestServer::start("idem50").await;
    let key = srv.key(4).await;
    let mut tasks = Vec::new();
    for u in 0..50 {
        for _attempt in 0..2 {
            let (addr, key) = (srv.addr, key.clone());
            tasks.push(tokio::spawn(async move {
                let body = array(&rows(&format!("u{u}"), 30));
                let idem = format!("upload-{u}");
                (
                    u,
                    upload(addr, &key, &body, &[("idempotency-key", &idem)]).await,
                )
            }));
        }
    }
    let mut answers: std::collections::HashMap<i32, Vec<String>> = Default::default();
    for t in tasks {
        let (u, (status, _, body)) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        answers.entry(u).or_default().push(body);
    }
    for (u, bodies) in &answers {
        assert_eq!(
            bodies[0], bodies[1],
            "upload {u}: both attempts get the same answer"
        );
    }
    assert_eq!(
        srv.count("SELECT count(*) FROM miner_telemetry").await,
        50 * 30
    );
    assert_eq!(
        srv.count("SELECT count(DISTINCT miner_id) FROM miner_telemetry")
            .await,
        50 * 30
    );
    assert_eq!(srv.count("SELECT count(*) FROM upload_log").await, 50);
    srv.stop().await;
}

/// A claim written before migration 0006 holds the body's SHA-256, not its
/// XXH3: a retry of that body is still answered from the store, and another
/// body is still a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_stored_with_sha256_still_answers_its_retry() {
    use sha2::{Digest, Sha256};
    let srv = TestServer::start("idemsha").await;
    let key = srv.key(2).await;
    let body = array(&rows("old", 3));
    let key_id: i32 = srv
        .db
        .query_one("SELECT max(id)::int4 FROM collector_keys", &[])
        .await
        .unwrap()
        .get(0);
    let stored = r#"{"success":true,"data":{"stored":"before 0006"}}"#;
    let sha: Vec<u8> = Sha256::digest(body.as_bytes()).to_vec();
    srv.db
        .execute(
            "INSERT INTO idempotency_keys (key_id, idem_key, body_digest, response) \
             VALUES ($1, 'old-1', $2, $3)",
            &[&key_id, &sha, &stored],
        )
        .await
        .unwrap();
    let (status, _, resp) = upload(srv.addr, &key, &body, &[("idempotency-key", "old-1")]).await;
    assert_eq!((status, resp.as_str()), (StatusCode::OK, stored));
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 0);
    let other = array(&rows("other", 3));
    let (status, _, _) = upload(srv.addr, &key, &other, &[("idempotency-key", "old-1")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    srv.stop().await;
}

/// One lifetime for a key everywhere: a key 23 hours old is found, kept by
/// the purge and answers its retry; one 24.5 hours old is not found, is
/// purged, and its key may be used again (the purge once kept keys an hour
/// longer than the lookup and the claim honoured them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_lives_exactly_its_lifetime() {
    use adit_writer::idempotency;
    assert_eq!(
        adit_types::IDEMPOTENCY_LIFETIME,
        std::time::Duration::from_secs(24 * 3600)
    );
    let srv = TestServer::start("idem_life").await;
    let key = srv.key(4).await;
    let key_id: i32 = srv
        .db
        .query_one("SELECT max(id) FROM collector_keys", &[])
        .await
        .unwrap()
        .get(0);
    for (name, age) in [("young", "23 hours"), ("old", "24 hours 30 minutes")] {
        srv.db
            .execute(
                &format!(
                    "INSERT INTO idempotency_keys (key_id, idem_key, body_digest, response, created_at) \
                     VALUES ($1, $2, '\\x00', '{{\"stored\":true}}', now() - interval '{age}')"
                ),
                &[&key_id, &name],
            )
            .await
            .unwrap();
    }
    let young = idempotency::lookup(&srv.db, key_id, "young").await.unwrap();
    assert_eq!(young.unwrap().response, r#"{"stored":true}"#);
    assert!(idempotency::lookup(&srv.db, key_id, "old")
        .await
        .unwrap()
        .is_none());

    // The expired key is free: an upload under it is written and answered.
    let body = array(&rows("life", 3));
    let (status, _, resp) = upload(srv.addr, &key, &body, &[("idempotency-key", "old")]).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(srv.count("SELECT count(*) FROM miner_telemetry").await, 3);

    srv.db
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 30 minutes' \
             WHERE idem_key = 'old'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        idempotency::purge(&srv.db).await.unwrap(),
        1,
        "only the expired key goes"
    );
    let left: Vec<String> = srv
        .db
        .query("SELECT idem_key FROM idempotency_keys", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["young"]);
    srv.stop().await;
}

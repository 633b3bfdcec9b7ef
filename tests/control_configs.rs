//! Central collector configuration through the control plane, against a
//! real server and database: drafts are not served, an activated config
//! is, a config for listed collectors beats the one for all, activating an
//! `all` config deprecates the previous one (also when two admins activate
//! at once), deprecating falls back and re-activating rolls back; bad
//! documents, duplicate versions and bad transitions are refused with
//! their codes; each endpoint takes its own credential; heartbeats report
//! the version a collector runs and learn the one it should.

mod common;

use std::net::SocketAddr;

use common::*;
use hyper::StatusCode;
use serde_json::{json, Value};

/// A collector key on `site` and its id.
async fn collector(server: &TestServer, site: i32, name: &str) -> (i32, String) {
    adit_control::keys::create_key(&server.db, Some(site), Some(name))
        .await
        .unwrap()
}

/// Creates a draft; fails the test unless it is answered 200.
async fn create(addr: SocketAddr, admin: &str, body: Value) -> Value {
    admin_ok(addr, admin, "POST", "/api/collector/configs", body).await["data"].clone()
}

/// `POST /api/collector/configs/{version}/{action}`.
async fn act(addr: SocketAddr, admin: &str, version: &str, action: &str) -> (StatusCode, Value) {
    call_json(
        addr,
        "POST",
        &format!("/api/collector/configs/{version}/{action}"),
        Auth::Admin(admin),
        Value::Null,
    )
    .await
}

/// The effective configuration a collector key is served.
async fn served(addr: SocketAddr, key: &str) -> Value {
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/config",
        Auth::Key(key),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].clone()
}

async fn show(addr: SocketAddr, admin: &str, version: &str) -> Value {
    let (s, v) = call_json(
        addr,
        "GET",
        &format!("/api/collector/configs/{version}"),
        Auth::Admin(admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_effective_configuration_follows_activation_targets_and_rollback() {
    let server = TestServer::start("configs_lifecycle").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let (_, key_a) = collector(&server, 1, "a").await;
    let (id_b, key_b) = collector(&server, 2, "b").await;

    // A draft is stored but not served.
    let v1_doc = json!({"collection_interval": 120, "heartbeat_interval": 20,
        "retry_policy": {"max_retries": 2, "backoff_seconds": [1, 5, 30]},
        "buffer_config": {"max_buffer_size": 512, "max_buffer_hours": 48},
        "features": {"enable_remote_control": false}});
    let draft = create(
        addr,
        &admin,
        json!({"version": "v1.0.0", "config": v1_doc, "change_summary": "first"}),
    )
    .await;
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["applies_to"], "all");
    assert_eq!(draft["agent_ids"], json!([]));
    assert_eq!(draft["config"], v1_doc);
    assert_eq!(draft["activated_at"], Value::Null);
    assert_eq!(draft["collectors_running"], json!([]));
    assert_eq!(
        served(addr, &key_a).await,
        json!({"version": null, "config": null, "activated_at": null})
    );

    // Activated: served to every collector.
    let (s, v) = act(addr, &admin, "v1.0.0", "activate").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "active");
    assert!(v["data"]["activated_at"].is_string());
    for key in [&key_a, &key_b] {
        let got = served(addr, key).await;
        assert_eq!(got["version"], "v1.0.0");
        assert_eq!(got["config"], v1_doc);
        assert_eq!(got["activated_at"], v["data"]["activated_at"]);
    }

    // A config listing collector b beats the one for all, for b only.
    create(
        addr,
        &admin,
        json!({"version": "b-only", "config": {"collection_interval": 30},
               "applies_to": "specific", "agent_ids": [id_b]}),
    )
    .await;
    let (s, v) = act(addr, &admin, "b-only", "activate").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["agent_ids"], json!([id_b]));
    assert_eq!(served(addr, &key_b).await["version"], "b-only");
    assert_eq!(served(addr, &key_a).await["version"], "v1.0.0");
    // Activating a specific config deprecated nothing.
    assert_eq!(show(addr, &admin, "v1.0.0").await["status"], "active");

    // A second `all` config deprecates the first.
    create(
        addr,
        &admin,
        json!({"version": "v2", "config": {"collection_interval": 60}}),
    )
    .await;
    let (s, _) = act(addr, &admin, "v2", "activate").await;
    assert_eq!(s, StatusCode::OK);
    let v1 = show(addr, &admin, "v1.0.0").await;
    assert_eq!(v1["status"], "deprecated");
    assert!(v1["deprecated_at"].is_string());
    assert_eq!(served(addr, &key_a).await["version"], "v2");
    assert_eq!(served(addr, &key_b).await["version"], "b-only");

    // Deprecating b's own config falls back to the one for all.
    let (s, v) = act(addr, &admin, "b-only", "deprecate").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "deprecated");
    assert_eq!(served(addr, &key_b).await["version"], "v2");

    // Rollback: the deprecated v1 activated again replaces v2.
    let (s, v) = act(addr, &admin, "v1.0.0", "activate").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["deprecated_at"], Value::Null);
    assert_eq!(show(addr, &admin, "v2").await["status"], "deprecated");
    for key in [&key_a, &key_b] {
        assert_eq!(served(addr, key).await["version"], "v1.0.0");
    }

    // Deprecating the only active config: nothing is served.
    let (s, _) = act(addr, &admin, "v1.0.0", "deprecate").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(served(addr, &key_a).await["version"], Value::Null);

    // The listing: newest first, filtered by state.
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/configs",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let versions: Vec<&str> = v["data"]["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v2", "b-only", "v1.0.0"]);
    let (_, v) = call_json(
        addr,
        "GET",
        "/api/collector/configs?status=draft",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["configs"], json!([]));
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/configs?status=retired",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_activating_two_all_configs_at_once_leave_one_active() {
    let server = TestServer::start("configs_concurrent").await;
    let addr = server.addr;
    let (admin1, admin2) = (admin_token(&server).await, admin_token(&server).await);
    let (_, key) = collector(&server, 1, "a").await;
    for round in 0..15 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        for v in [&a, &b] {
            create(addr, &admin1, json!({"version": v, "config": {}})).await;
        }
        let ((sa, va), (sb, vb)) = tokio::join!(
            act(addr, &admin1, &a, "activate"),
            act(addr, &admin2, &b, "activate")
        );
        assert_eq!((sa, sb), (StatusCode::OK, StatusCode::OK), "{va} {vb}");
        let active: Vec<String> = server
            .db
            .query(
                "SELECT version FROM agent_configs WHERE status = 'active' AND applies_to = 'all'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(active.len(), 1, "round {round}: active {active:?}");
        assert!(
            active[0] == a || active[0] == b,
            "round {round}: {active:?}"
        );
        let loser = if active[0] == a { &b } else { &a };
        assert_eq!(show(addr, &admin1, loser).await["status"], "deprecated");
        assert_eq!(served(addr, &key).await["version"], active[0].as_str());
    }
    // The table itself holds one active `all` config at most.
    let second = server
        .db
        .execute(
            "UPDATE agent_configs SET status = 'active' WHERE version = 'a0'",
            &[],
        )
        .await;
    assert!(second.is_err(), "a second active `all` config was stored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_duplicates_and_transitions_are_refused_with_codes() {
    let server = TestServer::start("configs_refused").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let post = |body: Value| {
        let admin = admin.clone();
        async move {
            call_json(
                addr,
                "POST",
                "/api/collector/configs",
                Auth::Admin(&admin),
                body,
            )
            .await
        }
    };

    // Unknown keys and values out of range: 400 invalid_field naming the key.
    for (doc, field) in [
        (
            json!({"colection_interval": 60}),
            "config.colection_interval",
        ),
        (
            json!({"features": {"enable_ssh": true}}),
            "config.features.enable_ssh",
        ),
        (
            json!({"collection_interval": 5}),
            "config.collection_interval",
        ),
        (
            json!({"cgminer_api_timeout": 61}),
            "config.cgminer_api_timeout",
        ),
        (
            json!({"retry_policy": {"max_retries": 11}}),
            "config.retry_policy.max_retries",
        ),
        (
            json!({"buffer_config": {"max_buffer_hours": 0}}),
            "config.buffer_config.max_buffer_hours",
        ),
        (json!({"version": "other"}), "config.version"),
    ] {
        let (s, v) = post(json!({"version": "v1", "config": doc})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{doc}: {v}");
        assert_eq!(v["code"], "invalid_field", "{v}");
        let message = v["error"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
        assert_eq!(v["details"][0]["field"], field);
    }
    let (_, v) = post(json!({"version": "v1", "config": {"colection_interval": 60}})).await;
    let message = v["error"].as_str().unwrap();
    assert!(
        message.contains("collection_interval") && message.contains("cgminer_api_timeout"),
        "the allowed keys are listed: {message}"
    );
    // The request around the document.
    let (key_id, _) = collector(&server, 3, "c").await;
    for body in [
        json!({"version": "", "config": {}}),
        json!({"version": "v 1", "config": {}}),
        json!({"version": "v123456789012345678901", "config": {}}),
        json!({"version": "v1"}),
        json!({"version": "v1", "config": {}, "applies_to": "specific"}),
        json!({"version": "v1", "config": {}, "agent_ids": [key_id]}),
        json!({"version": "v1", "config": {}, "applies_to": "specific", "agent_ids": [99_999]}),
        json!({"version": "v1", "config": {}, "extra": 1}),
    ] {
        let (s, v) = post(body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{body}: {v}"
        );
    }
    assert_eq!(server.count("SELECT count(*) FROM agent_configs").await, 0);

    // A version is never reused.
    create(addr, &admin, json!({"version": "v1", "config": {}})).await;
    let (s, v) = post(json!({"version": "v1", "config": {"collection_interval": 30}})).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("version_exists")),
        "{v}"
    );
    assert_eq!(server.count("SELECT count(*) FROM agent_configs").await, 1);

    // Transitions the state machine does not have.
    let conflict = |s: StatusCode, v: &Value| {
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::CONFLICT, Some("invalid_transition")),
            "{v}"
        );
    };
    let (s, v) = act(addr, &admin, "v1", "deprecate").await;
    conflict(s, &v);
    assert!(v["error"].as_str().unwrap().contains("draft"), "{v}");
    let (s, _) = act(addr, &admin, "v1", "activate").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = act(addr, &admin, "v1", "activate").await;
    conflict(s, &v);
    let (s, _) = act(addr, &admin, "v1", "deprecate").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = act(addr, &admin, "v1", "deprecate").await;
    conflict(s, &v);
    assert_eq!(show(addr, &admin, "v1").await["status"], "deprecated");

    // Unknown versions and actions.
    for (method, path) in [
        ("GET", "/api/collector/configs/v9"),
        ("POST", "/api/collector/configs/v9/activate"),
        ("GET", "/api/collector/configs/v%201"),
    ] {
        let (s, v) = call_json(addr, method, path, Auth::Admin(&admin), Value::Null).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    for (method, path) in [
        ("DELETE", "/api/collector/configs/v1"),
        ("POST", "/api/collector/configs/v1/retire"),
    ] {
        let (s, _) = call_json(addr, method, path, Auth::Admin(&admin), Value::Null).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_keys_and_admin_tokens_stay_on_their_own_endpoints() {
    let server = TestServer::start("configs_credentials").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let (_, key) = collector(&server, 1, "a").await;
    let body = json!({"version": "v1", "config": {}});

    // A collector key on the admin endpoints, in either header: 403, it is
    // the wrong kind of key.
    for (method, path, body) in [
        ("POST", "/api/collector/configs", body.clone()),
        ("GET", "/api/collector/configs", Value::Null),
        ("GET", "/api/collector/configs/v1", Value::Null),
        ("POST", "/api/collector/configs/v1/activate", Value::Null),
        ("POST", "/api/collector/configs/v1/deprecate", Value::Null),
        ("GET", "/api/collector/agents", Value::Null),
    ] {
        for auth in [Auth::Key(&key), Auth::Admin(&key)] {
            let (s, v) = call_json(addr, method, path, auth, body.clone()).await;
            assert_eq!(
                (s, v["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{method} {path}: {v}"
            );
        }
    }
    assert_eq!(server.count("SELECT count(*) FROM agent_configs").await, 0);

    // An admin token on the collector's endpoint, in either header: 403;
    // no credential at all: 401.
    for auth in [Auth::Key(&admin), Auth::Admin(&admin)] {
        let (s, v) = call_json(addr, "GET", "/api/collector/config", auth, Value::Null).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_token_not_collector_key")),
            "{v}"
        );
    }
    let (s, v) = call_json(
        addr,
        "GET",
        "/api/collector/config",
        Auth::None,
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_key"))
    );
    // And each works with its own.
    create(addr, &admin, body).await;
    assert_eq!(served(addr, &key).await["version"], Value::Null);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_report_the_version_run_and_learn_the_version_to_run() {
    let server = TestServer::start("configs_heartbeats").await;
    let addr = server.addr;
    let admin = admin_token(&server).await;
    let (id_a, key_a) = collector(&server, 1, "farm-a").await;
    let (id_b, key_b) = collector(&server, 2, "farm-b").await;
    let beat = |key: String, body: Value| async move {
        let (s, v) = call_json(
            addr,
            "POST",
            "/api/collector/heartbeat",
            Auth::Key(&key),
            body,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["data"].clone()
    };
    let agents = || {
        let admin = admin.clone();
        async move {
            let (s, v) = call_json(
                addr,
                "GET",
                "/api/collector/agents",
                Auth::Admin(&admin),
                Value::Null,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v["data"]["agents"].as_array().unwrap().clone()
        }
    };

    // No configuration active: the answer says null, both are current.
    let ack = beat(key_a.clone(), json!({"version": "0.3.0"})).await;
    assert_eq!(ack["config_version"], Value::Null);
    assert!(ack.as_object().unwrap().contains_key("config_version"));
    beat(key_b.clone(), json!({})).await;
    let list = agents().await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["key_id"], id_a);
    assert_eq!(list[0]["name"], "farm-a");
    assert_eq!(list[0]["site_id"], 1);
    assert_eq!(list[0]["status"], "online");
    assert_eq!(list[0]["version"], "0.3.0");
    assert!(list[0]["last_seen_at"].is_string());
    assert_eq!(list[0]["config_current"], true);

    // v1 active for all: the answer names it; a collector still on none is
    // not current until it reports v1.
    create(
        addr,
        &admin,
        json!({"version": "v1", "config": {"collection_interval": 30}}),
    )
    .await;
    assert_eq!(act(addr, &admin, "v1", "activate").await.0, StatusCode::OK);
    let ack = beat(key_a.clone(), json!({})).await;
    assert_eq!(ack["config_version"], "v1");
    let ack = beat(key_a.clone(), json!({"config_version": "v1"})).await;
    assert_eq!(ack["config_version"], "v1");
    let list = agents().await;
    assert_eq!(
        (
            &list[0]["config_version"],
            &list[0]["expected_config_version"],
            &list[0]["config_current"]
        ),
        (&json!("v1"), &json!("v1"), &json!(true))
    );
    assert_eq!(
        (
            &list[1]["config_version"],
            &list[1]["expected_config_version"],
            &list[1]["config_current"]
        ),
        (&Value::Null, &json!("v1"), &json!(false))
    );
    assert_eq!(
        show(addr, &admin, "v1").await["collectors_running"],
        json!([id_a])
    );

    // A config for b alone: b's answer names it; b reporting an old one is
    // not current.
    create(
        addr,
        &admin,
        json!({"version": "b2", "config": {}, "applies_to": "specific", "agent_ids": [id_b]}),
    )
    .await;
    assert_eq!(act(addr, &admin, "b2", "activate").await.0, StatusCode::OK);
    let ack = beat(key_b.clone(), json!({"config_version": "v1"})).await;
    assert_eq!(ack["config_version"], "b2");
    let list = agents().await;
    assert_eq!(list[1]["expected_config_version"], "b2");
    assert_eq!(list[1]["config_current"], false);
    assert_eq!(
        show(addr, &admin, "v1").await["collectors_running"],
        json!([id_a, id_b])
    );
    let ack = beat(key_b.clone(), json!({"config_version": "b2"})).await;
    assert_eq!(ack["config_version"], "b2");
    assert_eq!(agents().await[1]["config_current"], true);
    assert_eq!(
        show(addr, &admin, "b2").await["collectors_running"],
        json!([id_b])
    );
    // ?site_id= keeps one site.
    let (_, v) = call_json(
        addr,
        "GET",
        "/api/collector/agents?site_id=2",
        Auth::Admin(&admin),
        Value::Null,
    )
    .await;
    assert_eq!(v["data"]["agents"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["agents"][0]["key_id"], id_b);

    // A heartbeat without the field: the collector runs no central config.
    beat(key_a.clone(), json!({})).await;
    assert_eq!(agents().await[0]["config_version"], Value::Null);
    assert_eq!(
        show(addr, &admin, "v1").await["collectors_running"],
        json!([])
    );

    // Each heartbeat keeps what it said.
    let said: Vec<Option<String>> = server
        .db
        .query(
            "SELECT config_version FROM agent_heartbeats WHERE key_id = $1 ORDER BY ts",
            &[&id_b],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(said, [None, Some("v1".into()), Some("b2".into())]);
    // And refuses a version longer than any config's.
    let (s, v) = call_json(
        addr,
        "POST",
        "/api/collector/heartbeat",
        Auth::Key(&key_a),
        json!({"config_version": "v".repeat(21)}),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert_eq!(v["details"][0]["field"], "config_version");
    server.stop().await;
}

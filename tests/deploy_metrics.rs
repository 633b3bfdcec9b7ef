//! The metrics the alert rules and the dashboard need beyond the first
//! ones: the writer queue's capacity, committed uploads and rows per site
//! (labelled with the dataset), and the served certificate's expiry.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use tokio_rustls::rustls;

/// The value of the sample `series` (name with its labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_site_counters_and_queue_capacity_are_exported() {
    let srv = TestServer::start_with("deploy_metrics_sites", |c| {
        c.writer.queue_capacity = 77;
    })
    .await;
    let (k3, k5) = (srv.key(3).await, srv.key(5).await);
    let mut three = rows("s3", 4);
    three.push(r#"{"miner_id":""}"#.into());
    for body in [array(&three), array(&rows("s3b", 2))] {
        assert_eq!(upload(srv.addr, &k3, &body, &[]).await.0, StatusCode::OK);
    }
    assert_eq!(
        upload(srv.addr, &k5, &array(&rows("s5", 9)), &[]).await.0,
        StatusCode::OK
    );
    // Refused uploads are not counted for their site.
    assert_eq!(
        upload(srv.addr, &k5, "{not json", &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, _, text) = get(srv.addr, "/metrics").await.unwrap();
    let site = |name: &str, s: i32| {
        sample(
            &text,
            &format!(r#"{name}{{dataset="miner_telemetry",site_id="{s}"}}"#),
        )
    };
    assert_eq!(site("adit_site_uploads_total", 3), Some(2.0), "{text}");
    assert_eq!(site("adit_site_rows_accepted_total", 3), Some(6.0));
    assert_eq!(site("adit_site_uploads_total", 5), Some(1.0));
    assert_eq!(site("adit_site_rows_accepted_total", 5), Some(9.0));
    assert_eq!(site("adit_site_uploads_total", 4), None);
    assert_eq!(sample(&text, "adit_writer_queue_capacity"), Some(77.0));
    // Plain HTTP: no certificate, no expiry series.
    assert!(!text.contains("adit_tls_certificate_expiry_timestamp_seconds"));
    srv.stop().await;
}

/// GETs `path` over HTTPS from `addr`, trusting only `ca_der`.
async fn get_tls(addr: SocketAddr, ca_der: &[u8], path: &str) -> (StatusCode, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.to_vec().into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with adit");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_certificates_expiry_is_exported() {
    let dir = std::env::temp_dir().join(format!("adit-deploy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2031, 6, 30);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let srv = TestServer::start_with("deploy_metrics_tls", |cfg| {
        cfg.tls = Some((c.clone(), k.clone()));
    })
    .await;
    let (status, text) = get_tls(srv.addr, cert.der(), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    // 2031-06-30T00:00:00Z
    assert_eq!(
        sample(&text, "adit_tls_certificate_expiry_timestamp_seconds"),
        Some(1_940_544_000.0),
        "{text}"
    );
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The archive's true backlog: rows committed but not in a file, and the
/// age of the oldest, rising while the store refuses writes and back to
/// zero once it takes them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_backlog_and_lag_follow_the_store() {
    let dir = std::env::temp_dir().join(format!("adit-deploy-arch-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("file://{}", dir.display());
    let srv = TestServer::start_with("deploy_metrics_archive", |c| {
        c.archive_url = Some(url.clone());
        c.archive_flush_interval = std::time::Duration::from_secs(1);
    })
    .await;
    // The store's root becomes a plain file: every write fails (ENOTDIR),
    // even for root.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let key = srv.key(8).await;
    assert_eq!(
        upload(srv.addr, &key, &array(&rows("arch", 10)), &[])
            .await
            .0,
        StatusCode::OK
    );
    let addr = srv.addr;
    let scrape = move || async move { get(addr, "/metrics").await.unwrap().2 };
    eventually(
        "the backlog and its age while the store is down",
        || async {
            let t = scrape().await;
            let stuck = sample(&t, "adit_archive_store_errors_total")? >= 1.0
                && sample(&t, "adit_archive_queued_rows")? == 10.0
                && sample(&t, "adit_archive_lag_seconds")? >= 2.0;
            stuck.then_some(())
        },
    )
    .await;
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    eventually("the backlog drained once the store is back", || async {
        let t = scrape().await;
        let drained = sample(&t, "adit_archive_queued_rows")? == 0.0
            && sample(&t, "adit_archive_lag_seconds")? == 0.0
            && sample(&t, "adit_archive_rows_total")? == 10.0;
        drained.then_some(())
    })
    .await;
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

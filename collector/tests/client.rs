//! The CGMiner client against tiny miners served on 127.0.0.1 by the test.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adit_collector::cgminer::{Client, Config, PrivilegedCommand, ReadCommand};
use adit_collector::normalize::normalize;
use adit_collector::Error;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a test miner answers one request.
#[derive(Clone)]
enum Reply {
    /// The answer, a NUL, and the connection held open.
    Nul(Vec<u8>),
    /// The answer, then the connection closed.
    Eof(Vec<u8>),
    /// The answer, a newline, and the connection held open.
    Newline(Vec<u8>),
    /// Nothing, with the connection held open.
    Silent,
}

/// A test miner: every request seen, and how many connections it accepted.
struct Miner {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Value>>>,
}

async fn miner(answer: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Miner {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    miner_on(listener, answer)
}

fn miner_on(
    listener: TcpListener,
    answer: impl Fn(&Value) -> Reply + Send + Sync + 'static,
) -> Miner {
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(answer);
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (answer, r) = (answer.clone(), r.clone());
            tokio::spawn(async move { serve_one(stream, &*answer, &r).await });
        }
    });
    Miner {
        addr,
        connections,
        requests,
    }
}

async fn serve_one(
    mut stream: TcpStream,
    answer: &(dyn Fn(&Value) -> Reply + Send + Sync),
    seen: &Mutex<Vec<Value>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // The client does not half-close: read until the request is whole JSON.
    let request = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 || buf.len() > 64 * 1024 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            break v;
        }
    };
    seen.lock().unwrap().push(request.clone());
    match answer(&request) {
        Reply::Nul(mut bytes) => {
            bytes.push(0);
            let _ = stream.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        Reply::Eof(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Newline(mut bytes) => {
            bytes.push(b'\n');
            let _ = stream.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        Reply::Silent => tokio::time::sleep(Duration::from_secs(10)).await,
    }
}

const SUMMARY: &[u8] = br#"{"STATUS":[{"STATUS":"S","Code":11,"Msg":"Summary"}],"SUMMARY":[{"Elapsed":10,"GHS av":"100.5"}],"id":1}"#;

fn client() -> Client {
    Client::new(Config::test_config())
}

#[tokio::test]
async fn a_nul_ends_the_answer_while_the_connection_stays_open() {
    let m = miner(|_| Reply::Nul(SUMMARY.to_vec())).await;
    // The miner holds the connection for 10 s; the request timeout is 500 ms.
    let answer = client().query(m.addr, ReadCommand::Summary).await.unwrap();
    assert_eq!(answer["SUMMARY"][0]["GHS av"], "100.5");
    assert_eq!(
        m.requests.lock().unwrap()[0],
        serde_json::json!({"command": "summary"})
    );
    assert_eq!(m.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn eof_ends_an_answer_without_a_nul() {
    let m = miner(|_| Reply::Eof(SUMMARY.to_vec())).await;
    let answer = client().query(m.addr, ReadCommand::Summary).await.unwrap();
    assert_eq!(answer["SUMMARY"][0]["Elapsed"], 10);
}

#[tokio::test]
async fn a_whole_json_answer_ends_it_without_nul_or_eof() {
    // Firmware that ends with a newline and keeps the connection open.
    let m = miner(|_| Reply::Newline(SUMMARY.to_vec())).await;
    let answer = client().query(m.addr, ReadCommand::Summary).await.unwrap();
    assert_eq!(answer["SUMMARY"][0]["Elapsed"], 10);
    assert_eq!(m.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_silent_miner_times_out_and_reads_are_retried_a_bounded_number_of_times() {
    let m = miner(|_| Reply::Silent).await;
    let err = client()
        .query(m.addr, ReadCommand::Stats)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                command: "stats",
                timeout_ms: 500,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(m.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused_and_not_retried() {
    let limit = adit_collector::cgminer::MAX_ANSWER_BYTES;
    let mut big = b"{\"SUMMARY\":\"".to_vec();
    big.resize(limit + 1, b'a');
    let m = miner(move |_| Reply::Eof(big.clone())).await;
    let err = client()
        .query(m.addr, ReadCommand::Summary)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit_bytes, .. } if limit_bytes == limit),
        "{err:?}"
    );
    assert_eq!(m.connections.load(Ordering::SeqCst), 1);

    // Exactly at the limit is accepted.
    let mut fits = b"{\"SUMMARY\":\"".to_vec();
    fits.resize(limit - 2, b'a');
    fits.extend_from_slice(b"\"}");
    let m = miner(move |_| Reply::Nul(fits.clone())).await;
    let answer = client().query(m.addr, ReadCommand::Summary).await.unwrap();
    assert_eq!(answer["SUMMARY"].as_str().unwrap().len(), limit - 14);
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_miner_listens() {
    // A port nobody listens on yet; the miner starts listening 100 ms later.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        miner_on(listener, |_| Reply::Nul(SUMMARY.to_vec()));
    });
    let config = Config {
        attempts: 8,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..Config::test_config()
    };
    let answer = Client::new(config)
        .query(addr, ReadCommand::Summary)
        .await
        .unwrap();
    assert_eq!(answer["SUMMARY"][0]["Elapsed"], 10);

    // Never listening: refused after the bounded attempts.
    let closed: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let err = client()
        .query(closed, ReadCommand::Summary)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert_eq!(err.code(), "refused");
}

#[tokio::test]
async fn a_miner_error_status_is_an_error_with_its_message_and_not_retried() {
    let m = miner(|_| {
        Reply::Nul(br#"{"STATUS":[{"STATUS":"E","When":1764920000,"Code":14,"Msg":"Invalid command","Description":"cgminer 1.0.0"}],"id":1}"#.to_vec())
    })
    .await;
    let err = client().query(m.addr, ReadCommand::Devs).await.unwrap_err();
    match &err {
        Error::Miner {
            command,
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(
                (*command, status.as_str(), *code, message.as_str()),
                ("devs", "E", Some(14), "Invalid command")
            );
        }
        other => panic!("expected Error::Miner, got {other:?}"),
    }
    assert_eq!(m.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_malformed_answer_is_an_error_and_not_retried() {
    let m = miner(|_| Reply::Eof(b"<html>401 Unauthorized</html>".to_vec())).await;
    let err = client()
        .query(m.addr, ReadCommand::Summary)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                command: "summary",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(m.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stats_with_the_firmware_quirks_parses() {
    let raw = include_bytes!("fixtures/antminer_s21_stats.raw").to_vec();
    let m = miner(move |_| Reply::Eof(raw.clone())).await;
    let answer = client().query(m.addr, ReadCommand::Stats).await.unwrap();
    assert_eq!(answer["STATS"][0]["Type"], "Antminer S21");
    assert_eq!(answer["STATS"][1]["chain_rate1"], "66790.11");
}

#[tokio::test]
async fn a_privileged_command_carries_its_parameter_and_is_not_resent_after_a_timeout() {
    let m = miner(|req| {
        if req["command"] == "switchpool" {
            Reply::Nul(br#"{"STATUS":[{"STATUS":"S","Code":27,"Msg":"Switching to pool 1:'stratum+tcp://b:3333'"}],"id":1}"#.to_vec())
        } else {
            Reply::Silent
        }
    })
    .await;
    let c = client();
    let answer = c
        .execute(m.addr, PrivilegedCommand::SwitchPool, Some("1"))
        .await
        .unwrap();
    assert_eq!(answer["STATUS"][0]["Code"], 27);
    assert_eq!(
        m.requests.lock().unwrap()[0],
        serde_json::json!({"command": "switchpool", "parameter": "1"})
    );
    // A restart whose answer never comes may have happened: sent once only.
    let err = c
        .execute(m.addr, PrivilegedCommand::Restart, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                command: "restart",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(m.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn poll_asks_a_whatsminer_for_devs_and_normalises_it() {
    let m = miner(|req| {
        let body: &[u8] = match req["command"].as_str() {
            Some("summary") => include_bytes!("fixtures/whatsminer_m50_summary.json"),
            Some("devs") => include_bytes!("fixtures/whatsminer_m50_devs.json"),
            Some("pools") => include_bytes!("fixtures/whatsminer_m50_pools.raw"),
            Some("devdetails") => include_bytes!("fixtures/whatsminer_m50_devdetails.json"),
            _ => br#"{"STATUS":[{"STATUS":"E","Code":14,"Msg":"Invalid command"}]}"#,
        };
        Reply::Eof(body.to_vec())
    })
    .await;
    let answers = client().poll(m.addr).await;
    assert!(answers.errors.is_empty(), "{:?}", answers.errors);
    let asked: Vec<Value> = m
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["command"].clone())
        .collect();
    assert_eq!(asked, ["summary", "devs", "pools", "devdetails"]);
    let s = normalize("SN-M50", Some("127.0.0.1"), &answers, 1_764_920_000);
    assert!(s.online);
    assert_eq!(s.boards_total, Some(3));
    assert_eq!(s.model.as_deref(), Some("Whatsminer M50.VH50"));
}

#[tokio::test]
async fn poll_asks_an_antminer_for_stats() {
    let m = miner(|req| {
        let body: &[u8] = match req["command"].as_str() {
            Some("summary") => include_bytes!("fixtures/antminer_s19_summary.json"),
            Some("stats") => include_bytes!("fixtures/antminer_s19_stats.json"),
            Some("pools") => include_bytes!("fixtures/antminer_s19_pools.json"),
            _ => br#"{"STATUS":[{"STATUS":"E","Code":14,"Msg":"Invalid command"}]}"#,
        };
        Reply::Nul(body.to_vec())
    })
    .await;
    let answers = client().poll(m.addr).await;
    let asked: Vec<Value> = m
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["command"].clone())
        .collect();
    assert_eq!(asked, ["summary", "stats", "pools"]);
    let s = normalize("SN-S19", None, &answers, 0);
    assert_eq!(s.model.as_deref(), Some("Antminer S19 Pro"));
    assert_eq!(s.boards_healthy, Some(2));
}

#[tokio::test]
async fn poll_of_a_dead_miner_asks_once_and_reports_it_offline() {
    let closed: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let answers = client().poll(closed).await;
    assert_eq!(answers.errors.len(), 1);
    let s = normalize("SN-dead", Some("127.0.0.1"), &answers, 0);
    assert!(!s.online);
    assert!(s.error_message.unwrap().ends_with("connection refused"));
}

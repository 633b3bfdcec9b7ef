//! The collector's own `/metrics` (Prometheus text format): what its loops
//! did, counted where it happens and rendered on request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::spool::Spool;

/// Counters and gauges of one running collector.
#[derive(Debug, Default)]
pub struct Metrics {
    pub cycles: AtomicU64,
    /// Last cycle's duration, microseconds.
    pub last_cycle_us: AtomicU64,
    pub miners_polled: AtomicU64,
    pub miners_online: AtomicU64,
    pub miners_offline: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_batches: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub spool_rejected: AtomicU64,
    pub spool_damaged: AtomicU64,
    pub spool_push_errors: AtomicU64,
    pub heartbeats_ok: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    pub config_fetches_failed: AtomicU64,
    poll_errors: Mutex<BTreeMap<&'static str, u64>>,
    uploads: Mutex<BTreeMap<&'static str, u64>>,
    commands: Mutex<BTreeMap<&'static str, u64>>,
    /// The central configuration version applied; None when none is.
    config_version: Mutex<Option<String>>,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str, n: u64) {
    *map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default() += n;
}

fn get(map: &Mutex<BTreeMap<&'static str, u64>>, key: &str) -> u64 {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .copied()
        .unwrap_or(0)
}

impl Metrics {
    pub fn poll_errors(&self, errors: &BTreeMap<&'static str, u64>) {
        for (code, n) in errors {
            bump(&self.poll_errors, code, *n);
        }
    }

    /// One upload by outcome: `sent`, `busy`, `network`, `unauthorized`, `rejected`.
    pub fn upload(&self, outcome: &'static str) {
        bump(&self.uploads, outcome, 1);
    }

    /// One command by outcome: `completed`, `failed`, `report_failed`.
    pub fn command(&self, outcome: &'static str) {
        bump(&self.commands, outcome, 1);
    }

    pub fn uploads_of(&self, outcome: &str) -> u64 {
        get(&self.uploads, outcome)
    }

    pub fn commands_of(&self, outcome: &str) -> u64 {
        get(&self.commands, outcome)
    }

    pub fn set_config_version(&self, version: Option<String>) {
        *self
            .config_version
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = version;
    }

    pub fn config_version(&self) -> Option<String> {
        self.config_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Copies the spool's figures (call with the spool at hand after each change).
    pub fn observe_spool(&self, spool: &Spool) {
        let r = Ordering::Relaxed;
        self.spool_bytes.store(spool.queued_bytes(), r);
        self.spool_batches.store(spool.len() as u64, r);
        self.spool_dropped.store(spool.dropped_batches(), r);
        self.spool_rejected.store(spool.rejected_batches(), r);
        self.spool_damaged.store(spool.corrupt_batches(), r);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let r = Ordering::Relaxed;
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            "adit_collector_cycles_total",
            "counter",
            "Polling cycles completed.",
            self.cycles.load(r).to_string(),
        );
        one(
            "adit_collector_last_cycle_duration_seconds",
            "gauge",
            "Duration of the last polling cycle.",
            format!("{:.6}", self.last_cycle_us.load(r) as f64 / 1e6),
        );
        one(
            "adit_collector_miners_polled",
            "gauge",
            "Miners polled in the last cycle.",
            self.miners_polled.load(r).to_string(),
        );
        one(
            "adit_collector_miners_online",
            "gauge",
            "Miners that answered in the last cycle.",
            self.miners_online.load(r).to_string(),
        );
        one(
            "adit_collector_miners_offline",
            "gauge",
            "Miners that did not answer in the last cycle.",
            self.miners_offline.load(r).to_string(),
        );
        one(
            "adit_collector_spool_bytes",
            "gauge",
            "Bytes of batches waiting in the spool.",
            self.spool_bytes.load(r).to_string(),
        );
        one(
            "adit_collector_spool_batches",
            "gauge",
            "Batches waiting in the spool.",
            self.spool_batches.load(r).to_string(),
        );
        one(
            "adit_collector_spool_dropped_batches_total",
            "counter",
            "Batches dropped at the spool's size cap or age limit.",
            self.spool_dropped.load(r).to_string(),
        );
        one(
            "adit_collector_spool_rejected_batches_total",
            "counter",
            "Batches adit refused for good (dropped).",
            self.spool_rejected.load(r).to_string(),
        );
        one(
            "adit_collector_spool_damaged_batches_total",
            "counter",
            "Damaged batch files removed from the spool.",
            self.spool_damaged.load(r).to_string(),
        );
        one(
            "adit_collector_spool_push_errors_total",
            "counter",
            "Cycles that could not be written to the spool (lost).",
            self.spool_push_errors.load(r).to_string(),
        );
        one(
            "adit_collector_config_fetch_errors_total",
            "counter",
            "Central configuration fetches that failed.",
            self.config_fetches_failed.load(r).to_string(),
        );
        let mut labelled = |name: &str, help: &str, label: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, n) in rows {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        };
        let rows = |map: &Mutex<BTreeMap<&'static str, u64>>, fixed: &[&'static str]| {
            let map = map.lock().unwrap_or_else(|e| e.into_inner());
            let mut all: BTreeMap<String, u64> =
                fixed.iter().map(|k| ((*k).to_string(), 0)).collect();
            for (k, v) in map.iter() {
                all.insert((*k).to_string(), *v);
            }
            all.into_iter().collect::<Vec<_>>()
        };
        labelled(
            "adit_collector_poll_errors_total",
            "Failed miner requests by error code.",
            "code",
            rows(&self.poll_errors, &[]),
        );
        labelled(
            "adit_collector_uploads_total",
            "Upload attempts by outcome.",
            "outcome",
            rows(
                &self.uploads,
                &["sent", "busy", "network", "unauthorized", "rejected"],
            ),
        );
        labelled(
            "adit_collector_commands_total",
            "Commands from adit by outcome.",
            "outcome",
            rows(&self.commands, &["completed", "failed", "report_failed"]),
        );
        labelled(
            "adit_collector_heartbeats_total",
            "Heartbeats by outcome.",
            "outcome",
            vec![
                ("ok".into(), self.heartbeats_ok.load(r)),
                ("failed".into(), self.heartbeats_failed.load(r)),
            ],
        );
        let version = self.config_version().unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP adit_collector_config_info The central configuration version applied (empty: none).\n\
             # TYPE adit_collector_config_info gauge\n\
             adit_collector_config_info{{version=\"{}\"}} 1",
            escape(&version)
        );
        out
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "Metrics listener accept failed.");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&req, &metrics)) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
}

fn answer(req: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, ctype, body) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n".to_string(),
        )
    } else if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_string(),
        )
    } else {
        (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        )
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> crate::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::MetricsListen { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_rendered_with_its_labels() {
        let m = Metrics::default();
        m.cycles.fetch_add(3, Ordering::Relaxed);
        m.poll_errors(&BTreeMap::from([("refused", 2), ("deadline", 1)]));
        m.upload("sent");
        m.command("failed");
        m.set_config_version(Some("v1.2".into()));
        let text = m.render();
        for line in [
            "adit_collector_cycles_total 3",
            "adit_collector_poll_errors_total{code=\"refused\"} 2",
            "adit_collector_poll_errors_total{code=\"deadline\"} 1",
            "adit_collector_uploads_total{outcome=\"sent\"} 1",
            "adit_collector_uploads_total{outcome=\"busy\"} 0",
            "adit_collector_commands_total{outcome=\"failed\"} 1",
            "adit_collector_heartbeats_total{outcome=\"ok\"} 0",
            "adit_collector_config_info{version=\"v1.2\"} 1",
            "adit_collector_spool_dropped_batches_total 0",
            "adit_collector_last_cycle_duration_seconds 0.000000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        // Every sample line belongs to a family declared with a TYPE.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}

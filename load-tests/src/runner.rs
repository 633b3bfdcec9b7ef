//! Drives the uploads: closed model (C uploads always in flight) or open
//! model (a fixed start rate, latency measured from the scheduled start so
//! a slow server cannot hide its queueing), both bounded by time and count.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

use crate::report::{process_cpu_seconds, Report};
use crate::LoadArgs;

/// A pre-built upload body and what it holds.
#[derive(Debug, Clone)]
pub struct Body {
    pub gzip: Bytes,
    pub raw_len: u64,
    pub rows: u64,
    /// Sum of `accepted_shares` over the rows: the verification checksum.
    pub accepted_sum: i64,
}

/// A simulated collector.
#[derive(Debug)]
pub struct Target {
    pub site_id: i32,
    pub key: String,
    pub bodies: Vec<Body>,
}

/// One acknowledged upload: which body of which target, when it was first
/// sent and when its 200 came (its rows were committed in between).
#[derive(Debug, Clone, Copy)]
pub struct AckedUpload {
    /// Index into the run's targets.
    pub target: usize,
    /// Index into that target's bodies.
    pub body: usize,
    pub sent: Instant,
    pub acked: Instant,
    /// Rows the server said it accepted.
    pub processed: u64,
}

/// What the server acknowledged for one site.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub rows: i64,
    pub accepted_sum: i64,
}

/// Counters shared by all upload tasks.
#[derive(Debug)]
struct Tally {
    hist: Mutex<Histogram<u64>>,
    statuses: Mutex<BTreeMap<String, u64>>,
    acked: Mutex<HashMap<i32, Acked>>,
    log: Mutex<Vec<AckedUpload>>,
    ok: AtomicU64,
    failed: AtomicU64,
    not_sent: AtomicU64,
    retries: AtomicU64,
    rows: AtomicU64,
    bytes_gzip: AtomicU64,
    bytes_raw: AtomicU64,
    /// Per-upload trace lines, kept only with `--trace`.
    trace: Option<Mutex<Vec<TraceLine>>>,
}

/// One upload in the `--trace` CSV.
#[derive(Debug, Clone, Copy)]
struct TraceLine {
    start_s: f64,
    latency_ms: f64,
    status: u16,
    retries: u32,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Runs the load and returns the report, per site what was acked, and
/// every acknowledged upload.
pub async fn run(
    args: &LoadArgs,
    upload_uri: hyper::Uri,
    targets: Arc<Vec<Target>>,
) -> (Report, HashMap<i32, Acked>, Vec<AckedUpload>) {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency.max(64))
        .build_http();
    let tally = Arc::new(Tally {
        hist: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")),
        statuses: Mutex::default(),
        acked: Mutex::default(),
        log: Mutex::default(),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        not_sent: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        rows: AtomicU64::new(0),
        bytes_gzip: AtomicU64::new(0),
        bytes_raw: AtomicU64::new(0),
        trace: args.trace.as_ref().map(|_| Mutex::default()),
    });
    let run_id: u32 = rand::random();
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let deadline = started + Duration::from(args.duration);
    let limit = if args.requests == 0 {
        u64::MAX
    } else {
        args.requests
    };
    let progress = (!args.quiet).then(|| tokio::spawn(progress(tally.clone(), started)));
    let ctx = Arc::new(UploadCtx {
        client,
        uri: upload_uri,
        targets,
        tally: tally.clone(),
        started,
        retries: args.retries,
        timeout: args.timeout.into(),
        content_type: match args.ndjson {
            true => "application/x-ndjson",
            false => "application/json",
        },
        run_id,
    });

    let model = match args.rate {
        None => {
            let next = Arc::new(AtomicU64::new(0));
            let workers: Vec<_> = (0..args.concurrency.max(1))
                .map(|_| {
                    let (ctx, next) = (ctx.clone(), next.clone());
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= limit || Instant::now() >= deadline {
                                break;
                            }
                            ctx.upload(n, Instant::now()).await;
                        }
                    })
                })
                .collect();
            for w in workers {
                let _ = w.await;
            }
            "closed".to_string()
        }
        Some(rate) => {
            let gate = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let mut tasks = Vec::new();
            let mut n = 0u64;
            loop {
                let scheduled = started + interval.mul_f64(n as f64);
                if n >= limit || scheduled >= deadline {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                match gate.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let ctx = ctx.clone();
                        tasks.push(tokio::spawn(async move {
                            ctx.upload(n, scheduled).await;
                            drop(permit);
                        }));
                    }
                    Err(_) => {
                        tally.not_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            for t in tasks {
                let _ = t.await;
            }
            format!("open ({rate} uploads/s)")
        }
    };
    if let Some(p) = progress {
        p.abort();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut report = Report {
        model,
        seconds,
        uploads_ok: tally.ok.load(Ordering::Relaxed),
        uploads_failed: tally.failed.load(Ordering::Relaxed),
        uploads_not_sent: tally.not_sent.load(Ordering::Relaxed),
        retries: tally.retries.load(Ordering::Relaxed),
        rows_acked: tally.rows.load(Ordering::Relaxed),
        status_counts: tally.statuses.lock().expect("tally").clone(),
        generator_cpu_s: process_cpu_seconds() - cpu_before,
        ..Report::default()
    };
    report.rows_per_s = report.rows_acked as f64 / seconds;
    report.uploads_per_s = report.uploads_ok as f64 / seconds;
    report.mb_per_s_compressed = tally.bytes_gzip.load(Ordering::Relaxed) as f64 / seconds / 1e6;
    report.mb_per_s_raw = tally.bytes_raw.load(Ordering::Relaxed) as f64 / seconds / 1e6;
    report.fill_latency(&tally.hist.lock().expect("tally"));
    if let (Some(path), Some(lines)) = (&args.trace, &tally.trace) {
        write_trace(path, started_unix, &lines.lock().expect("tally"));
    }
    let acked = tally.acked.lock().expect("tally").clone();
    let log = std::mem::take(&mut *tally.log.lock().expect("tally"));
    (report, acked, log)
}

#[derive(Debug)]
struct UploadCtx {
    client: HttpClient,
    uri: hyper::Uri,
    targets: Arc<Vec<Target>>,
    tally: Arc<Tally>,
    started: Instant,
    retries: u32,
    timeout: Duration,
    run_id: u32,
    content_type: &'static str,
}

impl UploadCtx {
    /// Upload number `n`, retried with one Idempotency-Key; latency counts
    /// from `since` (the scheduled start in the open model).
    async fn upload(&self, n: u64, since: Instant) {
        let target_at = n as usize % self.targets.len();
        let target = &self.targets[target_at];
        let round = n as usize / self.targets.len();
        let body_at = round % target.bodies.len();
        let body = &target.bodies[body_at];
        let sent = Instant::now();
        let idem = format!("load-{:08x}-{n}", self.run_id);
        let mut attempt = 0;
        let outcome = loop {
            let outcome = self.attempt(target, body, &idem).await;
            let retryable = matches!(&outcome, Attempt::Status(s, _) if *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::TOO_MANY_REQUESTS)
                || matches!(outcome, Attempt::ConnectionError | Attempt::Timeout);
            if !retryable || attempt >= self.retries {
                break outcome;
            }
            attempt += 1;
            self.tally.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
        };
        let micros = since.elapsed().as_micros() as u64;
        let _ = self.tally.hist.lock().expect("tally").record(micros.max(1));
        let (label, code) = match &outcome {
            Attempt::Status(s, _) => (s.as_u16().to_string(), s.as_u16()),
            Attempt::ConnectionError => ("connection_error".to_string(), 0),
            Attempt::Timeout => ("timeout".to_string(), 0),
        };
        if let Some(trace) = &self.tally.trace {
            trace.lock().expect("tally").push(TraceLine {
                start_s: since.saturating_duration_since(self.started).as_secs_f64(),
                latency_ms: micros as f64 / 1000.0,
                status: code,
                retries: attempt,
            });
        }
        *self
            .tally
            .statuses
            .lock()
            .expect("tally")
            .entry(label)
            .or_default() += 1;
        match outcome {
            Attempt::Status(StatusCode::OK, processed) => {
                self.tally.ok.fetch_add(1, Ordering::Relaxed);
                self.tally.rows.fetch_add(processed, Ordering::Relaxed);
                self.tally
                    .bytes_gzip
                    .fetch_add(body.gzip.len() as u64, Ordering::Relaxed);
                self.tally
                    .bytes_raw
                    .fetch_add(body.raw_len, Ordering::Relaxed);
                self.tally.log.lock().expect("tally").push(AckedUpload {
                    target: target_at,
                    body: body_at,
                    sent,
                    acked: Instant::now(),
                    processed,
                });
                let mut acked = self.tally.acked.lock().expect("tally");
                let a = acked.entry(target.site_id).or_default();
                a.rows += processed as i64;
                // The checksum holds only when every row was accepted; a
                // partial acceptance leaves it off, which --verify reports.
                if processed == body.rows {
                    a.accepted_sum += body.accepted_sum;
                }
            }
            _ => {
                self.tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn attempt(&self, target: &Target, body: &Body, idem: &str) -> Attempt {
        let req = hyper::Request::post(self.uri.clone())
            .header("x-collector-key", &target.key)
            .header("content-type", self.content_type)
            .header("content-encoding", "gzip")
            .header("idempotency-key", idem)
            .body(Full::new(body.gzip.clone()))
            .expect("request builds");
        let call = async {
            let resp = self.client.request(req).await.ok()?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await.ok()?.to_bytes();
            let processed = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["data"]["processed"].as_u64())
                .unwrap_or(0);
            Some((status, processed))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Some((status, processed))) => Attempt::Status(status, processed),
            Ok(None) => Attempt::ConnectionError,
            Err(_) => Attempt::Timeout,
        }
    }
}

#[derive(Debug)]
enum Attempt {
    Status(StatusCode, u64),
    ConnectionError,
    Timeout,
}

/// Writes the `--trace` CSV in start order (status 0: no HTTP answer).
fn write_trace(path: &std::path::Path, started_unix: f64, lines: &[TraceLine]) {
    use std::io::Write;
    let mut lines = lines.to_vec();
    lines.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let write = || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(out, "start_s,start_unix,latency_ms,status,retries")?;
        for l in &lines {
            let unix = started_unix + l.start_s;
            writeln!(
                out,
                "{:.4},{unix:.4},{:.3},{},{}",
                l.start_s, l.latency_ms, l.status, l.retries
            )?;
        }
        out.flush()
    };
    if let Err(e) = write() {
        eprintln!("adit load: cannot write --trace {}: {e}", path.display());
    }
}

/// One line a second on stderr: rates over the last second, errors, p99.
async fn progress(tally: Arc<Tally>, started: Instant) {
    let mut last = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let ok = tally.ok.load(Ordering::Relaxed);
        let rows = tally.rows.load(Ordering::Relaxed);
        let failed = tally.failed.load(Ordering::Relaxed);
        let p99 = tally.hist.lock().expect("tally").value_at_quantile(0.99) as f64 / 1000.0;
        eprintln!(
            "[{:>4.0}s] {:>6} uploads/s {:>9} rows/s  failed {failed}  p99 {p99:.0} ms",
            started.elapsed().as_secs_f64(),
            ok - last.0,
            rows - last.1,
        );
        last = (ok, rows);
    }
}

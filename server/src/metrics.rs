//! `GET /metrics`: Prometheus text. Counters are plain atomics updated once
//! per request; the writer's, the archive's and the rollup's figures are
//! read from their own stats when scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adit_archive::ArchiveStats;
use adit_control::live::LiveStats;
use adit_writer::WriterHandle;

mod datasets;
mod sites;
pub use datasets::{DatasetCount, DatasetCounters};
pub use sites::{SiteCount, SiteCounters, TELEMETRY_DATASET};

/// Statuses counted separately; anything else is "other".
const STATUSES: [u16; 11] = [200, 400, 401, 404, 405, 413, 415, 422, 429, 500, 503];
/// Upper bounds of the upload latency histogram, in seconds.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    uploads: [AtomicU64; STATUSES.len() + 1],
    pub rows_accepted: AtomicU64,
    pub rows_rejected: AtomicU64,
    pub bytes_compressed: AtomicU64,
    pub bytes_raw: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_S.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections refused because the cap was reached.
    pub connections_refused: AtomicU64,
    /// Age of the oldest closed hour not rolled up yet, set by the rollup worker.
    pub rollup_lag_s: Arc<AtomicU64>,
    /// Hours and days the database refused to roll up (counter), and the
    /// marks waiting for a retry after failing (gauge); set by the rollup worker.
    pub rollup_failed: Arc<AtomicU64>,
    pub rollup_failing: Arc<AtomicU64>,
    /// Committed uploads and rows per site.
    pub sites: SiteCounters,
    /// Declared datasets' uploads and rows (`adit_dataset_*`).
    pub datasets: DatasetCounters,
    /// `notAfter` of the served TLS certificate (Unix seconds); 0 when
    /// serving plain HTTP, and then not exported.
    pub tls_not_after_s: AtomicU64,
}

impl Metrics {
    /// Counts one answered upload.
    pub fn upload(&self, status: u16, elapsed: Duration) {
        let i = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len());
        self.uploads[i].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_S) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition text: the front door's own counters, then what the
    /// writer, the archive, the rollup worker, the in-flight budget
    /// (`inflight_bytes`) and the control plane's live state expose.
    pub fn render(
        &self,
        writer: &WriterHandle,
        archive: Option<&ArchiveStats>,
        inflight_bytes: usize,
        live: &LiveStats,
        alerts: &adit_control::alerts::AlertCounters,
    ) -> String {
        let mut e = Exposition::default();
        self.render_uploads(&mut e);
        self.render_connections(&mut e);
        render_writer(&mut e, writer);
        if let Some(a) = archive {
            render_archive(&mut e, a);
        }
        self.render_rollup(&mut e);
        self.render_sites(&mut e);
        self.render_datasets(&mut e);
        render_alerts(&mut e, alerts);
        let not_after = get(&self.tls_not_after_s);
        if not_after > 0 {
            e.metric(
                "adit_tls_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the served TLS certificate expires (notAfter, Unix seconds).",
                &one(not_after),
            );
        }
        e.metric(
            "adit_inflight_bytes",
            "gauge",
            "Bytes of the in-flight budget held by requests being read or processed.",
            &one(inflight_bytes as u64),
        );
        render_live(&mut e, live);
        e.out
    }

    /// Uploads by status, rows, bytes and the latency histogram.
    fn render_uploads(&self, e: &mut Exposition) {
        let mut uploads: Vec<(String, f64)> = STATUSES
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("{{status=\"{s}\"}}"), get(&self.uploads[i]) as f64))
            .collect();
        uploads.push((
            "{status=\"other\"}".into(),
            get(&self.uploads[STATUSES.len()]) as f64,
        ));
        e.metric(
            "adit_uploads_total",
            "counter",
            "Uploads answered, by HTTP status.",
            &uploads,
        );
        e.metric(
            "adit_rows_accepted_total",
            "counter",
            "Rows committed to PostgreSQL.",
            &one(get(&self.rows_accepted)),
        );
        e.metric(
            "adit_rows_rejected_total",
            "counter",
            "Rows refused by validation.",
            &one(get(&self.rows_rejected)),
        );
        e.metric(
            "adit_upload_bytes_total",
            "counter",
            "Upload body bytes, as received and decompressed.",
            &[
                (
                    "{kind=\"compressed\"}".into(),
                    get(&self.bytes_compressed) as f64,
                ),
                ("{kind=\"raw\"}".into(), get(&self.bytes_raw) as f64),
            ],
        );
        let mut hist: Vec<(String, f64)> = LATENCY_BUCKETS_S
            .iter()
            .zip(&self.latency_buckets)
            .map(|(b, c)| (format!("_bucket{{le=\"{b}\"}}"), get(c) as f64))
            .collect();
        hist.push((
            "_bucket{le=\"+Inf\"}".into(),
            get(&self.latency_count) as f64,
        ));
        hist.push(("_sum".into(), get(&self.latency_sum_us) as f64 / 1e6));
        hist.push(("_count".into(), get(&self.latency_count) as f64));
        e.metric(
            "adit_upload_duration_seconds",
            "histogram",
            "Time from request to answer.",
            &hist,
        );
    }

    fn render_connections(&self, e: &mut Exposition) {
        e.metric(
            "adit_connections_open",
            "gauge",
            "Client connections open now.",
            &one(get(&self.connections_open)),
        );
        e.metric(
            "adit_connections_refused_total",
            "counter",
            "Connections answered 503 and closed because --max-connections were open.",
            &one(get(&self.connections_refused)),
        );
    }

    /// Committed uploads and rows per site (and dataset).
    fn render_sites(&self, e: &mut Exposition) {
        let snapshot = self.sites.labelled();
        let series = |f: fn(&SiteCount) -> u64| -> Vec<(String, f64)> {
            snapshot
                .iter()
                .map(|(labels, c)| (labels.clone(), f(c) as f64))
                .collect()
        };
        e.metric(
            "adit_site_uploads_total",
            "counter",
            "Uploads committed, by dataset and site (sites that uploaded since start).",
            &series(|c| c.uploads),
        );
        e.metric(
            "adit_site_rows_accepted_total",
            "counter",
            "Rows committed, by dataset and site (sites that uploaded since start).",
            &series(|c| c.rows),
        );
    }

    /// Declared datasets' uploads by status and rows, by dataset.
    fn render_datasets(&self, e: &mut Exposition) {
        let snapshot = self.datasets.snapshot();
        let uploads: Vec<(String, f64)> = snapshot
            .iter()
            .flat_map(|(d, c)| {
                c.uploads.iter().map(move |(status, n)| {
                    (
                        format!("{{dataset=\"{d}\",status=\"{status}\"}}"),
                        *n as f64,
                    )
                })
            })
            .collect();
        let per = |f: fn(&DatasetCount) -> f64| -> Vec<(String, f64)> {
            snapshot
                .iter()
                .map(|(d, c)| (format!("{{dataset=\"{d}\"}}"), f(c)))
                .collect()
        };
        e.metric(
            "adit_dataset_uploads_total",
            "counter",
            "Dataset uploads answered, by dataset and HTTP status.",
            &uploads,
        );
        e.metric(
            "adit_dataset_rows_accepted_total",
            "counter",
            "Dataset rows committed to PostgreSQL, by dataset.",
            &per(|c| c.rows_accepted as f64),
        );
        e.metric(
            "adit_dataset_rows_rejected_total",
            "counter",
            "Dataset rows refused by validation, by dataset.",
            &per(|c| c.rows_rejected as f64),
        );
        e.metric(
            "adit_dataset_upload_duration_seconds_sum",
            "counter",
            "Time from request to answer of dataset uploads, summed, by dataset.",
            &per(|c| c.latency_sum_us as f64 / 1e6),
        );
    }

    fn render_rollup(&self, e: &mut Exposition) {
        e.metric(
            "adit_rollup_lag_seconds",
            "gauge",
            "Age of the oldest closed hour not rolled up yet.",
            &one(get(&self.rollup_lag_s)),
        );
        e.metric(
            "adit_rollup_failed_hours_total",
            "counter",
            "Rollups of an hour or a day the database refused (each is retried later).",
            &one(get(&self.rollup_failed)),
        );
        e.metric(
            "adit_rollup_failing_hours",
            "gauge",
            "Hours and days whose rollup failed and waits for a retry.",
            &one(get(&self.rollup_failing)),
        );
    }
}

/// The queue, flushes and the database as the writer sees them.
fn render_writer(e: &mut Exposition, writer: &WriterHandle) {
    let w = writer.stats();
    let (enq, deq) = (get(&w.enqueued), get(&w.dequeued));
    e.metric(
        "adit_writer_enqueued_total",
        "counter",
        "Uploads queued for the writer.",
        &one(enq),
    );
    e.metric(
        "adit_writer_dequeued_total",
        "counter",
        "Uploads taken by writer workers.",
        &one(deq),
    );
    e.metric(
        "adit_writer_queue_depth",
        "gauge",
        "Uploads waiting for the writer.",
        &one(writer.queue_len() as u64),
    );
    e.metric(
        "adit_writer_queue_capacity",
        "gauge",
        "Uploads the writer queue holds at most (--queue-capacity); beyond it uploads get 503.",
        &one(writer.queue_capacity() as u64),
    );
    e.metric(
        "adit_writer_flushes_total",
        "counter",
        "Committed group flushes.",
        &one(get(&w.flushes)),
    );
    e.metric(
        "adit_writer_rows_written_total",
        "counter",
        "Rows COPYed and committed.",
        &one(get(&w.rows_written)),
    );
    e.metric(
        "adit_writer_flush_seconds_total",
        "counter",
        "Time spent in flushes (divide by flushes for the mean).",
        &[(String::new(), get(&w.flush_micros) as f64 / 1e6)],
    );
    e.metric(
        "adit_writer_flush_failures_total",
        "counter",
        "Flushes that failed.",
        &one(get(&w.flush_failures)),
    );
    e.metric(
        "adit_database_up",
        "gauge",
        "1 while the writer reaches PostgreSQL.",
        &one(w.database_up.load(Ordering::Relaxed) as u64),
    );
}

/// The archive's backlog, files and failures.
fn render_archive(e: &mut Exposition, a: &ArchiveStats) {
    e.metric(
        "adit_archive_backlog_rows",
        "gauge",
        "Committed rows buffered for the archive, not yet in a file.",
        &one(get(&a.buffered_rows)),
    );
    e.metric(
        "adit_archive_queued_rows",
        "gauge",
        "Committed rows not yet in a recorded Parquet file (buffered or left to the sweeper), measured every 15 s.",
        &one(get(&a.queued_rows)),
    );
    e.metric(
        "adit_archive_lag_seconds",
        "gauge",
        "Age of the oldest committed batch not yet in a recorded Parquet file (0 when none), measured every 15 s.",
        &one(get(&a.lag_s)),
    );
    e.metric(
        "adit_archive_files_written_total",
        "counter",
        "Parquet files recorded.",
        &one(get(&a.files_written)),
    );
    e.metric(
        "adit_archive_rows_total",
        "counter",
        "Rows written to Parquet.",
        &one(get(&a.rows_archived)),
    );
    e.metric(
        "adit_archive_deferred_batches_total",
        "counter",
        "Batches left to the sweeper (archiver behind or store down).",
        &one(get(&a.dropped_batches)),
    );
    e.metric(
        "adit_archive_store_errors_total",
        "counter",
        "Failed archive writes.",
        &one(get(&a.store_errors)),
    );
}

/// The control plane's live state.
fn render_live(e: &mut Exposition, live: &LiveStats) {
    e.metric(
        "adit_live_miners",
        "gauge",
        "Miners tracked in live state now.",
        &one(get(&live.miners)),
    );
    e.metric(
        "adit_live_untracked_samples_total",
        "counter",
        "Samples of miners past their site's live-state cap: stored, not tracked live.",
        &one(get(&live.untracked_samples)),
    );
    e.metric(
        "adit_live_evicted_miners_total",
        "counter",
        "Miners that left live state after being silent for --live-evict-after.",
        &one(get(&live.evicted_miners)),
    );
}

/// Service alert rules: evaluations and alerts opened and resolved.
fn render_alerts(e: &mut Exposition, a: &adit_control::alerts::AlertCounters) {
    e.metric(
        "adit_alert_rule_evaluations_total",
        "counter",
        "Alert rule evaluations: one per (enabled rule, committed metrics_aggregated row) it applies to.",
        &one(get(&a.evaluations)),
    );
    e.metric(
        "adit_alerts_opened_total",
        "counter",
        "Service alerts this node opened.",
        &one(get(&a.opened)),
    );
    e.metric(
        "adit_alerts_resolved_total",
        "counter",
        "Service alerts this node resolved.",
        &one(get(&a.resolved)),
    );
}

/// Prometheus text being written.
#[derive(Debug, Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    /// One metric: its help, its type and its samples (labels, value).
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(self.out, "{name}{labels} {v}");
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// One unlabelled sample.
fn one(v: u64) -> Vec<(String, f64)> {
    vec![(String::new(), v as f64)]
}

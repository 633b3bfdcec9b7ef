//! Service alert rules, evaluated on committed `metrics_aggregated` rows as
//! the writer commits them (never by polling the table).
//!
//! The writer hands each committed dataset batch to [`AlertEngine`] (a
//! commit observer), which keeps only `metrics_aggregated` and passes the
//! batch (its arrays shared, not copied) to its own task: nothing is judged
//! on the writer's task. [`AlertEngine::run`] judges each row against the
//! enabled rules (held in memory, reloaded after every rule change and each
//! control sweep), keeping per (rule, service, endpoint) the newest row time
//! seen and since when the condition holds, and writes what changed: an
//! alert to open, one to resolve, and each service's newest row per batch
//! (`service_info`). A row older than the newest seen for its series is not
//! judged (it cannot flip state). Several adit nodes open one alert at most:
//! `active_alerts` allows one unresolved row per (rule, service, endpoint)
//! and opening is `INSERT … ON CONFLICT DO NOTHING`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use adit_types::dataset::{ColumnType, Dataset};
use adit_types::{DatasetRows, Sample};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

/// The dataset whose rows rules judge.
pub const DATASET: &str = "metrics_aggregated";
/// Resolved alerts older than this are deleted.
pub const RESOLVED_KEPT_DAYS: i64 = 7;
/// A service with no row for this long is `stale`.
pub const STALE_AFTER_SECS: i64 = 600;

/// How a rule compares a row's value with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    GreaterThan,
    GreaterEqual,
    LessThan,
    LessEqual,
    Equal,
}

impl Operator {
    pub const ALL: [&'static str; 5] = [
        "greater_than",
        "greater_equal",
        "less_than",
        "less_equal",
        "equal",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "greater_than" => Self::GreaterThan,
            "greater_equal" => Self::GreaterEqual,
            "less_than" => Self::LessThan,
            "less_equal" => Self::LessEqual,
            "equal" => Self::Equal,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL[self as usize]
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThan => value > threshold,
            Self::GreaterEqual => value >= threshold,
            Self::LessThan => value < threshold,
            Self::LessEqual => value <= threshold,
            Self::Equal => value == threshold,
        }
    }
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [&'static str; 4] = ["low", "medium", "high", "critical"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL[self as usize]
    }
}

/// One enabled rule as the evaluator holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    /// `None`: every service.
    pub service_name: Option<String>,
    pub metric: String,
    pub operator: Operator,
    pub threshold: f64,
    pub severity: Severity,
    /// How long (by the rows' timestamps) the condition must hold.
    pub for_micros: i64,
}

/// The numeric columns of a dataset declaration: what a rule's `metric`
/// may name.
pub fn numeric_columns(d: &Dataset) -> Vec<String> {
    d.columns
        .iter()
        .filter(|c| c.ty.is_numeric() && c.ty != ColumnType::DoubleArray)
        .map(|c| c.name.clone())
        .collect()
}

/// A change the evaluator found, written by [`AlertEngine::run`].
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Open {
        rule_id: i64,
        service: String,
        endpoint: String,
        value: f64,
        threshold: f64,
        severity: Severity,
        message: String,
        /// When the condition started to hold (the first breaching row).
        started_at: i64,
    },
    Resolve {
        rule_id: i64,
        service: String,
        endpoint: String,
        /// The first row that no longer breaches.
        at: i64,
    },
    /// The newest row of a service in one batch.
    Seen {
        service: String,
        last_seen: i64,
        endpoints: Vec<String>,
        latest: serde_json::Value,
    },
}

/// What the evaluator keeps per (rule, service, endpoint).
#[derive(Debug, Clone, Default)]
struct Series {
    /// The newest row time judged.
    last: i64,
    /// Since when the condition holds, when it does.
    since: Option<i64>,
    /// Whether this node opened (or saw hold long enough) the alert.
    open: bool,
}

type Hasher = ahash::RandomState;
/// Per service, per endpoint, per rule id: the state of a series.
type SeriesMap = HashMap<String, HashMap<String, HashMap<i64, Series, Hasher>, Hasher>, Hasher>;

/// A rule's metric column in one batch, typed once per batch.
enum Metric<'a> {
    F64(&'a arrow_array::Float64Array),
    I64(&'a arrow_array::Int64Array),
    I32(&'a arrow_array::Int32Array),
    Absent,
}

impl<'a> Metric<'a> {
    fn of(col: Option<&'a arrow_array::ArrayRef>) -> Self {
        let Some(c) = col else { return Self::Absent };
        match c.data_type() {
            DataType::Float64 => Self::F64(c.as_primitive::<Float64Type>()),
            DataType::Int64 => Self::I64(c.as_primitive::<Int64Type>()),
            DataType::Int32 => Self::I32(c.as_primitive::<Int32Type>()),
            _ => Self::Absent,
        }
    }

    fn at(&self, row: usize) -> Option<f64> {
        match self {
            Self::F64(a) => (!a.is_null(row)).then(|| a.value(row)),
            Self::I64(a) => (!a.is_null(row)).then(|| a.value(row) as f64),
            Self::I32(a) => (!a.is_null(row)).then(|| f64::from(a.value(row))),
            Self::Absent => None,
        }
    }
}

/// What the observer hands the engine's task.
#[derive(Debug)]
enum Work {
    Batch(RecordBatch),
}

/// Counters `/metrics` shows.
#[derive(Debug, Default)]
pub struct AlertCounters {
    pub evaluations: AtomicU64,
    pub opened: AtomicU64,
    pub resolved: AtomicU64,
}

/// The rules in memory and the state of every series; a commit observer.
#[derive(Debug)]
pub struct AlertEngine {
    rules: RwLock<Arc<Vec<Rule>>>,
    series: Mutex<SeriesMap>,
    tx: mpsc::UnboundedSender<Work>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Work>>>,
    /// What a rule's `metric` may name: the numeric columns of the
    /// `metrics_aggregated` declaration.
    metrics: RwLock<Vec<String>>,
    pub counters: Arc<AlertCounters>,
}

impl Default for AlertEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertEngine {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            rules: RwLock::new(Arc::new(Vec::new())),
            series: Mutex::new(SeriesMap::default()),
            tx,
            rx: Mutex::new(Some(rx)),
            metrics: RwLock::new(Vec::new()),
            counters: Arc::default(),
        }
    }

    /// Replaces the rules; the state of a rule whose definition changed or
    /// that is gone is forgotten (its next row starts afresh).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        let old = self.rules();
        let kept: std::collections::HashSet<i64> = rules
            .iter()
            .filter(|r| old.iter().any(|o| o == *r))
            .map(|r| r.id)
            .collect();
        for endpoints in self.series.lock().expect("not poisoned").values_mut() {
            for rules in endpoints.values_mut() {
                rules.retain(|id, _| kept.contains(id));
            }
        }
        *self.rules.write().expect("not poisoned") = Arc::new(rules);
    }

    /// Sets the metrics rules may name (from the declaration).
    pub fn set_metrics(&self, metrics: Vec<String>) {
        *self.metrics.write().expect("not poisoned") = metrics;
    }

    pub fn metrics(&self) -> Vec<String> {
        self.metrics.read().expect("not poisoned").clone()
    }

    pub fn rules(&self) -> Arc<Vec<Rule>> {
        self.rules.read().expect("not poisoned").clone()
    }

    /// Judges a batch of `metrics_aggregated` rows; returns the changes.
    pub fn evaluate(&self, batch: &RecordBatch) -> Vec<Change> {
        let mut out = Vec::new();
        let n = batch.num_rows();
        if n == 0 {
            return out;
        }
        let (Some(ts), Some(svc), Some(ep)) = (
            batch.column_by_name("timestamp"),
            batch.column_by_name("service_name"),
            batch.column_by_name("api_endpoint"),
        ) else {
            return out;
        };
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        let svc = svc.as_string::<i32>();
        let ep = ep.as_string::<i32>();
        self.seen(batch, ts, svc, ep, &mut out);
        let rules = self.rules();
        if rules.is_empty() {
            return out;
        }
        let columns: Vec<Metric<'_>> = rules
            .iter()
            .map(|r| Metric::of(batch.column_by_name(&r.metric)))
            .collect();
        let mut series = self.series.lock().expect("not poisoned");
        let mut evaluations = 0u64;
        for row in 0..n {
            let (t, s, e) = (ts.value(row), svc.value(row), ep.value(row));
            if !series.contains_key(s) {
                series.insert(s.to_string(), HashMap::default());
            }
            let endpoints = series.get_mut(s).expect("just inserted");
            if !endpoints.contains_key(e) {
                endpoints.insert(e.to_string(), HashMap::default());
            }
            let states = endpoints.get_mut(e).expect("just inserted");
            for (rule, col) in rules.iter().zip(&columns) {
                if rule.service_name.as_deref().is_some_and(|x| x != s) {
                    continue;
                }
                let Some(value) = col.at(row) else {
                    continue;
                };
                evaluations += 1;
                let fresh = !states.contains_key(&rule.id);
                let st = states.entry(rule.id).or_default();
                if !fresh && t < st.last {
                    continue;
                }
                st.last = t;
                if rule.operator.breaches(value, rule.threshold) {
                    let since = *st.since.get_or_insert(t);
                    if !st.open && t - since >= rule.for_micros {
                        st.open = true;
                        out.push(Change::Open {
                            rule_id: rule.id,
                            service: s.to_string(),
                            endpoint: e.to_string(),
                            value,
                            threshold: rule.threshold,
                            severity: rule.severity,
                            message: format!(
                                "{}: {} {} on {} {} is {} {}",
                                rule.name,
                                rule.metric,
                                value,
                                s,
                                e,
                                rule.operator.as_str(),
                                rule.threshold
                            ),
                            started_at: since,
                        });
                    }
                } else {
                    // A node that never saw the breach still resolves an
                    // alert another node opened: on its first row of the
                    // series, and whenever it saw the condition hold.
                    if st.open || st.since.is_some() || fresh {
                        out.push(Change::Resolve {
                            rule_id: rule.id,
                            service: s.to_string(),
                            endpoint: e.to_string(),
                            at: t,
                        });
                    }
                    st.since = None;
                    st.open = false;
                }
            }
        }
        drop(series);
        self.counters
            .evaluations
            .fetch_add(evaluations, Ordering::Relaxed);
        out
    }

    fn seen(
        &self,
        batch: &RecordBatch,
        ts: &arrow_array::TimestampMicrosecondArray,
        svc: &arrow_array::StringArray,
        ep: &arrow_array::StringArray,
        out: &mut Vec<Change>,
    ) {
        // service → (newest row, endpoints)
        let mut by: HashMap<&str, (usize, Vec<&str>)> = HashMap::new();
        for row in 0..batch.num_rows() {
            let (s, e) = (svc.value(row), ep.value(row));
            let entry = by.entry(s).or_insert((row, Vec::new()));
            if ts.value(row) > ts.value(entry.0) {
                entry.0 = row;
            }
            if !entry.1.contains(&e) {
                entry.1.push(e);
            }
        }
        for (s, (row, endpoints)) in by {
            let mut latest = serde_json::Map::new();
            latest.insert("api_endpoint".into(), ep.value(row).into());
            for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
                if let Some(v) = value_at(col.as_ref(), row) {
                    latest.insert(field.name().clone(), v.into());
                }
            }
            out.push(Change::Seen {
                service: s.to_string(),
                last_seen: ts.value(row),
                endpoints: endpoints.into_iter().map(str::to_string).collect(),
                latest: latest.into(),
            });
        }
    }

    /// Writes the changes the evaluator sends until the engine is dropped.
    /// Only one task per engine takes them.
    pub async fn run(self: Arc<Self>, pool: deadpool_postgres::Pool) {
        let Some(mut rx) = self.rx.lock().expect("not poisoned").take() else {
            return;
        };
        while let Some(Work::Batch(batch)) = rx.recv().await {
            let mut changes = self.evaluate(&batch);
            while let Ok(Work::Batch(batch)) = rx.try_recv() {
                changes.extend(self.evaluate(&batch));
            }
            loop {
                match apply(&pool, &changes, &self.counters).await {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(error = %e, "Could not write alert changes; retrying.");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }

    /// Loads the enabled rules from the database.
    pub async fn reload(&self, client: &tokio_postgres::Client) -> crate::Result<()> {
        let rows = client
            .query(
                "SELECT id, name, service_name, metric, operator, threshold, severity, for_seconds \
                 FROM alert_rules WHERE enabled ORDER BY id",
                &[],
            )
            .await?;
        let rules = rows
            .iter()
            .filter_map(|r| {
                Some(Rule {
                    id: r.get(0),
                    name: r.get(1),
                    service_name: r.get(2),
                    metric: r.get(3),
                    operator: Operator::parse(r.get(4))?,
                    threshold: r.get(5),
                    severity: Severity::parse(r.get(6))?,
                    for_micros: r.get::<_, i64>(7).saturating_mul(1_000_000),
                })
            })
            .collect();
        self.set_rules(rules);
        Ok(())
    }
}

/// The value of a numeric column at `row`, `None` when NULL or not a
/// number.
fn value_at(col: &dyn Array, row: usize) -> Option<f64> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Float64 => col.as_primitive::<Float64Type>().value(row),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row) as f64,
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row) as f64,
        _ => return None,
    })
}

fn time(micros: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

async fn apply(
    pool: &deadpool_postgres::Pool,
    changes: &[Change],
    counters: &AlertCounters,
) -> crate::Result<()> {
    let client = pool.get().await?;
    for c in changes {
        match c {
            Change::Open {
                rule_id,
                service,
                endpoint,
                value,
                threshold,
                severity,
                message,
                started_at,
            } => {
                let n = client
                    .execute(
                        "INSERT INTO active_alerts (rule_id, service_name, api_endpoint, \
                         current_value, threshold, severity, message, started_at) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
                         WHERE EXISTS (SELECT 1 FROM alert_rules WHERE id = $1) \
                         ON CONFLICT (rule_id, service_name, api_endpoint) \
                         WHERE resolved_at IS NULL DO NOTHING",
                        &[
                            rule_id,
                            service,
                            endpoint,
                            value,
                            threshold,
                            &severity.as_str(),
                            message,
                            &time(*started_at),
                        ],
                    )
                    .await?;
                counters.opened.fetch_add(n, Ordering::Relaxed);
            }
            Change::Resolve {
                rule_id,
                service,
                endpoint,
                at,
            } => {
                let n = client
                    .execute(
                        "UPDATE active_alerts SET resolved_at = $4 \
                         WHERE rule_id = $1 AND service_name = $2 AND api_endpoint = $3 \
                         AND resolved_at IS NULL AND started_at <= $4",
                        &[rule_id, service, endpoint, &time(*at)],
                    )
                    .await?;
                counters.resolved.fetch_add(n, Ordering::Relaxed);
            }
            Change::Seen {
                service,
                last_seen,
                endpoints,
                latest,
            } => {
                client
                    .execute(
                        "INSERT INTO service_info AS s (service_name, last_seen, endpoints, latest) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (service_name) DO UPDATE SET \
                         endpoints = ARRAY(SELECT DISTINCT e FROM unnest(s.endpoints || EXCLUDED.endpoints) e ORDER BY e), \
                         latest = CASE WHEN EXCLUDED.last_seen >= s.last_seen THEN EXCLUDED.latest ELSE s.latest END, \
                         last_seen = greatest(s.last_seen, EXCLUDED.last_seen), updated_at = now()",
                        &[service, &time(*last_seen), endpoints, latest],
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Deletes alerts resolved more than [`RESOLVED_KEPT_DAYS`] ago; returns
/// how many.
pub async fn retain(client: &tokio_postgres::Client) -> crate::Result<u64> {
    Ok(client
        .execute(
            "DELETE FROM active_alerts WHERE resolved_at < now() - make_interval(days => $1::int4)",
            &[&(RESOLVED_KEPT_DAYS as i32)],
        )
        .await?)
}

impl adit_types::CommitObserver for AlertEngine {
    fn committed(&self, _site_id: i32, _samples: &[Sample]) {}

    fn committed_rows(&self, _site_id: i32, rows: &DatasetRows) {
        if rows.dataset.name != DATASET {
            return;
        }
        // The batch's arrays are shared, not copied: judging them happens
        // on the engine's task, never on the writer's.
        let _ = self.tx.send(Work::Batch(rows.batch.clone()));
    }
}

pub mod api;
#[cfg(test)]
mod tests;

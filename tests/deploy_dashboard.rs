//! The Grafana dashboard (deploy/grafana/adit.json) asks only for metrics
//! adit exports: every metric name in every panel's PromQL (and in the
//! template variables' queries) is looked up in `/metrics` of a real adit
//! that has the archive on and has taken an upload.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../deploy/grafana/adit.json");

/// PromQL words that are not metric names (aggregations may be followed
/// by `by (…)` instead of their parenthesis).
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
];

/// The metric names a PromQL expression selects: identifiers that are not
/// functions or aggregations (followed by `(`), keywords, label names (in
/// `{…}` matchers or `by (…)` lists), strings, durations or Grafana
/// variables (`$__rate_interval`, `${instance}`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    // Strings, matchers and ranges go; what is left is names, calls,
    // numbers and operators.
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == c {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                for d in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '$' => {
                if chars.peek() == Some(&'{') {
                    for d in chars.by_ref() {
                        if d == '}' {
                            break;
                        }
                    }
                } else {
                    while chars
                        .peek()
                        .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_')
                    {
                        chars.next();
                    }
                }
                cleaned.push(' ');
            }
            _ => cleaned.push(c),
        }
    }
    let bytes = cleaned.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() || c == b'.' {
            // A number or a duration (5m, 1h30m, 0.99, 1e3).
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            let word = &cleaned[start..i];
            let next = cleaned[i..].trim_start().chars().next();
            let lower = word.to_ascii_lowercase();
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&lower.as_str())
            {
                // Its label list follows: skip to the closing parenthesis.
                skip_list = next == Some('(');
                continue;
            }
            if next == Some('(') || KEYWORDS.contains(&lower.as_str()) {
                continue;
            }
            names.insert(word.to_string());
            continue;
        }
        if c == b'(' && skip_list {
            skip_list = false;
            while i < bytes.len() && bytes[i] != b')' {
                i += 1;
            }
        }
        i += 1;
    }
    names
}

/// Every PromQL expression of the dashboard: each panel's targets (rows'
/// nested panels included) and each query variable's query.
fn expressions(dash: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("every target has an expr");
                out.push((title.clone(), expr.to_string()));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .expect("query variable has a query");
            // label_values(metric, label): the metric is the first argument.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
                .unwrap_or(q);
            out.push((format!("variable {}", v["name"]), inner.to_string()));
        }
    }
    out
}

/// The names of every sample in an exposition (histogram series included).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_extractor_finds_names_and_only_names() {
    let got = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        got(
            r#"histogram_quantile(0.99, sum by (le) (rate(adit_upload_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))"#
        ),
        ["adit_upload_duration_seconds_bucket"]
    );
    assert_eq!(
        got(
            r#"sum(rate(a_total{x="by (b)"}[5m])) / on (instance) group_left (site) b_total offset 1h > bool 3"#
        ),
        ["a_total", "b_total"]
    );
    assert_eq!(
        got("topk(10, sum without (job) (c:rate5m)) unless ${var} d"),
        ["c:rate5m", "d"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_metric_is_exported_by_adit() {
    let dash: Value = serde_json::from_str(DASHBOARD).expect("adit.json is JSON");
    let exprs = expressions(&dash);
    assert!(exprs.len() >= 20, "only {} expressions", exprs.len());
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| metric_names(e)).collect();
    // What the dashboard must show.
    for must in [
        "adit_rows_accepted_total",
        "adit_uploads_total",
        "adit_upload_duration_seconds_bucket",
        "adit_writer_queue_depth",
        "adit_writer_flushes_total",
        "adit_writer_flush_seconds_total",
        "adit_archive_queued_rows",
        "adit_archive_lag_seconds",
        "adit_rollup_lag_seconds",
        "adit_site_rows_accepted_total",
    ] {
        assert!(wanted.contains(must), "the dashboard does not show {must}");
    }
    assert!(
        exprs
            .iter()
            .any(|(_, e)| e.contains("histogram_quantile(0.99")),
        "no p99 latency panel"
    );
    assert!(
        exprs.iter().any(|(_, e)| e.contains("sum by (dataset)")),
        "no per-dataset panel"
    );

    let dir = std::env::temp_dir().join(format!("adit-dash-{}", rand::random::<u32>()));
    let url = format!("file://{}", dir.display());
    let srv = TestServer::start_with("deploy_dashboard", |c| {
        c.archive_url = Some(url.clone());
        c.archive_flush_interval = Duration::from_secs(1);
    })
    .await;
    let key = srv.key(12).await;
    let (status, _, body) = upload(srv.addr, &key, &array(&rows("dash", 20)), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, text) = get(srv.addr, "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let have = exported(&text);
    let missing: Vec<String> = exprs
        .iter()
        .flat_map(|(title, e)| {
            metric_names(e)
                .into_iter()
                .filter(|n| !have.contains(n))
                .map(move |n| format!("{n} (panel {title:?})"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard asks for metrics adit does not export: {missing:?}\nexported: {have:?}"
    );
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

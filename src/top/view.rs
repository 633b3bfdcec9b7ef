//! What `adit top` shows: figures computed from two scrapes of `/metrics`
//! (rates over the time between them, latency percentiles from the
//! histogram's buckets) and the stats endpoint's per-site hour, rendered
//! as one plain-text frame.

use std::fmt::Write as _;

use serde_json::Value;

use super::prom::Scrape;

/// One site's line of the stats endpoint (the last hour).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SiteHour {
    pub(super) site_id: i64,
    pub(super) uploads: i64,
    pub(super) rows: i64,
    pub(super) p95_ms: f64,
    pub(super) last_upload_at: String,
}

/// Reads `GET /api/collector/stats`'s `data.sites`.
pub(super) fn parse_stats(body: &str) -> Result<Vec<SiteHour>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("stats: not JSON: {e}"))?;
    if v["success"] != Value::Bool(true) {
        let code = v["code"].as_str().unwrap_or("?");
        return Err(format!("stats refused: {code}"));
    }
    let sites = v["data"]["sites"]
        .as_array()
        .ok_or("stats: no data.sites")?;
    Ok(sites
        .iter()
        .map(|s| SiteHour {
            site_id: s["site_id"].as_i64().unwrap_or(-1),
            uploads: s["uploads"].as_i64().unwrap_or(0),
            rows: s["rows_accepted"].as_i64().unwrap_or(0),
            p95_ms: s["processing_ms_p95"].as_f64().unwrap_or(0.0),
            last_upload_at: s["last_upload_at"].as_str().unwrap_or("").to_string(),
        })
        .collect())
}

/// Rates between two scrapes `seconds` apart.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delta<'a> {
    pub(super) before: &'a Scrape,
    pub(super) now: &'a Scrape,
    pub(super) seconds: f64,
}

impl Delta<'_> {
    /// Per-second increase of the counter `name` (all its series summed);
    /// a counter that went down restarted, and counts from zero.
    fn rate(&self, name: &str) -> f64 {
        let now = self.now.sum(name).unwrap_or(0.0);
        let before = self.before.sum(name).unwrap_or(0.0);
        per_s(now, before, self.seconds)
    }

    fn rate_with(&self, name: &str, label: &str, value: &str) -> f64 {
        let now = self.now.with(name, label, value).unwrap_or(0.0);
        let before = self.before.with(name, label, value).unwrap_or(0.0);
        per_s(now, before, self.seconds)
    }

    /// Increase of `name`{`label`=`value`} (a reset counts from zero).
    fn increase_with(&self, name: &str, label: &str, value: &str) -> f64 {
        let now = self.now.with(name, label, value).unwrap_or(0.0);
        let before = self.before.with(name, label, value).unwrap_or(0.0);
        if now >= before {
            now - before
        } else {
            now
        }
    }
}

fn per_s(now: f64, before: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    let inc = if now >= before { now - before } else { now };
    inc / seconds
}

/// The `q` quantile of the histogram `name` over the interval, in its unit
/// (Prometheus' `histogram_quantile`: linear within the bucket); None when
/// nothing was observed.
pub(super) fn quantile(d: &Delta<'_>, name: &str, q: f64) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = d
        .now
        .series(&bucket)
        .iter()
        .filter_map(|(labels, _)| {
            let le = labels.get("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, d.increase_with(&bucket, "le", le)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().filter(|b| b.0.is_infinite())?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in &buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * frac);
        }
        lower = (bound, count);
    }
    None
}

/// Everything one frame needs.
#[derive(Debug)]
pub(super) struct Frame<'a> {
    pub(super) url: &'a str,
    pub(super) interval_s: f64,
    pub(super) clock: String,
    /// The latest scrape.
    pub(super) now: &'a Scrape,
    /// Rates, once two scrapes exist.
    pub(super) delta: Option<Delta<'a>>,
    /// The stats endpoint's answer; None without an admin token.
    pub(super) stats: Option<Result<Vec<SiteHour>, String>>,
    /// Bold headings (a terminal).
    pub(super) ansi: bool,
}

/// Sites listed at most.
pub(super) const TOP_SITES: usize = 10;

impl Frame<'_> {
    /// The frame as text, one line per `\n`.
    pub(super) fn render(&self) -> String {
        let mut o = String::new();
        let b = |s: &str| {
            if self.ansi {
                format!("\x1b[1m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let _ = writeln!(
            o,
            "{}  {}  every {}  {}   q: quit",
            b("adit top"),
            self.url,
            secs(self.interval_s),
            self.clock
        );
        o.push('\n');
        let g = |name: &str| self.now.sum(name);
        match &self.delta {
            Some(d) => {
                let _ = writeln!(
                    o,
                    "{}  rows/s {}   rejected/s {}   uploads/s {}   in {}/s",
                    b("INGEST   "),
                    num(d.rate("adit_rows_accepted_total")),
                    num(d.rate("adit_rows_rejected_total")),
                    num(d.rate("adit_uploads_total")),
                    bytes(d.rate_with("adit_upload_bytes_total", "kind", "compressed")),
                );
                let mut by_status: Vec<String> = self
                    .now
                    .series("adit_uploads_total")
                    .iter()
                    .filter_map(|(l, _)| {
                        let s = l.get("status")?;
                        let r = d.rate_with("adit_uploads_total", "status", s);
                        (r > 0.0).then(|| format!("{s} {}", num(r)))
                    })
                    .collect();
                if by_status.is_empty() {
                    by_status.push("none".into());
                }
                let _ = writeln!(o, "{}  {}", b("UPLOADS/s"), by_status.join("   "));
                let lat = |q| quantile(d, "adit_upload_duration_seconds", q);
                let count = d.rate("adit_upload_duration_seconds_count");
                let mean =
                    (count > 0.0).then(|| d.rate("adit_upload_duration_seconds_sum") / count);
                let _ = writeln!(
                    o,
                    "{}  p50 {}   p90 {}   p99 {}   mean {}",
                    b("LATENCY  "),
                    ms(lat(0.5)),
                    ms(lat(0.9)),
                    ms(lat(0.99)),
                    ms(mean)
                );
                let flushes = d.rate("adit_writer_flushes_total");
                let per_flush = |name: &str| (flushes > 0.0).then(|| d.rate(name) / flushes);
                let _ = writeln!(
                    o,
                    "{}  queue {} / {}   flushes/s {}   rows/flush {}   flush {}   database {}",
                    b("WRITER   "),
                    opt_num(g("adit_writer_queue_depth")),
                    opt_num(g("adit_writer_queue_capacity")),
                    num(flushes),
                    opt_num(per_flush("adit_writer_rows_written_total")),
                    ms(per_flush("adit_writer_flush_seconds_total")),
                    match g("adit_database_up") {
                        Some(v) if v >= 1.0 => "up",
                        Some(_) => "DOWN",
                        None => "?",
                    }
                );
                if g("adit_archive_rows_total").is_some() {
                    let _ = writeln!(
                        o,
                        "{}  not in Parquet {} rows   lag {}   archived/s {}   store errors {}",
                        b("ARCHIVE  "),
                        opt_num(g("adit_archive_queued_rows")),
                        age(g("adit_archive_lag_seconds")),
                        num(d.rate("adit_archive_rows_total")),
                        opt_num(g("adit_archive_store_errors_total")),
                    );
                } else {
                    let _ = writeln!(o, "{}  off", b("ARCHIVE  "));
                }
                let _ = writeln!(
                    o,
                    "{}  lag {}   failing {}",
                    b("ROLLUP   "),
                    age(g("adit_rollup_lag_seconds")),
                    opt_num(g("adit_rollup_failing_hours")),
                );
                let _ = writeln!(
                    o,
                    "{}  open {}   refused/s {}   live miners {}",
                    b("CONNS    "),
                    opt_num(g("adit_connections_open")),
                    num(d.rate("adit_connections_refused_total")),
                    opt_num(g("adit_live_miners")),
                );
                o.push('\n');
                self.render_sites(&mut o, d, &b);
            }
            None => {
                let _ = writeln!(o, "(rates from the next refresh)");
            }
        }
        o
    }

    fn render_sites(&self, o: &mut String, d: &Delta<'_>, b: &dyn Fn(&str) -> String) {
        let _ = writeln!(
            o,
            "{}",
            b(&format!(
                "{:<16}{:>10}{:>13}{:>13}{:>9}  {}",
                "TOP SITES", "rows/s", "uploads 1h", "rows 1h", "p95 ms", "last upload"
            ))
        );
        let hour: &[SiteHour] = match &self.stats {
            Some(Ok(s)) => s,
            _ => &[],
        };
        let mut ids: Vec<i64> = hour.iter().map(|s| s.site_id).collect();
        for (labels, _) in self.now.series("adit_site_rows_accepted_total") {
            if let Some(id) = labels.get("site_id").and_then(|s| s.parse().ok()) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let mut rows: Vec<(i64, f64, Option<&SiteHour>)> = ids
            .into_iter()
            .map(|id| {
                let rate = d.rate_with("adit_site_rows_accepted_total", "site_id", &id.to_string());
                (id, rate, hour.iter().find(|s| s.site_id == id))
            })
            .collect();
        rows.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| b.2.map_or(0, |s| s.rows).cmp(&a.2.map_or(0, |s| s.rows)))
                .then(a.0.cmp(&b.0))
        });
        for (id, rate, h) in rows.iter().take(TOP_SITES) {
            let _ = writeln!(
                o,
                "{:<16}{:>10}{:>13}{:>13}{:>9}  {}",
                format!("site {id}"),
                num(*rate),
                h.map_or("-".into(), |h| num(h.uploads as f64)),
                h.map_or("-".into(), |h| num(h.rows as f64)),
                h.map_or("-".into(), |h| format!("{:.0}", h.p95_ms)),
                h.map_or("-", |h| h.last_upload_at.as_str()),
            );
        }
        if rows.is_empty() {
            let _ = writeln!(o, "  no uploads yet");
        }
        match &self.stats {
            None => {
                let _ = writeln!(
                    o,
                    "  (per-site hour from /api/collector/stats: pass --token or set ADIT_ADMIN_TOKEN)"
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(o, "  ({e})");
            }
            Some(Ok(_)) => {}
        }
    }
}

/// A figure: whole with thousands separators from 100 up, one decimal below.
pub(super) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v.abs() >= 100.0 || v == v.trunc() {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else {
        format!("{v:.1}")
    }
}

fn opt_num(v: Option<f64>) -> String {
    v.map_or("-".into(), num)
}

/// Seconds as milliseconds (below 10 s) or seconds.
fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 10.0 => format!("{:.1} ms", s * 1000.0),
        Some(s) => format!("{s:.1} s"),
    }
}

fn secs(s: f64) -> String {
    if s == s.trunc() {
        format!("{s:.0}s")
    } else {
        format!("{s}s")
    }
}

/// An age in seconds, in the largest unit that keeps it readable.
fn age(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(rows: u64, ok: u64, shed: u64, fast: u64, slow: u64, site7: u64) -> Scrape {
        let all = fast + slow;
        Scrape::parse(&format!(
            "adit_rows_accepted_total {rows}\n\
             adit_uploads_total{{status=\"200\"}} {ok}\n\
             adit_uploads_total{{status=\"503\"}} {shed}\n\
             adit_upload_duration_seconds_bucket{{le=\"0.01\"}} {fast}\n\
             adit_upload_duration_seconds_bucket{{le=\"0.1\"}} {fast}\n\
             adit_upload_duration_seconds_bucket{{le=\"1\"}} {all}\n\
             adit_upload_duration_seconds_bucket{{le=\"+Inf\"}} {all}\n\
             adit_upload_duration_seconds_count {all}\n\
             adit_upload_duration_seconds_sum 0\n\
             adit_writer_queue_depth 3\n\
             adit_writer_queue_capacity 1024\n\
             adit_database_up 1\n\
             adit_site_rows_accepted_total{{dataset=\"miner_telemetry\",site_id=\"7\"}} {site7}\n\
             adit_site_rows_accepted_total{{dataset=\"miner_telemetry\",site_id=\"9\"}} 50\n"
        ))
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_over_the_interval() {
        // Before: 100 fast uploads. Over the interval: 90 fast (≤ 10 ms)
        // and 10 slow (0.1–1 s).
        let (a, b) = (scrape(0, 0, 0, 100, 0, 0), scrape(0, 0, 0, 190, 10, 0));
        let d = Delta {
            before: &a,
            now: &b,
            seconds: 1.0,
        };
        let p50 = quantile(&d, "adit_upload_duration_seconds", 0.5).unwrap();
        assert!((p50 - 0.01 * 50.0 / 90.0).abs() < 1e-9, "{p50}");
        let p99 = quantile(&d, "adit_upload_duration_seconds", 0.99).unwrap();
        assert!((p99 - (0.1 + 0.9 * 9.0 / 10.0)).abs() < 1e-9, "{p99}");
        let same = Delta {
            before: &b,
            now: &b,
            seconds: 1.0,
        };
        assert_eq!(quantile(&same, "adit_upload_duration_seconds", 0.5), None);
    }

    #[test]
    fn a_frame_shows_rates_statuses_and_sites_in_order() {
        let a = scrape(1_000, 10, 0, 10, 0, 1_000);
        let b = scrape(25_000, 30, 2, 30, 2, 24_000);
        let stats = parse_stats(
            r#"{"success":true,"data":{"hours":1,"sites":[
                {"site_id":9,"uploads":5,"rows_accepted":50,"processing_ms_p95":3.0,"last_upload_at":"2026-12-05T14:00:00Z"},
                {"site_id":7,"uploads":60,"rows_accepted":360000,"processing_ms_p95":14.2,"last_upload_at":"2026-12-05T14:31:01Z"}]}}"#,
        );
        let frame = Frame {
            url: "http://127.0.0.1:8080",
            interval_s: 2.0,
            clock: "14:31:02 UTC".into(),
            now: &b,
            delta: Some(Delta {
                before: &a,
                now: &b,
                seconds: 2.0,
            }),
            stats: Some(stats),
            ansi: false,
        };
        let text = frame.render();
        assert!(text.contains("rows/s 12,000 "), "{text}");
        assert!(text.contains("200 10   503 1\n"), "{text}");
        assert!(text.contains("queue 3 / 1,024"), "{text}");
        assert!(text.contains("database up"), "{text}");
        let site7 = text.find("site 7 ").expect("site 7 listed");
        let site9 = text.find("site 9 ").expect("site 9 listed");
        assert!(site7 < site9, "busiest site first:\n{text}");
        let line7 = text[site7..].lines().next().unwrap();
        assert!(
            line7.contains("11,500") && line7.contains("360,000") && line7.contains("14:31:01Z"),
            "{line7}"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn refused_stats_and_numbers_read_well() {
        assert_eq!(
            parse_stats(r#"{"success":false,"error":"x","code":"invalid_key"}"#),
            Err("stats refused: invalid_key".into())
        );
        assert_eq!(num(1234567.4), "1,234,567");
        assert_eq!(num(12.25), "12.2");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-1500.0), "-1,500");
        assert_eq!(age(Some(75.0)), "75 s");
        assert_eq!(age(Some(600.0)), "10 min");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(ms(Some(0.0123)), "12.3 ms");
    }
}

//! Prometheus text exposition, as `adit top` reads it from `/metrics`:
//! samples by name, each with its labels and value.

use std::collections::{BTreeMap, HashMap};

/// Labels of one sample.
pub(super) type Labels = BTreeMap<String, String>;

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Default)]
pub(super) struct Scrape {
    samples: HashMap<String, Vec<(Labels, f64)>>,
}

impl Scrape {
    /// Parses exposition text; lines that are not samples are skipped.
    pub(super) fn parse(text: &str) -> Self {
        let mut samples: HashMap<String, Vec<(Labels, f64)>> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Labels::new()),
            };
            samples
                .entry(name.to_string())
                .or_default()
                .push((labels, value));
        }
        Self { samples }
    }

    /// Every sample of `name`.
    pub(super) fn series(&self, name: &str) -> &[(Labels, f64)] {
        self.samples.get(name).map_or(&[], Vec::as_slice)
    }

    /// The sum of every sample of `name`; None when there is none.
    pub(super) fn sum(&self, name: &str) -> Option<f64> {
        let s = self.series(name);
        (!s.is_empty()).then(|| s.iter().map(|(_, v)| v).sum())
    }

    /// The sample of `name` whose `label` is `value`.
    pub(super) fn with(&self, name: &str, label: &str, value: &str) -> Option<f64> {
        self.series(name)
            .iter()
            .find(|(l, _)| l.get(label).is_some_and(|v| v == value))
            .map(|(_, v)| *v)
    }
}

/// `a="x",b="y \"q\""` into a map (escapes `\\`, `\"`, `\n` undone).
fn parse_labels(text: &str) -> Labels {
    let mut labels = Labels::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim().trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP adit_uploads_total Uploads answered, by HTTP status.
# TYPE adit_uploads_total counter
adit_uploads_total{status="200"} 12
adit_uploads_total{status="503"} 3
adit_rows_accepted_total 1200
adit_site_rows_accepted_total{dataset="miner_telemetry",site_id="7"} 1000
weird{a="x \"q\", y",b="2"} 1.5e3
adit_upload_duration_seconds_bucket{le="+Inf"} 15
"#;

    #[test]
    fn samples_are_read_with_their_labels() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.with("adit_uploads_total", "status", "503"), Some(3.0));
        assert_eq!(s.sum("adit_uploads_total"), Some(15.0));
        assert_eq!(s.sum("adit_rows_accepted_total"), Some(1200.0));
        assert_eq!(s.sum("adit_nothing"), None);
        assert_eq!(
            s.with("adit_site_rows_accepted_total", "site_id", "7"),
            Some(1000.0)
        );
        let (labels, v) = &s.series("weird")[0];
        assert_eq!(labels["a"], "x \"q\", y");
        assert_eq!(labels["b"], "2");
        assert_eq!(*v, 1500.0);
        assert_eq!(
            s.with("adit_upload_duration_seconds_bucket", "le", "+Inf"),
            Some(15.0)
        );
    }
}

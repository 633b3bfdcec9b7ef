//! Per-dataset counters: uploads answered by status, rows committed and
//! refused. Telemetry keeps its own series (`adit_uploads_total`, …);
//! these are `adit_dataset_*`, labelled by dataset.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Counts of one dataset.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DatasetCount {
    /// Uploads answered, by HTTP status.
    pub uploads: BTreeMap<u16, u64>,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    /// Sum of answer times, microseconds.
    pub latency_sum_us: u64,
}

#[derive(Debug, Default)]
pub struct DatasetCounters {
    by_dataset: Mutex<BTreeMap<String, DatasetCount>>,
}

impl DatasetCounters {
    fn with(&self, dataset: &str, f: impl FnOnce(&mut DatasetCount)) {
        let mut by = self.by_dataset.lock().unwrap_or_else(|p| p.into_inner());
        match by.get_mut(dataset) {
            Some(c) => f(c),
            None => f(by.entry(dataset.to_string()).or_default()),
        }
    }

    /// Counts one answered upload of `dataset`.
    pub fn upload(&self, dataset: &str, status: u16, elapsed: Duration) {
        self.with(dataset, |c| {
            *c.uploads.entry(status).or_default() += 1;
            c.latency_sum_us += elapsed.as_micros() as u64;
        });
    }

    /// Counts the rows of one committed upload of `dataset`.
    pub fn committed(&self, dataset: &str, accepted: u64, rejected: u64) {
        self.with(dataset, |c| {
            c.rows_accepted += accepted;
            c.rows_rejected += rejected;
        });
    }

    pub fn snapshot(&self) -> Vec<(String, DatasetCount)> {
        let by = self.by_dataset.lock().unwrap_or_else(|p| p.into_inner());
        by.iter().map(|(d, c)| (d.clone(), c.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_dataset_and_status() {
        let c = DatasetCounters::default();
        c.upload("b", 200, Duration::from_millis(2));
        c.upload("a", 404, Duration::from_millis(1));
        c.upload("b", 200, Duration::from_millis(3));
        c.committed("b", 10, 1);
        let s = c.snapshot();
        assert_eq!(s[0].0, "a");
        assert_eq!(s[0].1.uploads[&404], 1);
        assert_eq!(s[1].1.uploads[&200], 2);
        assert_eq!((s[1].1.rows_accepted, s[1].1.rows_rejected), (10, 1));
        assert_eq!(s[1].1.latency_sum_us, 5_000);
    }
}
